"""Recovery on real parts: the controller killed in the middle of a deploy, and the Docker
engine restarted, both end with exactly the desired containers, routed (the reconciler's
job). Named `zz` so it runs after the other end-to-end files: restarting dockerd disturbs
anything else that uses the engine at that moment."""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from .conftest import BUSYBOX_BASE, ROOT, make_app_repo, run
from .test_e2e_heroku import eventually
from .test_e2e_workflow import deploy, env_app

pytestmark = [pytest.mark.e2e, pytest.mark.alone]


def slow_app(text: str, delay: int) -> dict[str, str]:
    return {"Dockerfile": f"FROM {BUSYBOX_BASE}\n"
                          f"CMD [\"/bin/sh\", \"-c\", \"echo {text} > /www/index.html; sleep {delay}; "
                          "exec httpd -f -p $PORT -h /www\"]\n"}


def serving(platform, name) -> str | None:
    code, body = platform.curl(name)
    return body.strip() if code == 200 else None


def running_versions(platform, name) -> list[str]:
    ids = platform.containers(name, running_only=True)
    if not ids:
        return []
    out = run(["docker", "inspect", "-f", '{{index .Config.Labels "dockyard.process"}}:'
               '{{index .Config.Labels "dockyard.release"}}', *ids]).stdout.split()
    return sorted(out)


def test_controller_killed_mid_deploy_ends_with_the_old_release_routed(platform, tmp_path):
    name, repo, _ = deploy(platform, tmp_path, env_app("one"))
    make_app_repo(repo, slow_app("two", 6), platform)
    push = subprocess.Popen(["git", "push", "dockyard", "main"], cwd=repo, env=platform.env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # wait until the new instance exists (the deploy is in its health check), then kill the API
    assert eventually(lambda: "web:2" in running_versions(platform, name), 60), running_versions(platform, name)
    api_pid = int((platform.home / "run" / "api.pid").read_text())
    os.killpg(api_pid, signal.SIGKILL)
    out, _ = push.communicate(timeout=120)
    assert push.returncode != 0, out
    # the supervisor restarts the API; the reconciler fails the interrupted release and removes
    # its instance; v1 keeps serving the whole time
    assert serving(platform, name) == "one"
    assert eventually(lambda: running_versions(platform, name) == ["web:1"], 60), running_versions(platform, name)
    assert eventually(lambda: platform.cli("releases", "-a", name, check=False).returncode == 0, 60)
    releases = platform.cli("releases", "-a", name).stdout
    assert "v2" in releases and "failed" in releases
    assert "Release v2 was interrupted; marked failed" in platform.cli("logs", "-a", name).stdout
    # and the app deploys again normally (no stale lock)
    make_app_repo(repo, env_app("three"), platform)
    platform.git("push", "dockyard", "main", cwd=repo)
    assert serving(platform, name) == "three"


def test_dockerd_restart_ends_with_exactly_the_desired_containers_routed(platform, tmp_path):
    name, repo, _ = deploy(platform, tmp_path, env_app("$(hostname)"))
    platform.cli("ps:scale", "web=2", "-a", name)
    before = running_versions(platform, name)
    assert before == ["web:1", "web:1"]
    # the host's engine, by its pid file: `pidof dockerd` also lists the build sandboxes' own engines
    pid = int(Path("/var/run/docker.pid").read_text().strip())
    os.kill(pid, signal.SIGTERM)                # stops every container, like a host shutdown
    assert eventually(lambda: run(["docker", "info"], check=False).returncode != 0, 60)
    started = subprocess.run(["bash", str(ROOT / "scripts/install.sh")], capture_output=True, text=True,
                             timeout=600)
    assert started.returncode == 0, started.stderr
    assert "started dockerd" in started.stdout + started.stderr
    # containers come back (restart policy), on new host ports; routes follow live state
    assert eventually(lambda: running_versions(platform, name) == before, 120), running_versions(platform, name)
    seen = eventually(lambda: (lambda s: len(s) == 2 and s)({serving(platform, name) for _ in range(10)}), 120)
    assert seen and None not in seen, seen
    ps = platform.cli("ps", "-a", name).stdout
    assert ps.count(": up v1") == 2, ps
