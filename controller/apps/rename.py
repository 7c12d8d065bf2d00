"""Renaming an app (`heroku apps:rename`). An app's name is in its git repository's path, its
images, its containers' labels, its add-ons' networks and its hostname; so only an app that
has not been built yet and has no add-on is renamed (its repository and build cache move with
it). A deployed app is refused with the way to move it."""
from __future__ import annotations

import contextlib
import shutil

from core.errors import Conflict
from core.models import App, User
from core.names import validate_app_name

from controller.runtime import repos
from controller.routing.table import apply_routes
from controller.runtime.locks import app_lock
from controller.services import Services


def rename_app(svc: Services, app: App, new_name: object, user: User) -> App:
    new_name = validate_app_name(new_name)
    if new_name == app.name:
        return app
    with contextlib.ExitStack() as locks:
        for name in sorted((app.name, new_name)):     # one order, so two renames never wait for each other
            locks.enter_context(app_lock(svc.settings, name, "rename"))
        app = svc.store.get_app(app.name)
        if repos.repo_path(svc.settings, new_name).exists():
            raise Conflict(f"A repository named {new_name}.git is left on the platform (from a removed app): "
                           "pick another name, or ask the operator to remove it.")
        if not svc.store.rename_unbuilt_app(app, new_name):
            raise Conflict(f"Dockyard renames only an app that has not been deployed yet and has no add-ons: "
                           f"{app.name}'s name is in its images, containers and add-ons. Create {new_name} "
                           f"(`heroku apps:create {new_name}`), push to it, move its add-ons and domains, and "
                           f"destroy {app.name}.")
        for old, new in ((repos.repo_path(svc.settings, app.name), repos.repo_path(svc.settings, new_name)),
                         (svc.settings.cache_dir(app.name), svc.settings.cache_dir(new_name))):
            if old.exists():
                shutil.move(str(old), str(new))
        renamed = svc.store.get_app(new_name)
        svc.store.add_event(renamed, "dockyard", "api", f"Renamed from {app.name} by {user.name}")
        apply_routes(svc)
    return renamed
