"""Pipelines, the apps coupled to them at a stage, and promotions. An app is in at most one
pipeline (a unique coupling per app); a coupling goes with its app or its pipeline."""
from __future__ import annotations

import json
import sqlite3
import uuid

from core.errors import Conflict, NotFound
from core.models import App, Coupling, Pipeline, Promotion

from controller.store.base import now

_COUPLING_SELECT = """
    SELECT c.*, p.name AS pipeline, a.name AS app FROM pipeline_couplings c
    JOIN pipelines p ON p.id = c.pipeline_id JOIN apps a ON a.id = c.app_id
"""


def _pipeline(row: sqlite3.Row) -> Pipeline:
    return Pipeline(id=row["id"], name=row["name"], owner_id=row["owner_id"], review_apps=bool(row["review_apps"]),
                    created_at=row["created_at"])


def _coupling(row: sqlite3.Row) -> Coupling:
    return Coupling(id=row["id"], pipeline_id=row["pipeline_id"], pipeline=row["pipeline"], app_id=row["app_id"],
                    app=row["app"], stage=row["stage"], created_at=row["created_at"], branch=row["branch"],
                    pushed_at=row["pushed_at"])


def _promotion(row: sqlite3.Row) -> Promotion:
    return Promotion(id=row["id"], pipeline_id=row["pipeline_id"], source_app_id=row["source_app_id"],
                     source_version=row["source_version"], status=row["status"], created_by=row["created_by"],
                     created_at=row["created_at"], targets=tuple(json.loads(row["targets"])))


def pipeline_not_found(ident: str) -> NotFound:
    """The one answer for a pipeline that does not exist, or that the asker may not see."""
    return NotFound(f"Pipeline {ident[:60]!r} not found: list yours with `dockyard pipelines`, or create one with "
                    "`dockyard pipelines:create NAME -a APP --stage staging`.")


class PipelinesMixin:
    # ---- pipelines --------------------------------------------------------------------------
    def create_pipeline(self, name: str, owner_id: int | None) -> Pipeline:
        pid = str(uuid.uuid4())
        with self.tx() as db:
            try:
                db.execute("INSERT INTO pipelines (id, name, owner_id, created_at) VALUES (?, ?, ?, ?)",
                           (pid, name, owner_id, now()))
            except sqlite3.IntegrityError:
                raise Conflict(f"A pipeline named {name!r} already exists: pick another name.") from None
            return _pipeline(db.execute("SELECT * FROM pipelines WHERE id = ?", (pid,)).fetchone())

    def find_pipeline(self, ident: str) -> Pipeline | None:
        """By id or by name."""
        with self.read() as db:
            row = db.execute("SELECT * FROM pipelines WHERE id = ? OR name = ?", (ident, ident)).fetchone()
        return _pipeline(row) if row else None

    def list_pipelines(self) -> list[Pipeline]:
        with self.read() as db:
            return [_pipeline(r) for r in db.execute("SELECT * FROM pipelines ORDER BY name")]

    def set_review_apps(self, pipeline: Pipeline, enabled: bool) -> Pipeline:
        with self.tx() as db:
            db.execute("UPDATE pipelines SET review_apps = ? WHERE id = ?", (int(enabled), pipeline.id))
            row = db.execute("SELECT * FROM pipelines WHERE id = ?", (pipeline.id,)).fetchone()
        if row is None:
            raise pipeline_not_found(pipeline.name)
        return _pipeline(row)

    def delete_pipeline(self, pipeline: Pipeline) -> None:
        with self.tx() as db:
            db.execute("DELETE FROM pipelines WHERE id = ?", (pipeline.id,))

    # ---- couplings --------------------------------------------------------------------------
    def couple(self, pipeline: Pipeline, app: App, stage: str, branch: str | None = None) -> Coupling:
        cid = str(uuid.uuid4())
        with self.tx() as db:
            try:
                db.execute("INSERT INTO pipeline_couplings (id, pipeline_id, app_id, stage, branch, pushed_at, created_at)"
                           " VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (cid, pipeline.id, app.id, stage, branch, now() if branch else None, now()))
            except sqlite3.IntegrityError:
                raise Conflict(f"{app.name} is already in a pipeline: remove it first with "
                               f"`dockyard pipelines:remove -a {app.name}`.") from None
            return _coupling(db.execute(_COUPLING_SELECT + " WHERE c.id = ?", (cid,)).fetchone())

    def find_coupling(self, ident: str) -> Coupling | None:
        with self.read() as db:
            row = db.execute(_COUPLING_SELECT + " WHERE c.id = ?", (ident,)).fetchone()
        return _coupling(row) if row else None

    def coupling_of(self, app: App) -> Coupling | None:
        with self.read() as db:
            row = db.execute(_COUPLING_SELECT + " WHERE c.app_id = ?", (app.id,)).fetchone()
        return _coupling(row) if row else None

    def couplings(self, pipeline: Pipeline | None = None) -> list[Coupling]:
        """A pipeline's couplings (every pipeline's without one), by app name."""
        where, args = (" WHERE c.pipeline_id = ?", (pipeline.id,)) if pipeline else ("", ())
        with self.read() as db:
            return [_coupling(r) for r in db.execute(_COUPLING_SELECT + where + " ORDER BY a.name", args)]

    def set_stage(self, coupling: Coupling, stage: str) -> Coupling:
        with self.tx() as db:
            db.execute("UPDATE pipeline_couplings SET stage = ? WHERE id = ?", (stage, coupling.id))
            return _coupling(db.execute(_COUPLING_SELECT + " WHERE c.id = ?", (coupling.id,)).fetchone())

    def touch_review_app(self, coupling: Coupling) -> None:
        """A push to the review app's branch: it is not stale."""
        with self.tx() as db:
            db.execute("UPDATE pipeline_couplings SET pushed_at = ? WHERE id = ?", (now(), coupling.id))

    def uncouple(self, coupling: Coupling) -> None:
        with self.tx() as db:
            db.execute("DELETE FROM pipeline_couplings WHERE id = ?", (coupling.id,))

    # ---- promotions -------------------------------------------------------------------------
    def create_promotion(self, pipeline: Pipeline, source: App, version: int, user: str,
                         targets: list[dict]) -> Promotion:
        pid = str(uuid.uuid4())
        with self.tx() as db:
            db.execute("INSERT INTO pipeline_promotions (id, pipeline_id, source_app_id, source_version, status,"
                       " created_by, created_at, targets) VALUES (?, ?, ?, ?, 'pending', ?, ?, ?)",
                       (pid, pipeline.id, source.id, version, user, now(), json.dumps(targets)))
        return self.get_promotion(pid)

    def finish_promotion(self, promotion: Promotion, targets: list[dict]) -> Promotion:
        with self.tx() as db:
            db.execute("UPDATE pipeline_promotions SET status = 'completed', targets = ? WHERE id = ?",
                       (json.dumps(targets), promotion.id))
        return self.get_promotion(promotion.id)

    def get_promotion(self, pid: str) -> Promotion:
        with self.read() as db:
            row = db.execute("SELECT * FROM pipeline_promotions WHERE id = ?", (pid,)).fetchone()
        if row is None:
            raise NotFound(f"Promotion {pid[:60]!r} not found: promote with `dockyard pipelines:promote -a APP`.")
        return _promotion(row)
