"""What older versions kept on disk by app name, moved once under app ids (`manage bootstrap`,
which `make up` runs, so at every start; a no-op once done). A name is reused by the next app
of that name; an id never is.

- backups/<name>/: each file goes to the app of that name only when it is that app's (its add-on
  belongs to the app, or it was made after the app was created); the rest (a destroyed app's,
  such as its final dump) goes under a fresh id recorded as a destroyed app with no known owner,
  so only admins reach it, until DOCKYARD_DESTROYED_BACKUP_DAYS have passed.
- cache/<name>/: the buildpack cache of the live app of that name moves to cache/<id>/; one of no
  live app is deleted (destroy deleted caches already; this is what a killed destroy left).
- certificate files named by app name are pruned by the router's next pass (it writes them by id)."""
from __future__ import annotations

import os
import shutil
import uuid
from datetime import datetime
from pathlib import Path

from controller.addons.backups import parse_backup
from controller.services import Services
from controller.settings import Settings
from controller.store import Store


def adopt_name_keyed(svc: Services) -> list[str]:
    """Move name-keyed backups and caches under app ids; returns what was done, one line each."""
    return _adopt_backups(svc.settings, svc.store) + _adopt_caches(svc.settings, svc.store)


def _known_ids(store: Store) -> set[str]:
    return {a.id for a in store.list_apps()} | {d["id"] for d in store.destroyed_apps()}


def _adopt_backups(settings: Settings, store: Store) -> list[str]:
    root, done = settings.home / "backups", []
    if not root.is_dir():
        return done
    apps, ids = {a.name: a for a in store.list_apps()}, _known_ids(store)
    for old in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in ids):
        app = apps.get(old.name)
        mine = [f for f in old.iterdir() if app is not None and _belongs(store, app, f)]
        orphans = [f for f in old.iterdir() if f not in mine]
        if mine:
            _move(mine, settings.backups_dir(app.id))
            done.append(f"backups/{old.name}: {len(mine)} file(s) moved to backups/{app.id} ({app.name})")
        if orphans:
            retired = str(uuid.uuid4())
            _move(orphans, settings.backups_dir(retired))
            store.retire_destroyed(retired, old.name, None)
            done.append(f"backups/{old.name}: {len(orphans)} file(s) of a destroyed app moved to backups/{retired} "
                        "(admins only)")
        old.rmdir()
    return done


def _belongs(store: Store, app, path: Path) -> bool:
    backup = parse_backup(path) if path.is_file() else None
    if backup is None:
        return False
    addon = store.find_addon(backup.addon)
    if addon is not None:
        return addon.app_id == app.id
    return datetime.fromisoformat(backup.created_at) >= datetime.fromisoformat(app.created_at).replace(microsecond=0)


def _move(files: list[Path], target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    for f in files:
        os.replace(f, target / f.name)


def _adopt_caches(settings: Settings, store: Store) -> list[str]:
    root, done = settings.home / "cache", []
    if not root.is_dir():
        return done
    apps, ids = {a.name: a for a in store.list_apps()}, _known_ids(store)
    for old in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in ids):
        app = apps.get(old.name)
        if app is not None and not settings.cache_dir(app.id).exists():
            os.replace(old, settings.cache_dir(app.id))
            done.append(f"cache/{old.name}: moved to cache/{app.id}")
        else:
            shutil.rmtree(old, ignore_errors=True)
            done.append(f"cache/{old.name}: removed (no app of that name owns it)")
    return done
