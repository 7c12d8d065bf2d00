"""The rest of the Heroku workflow on real parts: one-off `run` (attached and detached),
config --no-restart, ps:stop/ps:start, ps:limits (checked with `docker inspect`), and health
checks from app.json or checks:set, with the automatic rollback a failing check causes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from .conftest import BUSYBOX_BASE, ROOT, make_app_repo, run, unique_app
from .test_e2e_workflow import deploy, env_app, page

pytestmark = pytest.mark.e2e


def health_app(body: str, health: str, app_json: dict | None = None, procfile: str | None = None) -> dict:
    """busybox httpd serving `body` at / and `health` at /health."""
    files = {}
    files["Dockerfile"] = (f"FROM {BUSYBOX_BASE}\nCOPY index.html /www/index.html\nCOPY health /www/health\n"
                           'CMD ["/bin/sh", "-c", "exec httpd -f -p $PORT -h /www"]\n')
    files["index.html"] = body
    files["health"] = health
    if app_json is not None:
        files["app.json"] = json.dumps(app_json)
    if procfile is not None:
        files["Procfile"] = procfile
    return files


def eventually(check, timeout: float = 60.0):
    """Poll `check` until it returns something truthy (bounded); returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.3)


def inspect(container: str) -> dict:
    return json.loads(run(["docker", "inspect", container]).stdout)[0]


# ---- dockyard run -------------------------------------------------------------------------
def test_run_attached_passes_stdin_stdout_stderr_and_the_exit_code(platform, tmp_path):
    name, repo, _ = deploy(platform, tmp_path, env_app("web"))
    platform.cli("config:set", "FOO=from-config", "-a", name)
    proc = subprocess.run(
        [str(ROOT / ".venv/bin/dockyard"), "run", "-a", name, "--",
         "read line; echo got:$line:$FOO; echo to-stderr >&2; cat; exit 7"],
        input="first\nsecond\nthird\n", capture_output=True, text=True, env=platform.env, timeout=120,
        cwd=platform.user_home)
    assert proc.returncode == 7, proc
    assert proc.stdout == "got:first:from-config\nsecond\nthird\n"
    assert "to-stderr" in proc.stderr and "Running `read line" in proc.stderr and "run.1" in proc.stderr
    # the one-off is gone afterwards (the replaced web instance drains in the background)
    assert eventually(lambda: len(platform.containers(name)) == 1)
    ok = subprocess.run([str(ROOT / ".venv/bin/dockyard"), "run", "-a", name, "--", "true"],
                        capture_output=True, text=True, env=platform.env, timeout=120, stdin=subprocess.DEVNULL,
                        cwd=platform.user_home)
    assert ok.returncode == 0, ok
    # no app, no release: clear errors, non-zero
    bad = platform.cli("run", "-a", "no-such-app", "--", "true", check=False)
    assert bad.returncode == 1 and "App 'no-such-app' not found" in bad.stderr
    platform.cli("apps:create", name + "-e")
    empty = platform.cli("run", "-a", name + "-e", "--", "true", check=False)
    assert empty.returncode == 1 and "no release to run a command in yet" in empty.stderr


def test_run_detached_output_reaches_the_logs(platform, tmp_path):
    name, repo, _ = deploy(platform, tmp_path, env_app("web"))
    out = platform.cli("run", "--detach", "-a", name, "--", "echo detached-$DYNO; sleep 1; exit 3").stdout
    assert "up, run.1" in out
    logs = eventually(lambda: (lambda text: "exited with code 3" in text and text)(
        platform.cli("logs", "-a", name, "-n", "200").stdout)) or ""
    assert "app[run.1]: detached-run.1" in logs, logs
    assert "One-off run.1 exited with code 3" in logs
    # removed (its output kept) before the exit is recorded: once the logs say it ended, `ps` agrees
    assert len(platform.containers(name)) == 1 and "run.1" not in platform.cli("ps", "-a", name).stdout


# ---- config --no-restart, ps:stop / ps:start -------------------------------------------------
def test_config_set_no_restart_applies_at_the_next_restart(platform, tmp_path):
    name, repo, _ = deploy(platform, tmp_path, env_app("value-$GREETING"))
    before = platform.containers(name)
    out = platform.cli("config:set", "--no-restart", "GREETING=later", "-a", name).stdout
    assert "not restarted" in out and "ps:restart" in out
    assert platform.cli("config:get", "GREETING", "-a", name).stdout.strip() == "later"
    assert page(platform, name) == "value-"
    time.sleep(2)    # several reconciler passes: it must not roll the app by itself
    assert platform.containers(name) == before and page(platform, name) == "value-"
    platform.cli("ps:restart", "-a", name)
    assert page(platform, name) == "value-later"
    assert platform.containers(name) != before


