from flask import Blueprint, jsonify

from .common import load_app, svc

bp = Blueprint("dynos", __name__)


def _state(inst, healthy) -> str:
    if inst.state == "restarting" or (inst.state == "exited" and inst.exit_code not in (0, None)):
        return "crashed"
    if inst.state == "running":
        return "up" if inst.container_id in healthy else "starting"
    return inst.state


@bp.get("/apps/<name>/dynos")
def list_dynos(name):
    load_app(name)
    s = svc()
    healthy = s.store.healthy_ids()
    return jsonify([{
        "name": inst.label, "type": inst.process, "state": _state(inst, healthy),
        "release": {"version": inst.version}, "container": inst.container_id[:12],
        "port": inst.host_port, "exit_code": inst.exit_code, "created_at": inst.started_at,
    } for inst in s.scheduler.instances(name)])
