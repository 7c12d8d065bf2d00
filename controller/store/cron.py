"""Scheduled jobs' runs: one row per (app, job) holding the last slot fired. A slot is claimed
by compare-and-swap (`last_slot < slot`), so two reconcilers never fire one slot twice."""
from __future__ import annotations

from core.models import App

from controller.store.base import now


class CronMixin:
    def cron_runs(self, app: App) -> dict[str, dict]:
        with self.read() as db:
            rows = db.execute("SELECT * FROM cron_runs WHERE app_id = ?", (app.id,)).fetchall()
        return {r["job"]: dict(r) for r in rows}

    def cron_init(self, app: App, job: str, slot: str) -> None:
        """A job seen for the first time: its slots up to `slot` are not due (they were before it existed)."""
        with self.tx() as db:
            db.execute("INSERT OR IGNORE INTO cron_runs (app_id, job, last_slot) VALUES (?, ?, ?)",
                       (app.id, job, slot))

    def cron_claim(self, app: App, job: str, slot: str) -> bool:
        """Take `slot` for this job; False when it (or a later one) was already taken."""
        with self.tx() as db:
            cur = db.execute("UPDATE cron_runs SET last_slot = ?, started_at = ?, container_id = NULL, label = NULL,"
                             " finished_at = NULL, exit_code = NULL WHERE app_id = ? AND job = ? AND last_slot < ?",
                             (slot, now(), app.id, job, slot))
            return cur.rowcount == 1

    def cron_started(self, app: App, job: str, container_id: str, label: str) -> None:
        with self.tx() as db:
            db.execute("UPDATE cron_runs SET container_id = ?, label = ? WHERE app_id = ? AND job = ?",
                       (container_id, label, app.id, job))

    def cron_ended(self, app: App, job: str, exit_code: int | None, label: str | None = None) -> None:
        """The run ended (or never started: label says why)."""
        with self.tx() as db:
            db.execute("UPDATE cron_runs SET finished_at = ?, exit_code = ?, label = COALESCE(?, label)"
                       " WHERE app_id = ? AND job = ?", (now(), exit_code, label, app.id, job))

    def cron_finished(self, container_id: str, exit_code: int | None) -> bool:
        """A one-off ended: record its exit code if it was a job's run. True when it was."""
        with self.tx() as db:
            cur = db.execute("UPDATE cron_runs SET finished_at = ?, exit_code = ? WHERE container_id = ?"
                             " AND finished_at IS NULL", (now(), exit_code, container_id))
            return cur.rowcount > 0

    def cron_forget(self, app: App, keep: set[str]) -> None:
        """Drop the rows of jobs the live release no longer has."""
        with self.tx() as db:
            for (job,) in db.execute("SELECT job FROM cron_runs WHERE app_id = ?", (app.id,)).fetchall():
                if job not in keep:
                    db.execute("DELETE FROM cron_runs WHERE app_id = ? AND job = ?", (app.id, job))
