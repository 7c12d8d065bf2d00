"""Add-ons (backing services) of an app, their backups, and an interactive client in them.
Credentials never leave through here except as the app's config (config-vars)."""
import json

from flask import Blueprint, g, jsonify, request, send_file
from simple_websocket import ConnectionClosed

from core.errors import BadRequest, DockyardError
from core.numbers import whole_number

from controller.addons import backups
from controller.addons import ops as addon_ops
from controller.addons import queries as addon_queries
from controller.addons import lifecycle as addons
from controller.web.common import audit, body, load_app, svc
from controller.web.views import addon_row, addon_rows
from controller.api.dynos import sock

bp = Blueprint("addons", __name__)


def _addon_json(a, app, detail: bool = False) -> dict:
    s = svc()
    row = addon_row(a, app)
    if detail:
        row["package_version"] = addon_ops.package_version(s, a)
        row["attachments"] = [{"app": t.app, "var": t.var, "owner": t.owner} for t in addon_queries.attachments(s, a)]
        row["node"] = a.node or "this host"
    return row


def _backup_json(b) -> dict:
    return {"name": b.name, "addon": b.addon, "service": b.service, "kind": b.kind, "size": b.size,
            "created_at": b.created_at}


def _memory(raw) -> int | None:
    if raw is None:
        return None
    return whole_number(raw if not isinstance(raw, str) else None, "memory_mb", 32, 65536,
                        "memory_mb must be a whole number of MB from 32 to 65536 (e.g. 256).")


@bp.get("/apps/<name>/addons")
def list_addons(name):
    app = load_app(name)
    return jsonify(addon_rows(app))


@bp.post("/apps/<name>/addons")
def create_addon(name):
    app = load_app(name)
    data = body()
    lines: list[str] = []
    addon = addons.create(svc(), app, data.get("service"), data.get("as"), g.user.name, lines.append,
                          _memory(data.get("memory_mb")))
    audit("addons:create", name, addon=addon.name, service=addon.service)
    return jsonify({**_addon_json(addon, app), "output": lines}), 201


@bp.get("/apps/<name>/addons/<addon>")
def addon_info(name, addon):
    app = load_app(name)
    return jsonify(_addon_json(addon_ops.for_app(svc(), app, addon), app, detail=True))


@bp.patch("/apps/<name>/addons/<addon>")
def update_addon(name, addon):
    """{"memory_mb": N} and/or {"backup_at": "HH:MM" | null} (daily backups, UTC)."""
    app = load_app(name)
    a = addon_ops.for_app(svc(), app, addon)
    data = body()
    if "memory_mb" in data:
        a = addons.set_memory(svc(), a, _memory(data["memory_mb"]) or 0, g.user.name)
    if "backup_at" in data:
        at = data["backup_at"]
        if at is not None and not isinstance(at, str):
            raise BadRequest('backup_at must be "HH:MM" (UTC) or null.')
        a = backups.set_schedule(svc(), a, at, g.user.name)
    audit("addons:update", name, addon=a.name, fields=sorted(data))
    return jsonify(_addon_json(a, app))


@bp.delete("/apps/<name>/addons/<addon>")
def destroy_addon(name, addon):
    """?confirm=APP (the owning app's name): deletes the data after a final backup."""
    app = load_app(name, admin=True)
    a = addon_ops.for_app(svc(), app, addon)
    if a.app != app.name:
        raise BadRequest(f"{a.name} belongs to {a.app}: detach it from {name} with `dockyard addons:detach`.")
    lines: list[str] = []
    kept = addons.destroy(svc(), a, request.args.get("confirm"), g.user.name, lines.append)
    audit("addons:destroy", name, addon=a.name)
    return jsonify({"name": a.name, "deleted": True, "final_backup": kept, "output": lines})


@bp.put("/apps/<name>/addons/<addon>/attachment")
def attach_addon(name, addon):
    """Attach another app's add-on to this app: {"as": NAME} (optional)."""
    app = load_app(name)
    a = addon_ops.visible(svc(), g.user, addon)   # the caller must see the add-on's own app too
    lines: list[str] = []
    att = addons.attach(svc(), a, app, body().get("as"), g.user.name, lines.append)
    audit("addons:attach", name, addon=a.name, var=att.var)
    return jsonify({"addon": a.name, "app": name, "var": att.var, "output": lines}), 201


