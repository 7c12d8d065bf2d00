"""Metrics: instance resource samples with downsampling, per-minute request counts per
release, log drains, dashboard sessions.

Samples are kept raw (res 0) for RAW_KEEP seconds, then as one-minute averages (res 60) up
to MINUTE_KEEP, then as ten-minute averages (res 600) up to TEN_KEEP. Each instance sampled
every 5 s therefore holds at most 720 + 1380 + 864 rows, whatever the uptime. Request rows
are per minute (span 60) for MINUTE_KEEP, then per ten minutes (span 600) up to REQUESTS_KEEP:
at most 1440 + 864 rows per app and release that served."""
from __future__ import annotations

import json
import time

from core import latency
from core.models import App

from controller.store.accounts import user_row
from controller.store.base import hash_token, now

RAW_KEEP = 3600
MINUTE_KEEP = 86400
TEN_KEEP = 7 * 86400
REQUESTS_KEEP = 7 * 86400


def _rollup(db, src: int, dst: int, older_than: int) -> None:
    """Average the `src` rows older than `older_than` (a multiple of `dst`) into `dst` buckets,
    then delete them: every bucket is rolled up whole, exactly once."""
    db.execute(
        "INSERT INTO instance_samples (app_id, process, idx, res, at, cpu, mem, mem_limit, restarts, uptime)"
        " SELECT app_id, process, idx, ?, (at / ?) * ?, avg(cpu), CAST(avg(mem) AS INTEGER), max(mem_limit),"
        " max(restarts), max(uptime) FROM instance_samples WHERE res = ? AND at < ?"
        " GROUP BY app_id, process, idx, at / ?", (dst, dst, dst, src, older_than, dst))
    db.execute("DELETE FROM instance_samples WHERE res = ? AND at < ?", (src, older_than))


