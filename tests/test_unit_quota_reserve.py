"""Quotas are counted and reserved in one store transaction (controller/store): many threads
creating apps or scaling one owner's apps at once on a real SQLite file never take more than
the quota, and a refused change writes nothing."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from controller.store import Store
from core.errors import QuotaExceeded


@pytest.fixture()
def store(tmp_path):
    s = Store(tmp_path / "db.sqlite")
    s.migrate()
    return s


def test_concurrent_creates_never_pass_the_app_quota(store):
    owner = store.create_user("erin")

    def create(i: int) -> bool:
        try:
            store.create_app(f"race-{i}", owner.id, max_owned=5)
            return True
        except QuotaExceeded:
            return False
    with ThreadPoolExecutor(16) as pool:
        made = list(pool.map(create, range(32)))
    assert made.count(True) == 5 and len(store.apps_owned_by(owner)) == 5


def test_concurrent_reservations_never_pass_the_memory_quota(store):
    owner = store.create_user("frank")
    apps = [store.create_app(f"mem-{i}", owner.id) for i in range(12)]

    def judge(used: dict) -> None:
        if used["memory_mb"] > 1024:
            raise QuotaExceeded("over")

    def deploy(app) -> bool:
        try:
            store.reserve(app, 512, judge, {"web": 1}, {}, only_missing=True)
            return True
        except QuotaExceeded:
            return False
    with ThreadPoolExecutor(12) as pool:
        done = list(pool.map(deploy, apps))
    assert done.count(True) == 2
    assert store.usage(owner.id, 512) == {"apps": 12, "instances": 2, "memory_mb": 1024}
    refused = apps[done.index(False)]
    assert store.formation(refused) == {}                       # a refusal writes nothing


def test_usage_counts_limits_stopped_types_and_the_change(store):
    owner = store.create_user("gina")
    a, b = store.create_app("a", owner.id), store.create_app("b", owner.id)
    store.reserve(a, 512, None, {"web": 2, "worker": 1}, {"worker": (256, None)})
    store.set_stopped(a, ["worker"], True)
    store.reserve(b, 512, None, {"web": 1}, {})
    assert store.usage(owner.id, 512) == {"apps": 2, "instances": 3, "memory_mb": 1536}
    # scaling a stopped type counts it again; a limit change counts its new size
    assert store.usage(owner.id, 512, (a.id, {"worker": 2}, {"web": 128})) == {
        "apps": 2, "instances": 5, "memory_mb": 2 * 128 + 2 * 256 + 512}
    store.reserve(a, 512, None, {}, {"worker": (None, None)})  # (None, None) resets to the default
    assert store.limits(a) == {}
