from flask import Blueprint, jsonify

from ..errors import NotFound
from .common import load_app, svc

bp = Blueprint("builds", __name__)


def _build_json(b):
    return {"id": b.id, "status": b.status, "source_commit": b.source_commit, "method": b.method,
            "image": b.image, "process_types": sorted(b.process_types), "created_at": b.created_at,
            "finished_at": b.finished_at, "error": b.error}


@bp.get("/apps/<name>/builds")
def list_builds(name):
    return jsonify([_build_json(b) for b in svc().store.list_builds(load_app(name))])


@bp.get("/apps/<name>/builds/<build_id>")
def get_build(name, build_id):
    app = load_app(name)
    b = svc().store.get_build(build_id)
    if b is None or b.app_id != app.id:
        raise NotFound(f"{name} has no build {build_id[:20]!r}: see `dockyard builds -a {name}`.")
    return jsonify({**_build_json(b), "output": svc().store.build_output(b.id)})
