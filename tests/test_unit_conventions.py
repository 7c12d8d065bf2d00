"""Pure logic of the Heroku/Dokku conventions: app.json's formation, scripts, env and cron;
Dokku's CHECKS file; the EXPOSEd port; cron slots (fired once per slot, by a store CAS, even
from two reconcilers at once); the no-release page."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest

from builder.manifest import exposed_port, read_manifest
from controller.runtime import cron
from controller.apps.manifest import apply_env
from controller.store import Store
from core.appjson import AppJsonError, missing_env, parse_checks_file, parse_manifest, slot_due
from core.checkspec import CheckSpecError, effective
from core.models import Instance
from router.render import render_routes
from router.table import Route

UTC = timezone.utc


def test_manifest_parses_formation_scripts_env_and_cron():
    manifest, notes = parse_manifest(b"""{
        "formation": {"web": {"quantity": 2, "size": "Standard-2X"}, "worker": {"size": "huge"}},
        "scripts": {"predeploy": "migrate", "postdeploy": "seed"},
        "env": {"A": {"generator": "secret"}, "B": "default", "C": {"required": false}, "D": {}},
        "cron": [{"command": "report", "schedule": "0 5 * * *"}]}""")
    assert manifest["formation"] == {"web": {"quantity": 2, "memory_mb": 1024}, "worker": {}}
    assert "formation.worker.size 'huge'" in notes[0]
    assert manifest["scripts"] == {"predeploy": "migrate", "postdeploy": "seed"}
    assert missing_env(manifest["env"], {}) == ["D"] and missing_env(manifest["env"], {"D": "x"}) == []
    assert manifest["cron"][0]["schedule"] == "0 5 * * *" and len(manifest["cron"][0]["key"]) == 16
    assert parse_manifest(b"{}") == ({}, [])


@pytest.mark.parametrize("doc, named", [
    (b'{"cron": [{"command": "a", "schedule": "* * * * *"}, {"command": "b", "schedule": "61 * * * *"}]}',
     "cron[1].schedule '61 * * * *'"),
    (b'{"cron": [{"command": "a", "schedule": "* * * * * *"}]}', "cron[0].schedule"),
    (b'{"cron": [{"schedule": "* * * * *"}]}', "cron[0].command"),
    (b'{"formation": {"web": {"quantity": -1}}}', "formation.web.quantity"),
    (b'{"env": {"A": {"generator": "uuid"}}}', "env.A.generator"),
    (b'{"scripts": {"postdeploy": "a\\nb"}}', "scripts.postdeploy"),
])
def test_bad_manifest_entries_are_named(doc, named):
    with pytest.raises(AppJsonError) as e:
        parse_manifest(doc)
    assert named in e.value.message


def test_checks_file_in_dokkus_format():
    checks = parse_checks_file("WAIT=2  # comment\nTIMEOUT=7\nATTEMPTS=4\n\n# a comment\n/health ok fine\n"
                               "//example.com/ready\nhttp://example.com/\n", 5000)["web"]
    assert [(c["path"], c.get("content")) for c in checks] == [("/health", "ok fine"), ("/ready", None), ("/", None)]
    assert all((c["attempts"], c["timeout"], c["wait"], c["initialDelay"]) == (4, 7, 2, 2) for c in checks)
    assert parse_checks_file("WAIT=1\n", 5000) == {}
    with pytest.raises(CheckSpecError, match="line 1: TIMEOUT"):
        parse_checks_file("TIMEOUT=soon\n/ ok\n", 5000)
    with pytest.raises(CheckSpecError, match="line 1: 'health' is not a path"):
        parse_checks_file("health ok\n", 5000)


def test_app_json_checks_win_over_checks_file(tmp_path):
    (tmp_path / "CHECKS").write_text("/from-checks\n")
    said = []
    assert read_manifest(tmp_path, 5000, {}, "a", said.append)[0]["web"][0]["path"] == "/from-checks"
    (tmp_path / "app.json").write_text('{"healthchecks": {"web": [{"path": "/from-app-json"}]}}')
    assert read_manifest(tmp_path, 5000, {}, "a", said.append)[0]["web"][0]["path"] == "/from-app-json"
    assert any("CHECKS is ignored" in line for line in said)


def test_checks_from_the_checks_file_say_so():
    table = effective({}, {"web": [{"path": "/h"}], "worker": [{"command": "true"}]}, 5000, {"web": "CHECKS"})
    assert table["web"][0] == "CHECKS" and table["worker"][0] == "app.json"
    assert effective({"web": [{"path": "/x"}]}, {"web": [{"path": "/h"}]}, 5000, {"web": "CHECKS"})["web"][0] == "checks:set"


def test_exposed_port_only_when_exactly_one_tcp_port():
    assert exposed_port({"ExposedPorts": {"80/tcp": {}}}) == 80
    assert exposed_port({"ExposedPorts": {"80/tcp": {}, "443/tcp": {}}}) is None
    assert exposed_port({"ExposedPorts": {"53/udp": {}}}) is None
    assert exposed_port({}) is None


def test_env_defaults_and_secrets_fill_only_missing_keys():
    env = {"S": {"generator": "secret"}, "M": {"value": "demo"}, "R": {"required": True}}
    said = []
    config, added = apply_env(env, {"M": "mine"}, said.append)
    assert added == ["S"] and config["M"] == "mine" and len(config["S"]) == 64 and "R" not in config
    assert not any(config["S"] in line for line in said)
    assert apply_env(env, config, said.append)[1] == []


def test_slot_due_is_the_latest_slot_at_or_before_now():
    at = datetime(2026, 1, 1, 10, 0, 0, tzinfo=UTC)
    assert slot_due("* * * * *", at) == at
    assert slot_due("* * * * *", at + timedelta(seconds=59)) == at
    assert slot_due("* * * * *", at - timedelta(microseconds=1)) == at - timedelta(minutes=1)   # never early
    assert slot_due("0 5 * * *", at) == datetime(2026, 1, 1, 5, 0, tzinfo=UTC)
    assert slot_due("@hourly", at + timedelta(minutes=59)) == at


@dataclass
class FakeScheduler:
    started: list

    def run_detached(self, app, release, command, image):
        self.started.append(command)
        return Instance(container_id=f"c{len(self.started)}", name="x", app=app, version=release.version,
                        process="run", index=len(self.started), state="running", exit_code=None,
                        host_port=None, image=image)

    def get(self, cid):
        return None


class FakeSettings:
    def image_repo(self, app):
        return f"ns/{app}"


@dataclass
class FakeServices:
    store: Store
    scheduler: FakeScheduler
    settings: FakeSettings


def _app_with_cron(tmp_path, schedule="* * * * *"):
    store = Store(tmp_path / "db.sqlite")
    store.migrate()
    app = store.create_app("a", None)
    build = store.create_build(app, "c" * 40, "dockerfile", "img")
    store.set_build_manifest(build.id, {"cron": [{"command": "job", "schedule": schedule, "key": "k1"}]})
    store.finish_build(build.id, "succeeded", "", None, {"web": ""}, "dockerfile")
    store.create_release(app, build.id, {}, "deploy", "u", status="succeeded")
    return FakeServices(store, FakeScheduler([]), FakeSettings()), store.get_app("a")


def test_cron_fires_once_per_slot_and_not_for_slots_before_it_existed(tmp_path):
    svc, app = _app_with_cron(tmp_path)
    t = datetime(2026, 1, 1, 10, 0, 30, tzinfo=UTC)
    assert cron.tick(svc, app, t) == []                        # first seen: the 10:00 slot is not due
    assert cron.tick(svc, app, t + timedelta(seconds=20)) == []
    assert cron.tick(svc, app, t + timedelta(seconds=31)) == ["job"]   # 10:01
    assert cron.tick(svc, app, t + timedelta(seconds=50)) == []        # same slot: never twice
    assert cron.tick(svc, app, t + timedelta(minutes=5)) == ["job"]    # missed slots: only the latest
    [job] = cron.list_jobs(svc, app, t + timedelta(minutes=5))
    assert job["state"] == "running" and job["process"] == "run.2" and job["next_run"] == "2026-01-01T10:06:00+00:00"
    assert svc.store.cron_finished("c2", 0) and not svc.store.cron_finished("c2", 0)
    assert cron.list_jobs(svc, app, t)[0]["exit_code"] == 0


def test_cron_slot_is_claimed_once_by_concurrent_reconcilers(tmp_path):
    svc, app = _app_with_cron(tmp_path)
    t = datetime(2026, 1, 1, 10, 0, 30, tzinfo=UTC)
    cron.tick(svc, app, t)
    barrier = threading.Barrier(8)
    fired = []

    def one():
        barrier.wait()
        fired.extend(cron.tick(svc, app, t + timedelta(minutes=1)))

    threads = [threading.Thread(target=one) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert fired == ["job"] and svc.scheduler.started == ["job"]


def test_an_app_with_no_release_says_how_to_deploy():
    text = render_routes([Route(app="new", hostnames=("new.x.test",), deployed=False),
                          Route(app="old", hostnames=("old.x.test",))], 8080)
    assert "App new exists but has no release yet" in text and "git push dockyard main" in text
    assert "App old has no running web process" in text


def test_an_app_scaled_up_with_no_instance_up_says_it_is_restarting_not_to_scale():
    text = render_routes([Route(app="down", hostnames=("down.x.test",), scaled=True)], 8080)
    assert "App down has no web instance up right now: it is starting, or it crashed and is restarting" in text
    assert "dockyard logs -a down" in text and "ps:scale" not in text


def test_routes_know_which_apps_are_scaled_up():
    from controller.routing.table import compute_routes
    table = compute_routes(["up", "idle", "new"], [], set(), "x.test", deployed={"up", "idle"}, scaled={"up"})
    by_app = {r.app: (r.deployed, r.scaled) for r in table}
    assert by_app == {"up": (True, True), "idle": (True, False), "new": (False, False)}


def test_a_job_removed_by_a_deploy_is_forgotten(tmp_path):
    svc, app = _app_with_cron(tmp_path)
    t = datetime(2026, 1, 1, 10, 0, 30, tzinfo=UTC)
    cron.tick(svc, app, t)
    assert set(svc.store.cron_runs(app)) == {"k1"}
    build = svc.store.create_build(app, "d" * 40, "dockerfile", "img2")
    svc.store.finish_build(build.id, "succeeded", "", None, {"web": ""}, "dockerfile")
    svc.store.create_release(app, build.id, {}, "deploy", "u", status="succeeded")
    assert cron.tick(svc, svc.store.get_app("a"), t + timedelta(minutes=1)) == []
    assert svc.store.cron_runs(app) == {} and cron.list_jobs(svc, svc.store.get_app("a"), t) == []
