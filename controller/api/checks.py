"""Health checks per process type: `checks` shows what the next deploy runs (checks:set
overrides app.json); checks:set / checks:unset change them. They apply from the next
deploy or restart; nothing restarts now."""
from flask import Blueprint, g, jsonify

from core.checkspec import effective, parse_healthchecks, spec_from_pairs
from core.errors import BadRequest
from core.names import validate_process_type

from controller.apps import queries
from controller.apps import releases
from controller.runtime.rollout import RELEASE_PHASE
from controller.web.common import body, load_app, svc

bp = Blueprint("checks", __name__)


def _checks_json(name):
    s = svc()
    app = queries.fresh(s, name)
    release = queries.current_release(s, app)
    types = sorted(t for t in (release.process_types if release else {}) if t != RELEASE_PHASE)
    table = effective(queries.stored_checks(s, app), release.healthchecks if release else {},
                      (release.port if release else None) or s.settings.app_port,
                      release.manifest.get("checks_from") if release else None)
    out = []
    for t in sorted(set(types) | set(table)):
        source, checks = table.get(t, ("default", []))
        if not checks:
            default = (f"answers HTTP on $PORT within {s.settings.health_timeout} s" if t == "web"
                       else "starts (no check)")
            out.append({"type": t, "source": "default", "checks": [], "default": default})
        else:
            out.append({"type": t, "source": source, "checks": [c.to_spec() for c in checks]})
    return out


@bp.get("/apps/<name>/checks")
def get_checks(name):
    load_app(name)
    return jsonify(_checks_json(name))


@bp.put("/apps/<name>/checks/<ptype>")
def set_checks(name, ptype):
    """Body: one check as KEY: VALUE strings ({"path": "/health", "content": "ok",
    "attempts": "3"}) or {"checks": [app.json checks...]}; replaces the type's checks."""
    s = svc()
    load_app(name)
    validate_process_type(ptype)
    data = body()
    if "checks" in data:
        specs = parse_healthchecks({ptype: data["checks"]}, "checks", s.settings.app_port)[ptype]
    else:
        if not data:
            raise BadRequest("Give the check, e.g. `dockyard checks:set web path=/health content=ok`.")
        specs = [spec_from_pairs({k: str(v) for k, v in data.items()}, s.settings.app_port)]
    releases.set_checks(s, queries.fresh(s, name), ptype, specs, g.user.name)
    return jsonify(_checks_json(name))


@bp.delete("/apps/<name>/checks/<ptype>")
def unset_checks(name, ptype):
    app = load_app(name)
    validate_process_type(ptype)
    releases.set_checks(svc(), app, ptype, None, g.user.name)
    return jsonify(_checks_json(name))
