from datetime import datetime

from flask import Blueprint, g, jsonify

from core.errors import BadRequest
from core.names import IMAGE_REF, image_ref
from core.procfile import parse_procfile

from controller.apps import queries
from controller.apps import releases
from controller.web.common import body, load_app, svc

bp = Blueprint("builds", __name__)


def _duration(b):
    if not b.finished_at:
        return None
    try:
        return round((datetime.fromisoformat(b.finished_at) - datetime.fromisoformat(b.created_at)).total_seconds(), 1)
    except ValueError:
        return None


def _build_json(b):
    return {"id": b.id, "status": b.status, "source_commit": b.source_commit, "method": b.method,
            "image": b.image, "process_types": sorted(b.process_types), "created_at": b.created_at,
            "finished_at": b.finished_at, "error": b.error, "duration_seconds": _duration(b)}


@bp.get("/apps/<name>/builds")
def list_builds(name):
    return jsonify([_build_json(b) for b in queries.builds(svc(), load_app(name))])


@bp.get("/apps/<name>/builds/<build_id>")
def get_build(name, build_id):
    app = load_app(name)
    b, output = queries.build(svc(), app, build_id)
    return jsonify({**_build_json(b), "output": output})


@bp.post("/apps/<name>/builds")
def create_image_build(name):
    """{"image": "IMAGE[:TAG]", "procfile": "web: cmd\\nworker: cmd" (optional)}: release an image
    that is already in the local engine (there is no registry), like Deis's builds:create."""
    app = load_app(name)
    data = body()
    image = data.get("image")
    if not isinstance(image, str) or not IMAGE_REF.fullmatch(image):
        raise BadRequest("Give the image as IMAGE[:TAG] (as `docker images` lists it), e.g. "
                         "`dockyard deploy -a APP --image myimage:1`.")
    image = image_ref(image)
    procfile = data.get("procfile")
    if procfile is not None and not isinstance(procfile, str):
        raise BadRequest("procfile must be the text of a Procfile (`web: command` lines).")
    process_types = parse_procfile(procfile) if procfile else {}
    process_types = process_types or {"web": ""}
    lines: list[str] = []
    build, release = releases.deploy_image(svc(), app, image, process_types, g.user.name, lines.append)
    return jsonify({"build": _build_json(build), "release": release.version, "output": lines}), 201


@bp.delete("/apps/<name>/build-cache")
def purge_build_cache(name):
    """Clear the app's buildpack CACHE_DIR (pip/npm/Go caches): the next build downloads again."""
    existed, size = releases.purge_build_cache(svc(), load_app(name, admin=True))
    return jsonify({"purged": existed, "bytes": size})
