"""The store's plumbing: one short-lived SQLite connection per write transaction (WAL), and one
reading connection per thread, kept (opening one costs more than most reads: the schema is parsed
again), so it is safe from gunicorn's threads, the platform's loops and the admin commands at
once; and the migrations that create and upgrade the schema."""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sqlite3
import threading
import urllib.parse
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from core.errors import StorageFull

from controller.store.schema import MIGRATIONS

# What SQLite says when it cannot grow a file: a full filesystem, checked by its free space (the
# same words can mean a failing disk, which must not be reported as a full one).
_FULL_WORDS = ("disk I/O error", "database or disk is full")
FULL_BELOW = 8 << 20        # bytes free under which the state's filesystem counts as full


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class StoreBase:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._readers = threading.local()   # this thread's reading connection (and the pid it was opened in)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("PRAGMA busy_timeout = 30000")
        return db

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.path.parent).free

    def storage_full_error(self) -> StorageFull:
        home = self.path.parent
        free_mb = self.free_bytes() >> 20
        return StorageFull(f"The filesystem holding DOCKYARD_HOME ({home}) is full ({free_mb} MB free): the platform "
                           "cannot record changes. Free space there (old backups in backups/, rotated logs in "
                           "logs/, build caches with `dockyard repo:purge-cache -a APP`); it resumes by itself and "
                           "nothing already stored is lost.")

    def _full(self, e: sqlite3.OperationalError) -> bool:
        return any(w in str(e) for w in _FULL_WORDS) and self.free_bytes() < FULL_BELOW

    def _read_only(self) -> sqlite3.Connection:
        """With no room for the shared-memory file, the database as last checkpointed, read-only."""
        uri = f"file:{urllib.parse.quote(str(self.path))}?mode=ro&immutable=1"
        db = sqlite3.connect(uri, uri=True, isolation_level=None)
        db.row_factory = sqlite3.Row
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
        """A write transaction (BEGIN IMMEDIATE); committed on success, rolled back on error. A
        full filesystem raises StorageFull, which says where and what to free."""
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.OperationalError as e:
            if self._full(e):
                raise self.storage_full_error() from e
            raise
        finally:
            db.close()

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read. On a full filesystem SQLite cannot create the file it shares with other
        connections: the read then uses the database as last checkpointed, read-only."""
        kept = getattr(self._readers, "db", None)
        if kept is not None and self._readers.pid == os.getpid():
            yield kept
            return
        db = self._connect()
        try:
            db.execute("SELECT 1 FROM sqlite_master LIMIT 1")
        except sqlite3.OperationalError as e:
            db.close()
            if not self._full(e):
                raise
            with contextlib.closing(self._read_only()) as ro:
                yield ro
            return
        # kept for this thread's next reads; closed when the thread ends (its locals go)
        self._readers.db, self._readers.pid = db, os.getpid()
        yield db

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
