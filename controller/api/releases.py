from flask import Blueprint, g, jsonify

from ..deploy import create_release
from core.errors import BadRequest
from ..locks import app_lock
from .common import body, load_app, release_json, svc

bp = Blueprint("releases", __name__)


def _version(raw) -> int:
    text = str(raw).lstrip("v")
    if not text.isdigit():
        raise BadRequest(f"Release {str(raw)[:20]!r} is not a version like v3.")
    return int(text)


@bp.get("/apps/<name>/releases")
def list_releases(name):
    app = load_app(name)
    current = svc().store.find_app(name).current_version
    return jsonify([release_json(r, current) for r in svc().store.list_releases(app)])


@bp.get("/apps/<name>/releases/<version>")
def get_release(name, version):
    app = load_app(name)
    current = svc().store.find_app(name).current_version
    return jsonify(release_json(svc().store.get_release(app, _version(version)), current))


@bp.post("/apps/<name>/releases")
def rollback(name):
    """Heroku's rollback: a new release from an old release's build and config."""
    s = svc()
    app = load_app(name)
    data = body()
    lines: list[str] = []
    with app_lock(s.settings, name, "rollback"):
        app = s.store.get_app(name)
        releases = [r for r in s.store.list_releases(app) if r.status == "succeeded" and r.build_id]
        if "release" in data:
            target = s.store.get_release(app, _version(data["release"]))
        else:
            older = [r for r in releases if r.version < app.current_version]
            if not older:
                raise BadRequest(f"{name} has no earlier release to roll back to.")
            target = older[-1]
        if target.build_id is None:
            raise BadRequest(f"v{target.version} has no build to run; pick a release that deployed code.")
        build = s.store.get_build(target.build_id)
        release = create_release(s, app, build, target.config, f"Rollback to v{target.version}",
                                 g.user.name, lines.append)
    current = s.store.find_app(name).current_version
    return jsonify({**release_json(release, current), "output": lines}), 201
