"""Prometheus series (core.prom): each process adds what it measured; `GET /metrics` reads
them all. Cumulative in the store, so a counter survives the restart of whichever process
feeds it and of the API that serves it."""
from __future__ import annotations

import json
import sqlite3
import time

from core.prom import FAMILIES, Delta


def upsert_series(db: sqlite3.Connection, d: Delta, app_id: str | None = None, at: int | None = None) -> None:
    """Add `d` to its series (set, for a gauge) inside the caller's transaction."""
    at = int(time.time()) if at is None else at
    kind = FAMILIES[d.family].kind
    old = db.execute("SELECT value, count, buckets FROM prom_series WHERE family = ? AND labels = ?",
                     (d.family, d.key)).fetchone()
    value, count, buckets = d.value, d.count, dict(d.buckets)
    if old is not None and kind != "gauge":
        value += old["value"]
        count += old["count"]
        for k, n in json.loads(old["buckets"]).items():
            buckets[k] = buckets.get(k, 0) + n
    db.execute("INSERT OR REPLACE INTO prom_series (family, labels, app_id, value, count, buckets, updated_at)"
               " VALUES (?, ?, ?, ?, ?, ?, ?)", (d.family, d.key, app_id, value, count, json.dumps(buckets), at))


class PromMixin:
    def add_prom(self, deltas: list[Delta]) -> None:
        """Add counters and histograms, set gauges, in one transaction. A delta for an app the
        store no longer has is dropped (its series went with it)."""
        if not deltas:
            return
        at = int(time.time())
        with self.tx() as db:
            ids = {r["name"]: r["id"] for r in db.execute("SELECT id, name FROM apps")}
            for d in deltas:
                if d.app is not None and d.app not in ids:
                    continue
                upsert_series(db, d, ids.get(d.app) if d.app else None, at)

    def replace_prom(self, families: tuple[str, ...], deltas: list[Delta]) -> None:
        """Every series of `families` becomes exactly `deltas` (values as given): for readings
        mirrored from elsewhere, such as the engine's per-container counters."""
        at = int(time.time())
        with self.tx() as db:
            db.executemany("DELETE FROM prom_series WHERE family = ?", [(f,) for f in families])
            ids = {r["name"]: r["id"] for r in db.execute("SELECT id, name FROM apps")}
            for d in deltas:
                if d.family in families and (d.app is None or d.app in ids):
                    upsert_series(db, d, ids.get(d.app) if d.app else None, at)

    def prom_series(self) -> list[dict]:
        """Every stored series: family, labels (dict), value, count, buckets (dict), updated_at (Unix s)."""
        with self.read() as db:
            rows = db.execute("SELECT family, labels, value, count, buckets, updated_at FROM prom_series"
                              " ORDER BY family, labels").fetchall()
        return [{"family": r["family"], "labels": json.loads(r["labels"]), "value": r["value"],
                 "count": r["count"], "buckets": json.loads(r["buckets"]), "updated_at": r["updated_at"]}
                for r in rows]

    def builds_pending(self) -> int:
        with self.read() as db:
            return db.execute("SELECT count(*) FROM builds WHERE status = 'pending'").fetchone()[0]
