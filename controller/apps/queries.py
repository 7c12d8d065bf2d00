"""What the transports (API, dashboard, git) read of apps: the apps a user sees, an app's
formation, builds, releases, limits, checks and instance health, as the store holds them now.
Transports call these, never the store, so every read has one place that may add a rule."""
from __future__ import annotations

from core.errors import NotFound
from core.models import App, Build, Release, User

from controller.accounts import access
from controller.services import Services


# ---- apps ---------------------------------------------------------------------------------
def visible_apps(svc: Services, user: User) -> list[App]:
    """Every app the user may read (an admin: all), by name, as stored now (two queries however
    many apps there are)."""
    members = svc.store.collaborators_by_app()
    return [a for a in svc.store.list_apps() if access.can_read(user, a, members.get(a.id, ()))]


def apps_of(svc: Services, user: User) -> list[App]:
    """The apps the user owns or collaborates on (Heroku's /users/{user}/apps)."""
    members = svc.store.collaborators_by_app()
    return [a for a in svc.store.list_apps() if a.owner_id == user.id or user.id in members.get(a.id, ())]


def all_apps(svc: Services) -> list[App]:
    return svc.store.list_apps()


def find_app(svc: Services, name: str) -> App | None:
    return svc.store.find_app(name)


def fresh(svc: Services, name: str) -> App:
    """The app as stored now (its current version moves with every release); AppNotFound if gone."""
    return svc.store.get_app(name)


def formation(svc: Services, app: App) -> dict[str, int]:
    return svc.store.formation(app)


def stopped_types(svc: Services, app: App) -> set[str]:
    return svc.store.stopped_types(app)


def sleeping_types(svc: Services, app: App) -> set[str]:
    """The types autosleep put to sleep (they start on the app's next request)."""
    return svc.store.sleeping_types(app)


def sleep_events(svc: Services, app: App, limit: int = 5) -> list[dict]:
    """The app's latest sleeps, wakes and failed wakes ({id, at, message}), newest first."""
    return svc.store.events_of(app, "dockyard", "autosleep", limit)


# ---- builds -------------------------------------------------------------------------------
def builds(svc: Services, app: App) -> list[Build]:
    """The app's builds, oldest first."""
    return svc.store.list_builds(app)


def build(svc: Services, app: App, build_id: str) -> tuple[Build, str]:
    """One of the app's builds and its output; NotFound for another app's build."""
    found = svc.store.get_build(build_id)
    if found is None or found.app_id != app.id:
        raise NotFound(f"{app.name} has no build {build_id[:40]!r}: see `dockyard builds -a {app.name}`.")
    return found, svc.store.build_output(found.id)


# ---- releases -----------------------------------------------------------------------------
def releases(svc: Services, app: App) -> list[Release]:
    """The app's releases, oldest first."""
    return svc.store.list_releases(app)


def release(svc: Services, app: App, version: int) -> Release:
    """Release `version` of the app; NotFound names how to list them."""
    return svc.store.get_release(app, version)


def current_version(svc: Services, app: App) -> int:
    """The version the app runs now (0 before its first release)."""
    return svc.store.get_app(app.name).current_version


def current_release(svc: Services, app: App) -> Release | None:
    return svc.store.current_release(app)


def live_release(svc: Services, app: App) -> Release | None:
    """The release whose processes run (the current one, or the last that ran before it)."""
    return svc.store.live_release(app)


# ---- processes ----------------------------------------------------------------------------
def limits(svc: Services, app: App) -> dict[str, dict]:
    """The limits set per process type ({type: {memory_mb, cpus}}; None = the default)."""
    return svc.store.limits(app)


def stored_checks(svc: Services, app: App) -> dict[str, list[dict]]:
    """The checks set with checks:set per process type (app.json's are in the release)."""
    return svc.store.checks(app)


def instance_health(svc: Services, app: App) -> dict[str, dict]:
    """Per instance id: restarts, last exit, whether it was killed for memory or is stopping."""
    return svc.store.instance_health(app)


def healthy_ids(svc: Services) -> set[str]:
    """The ids of every instance that passed its health check and is not being stopped."""
    return svc.store.healthy_ids()
