"""The deploy logic without Docker: rollout, health gating, the release phase, --no-restart,
reconcile, crash-loop rollback and lock handling, on the in-memory scheduler (its web instances
answer real HTTP on loopback, so the platform's own health checks run unchanged) and a real
SQLite store. Seconds, not minutes: the e2e suite still covers the same paths on the engine."""
from __future__ import annotations

import threading
import time

import pytest

from core.errors import DeployFailed, Locked

from controller.apps import crashes, releases
from controller.runtime import reconcile
from controller.runtime.health import InstanceCrashed, NeverListened
from controller.runtime.locks import app_lock, formation_lock
from controller.scheduler.memory import Behaviour, MemoryScheduler
from controller.services import Services
from controller.settings import from_env

PROCS = {"web": "serve"}


class RecordingRouter:
    """Stands in for nginx: keeps every route table the platform applied."""

    def __init__(self):
        self.tables = []

    def ensure_layout(self) -> None:
        pass

    def apply_fresh(self, load) -> bool:
        self.tables.append(tuple(load()))
        return True

    apply_current = apply_fresh

    def apply_patch(self, app: str, route, load) -> bool:
        """As nginx's: the app's route alone, in place of its route in the last table."""
        last = self.tables[-1] if self.tables else ()
        fresh = route() if any(r.app == app for r in last) else None
        self.tables.append(tuple(fresh if r.app == app else r for r in last) if fresh else tuple(load()))
        return True

    def upstream_ports(self, app: str) -> set[int]:
        for route in self.tables[-1]:
            if route.app == app:
                return {u.port for u in route.upstreams}
        return set()


@pytest.fixture
def svc(tmp_path):
    settings = from_env({"DOCKYARD_HOME": str(tmp_path / "home"), "DOCKYARD_NAME": "memtest",
                         "DOCKYARD_HEALTH_TIMEOUT": "1", "DOCKYARD_STOP_GRACE": "0", "DOCKYARD_DOMAIN": "test.localhost"})
    settings.ensure_dirs()
    sched = MemoryScheduler()
    services = Services(settings, scheduler=sched, router=RecordingRouter())
    services.store.migrate()
    services.store.create_user("alice", is_admin=True)
    yield services
    sched.close()


def new_app(svc, name="shop"):
    return releases.create_app(svc, name, svc.store.get_user("alice"))


def deploy(svc, app, tag: str, procs=PROCS):
    image = f"src/{app.name}:{tag}"
    svc.scheduler.add_image(image, app=app.name)
    out: list[str] = []
    build, release = releases.deploy_image(svc, svc.store.get_app(app.name), image, procs, "alice", out.append)
    return release, out


def running(svc, app_name: str) -> list[tuple[str, int]]:
    return sorted((i.label, i.version) for i in svc.scheduler.instances(app_name) if i.state == "running")


def settled() -> None:
    """Background retires (stop, keep logs, remove, then image cleanup under the app's lock) done."""
    for thread in threading.enumerate():
        if thread.name.startswith("retire-"):
            thread.join(30)