def test_ps_stop_and_start_keep_the_formation(platform, tmp_path):
    name, repo, _ = deploy(platform, tmp_path, env_app("$(hostname)"))
    platform.cli("ps:scale", "web=2", "-a", name)
    platform.cli("ps:stop", "-a", name)
    assert platform.containers(name) == []
    code, body = platform.curl(name)
    assert code == 503
    ps = platform.cli("ps", "-a", name).stdout
    assert "Stopped (ps:stop): web" in ps and "ps:start" in ps
    time.sleep(2)   # the reconciler keeps it stopped
    assert platform.containers(name) == []
    platform.cli("ps:start", "-a", name)
    assert len(platform.containers(name, running_only=True)) == 2
    assert len({page(platform, name) for _ in range(20)}) == 2
    # a push starts a stopped app again, like Dokku
    platform.cli("ps:stop", "web", "-a", name)
    make_app_repo(repo, env_app("pushed"), platform)
    out = platform.git("push", "dockyard", "main", cwd=repo).stderr
    assert "Starting web (stopped with ps:stop)" in out
    assert page(platform, name) == "pushed"
    bad = platform.cli("ps:stop", "nope", "-a", name, check=False)
    assert bad.returncode == 1 and "has no process type 'nope'" in bad.stderr


# ---- ps:limits ---------------------------------------------------------------------------
def test_ps_limits_set_memory_and_cpu_per_type_and_roll_it(platform, tmp_path):
    name, repo, _ = deploy(platform, tmp_path, env_app("limited"))
    shown = platform.cli("ps:limits", "-a", name).stdout
    assert "web: memory 512 MB (default), cpus 1 (default)" in shown
    [before] = platform.containers(name)
    out = platform.cli("ps:limits", "web", "--memory", "128", "--cpu", "0.5", "-a", name).stdout
    assert "web: memory 128 MB, cpus 0.5" in out
    [after] = eventually(lambda: (lambda ids: len(ids) == 1 and ids)(platform.containers(name, running_only=True)))
    assert after != before
    host = inspect(after)["HostConfig"]
    assert host["Memory"] == 128 * 1024 * 1024 and host["NanoCpus"] == 500_000_000
    assert page(platform, name) == "limited"
    # the limits survive a deploy
    make_app_repo(repo, env_app("again"), platform)
    platform.git("push", "dockyard", "main", cwd=repo)
    [third] = eventually(lambda: (lambda ids: len(ids) == 1 and ids)(platform.containers(name, running_only=True)))
    assert inspect(third)["HostConfig"]["Memory"] == 128 * 1024 * 1024
    bad = platform.cli("ps:limits", "web", "--memory", "1", "-a", name, check=False)
    assert bad.returncode == 1 and "memory_mb must be a number from 16 to 65536" in bad.stderr
    platform.cli("ps:limits", "web", "--memory", "default", "-a", name)
    assert "web: memory 512 MB (default), cpus 0.5" in platform.cli("ps:limits", "-a", name).stdout


# ---- health checks -----------------------------------------------------------------------
CHECK = {"healthchecks": {"web": [{"type": "startup", "name": "ready", "path": "/health",
                                   "content": "healthy", "attempts": 3, "timeout": 2, "wait": 1}]}}


