"""Add-ons, the pure parts and the store: kinds, vars and URLs, the backup schedule, backup
file names, attachments in the store."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from controller.addons import kinds
from controller.addons.backups import _parse, due
from controller.store import Store
from core.errors import BadRequest, Conflict


def test_kinds_vars_and_urls():
    assert kinds.kind_of("postgres") is kinds.POSTGRES and kinds.kind_of("heroku-postgresql") is kinds.POSTGRES
    assert kinds.kind_of("redis").var == "REDIS_URL"
    with pytest.raises(BadRequest, match="use postgres or redis"):
        kinds.kind_of("mysql")
    assert kinds.var_for(kinds.POSTGRES, None) == "DATABASE_URL"
    assert kinds.var_for(kinds.POSTGRES, "analytics") == "ANALYTICS_URL"
    assert kinds.var_for(kinds.REDIS, "CACHE_URL") == "CACHE_URL"
    for bad in ("1x", "a-b", "x; rm", "a" * 60):
        with pytest.raises(BadRequest, match="--as"):
            kinds.var_for(kinds.POSTGRES, bad)
    assert kinds.POSTGRES.url("pg-x-1234", "u1", "pw", "d1") == "postgres://u1:pw@pg-x-1234:5432/d1"
    assert len(kinds.new_password()) == 40 and kinds.new_password() != kinds.new_password()
    assert kinds.new_name(kinds.REDIS).startswith("redis-")


def test_sql_quotes_its_values():
    first, _ = kinds.pg_create_owner("u1", "p'w", "d1")
    assert "PASSWORD 'p''w'" in first and 'CREATE DATABASE "d1" OWNER "u1"' in first
    assert "REVOKE ALL ON DATABASE" in first
    assert 'IN ROLE "owner"' in kinds.pg_create_member("a1", "pw", "owner")
    assert 'DROP ROLE "a1"' in kinds.pg_drop_member("a1", "owner")


def test_daily_schedule_is_due_once_a_day_after_its_time():
    now = datetime(2026, 12, 1, 3, 0, tzinfo=timezone.utc)
    assert not due(None, now, None)
    assert due("02:00", now, None)
    assert not due("04:00", now, None)
    assert not due("02:00", now, "2026-12-01T02:00:05+00:00")
    assert due("02:00", now, "2026-11-30T02:00:05+00:00")


def test_backup_names_parse_and_others_are_ignored(tmp_path: Path):
    good = tmp_path / "postgres-calm-1234-20261201T010203456Z-manual.dump"
    good.write_bytes(b"PGDMP")
    b = _parse(good)
    assert b.addon == "postgres-calm-1234" and b.kind == "manual" and b.size == 5 and b.service == "postgres"
    assert b.created_at == "2026-12-01T01:02:03+00:00"
    for name in (".postgres-calm-1234-20261201T010203456Z-manual.dump.x.tmp", "notes.txt",
                 "redis-calm-1234-20261201T010203456Z-weekly.rdb"):
        (tmp_path / name).write_text("x")
        assert _parse(tmp_path / name) is None


def test_store_attachments(tmp_path: Path):
    store = Store(tmp_path / "db")
    store.migrate()
    a = store.create_app("alpha", None)
    b = store.create_app("beta", None)
    addon = store.create_addon(a, "postgres-calm-1234", "postgres", 256, {"database": "d1"})
    store.attach(addon, a, "DATABASE_URL", "u1", "secret1", owner=True)
    with pytest.raises(Conflict):
        store.attach(addon, a, "OTHER_URL", "u2", "secret2")
    store.attach(addon, b, "SHARED_URL", "a1", "secret3")
    assert [t.app for t in store.attachments(addon=addon)] == ["alpha", "beta"]
    assert [x.name for x in store.list_addons(b)] == ["postgres-calm-1234"]
    assert store.owned_addons(b) == []
    store.detach(addon, b)
    assert store.list_addons(b) == []
    assert store.get_addon("postgres-calm-1234").credentials == {"database": "d1"}


def test_an_addon_restarted_moments_ago_is_not_yet_available():
    from controller.addons.ops import SETTLE, just_restarted
    from core.models import ServiceStatus
    started = "2026-12-01T04:17:45.956123456Z"
    at = datetime(2026, 12, 1, 4, 17, 45, 956123, tzinfo=timezone.utc).timestamp()
    looping = ServiceStatus(state="running", restart_count=5, started_at=started)
    assert just_restarted(looping, at + 0.01)                    # between two exits of a crash loop
    assert not just_restarted(looping, at + SETTLE + 1)          # up long enough: available again
    assert not just_restarted(ServiceStatus(state="running", restart_count=0, started_at=started), at + 0.01)
    assert not just_restarted(ServiceStatus(state="running", restart_count=2, started_at="bogus"), at)
