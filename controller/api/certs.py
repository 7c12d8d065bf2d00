"""Heroku's SNI endpoints: one certificate (chain + key) per app."""
from dataclasses import asdict
from datetime import datetime, timezone

from flask import Blueprint, g, jsonify

from controller.routing import app_routes
from controller.routing.certs import CertBundle, uncovered_hosts
from controller.web.common import body, load_app, svc

bp = Blueprint("certs", __name__)


def _cert_json(app, bundle: CertBundle) -> dict:
    s = svc().settings
    info = bundle.info
    days = (datetime.fromisoformat(info.not_after) - datetime.now(timezone.utc)).days
    return {**asdict(info), "names": list(info.names), "source": bundle.source, "expires_in_days": days,
            "uncovered_hosts": uncovered_hosts(info, app_routes.hosts(svc(), app)), "tls_port": s.router_tls_port,
            "force_https": bool(app_routes.router_settings(svc(), app).get("force-https", False))}


@bp.get("/apps/<name>/sni-endpoints")
def list_certs(name):
    app = load_app(name)
    bundle = app_routes.certificate(svc(), app)
    return jsonify([] if bundle is None else [_cert_json(app, bundle)])


@bp.post("/apps/<name>/sni-endpoints")
def add_cert(name):
    """{"certificate_chain": PEM, "private_key": PEM}: replaces the app's certificate."""
    app = load_app(name, admin=True)
    data = body()
    bundle = app_routes.add_cert(svc(), app, data.get("certificate_chain"), data.get("private_key"), g.user)
    return jsonify(_cert_json(app, bundle)), 201


@bp.delete("/apps/<name>/sni-endpoints")
def remove_cert(name):
    app_routes.remove_cert(svc(), load_app(name, admin=True), g.user)
    return jsonify({"removed": True})