def test_app_json_healthcheck_gates_traffic_and_a_failure_rolls_back(platform, tmp_path):
    name, repo, out = deploy(platform, tmp_path, health_app("v1", "healthy", CHECK))
    assert "running 1 health check from app.json" in out.stderr
    assert "check 'ready' attempt 1/3: passed: GET /health answered 200" in out.stderr
    assert page(platform, name) == "v1"
    # the new release answers, but not what the check expects: it never gets traffic
    make_app_repo(repo, health_app("v2", "starting", CHECK), platform)
    bad = platform.git("push", "dockyard", "main", cwd=repo, check=False)
    assert bad.returncode == 1
    assert "check 'ready' attempt 3/3: failed: GET /health answered 200 without 'healthy' in the body" in bad.stderr
    assert "failed health check 'ready' (GET /health containing 'healthy') after 3 attempts" in bad.stderr
    assert "rolled back automatically: v1 keeps serving" in bad.stderr
    assert page(platform, name) == "v1"
    assert "failed" in platform.cli("releases", "-a", name).stdout
    logs = platform.cli("logs", "-a", name, "--source", "dockyard").stdout
    assert "Rolled back automatically: v1 keeps serving" in logs
    # checks:set overrides app.json (here: a check this release passes), from the next deploy on
    platform.cli("checks:set", "web", "path=/health", "content=starting", "attempts=2", "wait=1", "-a", name)
    shown = platform.cli("checks", "-a", name).stdout
    assert "web: 'GET /health' GET /health expecting 'starting': attempts 2" in shown and "[checks:set]" in shown
    ok = platform.git("push", "dockyard", "main", "--force", cwd=repo)
    assert "from checks:set" in ok.stderr
    assert page(platform, name) == "v2"
    platform.cli("checks:unset", "web", "-a", name)
    assert "[app.json]" in platform.cli("checks", "-a", name).stdout


def test_bad_app_json_and_bad_checks_are_refused_with_the_key_named(platform, tmp_path):
    broken = {"healthchecks": {"web": [{"path": "health", "attempts": 3}]}}
    name, repo, _ = deploy(platform, tmp_path, health_app("v1", "healthy"))
    make_app_repo(repo, health_app("v2", "healthy", broken), platform)
    bad = platform.git("push", "dockyard", "main", cwd=repo, check=False)
    assert bad.returncode == 1
    assert "app.json healthchecks.web[0].path must start with '/'" in bad.stderr
    make_app_repo(repo, {"app.json": "{not json"}, platform)
    bad = platform.git("push", "dockyard", "main", cwd=repo, check=False)
    assert "app.json is not valid JSON" in bad.stderr
    assert page(platform, name) == "v1"
    out = platform.cli("checks:set", "web", "attempts=many", "-a", name, check=False)
    assert out.returncode == 1 and "attempts must be a whole number, not 'many'" in out.stderr
    out = platform.cli("checks:set", "web", "bogus=1", "-a", name, check=False)
    assert out.returncode == 1 and "unknown key 'bogus'" in out.stderr


def test_command_check_for_a_worker(platform, tmp_path):
    checks = {"healthchecks": {"worker": [{"name": "ready-file", "command": "test -f /tmp/ready",
                                           "attempts": 5, "wait": 1}]}}
    procfile = ("web: exec httpd -f -p $PORT -h /www\n"
                "worker: touch /tmp/ready; exec sleep 3600\n")
    name, repo, _ = deploy(platform, tmp_path, health_app("ok", "healthy", checks, procfile))
    platform.cli("ps:scale", "worker=1", "-a", name)      # like Heroku, only web starts by default
    make_app_repo(repo, {"index.html": "ok2"}, platform)
    out = platform.git("push", "dockyard", "main", cwd=repo)
    assert "worker.1: check 'ready-file' attempt 1/5: passed: exit code 0" in out.stderr
    # a worker that never gets ready fails the deploy; the old one keeps running
    make_app_repo(repo, {"Procfile": "web: exec httpd -f -p $PORT -h /www\nworker: exec sleep 3600\n"}, platform)
    bad = platform.git("push", "dockyard", "main", cwd=repo, check=False)
    assert bad.returncode == 1 and "worker.1 failed health check 'ready-file'" in bad.stderr
    assert "attempt 5/5: failed: exit code 1" in bad.stderr
    assert page(platform, name) == "ok2"
    assert eventually(lambda: len(platform.containers(name, running_only=True)) == 2)


