import shutil

from flask import Blueprint, g, jsonify

from builder.receiver import init_repo, repo_path

from .. import access, accounts
from ..locks import app_lock
from core.names import validate_app_name
from .common import app_json, body, load_app, svc

bp = Blueprint("apps", __name__)


@bp.get("/apps")
def list_apps():
    store = svc().store
    return jsonify([app_json(a) for a in store.list_apps()
                    if access.can_read(g.user, a, accounts.collaborator_ids(store, a))])


@bp.post("/apps")
def create_app_():
    name = validate_app_name(body().get("name"))
    app = svc().store.create_app(name, g.user.id)
    init_repo(svc(), name)
    svc().store.add_event(app, "dockyard", "api", f"App created by {g.user.name}")
    return jsonify(app_json(app)), 201


@bp.get("/apps/<name>")
def get_app(name):
    app = load_app(name)
    data = app_json(app)
    data["formation"] = svc().store.formation(app)
    return jsonify(data)


@bp.delete("/apps/<name>")
def delete_app(name):
    s = svc()
    app = load_app(name, admin=True)
    with app_lock(s.settings, name, "destroy"):
        for inst in s.scheduler.instances(name):
            s.store.forget_instance(inst.container_id)
            s.scheduler.stop(inst.container_id, 0)
        s.store.delete_app(app)
        s.apply_routes()
        s.scheduler.remove_images(name)
        shutil.rmtree(repo_path(s, name), ignore_errors=True)
        shutil.rmtree(s.settings.cache_dir(name), ignore_errors=True)   # buildpack CACHE_DIR
    return jsonify(app_json_deleted(app))


def app_json_deleted(app):
    return {"id": app.id, "name": app.name, "deleted": True}
