"""The router's per-app state: custom domains, router settings (only what the owner set,
not the defaults), uploaded certificates; and the router's access-log lines, which become
lines of each app's log."""
from __future__ import annotations

import json
import sqlite3
from typing import Callable

from core.errors import DomainTaken
from core.models import App

from controller.store.base import now
from controller.store.events import trim_events


class RouterMixin:
    # ---- router settings --------------------------------------------------
    def router_settings(self, app: App) -> dict:
        with self.read() as db:
            row = db.execute("SELECT settings FROM router_settings WHERE app_id = ?", (app.id,)).fetchone()
        return json.loads(row["settings"]) if row else {}

    def change_router_settings(self, app: App, change: Callable[[dict], dict]) -> dict:
        """Read the app's settings, store `change(settings)` in the same transaction (so two
        changes at once both land); returns what was stored."""
        with self.tx() as db:
            row = db.execute("SELECT settings FROM router_settings WHERE app_id = ?", (app.id,)).fetchone()
            current = change(json.loads(row["settings"]) if row else {})
            db.execute("INSERT INTO router_settings (app_id, settings, updated_at) VALUES (?, ?, ?)"
                       " ON CONFLICT (app_id) DO UPDATE SET settings = excluded.settings,"
                       " updated_at = excluded.updated_at",
                       (app.id, json.dumps(current, sort_keys=True), now()))
        return current

    def all_router_settings(self) -> dict[str, dict]:
        with self.read() as db:
            return {r["name"]: json.loads(r["settings"]) for r in db.execute(
                "SELECT a.name, s.settings FROM router_settings s JOIN apps a ON a.id = s.app_id")}

    # ---- domains ----------------------------------------------------------
    def domains(self, app: App) -> list[dict]:
        with self.read() as db:
            return [dict(hostname=r["hostname"], created_at=r["created_at"]) for r in db.execute(
                "SELECT hostname, created_at FROM domains WHERE app_id = ? ORDER BY hostname", (app.id,))]

    def domain_owner_name(self, hostname: str) -> str | None:
        with self.read() as db:
            row = db.execute("SELECT a.name FROM domains d JOIN apps a ON a.id = d.app_id WHERE d.hostname = ?",
                             (hostname,)).fetchone()
        return row["name"] if row else None

    def add_domain(self, app: App, hostname: str) -> None:
        """Raises Conflict if the hostname is taken (the caller words who owns it)."""
        try:
            with self.tx() as db:
                db.execute("INSERT INTO domains (hostname, app_id, created_at) VALUES (?, ?, ?)",
                           (hostname, app.id, now()))
        except sqlite3.IntegrityError:
            raise DomainTaken(f"{hostname} is already in use by another app.") from None

    def remove_domain(self, app: App, hostname: str) -> bool:
        with self.tx() as db:
            cur = db.execute("DELETE FROM domains WHERE app_id = ? AND hostname = ?", (app.id, hostname))
        return cur.rowcount == 1

    def all_domains(self) -> dict[str, list[str]]:
        """App name -> its custom hostnames, sorted."""
        out: dict[str, list[str]] = {}
        with self.read() as db:
            for r in db.execute("SELECT a.name, d.hostname FROM domains d JOIN apps a ON a.id = d.app_id"
                                " ORDER BY d.hostname"):
                out.setdefault(r["name"], []).append(r["hostname"])
        return out

    # ---- certificates -----------------------------------------------------
    def put_cert(self, app: App, cert_pem: str, key_pem: str, info: dict, source: str) -> None:
        """The app's certificate (one per app: a new one replaces the old)."""
        with self.tx() as db:
            db.execute("INSERT INTO app_certs (app_id, cert_pem, key_pem, info, source, created_at)"
                       " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (app_id) DO UPDATE SET cert_pem = excluded.cert_pem,"
                       " key_pem = excluded.key_pem, info = excluded.info, source = excluded.source,"
                       " created_at = excluded.created_at",
                       (app.id, cert_pem, key_pem, json.dumps(info), source, now()))

    def cert_record(self, app_name: str) -> dict | None:
        """{"cert_pem", "key_pem", "info" (as put), "source"} of the app's certificate, or None."""
        with self.read() as db:
            row = db.execute("SELECT c.* FROM app_certs c JOIN apps a ON a.id = c.app_id WHERE a.name = ?",
                             (app_name,)).fetchone()
        return _cert(row) if row is not None else None

    def cert_records(self) -> dict[str, dict]:
        """Every app's certificate record (as `cert_record`) by app name, in one read: a route
        table names every app."""
        with self.read() as db:
            rows = db.execute("SELECT a.name AS app_name, c.* FROM app_certs c JOIN apps a ON a.id = c.app_id").fetchall()
        return {row["app_name"]: _cert(row) for row in rows}

    def remove_cert(self, app: App) -> bool:
        with self.tx() as db:
            return db.execute("DELETE FROM app_certs WHERE app_id = ?", (app.id,)).rowcount == 1

    # ---- router access-log lines ------------------------------------------
    def add_router_lines(self, by_app: dict[str, list[tuple[str, str, str, str]]]) -> None:
        """(at, source, process, message) rows into each named app's log, in one transaction;
        rows of an app that no longer exists are dropped."""
        if not any(by_app.values()):
            return
        with self.tx() as db:
            for app_name, rows in by_app.items():
                found = db.execute("SELECT id FROM apps WHERE name = ?", (app_name,)).fetchone()
                if found is None or not rows:
                    continue
                db.executemany("INSERT INTO events (app_id, at, source, process, message) VALUES (?, ?, ?, ?, ?)",
                               [(found["id"], *r) for r in rows])
                trim_events(db, found["id"])


def _cert(row) -> dict:
    return {"cert_pem": row["cert_pem"], "key_pem": row["key_pem"], "info": json.loads(row["info"]),
            "source": row["source"]}
