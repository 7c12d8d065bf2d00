"""Pipelines, couplings, promotions and review-app settings, on the Heroku Platform API's paths
and in its shapes (so the official CLI's `pipelines:*` and `reviewapps:*` and Dockyard's own CLI
read the same answers). Views parse, call controller/pipelines, render."""
from __future__ import annotations

from flask import Blueprint, g, jsonify, request

from controller.pipelines import couplings, promote
from controller.web.common import audit, body, svc
from controller.web.heroku import pipelines as shapes

bp = Blueprint("pipelines", __name__)


@bp.get("/pipelines")
def list_pipelines():
    """Every pipeline the caller may see; `?eq[name]=NAME` (the Heroku CLI's lookup) only that one."""
    return jsonify([shapes.pipeline(p) for p in couplings.visible(svc(), g.user, request.args.get("eq[name]"))])


@bp.post("/pipelines")
def create_pipeline():
    """{"name": NAME} (the owner is the caller); Dockyard's CLI may add {"app", "stage"}."""
    data = body()
    pipeline, _ = couplings.create(svc(), g.user, data.get("name"), data.get("app"), data.get("stage"))
    audit("pipelines:create", data.get("app"), pipeline=pipeline.name)
    return jsonify(shapes.pipeline(pipeline)), 201


@bp.get("/pipelines/<ident>")
def get_pipeline(ident):
    return jsonify(shapes.pipeline(couplings.get(svc(), g.user, ident)))


@bp.delete("/pipelines/<ident>")
def destroy_pipeline(ident):
    pipeline = couplings.destroy(svc(), g.user, ident)
    audit("pipelines:destroy", pipeline=pipeline.name)
    return jsonify(shapes.pipeline(pipeline))


@bp.get("/pipelines/<ident>/pipeline-couplings")
def pipeline_couplings(ident):
    return jsonify([shapes.coupling(c) for c in couplings.couplings(svc(), g.user, ident)])


@bp.get("/pipelines/<ident>/review-apps")
def review_apps(ident):
    return jsonify([shapes.coupling(c) for c in couplings.couplings(svc(), g.user, ident) if c.stage == "review"])


@bp.post("/pipeline-couplings")
def create_coupling():
    """{"app": APP, "pipeline": ID or NAME, "stage": STAGE} (pipelines:add)."""
    data = body()
    coupling = couplings.couple(svc(), g.user, shapes.ident_of(data.get("pipeline"), "pipeline"),
                                shapes.ident_of(data.get("app"), "app"), data.get("stage"))
    audit("pipelines:add", coupling.app, pipeline=coupling.pipeline, stage=coupling.stage)
    return jsonify(shapes.coupling(coupling)), 201


@bp.get("/pipeline-couplings/<ident>")
def get_coupling(ident):
    return jsonify(shapes.coupling(couplings.get_coupling(svc(), g.user, ident)))


@bp.patch("/pipeline-couplings/<ident>")
def update_coupling(ident):
    coupling = couplings.set_stage(svc(), g.user, ident, body().get("stage"))
    audit("pipelines:update", coupling.app, pipeline=coupling.pipeline, stage=coupling.stage)
    return jsonify(shapes.coupling(coupling))


@bp.delete("/pipeline-couplings/<ident>")
def delete_coupling(ident):
    coupling = couplings.remove(svc(), g.user, couplings.get_coupling(svc(), g.user, ident))
    audit("pipelines:remove", coupling.app, pipeline=coupling.pipeline)
    return jsonify(shapes.coupling(coupling))


@bp.get("/apps/<name>/pipeline-couplings")
def app_coupling(name):
    return jsonify(shapes.coupling(couplings.coupling_of(svc(), g.user, name)))


@bp.delete("/apps/<name>/pipeline-couplings")
def remove_app(name):
    """Dockyard's pipelines:remove -a APP in one request."""
    coupling = couplings.remove(svc(), g.user, couplings.coupling_of(svc(), g.user, name))
    audit("pipelines:remove", coupling.app, pipeline=coupling.pipeline)
    return jsonify(shapes.coupling(coupling))


@bp.get("/apps/<name>/pipeline-diff")
def diff(name):
    """The commits the app runs that each app of the next stage does not (pipelines:diff)."""
    return jsonify(promote.diff(svc(), g.user, name))


@bp.post("/pipeline-promotions")
def create_promotion():
    """Runs the promotion before answering (its status is then `completed`; each target's
    outcome is in GET /pipeline-promotions/ID/promotion-targets); each target's release is
    audited by the use case."""
    source, targets = shapes.promotion_request(body())
    lines: list[str] = []
    promotion = promote.promote(svc(), g.user, source, targets, lines.append)
    g.audited = True     # one audit entry per target, written by the use case
    return jsonify({**shapes.promotion(promotion), "targets": shapes.promotion_targets(promotion),
                    "output": lines}), 201


@bp.get("/pipeline-promotions/<ident>")
def get_promotion(ident):
    return jsonify(shapes.promotion(promote.get(svc(), g.user, ident)))


@bp.get("/pipeline-promotions/<ident>/promotion-targets")
def promotion_targets(ident):
    return jsonify(shapes.promotion_targets(promote.get(svc(), g.user, ident)))


def _review_config(ident: str, enabled: bool | None):
    pipeline = couplings.get(svc(), g.user, ident)
    if enabled is not None:
        pipeline = couplings.set_review_apps(svc(), g.user, ident, enabled)
        audit("reviewapps:enable" if enabled else "reviewapps:disable", pipeline=pipeline.name)
    return jsonify(shapes.review_app_config(pipeline, svc().settings.review_app_stale_days))


@bp.get("/pipelines/<ident>/review-app-config")
def get_review_config(ident):
    return _review_config(ident, None)


@bp.post("/pipelines/<ident>/review-app-config")
def enable_review_apps(ident):
    """reviewapps:enable: a branch pushed to an app of the pipeline makes its review app."""
    return _review_config(ident, True)


@bp.patch("/pipelines/<ident>/review-app-config")
def update_review_config(ident):
    """The Heroku CLI's reviewapps:enable --autodeploy/--autodestroy: review apps on (stale ones are
    always destroyed after DOCKYARD_REVIEW_APP_STALE_DAYS)."""
    data = body()
    if data.get("automatic_review_apps") is False:
        return _review_config(ident, False)
    return _review_config(ident, True)


@bp.delete("/pipelines/<ident>/review-app-config")
def disable_review_apps(ident):
    """reviewapps:disable: no new review apps; existing ones stay until their branch goes."""
    return _review_config(ident, False)

