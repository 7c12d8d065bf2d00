"""The state store on a temp SQLite file: migrations, CAS versioning, immutable releases."""
from __future__ import annotations

import threading

import pytest

from core.errors import Conflict, NotFound
from controller.store import MIGRATIONS, Store


@pytest.fixture()
def store(tmp_path):
    s = Store(tmp_path / "db.sqlite")
    assert s.migrate() == len(MIGRATIONS)
    return s


def test_migrate_is_repeatable_and_uses_wal(store):
    assert store.migrate() == len(MIGRATIONS)
    with store.read() as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_tokens_are_stored_hashed(store):
    user = store.create_user("admin", is_admin=True)
    store.add_token(user.id, "dy_secret")
    assert store.user_for_token("dy_secret").name == "admin"
    assert store.user_for_token("other") is None
    with store.read() as db:
        assert "dy_secret" not in str([tuple(r) for r in db.execute("SELECT * FROM tokens")])


def test_duplicate_app_conflicts_with_a_hint(store):
    store.create_app("myapp", None)
    with pytest.raises(Conflict, match="already exists: pick another name"):
        store.create_app("myapp", None)
    with pytest.raises(NotFound, match="apps:create nope"):
        store.get_app("nope")


def test_release_versions_are_sequential_under_concurrency(store):
    app = store.create_app("myapp", None)
    errors = []

    def make():
        try:
            store.create_release(app, None, {"A": "1"}, "config", "admin", status="succeeded")
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=make) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert [r.version for r in store.list_releases(app)] == list(range(1, 21))
    assert store.find_app("myapp").current_version == 20


def test_pending_release_becomes_current_only_when_it_succeeds(store):
    app = store.create_app("myapp", None)
    build = store.create_build(app, "abc", "dockerfile", "img:1")
    store.finish_build(build.id, "succeeded", "log", None, {"web": ""}, "dockerfile")
    r1 = store.create_release(app, build.id, {}, "Deploy abc", "admin")
    assert store.current_release(app) is None
    store.finish_release(r1, "succeeded")
    assert store.current_release(app).version == 1
    r2 = store.create_release(app, build.id, {"X": "y"}, "Set X", "admin")
    store.finish_release(r2, "failed")
    assert store.current_release(app).version == 1
    with pytest.raises(Conflict):
        store.finish_release(r2, "succeeded")     # a finished release never changes again
    assert store.get_release(app, 2).status == "failed"
    assert store.get_release(app, 1).process_types == {"web": ""}


def test_current_pointer_never_moves_backwards(store):
    app = store.create_app("myapp", None)
    store.create_release(app, None, {}, "one", None, status="succeeded")
    r2 = store.create_release(app, None, {}, "two", None)
    store.create_release(app, None, {}, "three", None, status="succeeded")
    with pytest.raises(Conflict, match="newer than v2"):
        store.finish_release(r2, "succeeded")


def test_events_are_bounded_per_app(store, monkeypatch):
    import controller.store.events as mod
    monkeypatch.setattr(mod, "EVENTS_KEPT_PER_APP", 10)
    app = store.create_app("myapp", None)
    store.add_events(app, [(f"2026-01-01T00:00:{i:02d}", "app", "web.1", f"line {i}") for i in range(30)])
    store.add_event(app, "dockyard", "api", "last")
    rows = store.events(app, limit=100)
    assert len(rows) == 10 and rows[-1]["message"] == "last"


def test_deleting_an_app_removes_its_rows(store):
    app = store.create_app("myapp", None)
    store.create_release(app, None, {}, "x", None, status="succeeded")
    store.add_event(app, "dockyard", "api", "x")
    store.delete_app(app)
    with store.read() as db:
        assert db.execute("SELECT COUNT(*) FROM releases").fetchone()[0] == 0
        assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 0


def test_no_restart_release_is_current_but_not_live(store):
    app = store.create_app("myapp", None)
    build = store.create_build(app, "c" * 40, "dockerfile", "img")
    store.finish_build(build.id, "succeeded", "", None, {"web": ""})
    v1 = store.create_release(app, build.id, {"A": "1"}, "Deploy", "admin")
    store.finish_release(v1, "succeeded")
    assert store.live_release(app).version == 1
    v2 = store.create_release(app, build.id, {"A": "2"}, "Set A", "admin", status="succeeded", live=False)
    assert store.current_release(app).version == v2.version == 2
    assert store.live_release(app).version == 1          # processes keep running v1
    store.set_live(app, 2)
    assert store.live_release(app).config == {"A": "2"}
    v3 = store.create_release(app, build.id, {"A": "3"}, "Deploy", "admin")
    assert store.live_release(app).version == 2           # pending releases are never live
    store.finish_release(v3, "succeeded")
    assert store.live_release(app).version == 3


def test_stopped_types_keep_their_quantity(store):
    app = store.create_app("myapp", None)
    store.set_formation(app, {"web": 3, "worker": 1})
    store.set_stopped(app, ["web"], True)
    assert store.formation(app) == {"web": 3, "worker": 1}
    assert store.desired_formation(app) == {"web": 0, "worker": 1}
    store.set_stopped(app, ["web"], False)
    assert store.desired_formation(app) == {"web": 3, "worker": 1}


def test_limits_and_checks_per_type(store):
    app = store.create_app("myapp", None)
    store.set_limits(app, "web", 256, 0.5)
    store.set_limits(app, "worker", None, 2.0)
    assert store.limits(app) == {"web": {"memory_mb": 256, "cpus": 0.5}, "worker": {"memory_mb": None, "cpus": 2.0}}
    store.set_limits(app, "web", None, None)
    assert "web" not in store.limits(app)
    store.set_checks(app, "web", [{"path": "/health"}])
    assert store.checks(app) == {"web": [{"path": "/health"}]}
    store.set_checks(app, "web", None)
    assert store.checks(app) == {}


def test_background_image_cleanup_waits_for_no_deploy(tmp_path, monkeypatch):
    """A push builds under the app's lock and its new image has no release tag yet: the
    cleanup that follows a background retire must not run then (it skips; the deploy's own
    cleanup runs at its end), and runs when the lock is free."""
    from controller.runtime import rollout as deploy
    from controller.runtime.locks import app_lock
    from core.models import App
    from controller.services import Services
    from controller.settings import Settings
    svc = Services(Settings(home=tmp_path))
    calls = []
    monkeypatch.setattr(deploy, "collect_images", lambda s, app: calls.append(app.name))
    app = App(id="a1", name="shop", owner_id=1, created_at="", current_version=0, last_version=0)
    with app_lock(svc.settings, "shop", "deploy"):
        deploy.collect_images_when_idle(svc, app)
    assert calls == []
    deploy.collect_images_when_idle(svc, app)
    assert calls == ["shop"]
