"""Apps written for Deis, Dokku and Heroku deploy unchanged, with plain `git push`, answering
through the router: a Dockerfile that EXPOSEs port 80 and ignores $PORT; Dokku's CHECKS file;
app.json's env (generated secret, default, required), formation with sizes, predeploy and
postdeploy scripts, and a cron job seen running. The samples live in tests/samples/. Each push
is timed (cold: a new app; warm: the same app again) and the times printed for the notes."""
from __future__ import annotations

import json
import shutil
import time
import urllib.request
from pathlib import Path

import pytest

from .conftest import make_app_repo, run, unique_app

pytestmark = pytest.mark.e2e

SAMPLES = Path(__file__).resolve().parent / "samples"


def sample(name: str) -> dict[str, bytes]:
    root = SAMPLES / name
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def timed_push(platform, repo, label: str, check: bool = True):
    started = time.monotonic()
    proc = platform.git("push", "dockyard", "main", cwd=repo, check=check)
    print(f"\npush time {label}: {time.monotonic() - started:.1f} s")
    return proc


def create(platform, tmp_path, files) -> tuple[str, Path]:
    name = unique_app("conv")
    repo = make_app_repo(tmp_path / name, files, platform)
    platform.cli("apps:create", name, cwd=repo)
    return name, repo


