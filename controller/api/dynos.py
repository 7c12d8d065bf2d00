from flask import Blueprint, jsonify

from ..deploy import deploy_release
from ..errors import BadRequest
from ..locks import app_lock
from ..names import validate_process_type
from .common import load_app, require_process_type, svc

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


@bp.delete("/apps/<name>/dynos")
@bp.delete("/apps/<name>/dynos/<ptype>")
def restart(name, ptype=None):
    """Rolling restart of all processes (or one type): new instances pass their checks
    before the old ones are stopped."""
    s = svc()
    load_app(name)
    if ptype is not None:
        validate_process_type(ptype)
    lines: list[str] = []
    with app_lock(s.settings, name, "restart"):
        app = s.store.get_app(name)
        release = s.store.current_release(app)
        if release is None or release.build_id is None:
            raise BadRequest(f"{name} has nothing running yet: deploy it with `git push dockyard main`.")
        if ptype is not None:
            require_process_type(name, release.process_types, ptype)
        deploy_release(s, app, release, lines.append, only=ptype, release_phase=False)
        s.store.add_event(app, "dockyard", "api", f"Restarted {ptype or 'all processes'}")
    return jsonify({"restarted": ptype or "all", "output": lines})
