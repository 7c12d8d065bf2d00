"""The store's plumbing: one short-lived SQLite connection per transaction (WAL), so it is
safe from gunicorn's threads, the reconciler, the router process and the admin commands at
once; and the migrations that create and upgrade the schema."""
from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from controller.store.schema import MIGRATIONS


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class StoreBase:
    def __init__(self, path: Path):
        self.path = Path(path)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA busy_timeout = 30000")
        return db

    def backup_to(self, dest: Path) -> None:
        """A consistent copy of the whole database while others write (SQLite's online backup)."""
        src = self._connect()
        try:
            with contextlib.closing(sqlite3.connect(dest)) as out:
                src.backup(out)
        finally:
            src.close()

    @contextlib.contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE); committed on success, rolled back on error."""
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            db.close()

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        db = self._connect()
        try:
            yield db
        finally:
            db.close()

    def migrate(self) -> int:
        """Apply pending migrations; returns the schema version."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = self._connect()
        try:
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT version FROM schema_version").fetchone()
            version = row[0] if row else 0
            if row is None:
                db.execute("INSERT INTO schema_version (version) VALUES (0)")
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in (s.strip() for s in script.split(";")):
                    if statement:
                        db.execute(statement)
                db.execute("UPDATE schema_version SET version = ?", (number,))
                version = number
            db.execute("COMMIT")
            return version
        finally:
            db.close()
