"""The Heroku workflow on real parts: config changes roll the app, scaling changes what the
router serves, rollback serves old content, logs survive replaced containers, and five
deploys under a bounded load drop no request."""
from __future__ import annotations

import http.client
import threading
import time

import pytest

from .conftest import BUSYBOX_BASE, ROOT, make_app_repo, unique_app

pytestmark = pytest.mark.e2e


def env_app(template: str) -> dict[str, str]:
    """An app whose page is rendered from its environment at start (e.g. $GREETING, $(hostname))."""
    return {"Dockerfile": f"FROM {BUSYBOX_BASE}\n"
                          f"CMD [\"/bin/sh\", \"-c\", \"echo {template} > /www/index.html; "
                          "echo started $DYNO; exec httpd -f -p $PORT -h /www\"]\n"}


def deploy(p, tmp_path, files):
    name = unique_app()
    repo = make_app_repo(tmp_path / name, files, p)
    p.cli("apps:create", name, cwd=repo)
    out = p.git("push", "dockyard", "main", cwd=repo)
    return name, repo, out


def page(p, name) -> str:
    code, body = p.curl(name)
    assert code == 200, (code, body)
    return body.strip()


def test_config_set_makes_one_release_and_rolls_the_app(platform, tmp_path):
    name, repo, _ = deploy(platform, tmp_path, env_app("hello-$GREETING-$OTHER"))
    assert page(platform, name) == "hello--"
    platform.cli("config:set", "GREETING=world", "OTHER=two", "-a", name)
    assert page(platform, name) == "hello-world-two"
    assert platform.cli("config:get", "GREETING", "-a", name).stdout.strip() == "world"
    releases = platform.cli("releases", "-a", name).stdout
    assert "Set GREETING, OTHER config vars" in releases and "v2" in releases and "v3" not in releases
    platform.cli("config:unset", "OTHER", "-a", name)
    assert page(platform, name) == "hello-world-"
    # values never appear in the release listing or the platform's log lines
    assert "world" not in platform.cli("releases", "-a", name).stdout
    assert "world" not in platform.cli("logs", "-a", name, "--source", "dockyard").stdout


def test_scale_changes_what_the_router_serves(platform, tmp_path):
    name, repo, _ = deploy(platform, tmp_path, env_app("$(hostname)"))
    platform.cli("ps:scale", "web=3", "-a", name)
    seen = {page(platform, name) for _ in range(30)}
    assert len(seen) == 3, seen
    ps = platform.cli("ps", "-a", name).stdout
    assert "=== web (3)" in ps and ps.count(": up v1") == 3
    platform.cli("ps:scale", "web=1", "-a", name)
    seen = {page(platform, name) for _ in range(10)}
    assert len(seen) == 1, seen
    out = platform.cli("ps:scale", "nope=1", "-a", name, check=False)
    assert out.returncode == 1 and "has no process type 'nope'; its types are: web" in out.stderr


def test_rollback_serves_the_old_build_as_a_new_release(platform, tmp_path):
    name, repo, _ = deploy(platform, tmp_path, env_app("first"))
    make_app_repo(repo, env_app("second"), platform)
    platform.git("push", "dockyard", "main", cwd=repo)
    assert page(platform, name) == "second"
    out = platform.cli("rollback", "-a", name).stdout
    assert "Rollback to v1 is v3" in out
    assert page(platform, name) == "first"
    platform.cli("rollback", "v2", "-a", name)
    assert page(platform, name) == "second"
    assert "Rollback to v2" in platform.cli("releases", "-a", name).stdout


def test_logs_of_a_replaced_container_are_still_readable(platform, tmp_path):
    name, repo, _ = deploy(platform, tmp_path, env_app("one"))
    platform.cli("config:set", "X=1", "-a", name)     # replaces the container
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        out = platform.cli("logs", "-a", name, "-n", "200").stdout
        if out.count("app[web.1]: started web.1") >= 2:
            break
        time.sleep(0.5)
    assert out.count("app[web.1]: started web.1") >= 2, out
    assert "dockyard[api]: Deployed v1" in out and "dockyard[api]: Deployed v2" in out


