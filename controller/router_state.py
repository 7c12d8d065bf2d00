"""Store access for the router's per-app state: custom domains, certificates and router
settings (tables of the `router` migration in controller/store.py), plus the pure parsing
of `router:set` pairs and the files nginx reads certificates from."""
from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import asdict, replace
from pathlib import Path

from router import render
from router.table import RouteOptions, Tls

from core.fsutil import atomic_write

from .certs import CertBundle, CertInfo
from core.errors import BadRequest, Conflict, NotFound
from core.models import App
from .store import Store, now

# CLI spelling -> (RouteOptions field or flag, kind)
SETTINGS: dict[str, tuple[str, str]] = {
    "client-max-body-size": ("client_max_body_size", "size"),
    "read-timeout": ("read_timeout", "seconds"),
    "send-timeout": ("send_timeout", "seconds"),
    "connect-timeout": ("connect_timeout", "seconds"),
    "force-https": ("force_https", "bool"),
    "maintenance": ("maintenance", "bool"),
}
_TRUE, _FALSE = {"true", "on", "yes", "1"}, {"false", "off", "no", "0"}


def defaults() -> dict:
    d = RouteOptions()
    return {"client-max-body-size": d.client_max_body_size, "read-timeout": d.read_timeout,
            "send-timeout": d.send_timeout, "connect-timeout": d.connect_timeout,
            "force-https": False, "maintenance": False}


def parse_settings(app_name: str, changes: dict) -> dict:
    """Pure: {"read-timeout": "120", "client-max-body-size": "50m", "x": None (reset)} -> typed values.
    Raises BadRequest naming the setting and what it accepts."""
    out: dict = {}
    for key, raw in changes.items():
        if key not in SETTINGS:
            raise BadRequest(f"Unknown router setting {str(key)[:40]!r}: the settings are "
                             f"{', '.join(sorted(SETTINGS))}.")
        if raw is None:
            out[key] = None
            continue
        _, kind = SETTINGS[key]
        value = str(raw).strip().lower() if not isinstance(raw, bool) else raw
        if kind == "bool":
            if isinstance(value, bool):
                out[key] = value
            elif value in _TRUE or value in _FALSE:
                out[key] = value in _TRUE
            else:
                raise BadRequest(f"{key}={str(raw)[:20]!r}: use true or false.")
        elif kind == "seconds":
            text = value[:-1] if isinstance(value, str) and value.endswith("s") else value
            if not isinstance(text, str) or not text.isdigit():
                raise BadRequest(f"{key}={str(raw)[:20]!r} is not a number of seconds: e.g. {key}=120.")
            out[key] = int(text)
        else:
            out[key] = value
    merged = {**defaults(), **{k: v for k, v in out.items() if v is not None}}
    render.check_options(options_from(merged), app_name)   # RenderError (400) names the setting
    return out


def options_from(values: dict) -> RouteOptions:
    d = {**defaults(), **values}
    return RouteOptions(client_max_body_size=d["client-max-body-size"], read_timeout=d["read-timeout"],
                        send_timeout=d["send-timeout"], connect_timeout=d["connect-timeout"])


# ---- router settings ------------------------------------------------------------------
def get_settings(store: Store, app: App) -> dict:
    """Only what the owner set (not the defaults)."""
    with store.read() as db:
        row = db.execute("SELECT settings FROM router_settings WHERE app_id = ?", (app.id,)).fetchone()
    return json.loads(row["settings"]) if row else {}


def update_settings(store: Store, app: App, parsed: dict) -> dict:
    """Apply parsed changes (None = back to default) in one transaction; returns the new settings."""
    with store.tx() as db:
        row = db.execute("SELECT settings FROM router_settings WHERE app_id = ?", (app.id,)).fetchone()
        current = json.loads(row["settings"]) if row else {}
        for key, value in parsed.items():
            if value is None or value == defaults()[key]:
                current.pop(key, None)
            else:
                current[key] = value
        db.execute("INSERT INTO router_settings (app_id, settings, updated_at) VALUES (?, ?, ?)"
                   " ON CONFLICT (app_id) DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at",
                   (app.id, json.dumps(current, sort_keys=True), now()))
    return current


def all_settings(store: Store) -> dict[str, dict]:
    with store.read() as db:
        return {r["name"]: json.loads(r["settings"]) for r in db.execute(
            "SELECT a.name, s.settings FROM router_settings s JOIN apps a ON a.id = s.app_id")}


# ---- domains --------------------------------------------------------------------------
def domains(store: Store, app: App) -> list[dict]:
    with store.read() as db:
        return [dict(hostname=r["hostname"], created_at=r["created_at"]) for r in db.execute(
            "SELECT hostname, created_at FROM domains WHERE app_id = ? ORDER BY hostname", (app.id,))]


