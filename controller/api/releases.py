from flask import Blueprint, g, jsonify

from controller.apps import queries
from controller.apps import releases
from controller.web.common import body, load_app, release_json, release_version, svc

bp = Blueprint("releases", __name__)


@bp.get("/apps/<name>/releases")
def list_releases(name):
    app = load_app(name)
    current = queries.current_version(svc(), app)
    return jsonify([release_json(r, current) for r in queries.releases(svc(), app)])


@bp.get("/apps/<name>/releases/<version>")
def get_release(name, version):
    app = load_app(name)
    current = queries.current_version(svc(), app)
    return jsonify(release_json(queries.release(svc(), app, release_version(version)), current))


@bp.post("/apps/<name>/releases")
def rollback(name):
    """Heroku's rollback: a new release from an old release's build and config."""
    app = load_app(name)
    data = body()
    version = release_version(data["release"]) if "release" in data else None
    lines: list[str] = []
    release = releases.rollback(svc(), app, version, g.user.name, lines.append)
    current = queries.current_version(svc(), app)
    return jsonify({**release_json(release, current), "output": lines}), 201
