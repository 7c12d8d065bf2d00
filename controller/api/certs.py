"""Heroku's SNI endpoints: one certificate (chain + key) per app."""
from dataclasses import asdict
from datetime import datetime, timezone

from flask import Blueprint, g, jsonify

from .. import router_state
from ..certs import CertBundle, inspect_bundle, uncovered_hosts
from core.errors import BadRequest
from .common import body, load_app, svc
from .router_common import apply_or_revert

bp = Blueprint("certs", __name__)


def _hosts(app) -> list[str]:
    return [svc().settings.app_host(app.name)] + [d["hostname"] for d in router_state.domains(svc().store, app)]


def _cert_json(app, bundle: CertBundle) -> dict:
    s = svc().settings
    info = bundle.info
    days = (datetime.fromisoformat(info.not_after) - datetime.now(timezone.utc)).days
    return {**asdict(info), "names": list(info.names), "source": bundle.source, "expires_in_days": days,
            "uncovered_hosts": uncovered_hosts(info, _hosts(app)), "tls_port": s.router_tls_port,
            "force_https": bool(router_state.get_settings(svc().store, app).get("force-https", False))}


@bp.get("/apps/<name>/sni-endpoints")
def list_certs(name):
    app = load_app(name)
    bundle = router_state.get_cert(svc().store, app.name)
    return jsonify([] if bundle is None else [_cert_json(app, bundle)])


@bp.post("/apps/<name>/sni-endpoints")
def add_cert(name):
    """{"certificate_chain": PEM, "private_key": PEM}: replaces the app's certificate."""
    s = svc()
    app = load_app(name, admin=True)
    data = body()
    chain, key = data.get("certificate_chain"), data.get("private_key")
    if not isinstance(chain, str) or not isinstance(key, str):
        raise BadRequest("Send certificate_chain and private_key as PEM strings: `dockyard certs:add CERT KEY`.")
    info = inspect_bundle(chain, key, _hosts(app))
    bundle = CertBundle(cert_pem=chain, key_pem=key, info=info)
    previous = router_state.get_cert(s.store, app.name)

    def revert():
        if previous is None:
            router_state.remove_cert(s.store, app)
        else:
            router_state.put_cert(s.store, app, previous)

    apply_or_revert(app.name, lambda: router_state.put_cert(s.store, app, bundle), revert, "the certificate")
    s.store.add_event(app, "dockyard", "api", f"Certificate for {', '.join(info.names)} (expires "
                      f"{info.not_after[:10]}) added by {g.user.name}")
    return jsonify(_cert_json(app, bundle)), 201


@bp.delete("/apps/<name>/sni-endpoints")
def remove_cert(name):
    s = svc()
    app = load_app(name, admin=True)
    if router_state.get_settings(s.store, app).get("force-https"):
        router_state.update_settings(s.store, app, {"force-https": None})
    router_state.remove_cert(s.store, app)
    s.apply_routes()
    s.store.add_event(app, "dockyard", "api", f"Certificate removed by {g.user.name}")
    return jsonify({"removed": True})