@bp.delete("/apps/<name>/addons/<addon>/attachment")
def detach_addon(name, addon):
    app = load_app(name)
    a = addon_ops.for_app(svc(), app, addon)
    lines: list[str] = []
    addons.detach(svc(), a, app, g.user.name, lines.append)
    audit("addons:detach", name, addon=a.name)
    return jsonify({"addon": a.name, "app": name, "detached": True, "output": lines})


# ---- backups -----------------------------------------------------------------------------
@bp.get("/apps/<name>/addons/backups")
def list_backups(name):
    return jsonify([_backup_json(b) for b in backups.list_backups(svc(), load_app(name))])


@bp.post("/apps/<name>/addons/<addon>/backups")
def capture_backup(name, addon):
    app = load_app(name)
    a = addon_ops.for_app(svc(), app, addon)
    lines: list[str] = []
    b = backups.capture(svc(), a, g.user.name, lines.append)
    audit("pg:backups:capture", name, addon=a.name, backup=b.name)
    return jsonify({**_backup_json(b), "output": lines}), 201


@bp.get("/apps/<name>/addons/backups/<backup>")
def download_backup(name, backup):
    b = backups.get_backup(svc(), load_app(name), backup)
    return send_file(b.path, mimetype="application/octet-stream", as_attachment=True, download_name=b.name)


@bp.get("/backups/destroyed")
def destroyed_backups():
    """Destroyed apps' add-on backups the caller may reach: their owner's, or every one for an
    admin, until DOCKYARD_DESTROYED_BACKUP_DAYS have passed."""
    return jsonify([{**{k: v for k, v in e.items() if k != "backups"}, "backups": [_backup_json(b) for b in e["backups"]]}
                    for e in backups.destroyed(svc(), g.user)])


@bp.get("/backups/destroyed/<app_id>/<backup>")
def download_destroyed_backup(app_id, backup):
    b = backups.destroyed_backup(svc(), g.user, app_id, backup)
    return send_file(b.path, mimetype="application/octet-stream", as_attachment=True, download_name=b.name)


@bp.post("/apps/<name>/addons/backups/<backup>/restore")
def restore_backup(name, backup):
    """{"confirm": APP, "as": NAME?}: a fresh add-on from the backup, attached to the app."""
    app = load_app(name)
    data = body()
    lines: list[str] = []
    a = addons.restore(svc(), app, backup, data.get("confirm"), data.get("as"), g.user.name, lines.append)
    audit("pg:backups:restore", name, backup=backup, addon=a.name)
    return jsonify({**_addon_json(a, app), "output": lines}), 201


# ---- psql / redis-cli ----------------------------------------------------------------------
@bp.get("/apps/<name>/addons/<addon>/shell")
def shell_without_websocket(name, addon):
    """The same path without a WebSocket upgrade: say how to use it (after the access check,
    so a stranger learns nothing of the app)."""
    load_app(name)
    raise BadRequest(f"/apps/{name}/addons/{addon}/shell is a WebSocket endpoint: use `dockyard pg:psql -a {name}` "
                     f"or `dockyard redis:cli -a {name}`.")


@sock.route("/apps/<name>/addons/<addon>/shell", bp=bp)
def shell(ws, name, addon):
    """pg:psql / redis:cli, as the app's own user: the client sends {} first, then stdin as
    binary messages and {"eof": true}; the server sends {"started": ADDON}, output as binary
    messages (first byte 1 = stdout, 2 = stderr) and {"exit": code} or {"error": message}."""
    s = svc()
    try:
        app = load_app(name)
        ws.receive(timeout=30)
        a = addon_ops.for_app(s, app, None if addon == "-" else addon, request.args.get("service"))
        command, env = addon_ops.shell_command(s, a, app)

        def read_stdin(wait: float):
            msg = ws.receive(timeout=wait)
            if msg is None:
                return False
            return None if isinstance(msg, str) else msg

        ws.send(json.dumps({"started": a.name, "service": a.service}))
        code = addon_ops.run_shell(s, app, a, g.user, command, env, read_stdin,
                                  lambda stream, data: ws.send(bytes([stream]) + data))
        ws.send(json.dumps({"exit": code}))
    except ConnectionClosed:
        return
    except DockyardError as e:
        ws.send(json.dumps({"error": e.message}))
