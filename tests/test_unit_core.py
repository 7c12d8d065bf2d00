"""Unit tests of pure logic: names, Procfile, Dockerfile inspection, deploy planning,
convergence diff, route computation, settings, token parsing. No sockets, no engine."""
from __future__ import annotations

import base64

import pytest

from builder.dockerfile import base_images, logical_lines
from controller.accounts.auth import token_from_header
from controller.runtime.rollout import default_quantities, plan
from core.errors import InvalidName
from core.models import Instance
from core.names import validate_app_name, validate_config_key, validate_process_type
from core.procfile import ProcfileError, parse_procfile
from controller.runtime.reconcile import diff
from controller.routing.table import compute_routes
from controller.settings import from_env


@pytest.mark.parametrize("name", ["abc", "my-app", "x" * 30, "app-2-b"])
def test_valid_app_names(name):
    assert validate_app_name(name) == name


@pytest.mark.parametrize("name", ["../x", "MyApp", "a" * 31, "", "a1", "ab-", "-ab", "a--b", "a b", "a\nb", "myapp\n", "app.x", None, 5])
def test_invalid_app_names_say_the_rule(name):
    with pytest.raises(InvalidName, match="lower-case letters, digits and dashes"):
        validate_app_name(name)


def test_invalid_name_message_is_printable_and_bounded():
    with pytest.raises(InvalidName) as e:
        validate_app_name("x\r\nSet-Cookie: a=b" + "y" * 500)
    assert "\n" not in e.value.message and "\r" not in e.value.message
    assert len(e.value.message) < 300


@pytest.mark.parametrize("bad", ["Web", "web.1", "", "a;b", "x" * 31])
def test_process_type_rule(bad):
    with pytest.raises(InvalidName, match="a-z, 0-9"):
        validate_process_type(bad)


@pytest.mark.parametrize("bad", ["1ABC", "A-B", "", "A B", "A=B"])
def test_config_key_rule(bad):
    with pytest.raises(InvalidName, match="DATABASE_URL"):
        validate_config_key(bad)


def test_procfile_parses_types_and_skips_comments():
    assert parse_procfile(b"# hi\n\nweb: gunicorn app:app --bind 0.0.0.0:$PORT\nworker:python w.py\n") == {
        "web": "gunicorn app:app --bind 0.0.0.0:$PORT", "worker": "python w.py"}


@pytest.mark.parametrize("data,match", [
    (b"\x00\x01\x02garbage", "binary"),
    (b"\xff\xfe\xfa", "not UTF-8"),
    (b"Web: x", "process type 'Web'"),
    (b"web x", "line 1 is not `type: command`"),
    (b"web:", "has no command"),
    (b"web: a\nweb: b", "declared twice"),
    (b"web: a\x1b[31m", "control characters"),
])
def test_procfile_errors_name_the_line(data, match):
    with pytest.raises(ProcfileError, match=match):
        parse_procfile(data)


def test_dockerfile_base_images_skip_scratch_stages_and_args():
    text = ("# comment\nARG BASE=x\nFROM --platform=linux/amd64 dockyard/stack:bookworm AS build\n"
            "RUN make \\\n  all\nFROM build\nFROM scratch\nFROM $BASE\nfrom Busybox:1 as b2\nFROM b2\n")
    assert base_images(text) == ["dockyard/stack:bookworm", "Busybox:1"]
    assert "RUN make  all" in logical_lines(text)


def test_default_quantities_web_first_and_worker_only_apps_run():
    assert default_quantities({"web": "", "worker": "x"}, {}) == {"web": 1, "worker": 0}
    assert default_quantities({"worker": "x", "clock": "y"}, {}) == {"worker": 1, "clock": 1}
    assert default_quantities({"web": "", "worker": "x"}, {"web": 3}) == {"worker": 0}


def test_plan_lists_each_instance():
    assert plan({"web": "", "worker": "x"}, {"web": 2, "worker": 1, "gone": 4}) == [
        ("web", 1), ("web", 2), ("worker", 1)]


def _inst(cid, proc="web", index=1, version=1, state="running", port=1000, app="a"):
    return Instance(container_id=cid, name=cid, app=app, version=version, process=proc, index=index,
                    state=state, exit_code=None, host_port=port if state == "running" else None, image="i")


def test_diff_starts_missing_and_retires_old_versions_and_extras():
    instances = [_inst("old", version=1), _inst("keep", version=2), _inst("extra", index=3, version=2),
                 _inst("dead", index=2, version=2, state="exited")]
    start, retire, have = diff([("web", 1), ("web", 2)], 2, instances)
    assert start == [("web", 2)]
    assert {i.container_id for i in retire} == {"old", "extra", "dead"}
    assert have[("web", 1)].container_id == "keep"


