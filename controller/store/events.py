"""Platform log lines (events) per app: deploy steps, app output, router access lines;
kept per app and bounded, newest first out."""
from __future__ import annotations

import sqlite3

from core.models import App

from controller.store.base import now

EVENTS_KEPT_PER_APP = 5000


def trim_events(db: sqlite3.Connection, app_id: str) -> None:
    """Keep the newest EVENTS_KEPT_PER_APP lines of the app (inside the caller's transaction)."""
    db.execute("DELETE FROM events WHERE app_id = ? AND id <= (SELECT id FROM events WHERE app_id = ?"
               " ORDER BY id DESC LIMIT 1 OFFSET ?)", (app_id, app_id, EVENTS_KEPT_PER_APP))


class EventsMixin:
    def add_event(self, app: App, source: str, process: str, message: str, at: str | None = None) -> None:
        with self.tx() as db:
            db.execute("INSERT INTO events (app_id, at, source, process, message) VALUES (?, ?, ?, ?, ?)",
                       (app.id, at or now(), source, process, message))
            trim_events(db, app.id)

    def add_events(self, app: App, rows: list[tuple[str, str, str, str]]) -> None:
        """rows: (at, source, process, message)."""
        if not rows:
            return
        with self.tx() as db:
            db.executemany("INSERT INTO events (app_id, at, source, process, message) VALUES (?, ?, ?, ?, ?)",
                           [(app.id, *r) for r in rows])
            trim_events(db, app.id)

    def events(self, app: App, after_id: int = 0, limit: int = 100) -> list[dict]:
        with self.read() as db:
            rows = db.execute("SELECT * FROM (SELECT * FROM events WHERE app_id = ? AND id > ?"
                              " ORDER BY id DESC LIMIT ?) ORDER BY id", (app.id, after_id, limit)).fetchall()
        return [dict(id=r["id"], at=r["at"], source=r["source"], process=r["process"], message=r["message"])
                for r in rows]

    def events_of(self, app: App, source: str, process: str, limit: int = 5) -> list[dict]:
        """The app's latest lines from one source and process (e.g. dockyard/autosleep), newest first."""
        with self.read() as db:
            rows = db.execute("SELECT id, at, message FROM events WHERE app_id = ? AND source = ? AND process = ?"
                              " ORDER BY id DESC LIMIT ?", (app.id, source, process, limit)).fetchall()
        return [dict(id=r["id"], at=r["at"], message=r["message"]) for r in rows]
