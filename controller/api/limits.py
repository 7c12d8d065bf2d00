"""ps:limits: memory and CPU per process type (cgroups). A change rolls that type."""
from flask import Blueprint, g, jsonify

from core.errors import BadRequest

from controller.apps import queries
from controller.apps import releases
from controller.runtime.rollout import RELEASE_PHASE
from controller.web.common import body, load_app, svc

bp = Blueprint("limits", __name__)
MEMORY_MB = (16, 65536)
CPUS = (0.01, 64.0)


def _limits_json(name):
    s = svc()
    app = queries.fresh(s, name)
    release = queries.live_release(s, app)
    types = sorted(t for t in (release.process_types if release else {}) if t != RELEASE_PHASE)
    set_ = queries.limits(s, app)
    out = []
    for t in sorted(set(types) | set(set_)):
        mine = set_.get(t, {})
        out.append({"type": t,
                    "memory_mb": mine.get("memory_mb") or s.settings.app_memory_mb,
                    "cpus": mine.get("cpus") if mine.get("cpus") is not None else (s.settings.app_cpus or None),
                    "memory_default": mine.get("memory_mb") is None,
                    "cpus_default": mine.get("cpus") is None})
    return out


@bp.get("/apps/<name>/limits")
def get_limits(name):
    load_app(name)
    return jsonify(_limits_json(name))


def _number(value, kind, lo, hi, name):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise BadRequest(f"{name} must be a number from {lo:g} to {hi:g} ({kind}), or null for the default.")
    return value


@bp.patch("/apps/<name>/limits/<ptype>")
def set_limits(name, ptype):
    """{"memory_mb": 256, "cpus": 0.5} (null = back to the default); running instances of the
    type are replaced, one rolling restart."""
    app = load_app(name)
    data = body()
    unknown = sorted(set(data) - {"memory_mb", "cpus"})
    if unknown:
        raise BadRequest(f"Unknown limit {unknown[0]!r}: set memory_mb and/or cpus.")

    def parse(current: dict) -> tuple:
        memory = _number(data.get("memory_mb", current.get("memory_mb")), "MB", *MEMORY_MB, "memory_mb")
        cpus = _number(data.get("cpus", current.get("cpus")), "CPUs", *CPUS, "cpus")
        return (int(memory) if isinstance(memory, float) else memory), cpus

    lines: list[str] = []
    releases.set_limits(svc(), app, ptype, parse, g.user.name, lines.append)
    return jsonify({"limits": _limits_json(name), "output": lines})
