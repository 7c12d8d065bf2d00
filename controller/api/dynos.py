import json

from flask import Blueprint, g, jsonify
from flask_sock import Sock
from simple_websocket import ConnectionClosed

from core.errors import BadRequest, DockyardError

from controller.runtime import oneoffs
from controller.apps import queries
from controller.apps import releases
from controller.web.common import load_app, svc
from controller.web.views import dyno_json

bp = Blueprint("dynos", __name__)
sock = Sock()    # stateless here: routes are registered on the blueprint


@bp.get("/apps/<name>/dynos")
def list_dynos(name):
    load_app(name)
    s = svc()
    app = queries.fresh(s, name)
    oneoffs = s.scheduler.oneoffs(name)      # one engine listing each for one-offs and instances
    healthy = queries.healthy_ids(s) | {o.container_id for o in oneoffs}
    health = queries.instance_health(s, app)
    limits = queries.limits(s, app)

    def limit(ptype: str) -> int:
        return (limits.get(ptype) or {}).get("memory_mb") or s.settings.app_memory_mb

    return jsonify([dyno_json(inst, healthy, health.get(inst.container_id), limit(inst.process))
                    for inst in s.scheduler.instances(name) + oneoffs])


@bp.get("/apps/<name>/run")
def run_without_websocket(name):
    """The same path without a WebSocket upgrade: say how to use it (after the access check)."""
    load_app(name)
    raise BadRequest(f"/apps/{name}/run is a WebSocket endpoint: use `dockyard run -a {name} -- COMMAND`, "
                     f"or POST /apps/{name}/dynos for a detached one-off.")


@sock.route("/apps/<name>/run", bp=bp)
def run_attached(ws, name):
    """`dockyard run`: the client sends {"command": ...}, then stdin as binary messages and
    {"eof": true}; the server sends {"started": "run.N"}, output as binary messages (first
    byte 1 = stdout, 2 = stderr) and finally {"exit": code} or {"error": message}."""
    try:
        app = load_app(name)
        first = ws.receive(timeout=30)
        try:
            spec = json.loads(first) if isinstance(first, str) else None
        except ValueError:
            spec = None
        if not isinstance(spec, dict):
            raise BadRequest('The first message must be {"command": "..."}.')

        def read_stdin(wait: float):
            msg = ws.receive(timeout=wait)     # None on timeout; ConnectionClosed if the client left
            if msg is None:
                return False
            if isinstance(msg, str):
                return None                   # {"eof": true}: end of input
            return msg

        code = oneoffs.run_attached(
            svc(), app, spec.get("command"), g.user.name, read_stdin,
            lambda stream, data: ws.send(bytes([stream]) + data),
            lambda label, version: ws.send(json.dumps({"started": label, "release": version})))
        ws.send(json.dumps({"exit": code}))
    except ConnectionClosed:
        return
    except DockyardError as e:
        ws.send(json.dumps({"error": e.message}))


@bp.delete("/apps/<name>/dynos")
@bp.delete("/apps/<name>/dynos/<ptype>")
def restart(name, ptype=None):
    """Rolling restart of all processes (or one type): new instances pass their checks
    before the old ones are stopped."""
    app = load_app(name)
    lines: list[str] = []
    releases.restart(svc(), app, ptype, lines.append)
    return jsonify({"restarted": ptype or "all", "output": lines})
