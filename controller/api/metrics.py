"""Metrics and log drains: an app's metrics, the platform view (admins), Prometheus'
`GET /metrics` (admins, or the scraper token DOCKYARD_METRICS_TOKEN) and drains."""
from __future__ import annotations

from flask import Blueprint, Response, g, jsonify, request

from controller.observe import drains
from controller.observe import metrics
from controller.observe.prometheus import Collector
from core.errors import AdminOnly
from controller.web.common import audit, body, load_app, svc

bp = Blueprint("metrics", __name__)


@bp.get("/apps/<name>/metrics")
def app_metrics(name):
    app = load_app(name)
    since = metrics.parse_since(request.args.get("since"))
    return jsonify(metrics.app_metrics(svc(), app, since, request.args.get("type") or None))


@bp.get("/platform/metrics")
def platform_metrics():
    if not g.user.is_admin:
        raise AdminOnly("Only an admin may see the platform's metrics: ask your Dockyard admin.")
    return jsonify(metrics.platform_metrics(svc()))


@bp.get("/metrics")
def prometheus():
    if not (g.get("scraper") or (g.get("user") is not None and g.user.is_admin)):
        raise AdminOnly("GET /metrics needs an admin's token or DOCKYARD_METRICS_TOKEN.",
                        fix="scrape with the token in DOCKYARD_METRICS_TOKEN (ask the operator) or an admin's token")
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest   # only when scraped
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector(svc()))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


@bp.get("/apps/<name>/drains")
def list_drains(name):
    app = load_app(name)
    return jsonify([{k: d[k] for k in ("id", "url", "created_at", "sent", "dropped", "last_error")}
                    for d in drains.of_app(svc(), app)])


@bp.post("/apps/<name>/drains")
def add_drain(name):
    app = load_app(name)
    url = drains.add(svc(), app, str(body().get("url") or ""))
    audit("drains:add", app.name)
    return jsonify({"url": url}), 201


@bp.delete("/apps/<name>/drains")
def remove_drain(name):
    app = load_app(name)
    url = str(request.args.get("url") or body().get("url") or "")
    drains.remove(svc(), app, url)
    audit("drains:remove", app.name)
    return jsonify({"url": url})
