"""Autosleep: which process types sleep after how long without a request, which sleep now, and
each app's last request (written by the router process from nginx's access log)."""
from __future__ import annotations

import time
from dataclasses import dataclass

from core.models import App


@dataclass(frozen=True)
class SleepRow:
    app: str
    type: str
    after: int                   # seconds without a request before the type sleeps
    awake_at: float              # epoch: last wake, or when autosleep was set
    sleeping_since: float | None
    last_request: float | None   # epoch of the app's last request the router saw


class SleepMixin:
    def set_autosleep(self, app: App, ptype: str, after: int | None) -> None:
        """Turn autosleep on for a type (`after` seconds) or off (None; a sleeping type wakes
        at the caller's next converge)."""
        with self.tx() as db:
            if after is None:
                db.execute("DELETE FROM autosleep WHERE app_id = ? AND type = ?", (app.id, ptype))
            else:
                db.execute("INSERT INTO autosleep (app_id, type, after_seconds, awake_at) VALUES (?, ?, ?, ?)"
                           " ON CONFLICT (app_id, type) DO UPDATE SET after_seconds = excluded.after_seconds,"
                           " awake_at = excluded.awake_at", (app.id, ptype, after, time.time()))

    def sleep_rows(self, app: App | None = None) -> list[SleepRow]:
        where, args = ("WHERE s.app_id = ?", (app.id,)) if app is not None else ("", ())
        with self.read() as db:
            return [SleepRow(r["name"], r["type"], r["after_seconds"], r["awake_at"], r["sleeping_since"],
                             r["last_request"]) for r in db.execute(
                "SELECT a.name, s.type, s.after_seconds, s.awake_at, s.sleeping_since, x.last_request"
                " FROM autosleep s JOIN apps a ON a.id = s.app_id"
                f" LEFT JOIN app_activity x ON x.app_id = s.app_id {where} ORDER BY a.name, s.type", args)]

    def sleeping_types(self, app: App) -> set[str]:
        with self.read() as db:
            return {r[0] for r in db.execute(
                "SELECT type FROM autosleep WHERE app_id = ? AND sleeping_since IS NOT NULL", (app.id,))}

    def sleeping_web_apps(self) -> set[str]:
        """Names of the apps whose web process sleeps or is waking: the router sends them to the wake
        listener (until an instance is up: a route with one goes to it)."""
        with self.read() as db:
            return {r[0] for r in db.execute(
                "SELECT a.name FROM autosleep s JOIN apps a ON a.id = s.app_id"
                " WHERE s.type = 'web' AND (s.sleeping_since IS NOT NULL OR s.waking_since IS NOT NULL)")}

    def mark_sleeping(self, app: App, types: list[str], at: float) -> None:
        with self.tx() as db:
            db.executemany("UPDATE autosleep SET sleeping_since = ? WHERE app_id = ? AND type = ?"
                           " AND sleeping_since IS NULL", [(at, app.id, t) for t in types])

    def mark_awake(self, app: App, at: float) -> list[str]:
        """Every sleeping type of the app wakes (waking until `end_waking`); returns them."""
        with self.tx() as db:
            woke = [r[0] for r in db.execute("SELECT type FROM autosleep WHERE app_id = ? AND sleeping_since"
                                             " IS NOT NULL ORDER BY type", (app.id,))]
            db.execute("UPDATE autosleep SET sleeping_since = NULL, awake_at = ?, waking_since = ?"
                       " WHERE app_id = ? AND sleeping_since IS NOT NULL", (at, at, app.id))
        return woke

    def end_waking(self, app: App) -> None:
        with self.tx() as db:
            db.execute("UPDATE autosleep SET waking_since = NULL WHERE app_id = ?", (app.id,))

    def record_requests(self, latest: dict[str, float]) -> None:
        """Each app's latest request (epoch), by app name; never moves back."""
        if not latest:
            return
        with self.tx() as db:
            ids = {r["name"]: r["id"] for r in db.execute("SELECT id, name FROM apps")}
            db.executemany("INSERT INTO app_activity (app_id, last_request) VALUES (?, ?) ON CONFLICT (app_id)"
                           " DO UPDATE SET last_request = max(last_request, excluded.last_request)",
                           [(ids[n], at) for n, at in latest.items() if n in ids])
