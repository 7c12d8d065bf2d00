"""The audit log: who did what, readable by admins (`dockyard audit`). Every authenticated
request that changes something is recorded once, after it is answered, with its status.
Details are names only: config changes record the keys, never the values."""
from flask import Blueprint, current_app, g, jsonify, request

from controller.accounts import users as accounts
from core.errors import StorageFull
from core.numbers import whole_number
from controller.web.common import svc
from controller.api.users import require_admin

bp = Blueprint("audit", __name__)

ACTIONS = {
    "apps.create_app_": "apps:create", "apps.delete_app": "apps:destroy",
    "config_vars.update_config": "config:set", "formation.scale": "ps:scale",
    "dynos.restart": "ps:restart", "releases.rollback": "rollback",
}
MUTATING = ("POST", "PUT", "PATCH", "DELETE")


def _detail(action: str, data) -> dict:
    if not isinstance(data, dict):
        return {}
    if action == "config:set":     # keys only: values are secret
        return {"set": sorted(str(k)[:200] for k, v in data.items() if v is not None),
                "unset": sorted(str(k)[:200] for k, v in data.items() if v is None)}
    if action == "ps:scale" and isinstance(data.get("updates"), list):
        return {"updates": [{"type": str(u.get("type"))[:40], "quantity": u.get("quantity")}
                            for u in data["updates"][:20] if isinstance(u, dict)]}
    if action == "rollback" and "release" in data:
        return {"release": str(data["release"])[:20]}
    if action == "apps:create":
        return {}
    return {}


@bp.after_app_request
def record(response):
    user = g.get("user")
    if user is None or request.method not in MUTATING or g.get("audited"):
        return response
    endpoint = request.endpoint or ""
    action = ACTIONS.get(endpoint) or f"{request.method} {request.url_rule.rule if request.url_rule else '?'}"
    args = request.view_args or {}
    app = args.get("name")
    if action == "apps:create":
        data = g.get("body")
        app = data.get("name") if isinstance(data, dict) and isinstance(data.get("name"), str) else None
        app = app[:40] if app else None
    detail = _detail(action, g.get("body"))
    if args.get("ptype"):
        detail["type"] = str(args["ptype"])[:40]
    try:
        accounts.audit(svc(), user.name, action, app, detail, response.status_code)
    except StorageFull:
        # the store is full: the request was refused (507) or already done; the response stands
        current_app.logger.warning("audit of %s by %s not recorded: the store's filesystem is full", action, user.name)
    return response


@bp.get("/audit")
def list_audit():
    require_admin("read the audit log")
    limit = min(whole_number(request.args.get("limit", 100), "limit", 1), 5000)
    return jsonify(accounts.audit_entries(svc(), app=request.args.get("app") or None,
                                          actor=request.args.get("user") or None, limit=limit))