def test_five_deploys_under_load_drop_no_request(platform, tmp_path):
    name, repo, _ = deploy(platform, tmp_path, env_app("v0"))
    host = f"{name}.{platform.domain}"
    stop = threading.Event()
    results = {"ok": 0, "failed": []}

    def get(conn: http.client.HTTPConnection) -> http.client.HTTPResponse:
        conn.request("GET", "/", headers={"Host": host})
        resp = conn.getresponse()
        resp.read()
        return resp

    def count(status: int) -> None:
        if status == 200:
            results["ok"] += 1
        else:
            results["failed"].append(status)

    def load():
        deadline = time.monotonic() + 300            # bounded in time and count
        conn = None
        while not stop.is_set() and time.monotonic() < deadline and results["ok"] < 200000:
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", platform.router_port, timeout=10)
                resp = get(conn)
                count(resp.status)
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # nginx closes idle keep-alive connections on reload; a client retries those once
                conn = None
                try:
                    fresh = http.client.HTTPConnection("127.0.0.1", platform.router_port, timeout=10)
                    count(get(fresh).status)
                    fresh.close()
                except OSError as e2:
                    results["failed"].append(repr(e2))
            except OSError as e:
                results["failed"].append(repr(e))
                conn = None

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for i in range(1, 6):
            make_app_repo(repo, env_app(f"v{i}"), platform)
            platform.git("push", "dockyard", "main", cwd=repo)
            assert page(platform, name) == f"v{i}"
        time.sleep(3)   # old instances drain in the background: keep the load on while they stop
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert results["failed"] == [], results["failed"][:10]
    assert results["ok"] > 100


def test_release_phase_runs_before_traffic_and_its_failure_keeps_the_old_release(platform, tmp_path):
    files = env_app("phase-ok")
    files["Procfile"] = ('web: echo phase-ok > /www/index.html; exec httpd -f -p $PORT -h /www\n'
                         'release: echo migrating-now; test "$MIGRATE" != fail\n')
    name, repo, out = deploy(platform, tmp_path, files)
    assert "Running release command for v1" in out.stderr and "migrating-now" in out.stderr
    assert page(platform, name) == "phase-ok"
    assert "release" not in platform.cli("ps", "-a", name).stdout     # not a running process
    out = platform.cli("config:set", "MIGRATE=fail", "-a", name, check=False)
    assert out.returncode == 1 and "release command exited with code 1" in out.stderr
    assert page(platform, name) == "phase-ok"
    assert platform.cli("config", "-a", name, "--json").stdout.count("MIGRATE") == 0


def test_restart_replaces_instances_without_a_new_release(platform, tmp_path):
    name, repo, _ = deploy(platform, tmp_path, env_app("$(hostname)"))
    before = page(platform, name)
    platform.cli("ps:restart", "-a", name)
    after = page(platform, name)
    assert before != after
    assert "v2" not in platform.cli("releases", "-a", name).stdout
    out = platform.cli("ps:restart", "nope", "-a", name, check=False)
    assert out.returncode == 1 and "no process type 'nope'" in out.stderr


def test_crash_looping_process_shows_as_crashed(platform, tmp_path):
    # Answers its health check, then dies a few seconds later, over and over.
    files = {"Dockerfile": f"FROM {BUSYBOX_BASE}\nRUN [\"/bin/sh\", \"-c\", \"echo up > /www/index.html\"]\n"
                           "CMD [\"/bin/sh\", \"-c\", \"httpd -p $PORT -h /www; sleep 2; echo dying; exit 4\"]\n"}
    name, repo, _ = deploy(platform, tmp_path, files)
    deadline = time.monotonic() + 60
    ps = ""
    while time.monotonic() < deadline:
        ps = platform.cli("ps", "-a", name).stdout
        if "crashed" in ps:
            break
        time.sleep(0.5)
    assert "web.1: crashed" in ps, ps
    assert "    | dying" in ps, ps       # with its last output


def test_logs_tail_follows_the_app_across_container_changes(platform, tmp_path):
    import subprocess
    name, repo, _ = deploy(platform, tmp_path, env_app("tail-$V"))
    follower = subprocess.Popen([str(ROOT / ".venv/bin/dockyard"),
                                 "logs", "--tail", "-n", "5", "-a", name],
                                env=platform.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                cwd=platform.user_home)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(follower.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        time.sleep(1.5)
        platform.cli("config:set", "V=2", "-a", name)    # a new container replaces the old one
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any("Deployed v2" in l for l in lines):
            time.sleep(0.3)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and sum("started web.1" in l for l in lines) < 2:
            time.sleep(0.3)
    finally:
        follower.kill()
        follower.wait(timeout=10)
    text = "".join(lines)
    assert "dockyard[api]: Deployed v2" in text, text
    assert text.count("app[web.1]: started web.1") >= 2, text
