"""Heroku's formation and dynos (`heroku ps`, `ps:scale`, `ps:restart`, `ps:stop`) over
Dockyard's use cases. A size is Dockyard's memory limit of the process type (ps:limits)."""
from __future__ import annotations

from flask import g, jsonify

from core.appjson import MAX_QUANTITY
from core.models import App

from controller.apps import dyno_ops
from controller.apps import queries
from controller.apps import releases
from controller.web.heroku import shapes
from controller.web.common import audit, body, svc
from controller.web.views import instance_state
from controller.api.heroku import find_app, listing, route


def _sizes(app: App) -> dict[str, str]:
    s = svc()
    limits = queries.limits(s, app)
    types = set(releases.process_types(queries.live_release(s, app))) | set(limits) | {"run"}
    return {t: shapes.size((limits.get(t) or {}).get("memory_mb") or s.settings.app_memory_mb,
                           (limits.get(t) or {}).get("cpus")) for t in types}


def formation_shapes(app: App) -> list[dict]:
    sizes = _sizes(app)
    return [shapes.formation(app_id=app.id, app_name=app.name, ptype=f["type"],
                             quantity_=0 if f["stopped"] else f["quantity"], command=f["command"],
                             size_=sizes.get(f["type"], sizes["run"]), created_at=app.created_at)
            for f in releases.formation(svc(), app)]


@route("/apps/<ident>/formation", "GET")
def list_formation(ident):
    return listing(formation_shapes(find_app(ident)))


@route("/apps/<ident>/formation/<ptype>", "GET")
def get_formation(ident, ptype):
    app = find_app(ident)
    match = next((f for f in formation_shapes(app) if f["type"] == ptype), None)
    if match is None:
        releases.require_process_type(app.name, {f["type"] for f in formation_shapes(app)}, ptype)
    return jsonify(match)


def _scale(app: App, updates: object) -> None:
    """Quantities in one scale (one convergence); a size is the type's memory limit (a rolling restart)."""
    current = {f["type"]: f["quantity"] for f in releases.formation(svc(), app)}
    parsed = shapes.scale_updates(updates, current)
    for u in parsed:
        if "size_mb" in u:
            mb = u["size_mb"]
            releases.set_limits(svc(), app, u["type"], lambda now, mb=mb: (mb, now.get("cpus")), g.user.name,
                                lambda line: None)
    quantities = [{"type": u["type"], "quantity": u["quantity"]} for u in parsed if "quantity" in u]
    if quantities:
        releases.scale(svc(), app, quantities, g.user.name, lambda line: None, MAX_QUANTITY)
    audit("ps:scale", app.name, updates=parsed[:20])


@route("/apps/<ident>/formation", "PATCH")
def batch_scale(ident):
    app = find_app(ident)
    _scale(app, body().get("updates"))
    return listing(formation_shapes(app))


@route("/apps/<ident>/formation/<ptype>", "PATCH")
def scale_one(ident, ptype):
    app = find_app(ident)
    _scale(app, [{**body(), "type": ptype}])
    return jsonify(next(f for f in formation_shapes(app) if f["type"] == ptype))


# ---- dynos -------------------------------------------------------------------------------------
@route("/apps/<ident>/dynos", "GET")
def list_dynos(ident):
    app = find_app(ident)
    s = svc()
    health = queries.instance_health(s, app)
    # an instance being stopped (drained after a restart or deploy) is no dyno any more, as on Heroku:
    # only Dockyard's own `ps` shows it, as `stopping`
    instances = [i for i in s.scheduler.instances(app.name) + s.scheduler.oneoffs(app.name)
                 if not (health.get(i.container_id) or {}).get("stopping")]
    healthy = queries.healthy_ids(s) | {i.container_id for i in s.scheduler.oneoffs(app.name)}
    commands = releases.process_types(queries.live_release(s, app))
    sizes = _sizes(app)
    return listing([shapes.dyno(app_id=app.id, app_name=app.name, container_id=i.container_id, label=i.label,
                                ptype=i.process,
                                state=instance_state(i, healthy),
                                size_=sizes.get(i.process, sizes["run"]),
                                command=commands.get(i.process) or ("one-off" if i.process == "run" else i.process),
                                started_at=i.started_at, version=i.version) for i in instances])


def _restart(app: App, name: str | None) -> None:
    """All processes, one type (`web`) or one process (`web.1`)."""
    ptype, index = dyno_ops.split_dyno_name(name) if name else (None, None)
    if index is None:
        releases.restart(svc(), app, ptype, lambda line: None)
    else:
        dyno_ops.replace(svc(), app, name, g.user.name, "restart", lambda line: None)
    audit("ps:restart", app.name, process=name or "all")


@route("/apps/<ident>/dynos", "DELETE")
def restart_all(ident):
    _restart(find_app(ident), None)
    return jsonify({})


@route("/apps/<ident>/dynos/<name>", "DELETE")
@route("/apps/<ident>/formations/<name>", "DELETE")
def restart_one(ident, name):
    _restart(find_app(ident), name)
    return jsonify({})


@route("/apps/<ident>/dynos/<name>/actions/stop", "POST")
@route("/apps/<ident>/formations/<name>/actions/stop", "POST")
def stop(ident, name):
    """`ps:stop web.1`: the process stops and, being part of the formation, a new one takes its
    place (as on Heroku); a one-off stops for good. `ps:stop web`: Dockyard's ps:stop, the
    type stays stopped (the router answers 503 for web) until `ps:scale web=N`."""
    app = find_app(ident)
    ptype, index = dyno_ops.split_dyno_name(name)
    if index is None:
        releases.stop_or_start(svc(), app, "stop", ptype, g.user.name, lambda line: None)
    else:
        dyno_ops.replace(svc(), app, name, g.user.name, "stop", lambda line: None)
    audit("ps:stop", app.name, process=name)
    return jsonify({})
