from flask import Blueprint, g, jsonify

from controller.routing import app_routes
from controller.web.common import body, load_app, svc

bp = Blueprint("domains", __name__)


def _domain_json(app_name: str, hostname: str, kind: str, created_at: str | None = None) -> dict:
    s = svc().settings
    return {"hostname": hostname, "kind": kind, "app": app_name, "created_at": created_at,
            "url": f"http://{hostname}:{s.router_port}/" if not hostname.startswith("*.") else None}


@bp.get("/apps/<name>/domains")
def list_domains(name):
    app = load_app(name)
    rows = [_domain_json(app.name, svc().settings.app_host(app.name), "default")]
    rows += [_domain_json(app.name, d["hostname"], "custom", d["created_at"])
             for d in app_routes.domains(svc(), app)]
    return jsonify(rows)


@bp.post("/apps/<name>/domains")
def add_domain(name):
    app = load_app(name, admin=True)
    host = app_routes.add_domain(svc(), app, body().get("hostname"), g.user)
    return jsonify(_domain_json(app.name, host, "custom")), 201


@bp.delete("/apps/<name>/domains/<hostname>")
def remove_domain(name, hostname):
    app = load_app(name, admin=True)
    host = app_routes.remove_domain(svc(), app, hostname, g.user)
    return jsonify(_domain_json(app.name, host, "custom"))