def test_diff_is_idempotent_when_converged():
    start, retire, _ = diff([("web", 1)], 3, [_inst("a", version=3)])
    assert start == [] and retire == []


def test_routes_only_healthy_running_web_instances():
    instances = [_inst("ok", port=4001), _inst("unhealthy", index=2, port=4002),
                 _inst("worker", proc="worker", port=None), _inst("stopped", index=3, state="exited"),
                 _inst("other", app="b", port=5001)]
    table = compute_routes(["a", "b", "c"], instances, {"ok", "worker", "stopped", "other"}, "example.test")
    by_app = {r.app: r for r in table}
    assert [u.port for u in by_app["a"].upstreams] == [4001]
    assert [u.port for u in by_app["b"].upstreams] == [5001]
    assert by_app["c"].upstreams == () and by_app["c"].hostnames == ("c.example.test",)


def test_settings_defaults_and_overrides(tmp_path):
    s = from_env({"DOCKYARD_HOME": str(tmp_path)})
    assert (s.api_port, s.router_port, s.domain, s.app_port) == (5000, 8080, "localhost", 5000)
    assert s.app_host("web") == "web.localhost"
    s2 = from_env({"DOCKYARD_HOME": str(tmp_path), "DOCKYARD_API_PORT": "6000", "DOCKYARD_DOMAIN": "Apps.Example.COM."})
    assert s2.api_url == "http://127.0.0.1:6000" and s2.domain == "apps.example.com"
    with pytest.raises(ValueError, match="DOCKYARD_ROUTER_PORT"):
        from_env({"DOCKYARD_HOME": str(tmp_path), "DOCKYARD_ROUTER_PORT": "eighty"})


def test_token_from_header_bearer_and_basic():
    assert token_from_header("Bearer abc") == "abc"
    assert token_from_header("Basic " + base64.b64encode(b"admin:tok").decode()) == "tok"
    assert token_from_header("Basic " + base64.b64encode(b"tok-only:").decode()) is None
    assert token_from_header("Basic !!!") is None
    assert token_from_header("") is None and token_from_header("Bearer ") is None


def test_images_to_keep_current_live_and_the_newest_succeeded():
    from controller.runtime.rollout import images_to_keep
    from core.models import Release

    def rel(v, status="succeeded", build="b"):
        return Release("a", v, build, {}, "", status, "", image=f"r:build-{v}" if build else None)
    releases = [rel(1), rel(2), rel(3, "failed"), rel(4, build=None), rel(5), rel(6)]
    assert images_to_keep(releases, 6, 6, 2, "r") == {"r:v5", "r:build-5", "r:v6", "r:build-6"}
    # a live release behind the current one (config --no-restart) is kept however old
    assert images_to_keep(releases, 6, 1, 1, "r") == {"r:v1", "r:build-1", "r:v6", "r:build-6"}


def test_supervisor_backoff_doubles_in_a_crash_loop_and_resets_after_a_stable_run():
    from controller.daemons.loops import MAX_BACKOFF, STABLE_AFTER, restart_delay
    delays, backoff = [], 1.0
    for _ in range(7):                       # crashes right after each start
        delay, backoff = restart_delay(0.5, backoff)
        delays.append(delay)
    assert delays == [1, 2, 4, 8, 16, 30, 30] and backoff == MAX_BACKOFF
    assert restart_delay(STABLE_AFTER + 1, backoff) == (1.0, 2.0)   # ran fine: starts over


def test_crash_lines_name_the_limit_and_loops_need_early_repeated_crashes():
    from controller.apps.crashes import describe, is_crash_loop
    from core.models import Crash
    oom = describe("web.1", "web", "shop", Crash("c1", 0.0, 137, True), 512, 2)
    assert "out of memory (limit 512 MB)" in oom and "`dockyard ps:limits web --memory 1024 -a shop`" in oom
    assert "2 restarts" in oom
    plain = describe("worker.2", "worker", "shop", Crash("c2", 0.0, 3, False), 512, 1)
    assert "exit code 3" in plain and "1 restart)" in plain
    assert is_crash_loop(3, "2026-11-30T23:00:00+00:00", 1796079630.0)     # 30 s after it passed its check
    assert not is_crash_loop(2, "2026-11-30T23:00:00+00:00", 1796079630.0)
    assert not is_crash_loop(3, "2026-11-30T23:00:00+00:00", 1796079690.0)  # 90 s: it ran a while first


