"""Health-check specs (Dokku's app.json format) and the check runner's decisions, without
sockets: parsing and validation are pure; the runner gets a fake instance and exec."""
from __future__ import annotations

import json

import pytest

from controller.runtime.health import HealthCheckFailed, InstanceCrashed, run_checks
from core.checkspec import Check, CheckSpecError, effective, parse_app_json, parse_check, spec_from_pairs
from core.models import Instance

PORT = 5000


def app_json(checks: dict) -> bytes:
    return json.dumps({"name": "x", "healthchecks": checks}).encode()


def test_dokku_startup_check_with_defaults():
    out = parse_app_json(app_json({"web": [{"type": "startup", "name": "ready", "path": "/health",
                                            "content": "ok"}]}), PORT)
    assert out == {"web": [{"type": "startup", "name": "ready", "path": "/health", "content": "ok",
                            "attempts": 5, "timeout": 5, "wait": 5, "initialDelay": 0}]}


def test_liveness_and_readiness_are_not_run_at_deploy():
    out = parse_app_json(app_json({"web": [{"type": "liveness", "path": "/x"}, {"path": "/y"}]}), PORT)
    assert [c["path"] for c in out["web"]] == ["/y"]


def test_no_healthchecks_key_is_no_checks():
    assert parse_app_json(b'{"name": "app", "scripts": {}}', PORT) == {}


@pytest.mark.parametrize("spec, message", [
    ({"path": "health"}, "healthchecks.web[0].path must start with '/'"),
    ({"path": "/", "attempts": 0}, "attempts must be a whole number from 1 to 100, not 0"),
    ({"path": "/", "attempts": "3"}, "attempts must be a whole number from 1 to 100, not '3'"),
    ({"path": "/", "timeout": True}, "timeout must be a whole number"),
    ({"path": "/", "bogus": 1}, "unknown key 'bogus'"),
    ({"path": "/", "type": "sometimes"}, "type is 'sometimes'; use one of: startup, liveness, readiness"),
    ({"path": "/", "port": 8080}, "port is 8080, but processes listen on $PORT (5000)"),
    ({"path": "/", "scheme": "https"}, "scheme must be \"http\""),
    ({"path": "/a\r\nX: y"}, "path must be a one-line string"),
    ({"path": "/", "command": "true"}, "sets both 'path' and 'command'"),
    ({"content": "ok"}, "content needs a `path`"),
    ({"uptime": 10}, "uptime checks are not supported"),
    ({"path": "/", "httpHeaders": [{"name": "X", "value": "a\nb"}]}, "httpHeaders must be a list"),
    ({"command": []}, "command must be a string or a list of strings"),
])
def test_bad_specs_name_the_key_and_the_fix(spec, message):
    with pytest.raises(CheckSpecError) as e:
        parse_app_json(app_json({"web": [spec]}), PORT)
    assert message in e.value.message


def test_bad_documents():
    for data, message in ((b"{nope", "app.json is not valid JSON"), (b"[]", "must be a JSON object"),
                          (app_json([]), "must be an object mapping process types"),
                          (app_json({"Web;rm": []}), "invalid process type"),
                          (app_json({"web": {}}), "healthchecks.web must be a list")):
        with pytest.raises(CheckSpecError) as e:
            parse_app_json(data, PORT)
        assert message in e.value.message


def test_command_list_is_quoted_and_a_bare_check_gets_slash():
    check = parse_check({"command": ["test", "-f", "/tmp/a b"]}, "c", PORT)
    assert check.command == "test -f '/tmp/a b'" and check.path is None
    assert parse_check({"name": "n"}, "c", PORT).path == "/"


def test_checks_set_pairs_and_precedence():
    spec = spec_from_pairs({"path": "/health", "attempts": "2", "warn": "true"}, PORT)
    assert spec["attempts"] == 2 and spec["warn"] is True and spec["name"] == "GET /health"
    with pytest.raises(CheckSpecError, match="attempts must be a whole number, not 'x'"):
        spec_from_pairs({"attempts": "x"}, PORT)
    from_json = {"web": [{"path": "/a"}], "worker": [{"command": "true"}]}
    overrides = {"web": [{"path": "/b"}]}
    table = effective(overrides, from_json, PORT)
    assert table["web"][0] == "checks:set" and table["web"][1][0].path == "/b"
    assert table["worker"][0] == "app.json"


def _inst(state="running", exit_code=None) -> Instance:
    return Instance("c1", "n", "app", 1, "worker", 1, state, exit_code, None, "img")


def test_runner_retries_then_fails_with_the_last_reason_and_rollback_wording():
    lines, sleeps, calls = [], [], []

    def exec_in(cmd, timeout):
        calls.append((cmd, timeout))
        return 1, "not yet\n"

    check = Check(name="ready", command="test -f /tmp/ready", attempts=3, wait=2, timeout=4)
    with pytest.raises(HealthCheckFailed) as e:
        run_checks("worker.1", [check], _inst, "h", PORT, exec_in, lines.append, sleeps.append)
    assert calls == [("test -f /tmp/ready", 4)] * 3 and sleeps == [2, 2]
    assert "worker.1 failed health check 'ready' (command 'test -f /tmp/ready') after 3 attempts " \
           "(last: exit code 1: not yet)" in e.value.message
    assert "Rolled back automatically" in e.value.message
    assert lines[-1].strip() == "worker.1: check 'ready' attempt 3/3: failed: exit code 1: not yet"


def test_runner_passes_on_a_later_attempt_and_warn_only_warns():
    results = iter([(1, ""), (0, "ready")])
    lines = []
    run_checks("w.1", [Check(name="c", command="x", attempts=3, wait=0, content="ready")], _inst, "h", PORT,
               lambda c, t: next(results), lines.append, lambda s: None)
    assert "attempt 2/3: passed" in lines[-1]
    lines.clear()
    run_checks("w.1", [Check(name="soft", command="x", attempts=1, warn=True)], _inst, "h", PORT,
               lambda c, t: (1, ""), lines.append, lambda s: None)
    assert "warning only (warn: true)" in lines[-1]


def test_runner_reports_a_crash_instead_of_retrying():
    with pytest.raises(InstanceCrashed, match="exited with code 2 during health check"):
        run_checks("w.1", [Check(name="c", command="x")], lambda: _inst("exited", 2), "h", PORT,
                   lambda c, t: (0, ""), lambda line: None, lambda s: None)