def domain_owner(store: Store, hostname: str) -> App | None:
    with store.read() as db:
        row = db.execute("SELECT a.name FROM domains d JOIN apps a ON a.id = d.app_id WHERE d.hostname = ?",
                         (hostname,)).fetchone()
    return store.find_app(row["name"]) if row else None


def add_domain(store: Store, app: App, hostname: str) -> None:
    """Raises Conflict if the hostname is taken (the caller words who owns it)."""
    try:
        with store.tx() as db:
            db.execute("INSERT INTO domains (hostname, app_id, created_at) VALUES (?, ?, ?)",
                       (hostname, app.id, now()))
    except sqlite3.IntegrityError:
        raise Conflict(f"{hostname} is already in use.") from None


def remove_domain(store: Store, app: App, hostname: str) -> None:
    with store.tx() as db:
        cur = db.execute("DELETE FROM domains WHERE app_id = ? AND hostname = ?", (app.id, hostname))
    if cur.rowcount != 1:
        raise NotFound(f"{hostname} is not a domain of {app.name}: see `dockyard domains -a {app.name}`.")


def all_domains(store: Store) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    with store.read() as db:
        for r in db.execute("SELECT a.name, d.hostname FROM domains d JOIN apps a ON a.id = d.app_id"
                            " ORDER BY d.hostname"):
            out.setdefault(r["name"], []).append(r["hostname"])
    return out


# ---- certificates ---------------------------------------------------------------------
def _info(text: str) -> CertInfo:
    d = json.loads(text)
    return CertInfo(**{**d, "names": tuple(d["names"])})


def put_cert(store: Store, app: App, bundle: CertBundle) -> None:
    with store.tx() as db:
        db.execute("INSERT INTO app_certs (app_id, cert_pem, key_pem, info, source, created_at)"
                   " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (app_id) DO UPDATE SET cert_pem = excluded.cert_pem,"
                   " key_pem = excluded.key_pem, info = excluded.info, source = excluded.source,"
                   " created_at = excluded.created_at",
                   (app.id, bundle.cert_pem, bundle.key_pem, json.dumps(asdict(bundle.info)), bundle.source, now()))


def get_cert(store: Store, app_name: str) -> CertBundle | None:
    with store.read() as db:
        row = db.execute("SELECT c.* FROM app_certs c JOIN apps a ON a.id = c.app_id WHERE a.name = ?",
                         (app_name,)).fetchone()
    if row is None:
        return None
    return CertBundle(cert_pem=row["cert_pem"], key_pem=row["key_pem"], info=_info(row["info"]), source=row["source"])


def remove_cert(store: Store, app: App) -> None:
    with store.tx() as db:
        cur = db.execute("DELETE FROM app_certs WHERE app_id = ?", (app.id,))
    if cur.rowcount != 1:
        raise NotFound(f"{app.name} has no certificate: add one with `dockyard certs:add CERT KEY -a {app.name}`.")


def cert_files(certs_dir: Path, app_name: str, bundle: CertBundle) -> Tls:
    """Write the bundle where nginx reads it: mode 0600, atomically, named by fingerprint (a new
    certificate is a new path, so the rendered config changes and nginx reloads it)."""
    certs_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(certs_dir, 0o700)
    stem = f"{app_name}-{bundle.info.fingerprint[:16]}"
    paths = []
    for suffix, text in ((".crt", bundle.cert_pem), (".key", bundle.key_pem)):
        path = certs_dir / (stem + suffix)
        if not path.exists() or path.read_text() != text:
            atomic_write(path, text, durable=True)
        paths.append(str(path))
    return Tls(cert_path=paths[0], key_path=paths[1])


def prune_cert_files(certs_dir: Path, keep: set[str], live_config: str = "") -> None:
    if not certs_dir.is_dir():
        return
    for path in certs_dir.iterdir():
        if path.suffix in (".crt", ".key") and str(path) not in keep and f'"{path}"' not in live_config:
            path.unlink(missing_ok=True)


# ---- route extras ---------------------------------------------------------------------
def apply_extras(route, settings: dict, tls: Tls | None, extra_hosts: list[str]):
    """Pure: a Route with the app's domains, settings and certificate."""
    values = {**defaults(), **settings}
    return replace(route, hostnames=tuple(route.hostnames) + tuple(h for h in extra_hosts if h not in route.hostnames),
                   options=options_from(values), tls=tls, force_https=bool(values["force-https"]),
                   maintenance=bool(values["maintenance"]))




def record_router_lines(store: Store, by_app: dict[str, list[tuple[str, str, str, str]]]) -> None:
    """The router's access-log lines into each app's logs (events, bounded per app)."""
    for app_name, rows in by_app.items():
        app = store.find_app(app_name)
        if app is not None:
            store.add_events(app, rows)