# ---- image garbage collection ------------------------------------------------------------
def test_old_images_are_collected_but_rollback_targets_kept(tmp_path, busybox_base):
    from .conftest import start_platform, stop_platform
    p = start_platform(tmp_path / "gc", DOCKYARD_KEEP_RELEASES=2)
    try:
        name, repo, _ = deploy(p, tmp_path, env_app("one"))
        for text in ("two", "three"):
            make_app_repo(repo, env_app(text), p)
            p.git("push", "dockyard", "main", cwd=repo)

        def tags():
            return run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", "--filter",
                        f"label=dockyard.app={name}"]).stdout.split()
        # removed once no container uses it (the v1 instance drains in the background)
        assert eventually(lambda: f"{p.name}/{name}:v1" not in tags()), tags()
        assert f"{p.name}/{name}:v2" in tags() and f"{p.name}/{name}:v3" in tags()
        bad = p.cli("rollback", "v1", "-a", name, check=False)
        assert bad.returncode == 1 and "raise DOCKYARD_KEEP_RELEASES to keep more" in bad.stderr
        assert page(p, name) == "three"
        p.cli("rollback", "v2", "-a", name)
        assert page(p, name) == "two"
        # a buildpack app's images (built on its dependency image) are collected the same way
        py = unique_app("gcpy")
        pyrepo = make_app_repo(tmp_path / py, python_app("one"), p)
        p.cli("apps:create", py, cwd=pyrepo)
        for text in ("one", "two", "three"):
            make_app_repo(pyrepo, python_app(text), p)
            out = p.git("push", "dockyard", "main", cwd=pyrepo).stderr
            assert "with buildpacks" in out and f"{py}.{p.domain}" in out
        assert page(p, py) == "three"
        repo_tags = lambda: [t for t in run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}",  # noqa: E731
                                             f"{p.name}/{py}"]).stdout.split()]
        assert eventually(lambda: f"{p.name}/{py}:v1" not in repo_tags()), repo_tags()
        assert {f"{p.name}/{py}:v2", f"{p.name}/{py}:v3"} <= set(repo_tags()), repo_tags()
    finally:
        stop_platform(p)


def python_app(text: str) -> dict[str, str]:
    """A buildpack-built Python app with no packages (its virtualenv is a dependency image)."""
    return {"requirements.txt": "# no packages\n", "www/index.html": text,
            "Procfile": "web: exec python3 -m http.server $PORT --directory www\n"}


def test_build_timeout_stops_the_engine_build_and_says_which_setting(tmp_path, busybox_base):
    from .conftest import start_platform, stop_platform
    p = start_platform(tmp_path / "bt", DOCKYARD_BUILD_TIMEOUT=4)
    try:
        name, repo, _ = deploy(p, tmp_path, env_app("ok"))
        make_app_repo(repo, {"Dockerfile": f"FROM {BUSYBOX_BASE}\nRUN sleep 987\n"}, p)
        bad = p.git("push", "dockyard", "main", cwd=repo, check=False)
        assert bad.returncode == 1
        assert "The build ran longer than 4 s and was stopped: make it faster or raise DOCKYARD_BUILD_TIMEOUT" \
            in bad.stderr
        # the engine cancelled the build: its running step is gone (not left to finish for 987 s)
        assert eventually(lambda: run(["pgrep", "-f", "sleep 987"], check=False).returncode == 1, 30)
        assert page(p, name) == "ok"
    finally:
        stop_platform(p)


def test_ctrl_c_mid_build_cancels_it_and_changes_nothing(platform, tmp_path):
    name, repo, _ = deploy(platform, tmp_path, env_app("before"))
    old = platform.git("rev-parse", "HEAD", cwd=repo).stdout.strip()
    nonce = f"sleep 30.{time.time_ns() % 10**6:06d}"     # its process is findable with pgrep
    make_app_repo(repo, {"Dockerfile": f"FROM {BUSYBOX_BASE}\nRUN {nonce}\n"}, platform)
    # git as a terminal starts it: Ctrl-C not ignored (a suite started in the background, e.g.
    # `.ci/run &`, hands its children SIGINT ignored, and git's HTTP helper keeps that)
    push = subprocess.Popen(["git", "push", "--progress", "dockyard", "main"], cwd=repo, env=platform.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    for line in push.stderr:             # the build's slow step is running: now the user presses Ctrl-C
        if f"RUN {nonce}" in line:
            break
    assert eventually(lambda: run(["pgrep", "-f", nonce], check=False).returncode == 0, 30)
    os.killpg(push.pid, signal.SIGINT)   # Ctrl-C reaches git and its git-remote-http helper
    push.wait(timeout=30)
    # the server notices within a couple of seconds, cancels the engine's build; nothing moved
    assert eventually(lambda: run(["pgrep", "-f", nonce], check=False).returncode == 1, 20), "build kept running"
    remote = platform.git("ls-remote", "dockyard", "refs/heads/main", cwd=repo).stdout.split()[0]
    assert remote == old
    assert page(platform, name) == "before"
    builds = platform.cli("builds", "-a", name).stdout
    assert eventually(lambda: "failed" in platform.cli("builds", "-a", name).stdout, 30), builds
    assert [l for l in platform.cli("releases", "-a", name).stdout.splitlines() if l.strip().startswith("v2")] == []
