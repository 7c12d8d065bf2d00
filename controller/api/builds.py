import re
import shutil
from datetime import datetime

from flask import Blueprint, g, jsonify

from ..deploy import create_release
from core.errors import BadRequest, NotFound
from ..locks import app_lock
from core.procfile import parse_procfile
from .common import body, load_app, svc

bp = Blueprint("builds", __name__)

# IMAGE[:TAG] or an image id (sha256:...): what `docker images` shows.
_IMAGE_REF = re.compile(r"^(sha256:[0-9a-f]{12,64}|[a-z0-9][a-z0-9._/-]{0,200}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?)$")


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
    return jsonify([_build_json(b) for b in svc().store.list_builds(load_app(name))])


@bp.get("/apps/<name>/builds/<build_id>")
def get_build(name, build_id):
    app = load_app(name)
    b = svc().store.get_build(build_id)
    if b is None or b.app_id != app.id:
        raise NotFound(f"{name} has no build {build_id[:20]!r}: see `dockyard builds -a {name}`.")
    return jsonify({**_build_json(b), "output": svc().store.build_output(b.id)})


# ---- buildpacks (issue 3): release an image from the engine; purge the build cache ----
@bp.post("/apps/<name>/builds")
def create_image_build(name):
    """{"image": "IMAGE[:TAG]", "procfile": "web: cmd\\nworker: cmd" (optional)}: release an image
    that is already in the local engine (there is no registry), like Deis's builds:create."""
    s = svc()
    load_app(name)
    data = body()
    image = data.get("image")
    if not isinstance(image, str) or not _IMAGE_REF.fullmatch(image):
        raise BadRequest("Give the image as IMAGE[:TAG] (as `docker images` lists it), e.g. "
                         "`dockyard deploy -a APP --image myimage:1`.")
    if ":" not in image.split("/")[-1] and not image.startswith("sha256:"):
        image += ":latest"
    procfile = data.get("procfile")
    if procfile is not None and not isinstance(procfile, str):
        raise BadRequest("procfile must be the text of a Procfile (`web: command` lines).")
    process_types = parse_procfile(procfile) if procfile else {}
    process_types = process_types or {"web": ""}
    lines: list[str] = []
    with app_lock(s.settings, name, "image deploy"):
        app = s.store.get_app(name)
        if not s.scheduler.image_exists(image):
            raise NotFound(f"The image {image} is not in this machine's Docker engine (there is no registry to "
                           "pull from): build or `docker load` it first, then deploy again.")
        build = s.store.create_build(app, image, f"image:{image}", image)
        build = s.store.finish_build(build.id, "succeeded", f"-----> Deploying image {image}", None,
                                     process_types, f"image:{image}")
        current = s.store.current_release(app)
        release = create_release(s, app, build, current.config if current else {}, f"Deploy image {image}",
                                 g.user.name, lines.append)
    return jsonify({"build": _build_json(build), "release": release.version, "output": lines}), 201


@bp.delete("/apps/<name>/build-cache")
def purge_build_cache(name):
    """Clear the app's buildpack CACHE_DIR (pip/npm/Go caches): the next build downloads again."""
    s = svc()
    load_app(name, admin=True)
    cache = s.settings.cache_dir(name)
    with app_lock(s.settings, name, "cache purge"):
        existed = cache.exists()
        size = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file() and not f.is_symlink()) if existed else 0
        shutil.rmtree(cache, ignore_errors=False) if existed else None
    return jsonify({"purged": existed, "bytes": size})