def wait_for(check, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def test_deploy_starts_checks_routes_and_makes_durable(svc):
    app = new_app(svc)
    release, out = deploy(svc, app, "a")
    [inst] = svc.scheduler.instances("shop")
    assert (inst.label, inst.version, inst.state) == ("web.1", release.version, "running")
    assert svc.scheduler.is_durable(inst.container_id)        # only after its check passed
    assert inst.container_id in svc.store.healthy_ids()
    assert svc.router.upstream_ports("shop") == {inst.host_port}
    assert svc.store.get_app("shop").live_version == release.version
    assert any("is live at http://shop.test.localhost" in line for line in out)


def test_redeploy_switches_routes_before_old_instances_stop(svc):
    app = new_app(svc)
    v1, _ = deploy(svc, app, "a")
    v2, _ = deploy(svc, app, "b")
    # the old one is retired in the background: stopped, its logs kept, then removed
    assert wait_for(lambda: [(i.label, i.version) for i in svc.scheduler.instances("shop")] == [("web.1", v2.version)])
    calls = svc.scheduler.calls
    assert calls.index(("start", "shop", "web.1", f"v{v2.version}")) < calls.index(("stop", "shop", "web.1", f"v{v1.version}"))
    [new] = svc.scheduler.instances("shop")
    assert svc.router.upstream_ports("shop") == {new.host_port}


def test_a_release_that_never_answers_fails_and_the_previous_keeps_serving(svc):
    app = new_app(svc)
    v1, _ = deploy(svc, app, "a")
    [old] = svc.scheduler.instances("shop")
    svc.scheduler.behave("shop", v1.version + 1, "web", Behaviour(answers=False))
    with pytest.raises(NeverListened):
        deploy(svc, app, "b")
    assert running(svc, "shop") == [("web.1", v1.version)]
    assert svc.router.upstream_ports("shop") == {old.host_port}
    fresh = svc.store.get_app("shop")
    assert fresh.live_version == v1.version
    assert svc.store.get_release(fresh, v1.version + 1).status == "failed"


def test_an_instance_that_exits_during_its_check_fails_the_deploy_with_its_output(svc):
    app = new_app(svc)
    v1, _ = deploy(svc, app, "a")
    svc.scheduler.behave("shop", v1.version + 1, "web", Behaviour(exit_code=3, output=("boom: no DATABASE_URL",)))
    out: list[str] = []
    svc.scheduler.add_image("src/shop:b", app="shop")
    with pytest.raises(InstanceCrashed):
        releases.deploy_image(svc, svc.store.get_app("shop"), "src/shop:b", PROCS, "alice", out.append)
    assert any("boom: no DATABASE_URL" in line for line in out)       # the crash's last output is shown
    assert any("rolled back automatically" in line for line in out)
    assert running(svc, "shop") == [("web.1", v1.version)]


def test_a_failing_release_phase_starts_nothing(svc):
    app = new_app(svc)
    v1, _ = deploy(svc, app, "a")
    svc.scheduler.behave("shop", v1.version + 1, "release", Behaviour(release_phase_exit=1))
    with pytest.raises(DeployFailed, match="exited with code 1"):
        deploy(svc, app, "b", {"web": "serve", "release": "migrate"})
    assert not [c for c in svc.scheduler.calls if c[0] == "start" and c[3] == f"v{v1.version + 1}"]
    assert running(svc, "shop") == [("web.1", v1.version)]


def test_config_without_restart_makes_the_release_current_but_not_live(svc):
    app = new_app(svc)
    v1, _ = deploy(svc, app, "a")
    releases.set_config(svc, svc.store.get_app("shop"), {"COLOR": "blue"}, "alice", restart=False, out=lambda _: None)
    fresh = svc.store.get_app("shop")
    assert fresh.current_version == v1.version + 1 and fresh.live_version == v1.version
    assert running(svc, "shop") == [("web.1", v1.version)]
    releases.restart(svc, fresh, None, lambda _: None)          # ps:restart applies it
    assert wait_for(lambda: running(svc, "shop") == [("web.1", v1.version + 1)])


def test_scale_starts_and_stops_instances(svc):
    app = new_app(svc)
    deploy(svc, app, "a")
    releases.scale(svc, svc.store.get_app("shop"), [{"type": "web", "quantity": 3}], "alice", lambda _: None, 50)
    assert wait_for(lambda: [label for label, _ in running(svc, "shop")] == ["web.1", "web.2", "web.3"])
    assert len(svc.router.upstream_ports("shop")) == 3
    releases.scale(svc, svc.store.get_app("shop"), [{"type": "web", "quantity": 1}], "alice", lambda _: None, 50)
    assert wait_for(lambda: [label for label, _ in running(svc, "shop")] == ["web.1"])


def test_reconcile_replaces_a_vanished_instance_and_a_second_pass_changes_nothing(svc):
    app = new_app(svc)
    v1, _ = deploy(svc, app, "a")
    [inst] = svc.scheduler.instances("shop")
    svc.scheduler.vanish(inst.container_id)
    reconcile.reconcile_all(svc)
    assert running(svc, "shop") == [("web.1", v1.version)]
    starts = len([c for c in svc.scheduler.calls if c[0] == "start"])
    reconcile.reconcile_all(svc)
    assert len([c for c in svc.scheduler.calls if c[0] == "start"]) == starts
    [new] = svc.scheduler.instances("shop")
    assert svc.router.upstream_ports("shop") == {new.host_port}


def test_reconcile_leaves_an_app_alone_while_its_formation_lock_is_held(svc):
    app = new_app(svc)
    v1, _ = deploy(svc, app, "a")
    [inst] = svc.scheduler.instances("shop")
    svc.scheduler.vanish(inst.container_id)
    with formation_lock(svc.settings, "shop", "a rollout in the test"):
        reconcile.reconcile_all(svc)
        assert svc.scheduler.instances("shop") == []             # the rollout owns the containers
    reconcile.reconcile_all(svc)
    assert running(svc, "shop") == [("web.1", v1.version)]


def test_a_repair_does_not_wait_behind_a_build_holding_the_app_lock(svc):
    app = new_app(svc)
    v1, _ = deploy(svc, app, "a")
    [inst] = svc.scheduler.instances("shop")
    svc.scheduler.vanish(inst.container_id)
    with app_lock(svc.settings, "shop", "a push building the next release"):
        reconcile.reconcile_all(svc)
        assert running(svc, "shop") == [("web.1", v1.version)]


def test_a_crash_loop_of_the_live_release_rolls_back_to_the_previous_build(svc, monkeypatch):
    monkeypatch.setattr(crashes, "REPORT_DELAY", 0.0)   # the crashes below are now, not a moment ago
    app = new_app(svc)
    v1, _ = deploy(svc, app, "a")
    v2, _ = deploy(svc, app, "b")
    settled()     # the old release's retire holds the app's lock for its image cleanup a moment
    [inst] = svc.scheduler.instances("shop")
    watch = crashes.CrashWatch(since=time.time() - 1)
    for _ in range(crashes.LOOP_CRASHES):
        svc.scheduler.crash(inst.container_id, exit_code=2)
    watch.poll(svc)
    fresh = svc.store.get_app("shop")
    assert svc.store.get_release(fresh, v2.version).status == "failed"
    assert fresh.live_version == v2.version + 1
    rollback = svc.store.get_release(fresh, v2.version + 1)
    assert rollback.build_id == v1.build_id and "crash-looped" in rollback.description
    assert wait_for(lambda: running(svc, "shop") == [("web.1", v2.version + 1)])


def test_an_automatic_rollback_is_skipped_while_a_change_holds_the_app_lock(svc):
    app = new_app(svc)
    deploy(svc, app, "a")
    v2, _ = deploy(svc, app, "b")
    settled()
    with app_lock(svc.settings, "shop", "a deploy in the test"):
        assert releases.roll_back_crash_loop(svc, svc.store.get_app("shop"), v2.version, "test", lambda _: None) is None
    assert svc.store.get_app("shop").live_version == v2.version


def test_a_second_change_waits_for_the_app_lock_and_says_so(svc):
    new_app(svc)
    with app_lock(svc.settings, "shop", "a push"):
        with pytest.raises(Locked):
            with app_lock(svc.settings, "shop", "rollback", wait=0):
                pass



def test_converge_in_the_foreground_stops_what_the_formation_no_longer_wants(svc):
    app = new_app(svc)
    v1, _ = deploy(svc, app, "a")
    releases.scale(svc, svc.store.get_app("shop"), [{"type": "web", "quantity": 2}], "alice", lambda _: None, 50)
    svc.store.set_formation(svc.store.get_app("shop"), {"web": 1})
    with formation_lock(svc.settings, "shop", "the test's converge"):
        result = reconcile.converge(svc, svc.store.get_app("shop"), out=lambda _: None, background=False)
    assert result == {"started": 0, "stopped": 1}
    assert running(svc, "shop") == [("web.1", v1.version)]          # stopped before converge returned
