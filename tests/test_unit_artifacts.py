"""Artifacts keyed by app id (controller/admin/artifacts.py, controller/addons/backups.py) on a real
store and a temp DOCKYARD_HOME: name-keyed backups and caches of older versions are adopted
only by the app they belong to, a destroyed app's backups are its owner's and admins' only,
and they go once DOCKYARD_DESTROYED_BACKUP_DAYS have passed."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from controller.addons import backups as addon_backups
from controller.admin.artifacts import adopt_name_keyed
from controller.services import Services
from controller.settings import from_env
from core.errors import NotFound


@pytest.fixture()
def svc(tmp_path):
    s = Services(from_env({"DOCKYARD_HOME": str(tmp_path / "home"), "DOCKYARD_DESTROYED_BACKUP_DAYS": "30"}))
    s.settings.ensure_dirs()
    s.store.migrate()
    return s


def dump(directory, addon: str, when: datetime, kind: str = "final") -> str:
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{addon}-{when.strftime('%Y%m%dT%H%M%S')}000Z-{kind}.dump"
    (directory / name).write_bytes(b"PGDMP data")
    return name


def test_old_name_keyed_backups_go_only_to_the_app_they_belong_to(svc):
    home, store = svc.settings.home, svc.store
    alice, bob = store.create_user("alice"), store.create_user("bob")
    long_ago = datetime.now(timezone.utc) - timedelta(days=3)
    theirs = dump(home / "backups" / "shop", "postgres-old-1234", long_ago)   # the destroyed shop's
    shop = store.create_app("shop", bob.id)                                      # the name, taken again
    mine = dump(home / "backups" / "shop", "postgres-new-5678", datetime.now(timezone.utc) + timedelta(seconds=2))
    other = store.create_app("blog", alice.id)
    kept = dump(home / "backups" / "blog", "postgres-blog-1111", long_ago - timedelta(days=1))
    store.create_addon(other, "postgres-blog-1111", "postgres", 256, {})      # blog's own add-on: its backup
    (home / "cache" / "shop").mkdir(parents=True)
    (home / "cache" / "gone").mkdir(parents=True)
    lines = adopt_name_keyed(svc)
    assert [b.name for b in addon_backups.list_backups(svc, shop)] == [mine]
    assert [b.name for b in addon_backups.list_backups(svc, other)] == [kept]
    assert not (home / "backups" / "shop").exists() and not (home / "backups" / "blog").exists()
    admin = store.create_user("root", is_admin=True)
    orphaned = addon_backups.destroyed(svc, admin)
    assert [(d["app"], [b.name for b in d["backups"]]) for d in orphaned] == [("shop", [theirs])]
    assert addon_backups.destroyed(svc, bob) == [] and addon_backups.destroyed(svc, alice) == []
    assert (home / "cache" / shop.id).is_dir() and not (home / "cache" / "gone").exists()
    assert len(lines) == 5 and adopt_name_keyed(svc) == []     # once only


def test_a_destroyed_apps_backups_are_its_owners_until_they_expire(svc):
    store = svc.store
    alice, bob = store.create_user("alice"), store.create_user("bob")
    admin = store.create_user("root", is_admin=True)
    shop = store.create_app("shop", alice.id)
    name = dump(svc.settings.backups_dir(shop.id), "postgres-shop-4242", datetime.now(timezone.utc))
    store.delete_app(shop, keep_backups=True)
    again = store.create_app("shop", bob.id)
    assert addon_backups.list_backups(svc, again) == []
    assert addon_backups.destroyed_backup(svc, alice, shop.id, name).name == name
    assert addon_backups.destroyed_backup(svc, admin, shop.id, name).name == name
    with pytest.raises(NotFound):
        addon_backups.destroyed_backup(svc, bob, shop.id, name)
    assert addon_backups.prune_destroyed(svc, datetime.now(timezone.utc) + timedelta(days=29)) == []
    assert addon_backups.prune_destroyed(svc, datetime.now(timezone.utc) + timedelta(days=31)) == ["shop"]
    assert not svc.settings.backups_dir(shop.id).exists() and addon_backups.destroyed(svc, admin) == []