def eventually(check, timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


def instances(platform, name: str) -> list[str]:
    """Running app instances (not one-offs such as a cron job's run)."""
    return run(["docker", "ps", "-q", "--filter", f"label=dockyard.app={name}", "--filter",
                f"label=dockyard.instance={platform.name}", "--filter", "label=dockyard.process"]).stdout.split()


def inspect(container: str) -> dict:
    return json.loads(run(["docker", "inspect", container]).stdout)[0]


def test_dockerfile_exposing_port_80_is_routed_there_without_capabilities(platform, tmp_path):
    name, repo = create(platform, tmp_path, sample("dockerfile-expose"))
    out = timed_push(platform, repo, "dockerfile-expose cold").stderr
    assert "EXPOSEs port 80" in out, out
    code, body = platform.curl(name)
    assert code == 200, (code, body)
    assert body.strip() == "listening on 80, PORT=80, uid=65534"   # $PORT is set to the EXPOSEd port
    [cid] = platform.containers(name)
    host = inspect(cid)["HostConfig"]
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
    assert host["Sysctls"] == {"net.ipv4.ip_unprivileged_port_start": "0"}
    # the instance inherits its image's build label; the sweep of leftover build containers
    # (every 2 s here) must leave it running
    time.sleep(5)
    assert platform.containers(name, running_only=True) == [cid]
    make_app_repo(repo, {"Dockerfile": sample("dockerfile-expose")["Dockerfile"] + b"# again\n"}, platform)
    timed_push(platform, repo, "dockerfile-expose warm")
    assert platform.curl(name)[0] == 200


def test_dokku_checks_file_gates_traffic(platform, tmp_path):
    name, repo = create(platform, tmp_path, sample("dokku-checks"))
    out = timed_push(platform, repo, "dokku-checks cold").stderr
    assert "CHECKS: 1 web check(s)" in out and "'CHECKS /health'" in out, out
    assert platform.curl(name) == (200, "checks app v1\n")
    # the health page loses its expected content: the deploy fails and v1 keeps serving
    make_app_repo(repo, {"www/health": "status: degraded\n", "www/index.html": "checks app v2\n"}, platform)
    bad = timed_push(platform, repo, "dokku-checks warm (failing check)", check=False)
    assert bad.returncode != 0
    assert "all systems go" in bad.stderr and "keeps serving" in bad.stderr, bad.stderr
    assert platform.curl(name) == (200, "checks app v1\n")
    checks = platform.cli("checks", "-a", name).stdout
    assert "GET /health expecting 'all systems go'" in checks and "attempts 3" in checks, checks
    assert "[CHECKS]" in checks and "running 1 health check from CHECKS" in out


def test_app_json_env_formation_scripts_and_cron(platform, tmp_path):
    files = sample("appjson")
    name, repo = create(platform, tmp_path, files)
    # an app with no release says how to deploy it, not that it does not exist
    code, body = platform.curl(name)
    assert code == 503 and "has no release yet" in body and "git push dockyard main" in body, (code, body)
    # a required env var with no value is reported before anything is built
    refused = timed_push(platform, repo, "appjson (refused: API_TOKEN)", check=False)
    assert refused.returncode != 0
    assert "requires API_TOKEN" in refused.stderr and "config:set API_TOKEN=" in refused.stderr
    assert "Step 1/" not in refused.stderr
    platform.cli("config:set", "API_TOKEN=t0ken", "-a", name)

    out = timed_push(platform, repo, "appjson cold").stderr
    assert "Generated a secret value for SECRET_KEY" in out and "Setting MODE from app.json" in out
    assert "predeploy-ran mode=demo" in out and "Formation from app.json: web=2 worker=1" in out, out
    assert "worker: memory limit 1024 MB" in out
    assert "postdeploy-ran secret-length=64" in out
    secret = platform.cli("config:get", "SECRET_KEY", "-a", name).stdout.strip()
    assert len(secret) == 64 and secret not in out     # generated, never printed
    assert platform.curl(name) == (200, "mode=demo secret-length=64 token=set\n")
    running = instances(platform, name)
    assert len(running) == 3
    memories = sorted(inspect(c)["HostConfig"]["Memory"] >> 20 for c in running)
    assert memories[-1] == 1024 and memories[0] == 512

    # a second deploy: predeploy again; postdeploy and the formation are first-deploy only
    platform.cli("ps:scale", "web=1", "-a", name)
    make_app_repo(repo, {"web.sh": files["web.sh"] + b"# v2\n"}, platform)
    again = timed_push(platform, repo, "appjson warm").stderr
    assert "predeploy-ran" in again and "postdeploy" not in again and "Formation from app.json" not in again
    assert platform.cli("config:get", "SECRET_KEY", "-a", name).stdout.strip() == secret
    assert eventually(lambda: len(instances(platform, name)) == 2, timeout=30)   # old ones drain first

    # the cron job (every minute) runs as a one-off of the live release; its output reaches logs
    def ran():
        jobs = json.loads(urllib.request.urlopen(urllib.request.Request(
            f"{platform.api}/apps/{name}/cron", headers={"Authorization": f"Bearer {platform.token()}"}),
            timeout=10).read())
        return jobs if jobs and jobs[0]["exit_code"] == 0 else None
    jobs = eventually(ran, timeout=150)
    assert jobs, platform.cli("cron", "-a", name).stdout
    assert jobs[0]["schedule"] == "* * * * *" and jobs[0]["state"] == "succeeded" and jobs[0]["next_run"]
    listing = platform.cli("cron", "-a", name).stdout
    assert "echo cron-ran-$DYNO" in listing and "exit code 0" in listing and "next run" in listing, listing
    logs = platform.cli("logs", "-a", name, "-n", "300").stdout
    assert "cron-ran-run." in logs and "mode=demo" in logs and "(cron job) exited with code 0" in logs, logs

    # a bad schedule rejects the deploy, naming the entry; the live release keeps serving
    doc = json.loads(files["app.json"])
    doc["cron"].append({"command": "echo never", "schedule": "61 * * * *"})
    make_app_repo(repo, {"app.json": json.dumps(doc)}, platform)
    bad = platform.git("push", "dockyard", "main", cwd=repo, check=False)
    assert bad.returncode != 0 and "cron[1].schedule '61 * * * *'" in bad.stderr, bad.stderr
    assert platform.curl(name) == (200, "mode=demo secret-length=64 token=set\n")


@pytest.fixture(autouse=True)
def _no_leftover_repos(tmp_path):
    yield
    shutil.rmtree(tmp_path, ignore_errors=True)