def _rollup_requests(db, older_than: int) -> None:
    """Merge the one-minute request rows older than `older_than` into ten-minute rows
    (counts added, histograms merged)."""
    rows = db.execute("SELECT * FROM request_minutes WHERE span = 60 AND minute < ?", (older_than,)).fetchall()
    if not rows:
        return
    merged: dict[tuple, dict] = {}
    for r in rows:
        key = (r["app_id"], r["version"], r["minute"] // 600 * 600)
        m = merged.setdefault(key, {"requests": 0, "s2xx": 0, "s3xx": 0, "s4xx": 0, "s5xx": 0, "bytes": 0, "hist": {}})
        for k in ("requests", "s2xx", "s3xx", "s4xx", "s5xx", "bytes"):
            m[k] += r[k]
        latency.merge(m["hist"], json.loads(r["hist"]))
    db.execute("DELETE FROM request_minutes WHERE span = 60 AND minute < ?", (older_than,))
    db.executemany("INSERT OR REPLACE INTO request_minutes (app_id, version, minute, requests, s2xx, s3xx, s4xx,"
                   " s5xx, bytes, hist, span) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 600)",
                   [(a, v, mi, m["requests"], m["s2xx"], m["s3xx"], m["s4xx"], m["s5xx"], m["bytes"],
                     json.dumps(m["hist"])) for (a, v, mi), m in merged.items()])


class MetricsMixin:
    # ---- instance samples ---------------------------------------------------------------
    def add_samples(self, rows: list[tuple]) -> None:
        """rows: (app name, process, index, at, cpu %, mem, mem_limit, restarts, uptime s)."""
        if not rows:
            return
        with self.tx() as db:
            ids = {r["name"]: r["id"] for r in db.execute("SELECT id, name FROM apps")}
            db.executemany(
                "INSERT INTO instance_samples (app_id, process, idx, res, at, cpu, mem, mem_limit, restarts, uptime)"
                " VALUES (?, ?, ?, 0, ?, ?, ?, ?, ?, ?)",
                [(ids[r[0]], *r[1:]) for r in rows if r[0] in ids])

    def downsample(self, now: int | None = None) -> None:
        now = int(now if now is not None else time.time())
        with self.tx() as db:
            _rollup(db, 0, 60, (now - RAW_KEEP) // 60 * 60)
            _rollup(db, 60, 600, (now - MINUTE_KEEP) // 600 * 600)
            db.execute("DELETE FROM instance_samples WHERE res = 600 AND at < ?", (now - TEN_KEEP,))
            _rollup_requests(db, (now - MINUTE_KEEP) // 600 * 600)
            db.execute("DELETE FROM request_minutes WHERE minute < ?", (now - REQUESTS_KEEP,))

    def samples(self, app: App, since: int, process: str | None = None) -> list[dict]:
        q = ("SELECT process, idx, res, at, cpu, mem, mem_limit, restarts, uptime FROM instance_samples"
             " WHERE app_id = ? AND at >= ?")
        args: list = [app.id, since]
        if process:
            q += " AND process = ?"
            args.append(process)
        with self.read() as db:
            return [dict(r) for r in db.execute(q + " ORDER BY at, process, idx", args)]

    def sample_count(self) -> int:
        with self.read() as db:
            return db.execute("SELECT count(*) FROM instance_samples").fetchone()[0]

    # ---- requests -----------------------------------------------------------------------
    def add_request_minutes(self, rows: dict[tuple[str, int, int], dict]) -> None:
        """(app name, version, minute) -> {requests, s2xx.., bytes, hist}; added to what the
        minute already holds (the router harvests a minute in several passes)."""
        if not rows:
            return
        with self.tx() as db:
            ids = {r["name"]: r["id"] for r in db.execute("SELECT id, name FROM apps")}
            for (name, version, minute), m in rows.items():
                if name not in ids:
                    continue
                old = db.execute("SELECT * FROM request_minutes WHERE app_id = ? AND minute = ? AND version = ?",
                                 (ids[name], minute, version)).fetchone()
                hist = dict(m["hist"])
                counts = {k: m[k] for k in ("requests", "s2xx", "s3xx", "s4xx", "s5xx", "bytes")}
                if old is not None:
                    for k, n in json.loads(old["hist"]).items():
                        hist[k] = hist.get(k, 0) + n
                    counts = {k: v + old[k] for k, v in counts.items()}
                db.execute("INSERT OR REPLACE INTO request_minutes (app_id, version, minute, requests, s2xx, s3xx,"
                           " s4xx, s5xx, bytes, hist) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (ids[name], version, minute, counts["requests"], counts["s2xx"], counts["s3xx"],
                            counts["s4xx"], counts["s5xx"], counts["bytes"], json.dumps(hist)))

    def request_minutes(self, app: App, since: int) -> list[dict]:
        with self.read() as db:
            rows = db.execute("SELECT * FROM request_minutes WHERE app_id = ? AND minute >= ? ORDER BY minute, version",
                              (app.id, since)).fetchall()
        return [dict(r, hist=json.loads(r["hist"])) for r in rows]

    # ---- drains ------------------------------------------------------------------------
    def add_drain(self, app: App, url: str) -> bool:
        with self.tx() as db:
            return db.execute("INSERT OR IGNORE INTO drains (app_id, url, created_at) VALUES (?, ?, ?)",
                              (app.id, url, now())).rowcount == 1

    def remove_drain(self, app: App, url: str) -> bool:
        with self.tx() as db:
            return db.execute("DELETE FROM drains WHERE app_id = ? AND url = ?", (app.id, url)).rowcount == 1

    def drains(self, app: App | None = None) -> list[dict]:
        q = "SELECT d.*, a.name AS app FROM drains d JOIN apps a ON a.id = d.app_id"
        with self.read() as db:
            rows = db.execute(q + (" WHERE d.app_id = ?" if app else "") + " ORDER BY d.id",
                              (app.id,) if app else ()).fetchall()
        return [dict(r) for r in rows]

    def drain_progress(self, drain_id: int, sent: int, dropped: int, error: str) -> None:
        with self.tx() as db:
            db.execute("UPDATE drains SET sent = sent + ?, dropped = dropped + ?, last_error = ? WHERE id = ?",
                       (sent, dropped, error, drain_id))

    def events_after(self, after_id: int, limit: int = 1000) -> list[dict]:
        """Platform and router lines of every app after `after_id`, oldest first (drains follow them)."""
        with self.read() as db:
            rows = db.execute("SELECT e.*, a.name AS app FROM events e JOIN apps a ON a.id = e.app_id"
                              " WHERE e.id > ? ORDER BY e.id LIMIT ?", (after_id, limit)).fetchall()
        return [dict(r) for r in rows]

    def last_event_id(self) -> int:
        with self.read() as db:
            return db.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]

    # ---- dashboard sessions ------------------------------------------------------------
    def add_session(self, session_id: str, token: str, csrf: str, expires_at: int) -> None:
        with self.tx() as db:
            db.execute("DELETE FROM dash_sessions WHERE expires_at < ?", (int(time.time()),))
            db.execute("INSERT INTO dash_sessions (id_hash, token_hash, csrf, expires_at) VALUES (?, ?, ?, ?)",
                       (hash_token(session_id), hash_token(token), csrf, expires_at))

    def session(self, session_id: str):
        """(user, csrf) of a live session, or None (expired, ended, or its token revoked)."""
        with self.read() as db:
            row = db.execute(
                "SELECT u.*, s.csrf FROM dash_sessions s JOIN tokens t ON t.token_hash = s.token_hash"
                " JOIN users u ON u.id = t.user_id WHERE s.id_hash = ? AND s.expires_at > ?",
                (hash_token(session_id), int(time.time()))).fetchone()
        if row is None:
            return None
        return user_row(row), row["csrf"]

    def end_session(self, session_id: str) -> None:
        with self.tx() as db:
            db.execute("DELETE FROM dash_sessions WHERE id_hash = ?", (hash_token(session_id),))
