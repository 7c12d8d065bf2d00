"""Pure: pipelines, couplings, promotions and review-app settings in the shapes of the Heroku
Platform API (what the official CLI's pipelines and reviewapps commands read); Dockyard's own
CLI reads the same."""
from __future__ import annotations

from core.errors import BadRequest
from core.models import Coupling, Pipeline, Promotion

from controller.web.heroku.shapes import stable_id, timestamp


def pipeline(p: Pipeline) -> dict:
    return {"id": p.id, "name": p.name, "created_at": timestamp(p.created_at), "updated_at": timestamp(p.created_at),
            "owner": {"id": stable_id("user", p.owner_id), "type": "user"} if p.owner_id is not None else None,
            "generation": {"name": "cedar"}, "review_apps": p.review_apps}


def coupling(c: Coupling) -> dict:
    return {"id": c.id, "app": {"id": c.app_id, "name": c.app}, "pipeline": {"id": c.pipeline_id, "name": c.pipeline},
            "stage": c.stage, "branch": c.branch, "created_at": timestamp(c.created_at),
            "updated_at": timestamp(c.pushed_at or c.created_at)}


def promotion(p: Promotion) -> dict:
    return {"id": p.id, "pipeline": {"id": p.pipeline_id},
            "source": {"app": {"id": p.source_app_id},
                       "release": {"id": stable_id("release", p.source_app_id, p.source_version),
                                   "version": p.source_version}},
            "status": p.status, "created_by": p.created_by, "created_at": timestamp(p.created_at),
            "updated_at": timestamp(p.created_at)}


def promotion_targets(p: Promotion) -> list[dict]:
    return [{"id": stable_id("promotion-target", p.id, t["app_id"]), "app": {"id": t["app_id"], "name": t["app"]},
             "pipeline_promotion": {"id": p.id}, "status": t["status"], "error_message": t["error_message"],
             "release": ({"id": stable_id("release", t["app_id"], t["version"]), "version": t["version"]}
                         if t["version"] else None)}
            for t in p.targets]


def review_app_config(p: Pipeline, stale_days: int) -> dict:
    return {"pipeline_id": p.id, "repo": {"id": None}, "automatic_review_apps": p.review_apps,
            "destroy_stale_apps": True, "stale_days": stale_days, "wait_for_ci": False, "base_name": p.name,
            "deploy_target": None}


def promotion_request(data: dict) -> tuple[str, list[str] | None]:
    """POST /pipeline-promotions: (source app id or name, target app ids or names, or None: the
    next stage's apps)."""
    source = ((data.get("source") or {}).get("app") or {}) if isinstance(data.get("source"), dict) else {}
    ident = source.get("id") or source.get("name") if isinstance(source, dict) else None
    if not isinstance(ident, str):
        raise BadRequest('Send {"source": {"app": {"id": APP}}, "targets": [{"app": {"id": APP}}]} (targets optional: '
                         "the next stage's apps).")
    targets = data.get("targets")
    if targets is None:
        return ident, None
    if not isinstance(targets, list) or not all(isinstance(t, dict) and isinstance(t.get("app"), dict) for t in targets):
        raise BadRequest('targets must be a list like [{"app": {"id": APP}}].')
    names = [t["app"].get("id") or t["app"].get("name") for t in targets]
    if not all(isinstance(n, str) for n in names):
        raise BadRequest('each target must name its app: {"app": {"id": APP}}.')
    return ident, names or None


def ident_of(value: object, what: str) -> str:
    """A reference Heroku's tools send as a string or as {"id": ...} / {"name": ...}."""
    if isinstance(value, dict):
        value = value.get("id") or value.get("name")
    if not isinstance(value, str) or not value:
        raise BadRequest(f"Name the {what}: send its name or id.")
    return value