def test_ps_detail_says_why_it_crashed():
    from controller.web.views import state_detail
    assert state_detail("crashed", True, 137, 4, 256) == "out of memory: limit 256 MB, 4 restarts"
    assert state_detail("up", False, 3, 1, 256) == "last exit 3, 1 restart"
    assert state_detail("up", False, None, 0, 256) == ""


def test_ps_says_stopping_for_an_instance_that_drains_not_starting():
    from core.models import Instance
    from controller.web.views import instance_state
    inst = Instance("c1", "a.web.1", "a", 1, "web", 1, "running", None, 5000, "img")
    assert instance_state(inst, healthy=set(), stopping=True) == "stopping"
    assert instance_state(inst, healthy=set()) == "starting"
    assert instance_state(inst, healthy={"c1"}) == "up"


def test_engine_events_become_crashes_with_the_oom_flag():
    from controller.scheduler.docker_parse import parse_crashes
    actor = lambda cid, code=None: {"ID": cid, "Attributes": {"exitCode": code} if code else {}}  # noqa: E731
    events = [{"Action": "oom", "id": "a", "Actor": actor("a"), "timeNano": 1_000_000_000},
              {"Action": "die", "id": "a", "Actor": actor("a", "137"), "timeNano": 2_000_000_000},
              {"Action": "die", "id": "b", "Actor": actor("b", "3"), "timeNano": 3_000_000_000}]
    crashes = parse_crashes(events)
    assert [(c.container_id, c.exit_code, c.oom_killed, c.at) for c in crashes] == [
        ("a", 137, True, 2.0), ("b", 3, False, 3.0)]


def test_sweep_finds_only_this_apps_build_copies(tmp_path):
    from controller.runtime.sweep import stale_build_dirs
    for name in ("dockyard-build.dy.shop.ab12cd34", "dockyard-build.dy.shop-x.ab12cd34", "dockyard-build.dy.shopx.ab12cd34",
                 "dockyard-build.dy2.shop.ab12cd34"):      # the last: another platform instance's build
        (tmp_path / name).mkdir()
    assert [p.name for p in stale_build_dirs(tmp_path, "dy", "shop")] == ["dockyard-build.dy.shop.ab12cd34"]


def test_leftover_containers_are_builds_and_release_phases_never_instances():
    from controller.scheduler.docker_parse import is_leftover
    assert is_leftover({"dockyard.build": "b1", "dockyard.app": "a"})                       # a build container
    assert is_leftover({"dockyard.oneoff": "release", "dockyard.build": "b1"})              # the release phase
    assert not is_leftover({"dockyard.build": "b1", "dockyard.process": "web"})             # an instance (image label)
    assert not is_leftover({"dockyard.build": "b1", "dockyard.oneoff": "run"})              # dockyard run


def test_an_oom_report_after_its_exit_or_before_the_window_still_marks_it():
    from controller.scheduler.docker_parse import parse_crashes
    actor = lambda cid, code=None: {"ID": cid, "Attributes": {"exitCode": code} if code else {}}  # noqa: E731
    s = 1_000_000_000
    events = [{"Action": "oom", "id": "b", "Actor": actor("b"), "timeNano": 9 * s},        # before the window
              {"Action": "die", "id": "a", "Actor": actor("a", "137"), "timeNano": 10 * s},
              {"Action": "die", "id": "b", "Actor": actor("b", "137"), "timeNano": 10 * s},
              {"Action": "oom", "id": "a", "Actor": actor("a"), "timeNano": 10 * s + s // 10},  # after its exit
              {"Action": "die", "id": "a", "Actor": actor("a", "137"), "timeNano": 13 * s},    # restarted, killed
              {"Action": "die", "id": "c", "Actor": actor("c", "1"), "timeNano": 5 * s}]       # before the window
    crashes = parse_crashes(events, since=9.5)
    assert [(c.container_id, c.at, c.oom_killed) for c in crashes] == [("a", 10.0, True), ("b", 10.0, True),
                                                                      ("a", 13.0, False)]


def test_the_loops_modules_are_imported_one_by_one_before_any_loop_thread_runs(tmp_path, monkeypatch):
    import threading

    from controller.daemons import loops

    seen: list[str] = []

    def resolve(target: str):
        seen.append(threading.current_thread().name)
        return lambda settings, stop: stop.wait(5)

    monkeypatch.setattr(loops, "resolve", resolve)
    settings = type("S", (), {"stable_after": 30.0})()
    group = loops.LoopSet({"a": "x:a", "b": "x:b", "c": "x:c"}, settings, tmp_path / "loops.json")
    group.start()
    group.stop.set()
    assert group.join(5) == []
    # threads importing at once can deadlock in the import system: the main thread imports first
    assert seen[:3] == ["MainThread"] * 3 and len(seen) == 6, seen
