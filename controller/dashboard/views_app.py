"""An app's page and its actions. Views parse the form, call the same use case as the API
(controller/apps/releases.py) under the same access rules (api.common.load_app), and redirect."""
from __future__ import annotations

import json
import time

from flask import Response, g, jsonify, render_template, request, stream_with_context

from core.appjson import MAX_QUANTITY
from core.errors import BadRequest
from core.numbers import whole_number

from controller.observe import applogs
from controller.observe import metrics
from controller.apps import queries
from controller.apps import releases
from controller.web.common import audit, load_app, release_version, svc
from controller.dashboard import bp, pages

STREAM_SECONDS = 55    # one log stream per connection at most this long; the browser reconnects


def _back(name: str, anchor: str, lines: list[str]):
    """The app's page again, with what the action printed (rendered, not redirected: no
    message travels in a URL someone else could craft)."""
    app = load_app(name)
    return render_template("app.html", message="\n".join(lines[-8:]), anchor=anchor,
                           **pages.app_page(svc(), app, g.user))


@bp.get("/apps/<name>")
def app_page(name):
    app = load_app(name)
    return render_template("app.html", **pages.app_page(svc(), app, g.user))


@bp.post("/apps/<name>/scale")
def scale(name):
    app = load_app(name)
    qty = whole_number(request.form.get("quantity", ""), "quantity", 0, MAX_QUANTITY,
                       f"Quantity must be a whole number from 0 to {MAX_QUANTITY}, e.g. 2.")
    lines: list[str] = []
    releases.scale(svc(), app, [{"type": request.form.get("type", ""), "quantity": qty}], g.user.name,
                   lines.append, MAX_QUANTITY)
    audit("ps:scale", name, type=request.form.get("type", "")[:40], quantity=qty)
    return _back(name, "processes", lines or [f"Scaled {request.form.get('type')} to {qty}."])


@bp.post("/apps/<name>/restart")
def restart(name):
    app = load_app(name)
    lines: list[str] = []
    releases.restart(svc(), app, request.form.get("type") or None, lines.append)
    audit("ps:restart", name, type=(request.form.get("type") or "")[:40])
    return _back(name, "processes", lines or ["Restarted."])


@bp.post("/apps/<name>/rollback")
def rollback(name):
    app = load_app(name)
    version = release_version(request.form.get("version", ""))
    lines: list[str] = []
    release = releases.rollback(svc(), app, version, g.user.name, lines.append)
    audit("rollback", name, release=str(version))
    return _back(name, "releases", [f"Rolled back to v{version}: now v{release.version}."])


@bp.post("/apps/<name>/config")
def set_config(name):
    app = load_app(name)
    key = request.form.get("key", "").strip()
    value = request.form.get("value")
    if not key:
        raise BadRequest("Give the variable's name, e.g. DATABASE_URL.")
    lines: list[str] = []
    releases.set_config(svc(), app, {key: value if request.form.get("unset") != "1" else None}, g.user.name,
                        True, lines.append)
    audit("config:unset" if request.form.get("unset") == "1" else "config:set", name, keys=[key[:100]])
    return _back(name, "config", [f"Set {key}." if request.form.get("unset") != "1" else f"Unset {key}."])


@bp.get("/apps/<name>/config.json")
def config_values(name):
    """Values shown only when revealed (a same-origin fetch: the cookie is SameSite=Strict)."""
    app = load_app(name)
    current = queries.current_release(svc(), app)
    return jsonify(current.config if current else {})


@bp.get("/apps/<name>/metrics.json")
def metrics_json(name):
    app = load_app(name)
    return jsonify(metrics.app_metrics(svc(), app, metrics.parse_since(request.args.get("since")),
                                       request.args.get("type") or None))


@bp.get("/apps/<name>/builds/<build_id>")
def build_page(name, build_id):
    app = load_app(name)
    build, output = queries.build(svc(), app, build_id)
    return render_template("build.html", app=app, build=build, output=output)


@bp.get("/apps/<name>/logs/stream")
def log_stream(name):
    """Server-sent events: the app's lines as they come (process type filter `ps`), for at most
    STREAM_SECONDS; EventSource reconnects with Last-Event-ID (the last line's time)."""
    app = load_app(name)
    s = svc()
    ps = request.args.get("ps", "")
    since = request.headers.get("Last-Event-ID", "")

    def events():
        last = since
        first = not last
        deadline = time.monotonic() + STREAM_SECONDS
        yield "retry: 1000\n\n"
        while time.monotonic() < deadline:
            found = applogs.lines(s, app, 200 if first else 1000, last, "", ps)
            first = False
            for line in found:
                last = line["at"]
                yield f"id: {last}\ndata: {json.dumps(line)}\n\n"
            if not found:
                yield ": keep-alive\n\n"
            time.sleep(1.0)

    return Response(stream_with_context(events()), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
