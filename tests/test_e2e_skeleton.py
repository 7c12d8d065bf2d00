"""The first deploy on real parts: make up, apps:create, git:remote, git push,
curl by hostname; and each kind of bad input, with its message and nothing lost."""
from __future__ import annotations

import json
import re
import secrets
import subprocess
import threading
import time

import pytest
import requests as _requests

from .conftest import httpd_app, make_app_repo, run, start_platform, stop_platform, unique_app

pytestmark = pytest.mark.e2e


def push(p, repo, ref="main", check=False):
    proc = p.git("push", "dockyard", ref, cwd=repo, check=False, timeout=900)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def new_app(p, tmp_path, files, name=None):
    name = name or unique_app()
    repo = make_app_repo(tmp_path / name, files, p)
    p.cli("apps:create", name, cwd=repo)
    return name, repo


def test_make_up_prints_remote_and_urls_and_second_run_changes_nothing(platform):
    first, second = platform.up_output
    for text in (first, second):
        assert f"http://127.0.0.1:{platform.api_port}" in text
        assert f"http://<app>.{platform.domain}:{platform.router_port}/" in text
        assert "git:remote -a myapp" in text and "git push dockyard main" in text
    assert "created admin user" in first
    assert "already running" in second and "already exists" in second
    assert "already installed" in second and "already present" in second
    netrc = (platform.user_home / ".netrc")
    assert oct(netrc.stat().st_mode & 0o777) == "0o600"
    assert platform.token() in netrc.read_text()


def test_push_deploys_and_is_served_by_hostname(platform, tmp_path):
    name = unique_app("myapp")
    repo = make_app_repo(tmp_path / name, httpd_app("hello v1"), platform)
    platform.cli("apps:create", name, cwd=repo)
    platform.cli("git:remote", "-a", name, cwd=repo)
    remote = platform.git("remote", "get-url", "dockyard", cwd=repo).stdout.strip()
    assert remote == f"{platform.api}/{name}.git"
    out = push(platform, repo, check=True)
    assert "remote: -----> Building" in out.stderr
    assert re.search(r"remote:        Step 1/\d+ : FROM dockyard-test/busybox:1", out.stderr)
    assert "check passed" in out.stderr and "v1 is live" in out.stderr
    assert platform.curl(name) == (200, "hello v1")

    # Image and container carry the platform's labels; the port is published on loopback only.
    image = f"{platform.name}/{name}:v1"
    labels = json.loads(run(["docker", "image", "inspect", image, "--format", "{{json .Config.Labels}}"]).stdout)
    assert labels["dockyard.app"] == name and labels["dockyard.instance"] == platform.name
    cid = platform.containers(name, running_only=True)
    assert len(cid) == 1
    info = json.loads(run(["docker", "inspect", cid[0]]).stdout)[0]
    assert info["Config"]["Labels"]["dockyard.release"] == "1"
    assert info["Config"]["Labels"]["dockyard.process"] == "web"
    assert "PORT=5000" in info["Config"]["Env"]
    assert info["HostConfig"]["SecurityOpt"] == ["no-new-privileges"]
    assert info["HostConfig"]["Memory"] == 512 * 1024 * 1024
    assert info["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    bindings = info["HostConfig"]["PortBindings"]["5000/tcp"]
    assert [b["HostIp"] for b in bindings] == ["127.0.0.1"]

    # Redeploy: new content, a new release, the old container gone.
    make_app_repo(repo, httpd_app("hello v2"), platform)
    push(platform, repo, check=True)
    assert platform.curl(name) == (200, "hello v2")
    deadline = time.monotonic() + 30   # the old instance drains in the background
    while time.monotonic() < deadline:
        now = platform.containers(name)
        if len(now) == 1:
            break
        time.sleep(0.5)
    assert len(now) == 1 and now[0] not in cid[0]
    releases = platform.cli("releases", "-a", name).stdout
    assert "v2" in releases and "(current)" in releases
    ps = platform.cli("ps", "-a", name).stdout
    assert "web.1: up v2" in ps
    info_out = platform.cli("apps:info", "-a", name).stdout
    assert "Release:   v2" in info_out and "web=1" in info_out


def test_build_output_streams_while_it_happens(platform, tmp_path):
    # the nonce keeps the engine's build cache from replaying the step without running it
    extra = f'RUN ["/bin/sh", "-c", "echo marker-early; sleep 4; echo marker-late # {secrets.token_hex(4)}"]\n'
    name, repo = new_app(platform, tmp_path, httpd_app("streamed", extra=extra))
    proc = subprocess.Popen(["git", "push", "--progress", "dockyard", "main"], cwd=repo, env=platform.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = {}
    for line in proc.stderr:
        for marker in ("marker-early", "marker-late"):   # the echoed line, not the Step line
            if re.match(rf"^remote:\s+{marker}\s*$", line) and marker not in seen:
                seen[marker] = time.monotonic()
    proc.wait(timeout=300)
    assert proc.returncode == 0
    assert seen["marker-late"] - seen["marker-early"] >= 3, "lines arrived together, not as they happened"


def test_slow_build_outlives_the_server_timeout(platform, tmp_path):
    # The session platform runs gunicorn with --timeout 5; this build takes about 12 s.
    extra = f'RUN ["/bin/sh", "-c", "sleep 12; echo slept # {secrets.token_hex(4)}"]\n'
    name, repo = new_app(platform, tmp_path, httpd_app("slow but fine", extra=extra))
    out = push(platform, repo, check=True)
    assert "slept" in out.stderr
    assert platform.curl(name) == (200, "slow but fine")


@pytest.mark.parametrize("bad", ["../x", "MyApp", "a" * 200, "", "a", "x;rm", "-ab", "ab-"])
def test_invalid_app_names_are_refused_with_the_rule(platform, bad):
    out = platform.cli("apps:create", "--", bad, check=False)
    assert out.returncode != 0
    assert "Invalid app name" in out.stderr and "lower-case letters" in out.stderr


def test_duplicate_app_is_refused(platform, tmp_path):
    name = unique_app()
    platform.cli("apps:create", name)
    out = platform.cli("apps:create", name, check=False)
    assert out.returncode == 1 and f"App '{name}' already exists" in out.stderr


def test_api_paths_follow_heroku_shapes(platform):
    headers = {"Authorization": f"Bearer {platform.token()}"}
    requests = _requests.Session()
    requests.trust_env = False   # this process's ~/.netrc is not the test platform's
    name = unique_app()
    r = requests.post(f"{platform.api}/apps", json={"name": name}, headers=headers, timeout=10)
    assert r.status_code == 201 and r.json()["name"] == name
    assert name in [a["name"] for a in requests.get(f"{platform.api}/apps", headers=headers, timeout=10).json()]
    assert requests.get(f"{platform.api}/apps/{name}/releases", headers=headers, timeout=10).json() == []
    assert requests.get(f"{platform.api}/apps/{name}/config-vars", headers=headers, timeout=10).json() == {}
    assert requests.get(f"{platform.api}/apps/{name}/formation", headers=headers, timeout=10).json() == []
    r = requests.get(f"{platform.api}/apps", headers={"Authorization": "Bearer nope"}, timeout=10)
    assert r.status_code == 401 and "dockyard login" in r.json()["message"]
    r = requests.get(f"{platform.api}/apps/does-not-exist", headers=headers, timeout=10)
    assert r.status_code == 404 and "apps:create" in r.json()["message"]
    assert requests.delete(f"{platform.api}/apps/{name}", headers=headers, timeout=30).status_code == 200
    assert requests.get(f"{platform.api}/apps/{name}", headers=headers, timeout=10).status_code == 404


def test_push_to_unknown_app_says_how_to_create_it(platform, tmp_path):
    repo = make_app_repo(tmp_path / "r", httpd_app("x"), platform)
    platform.git("remote", "add", "dockyard", f"{platform.api}/nosuchapp.git", cwd=repo)
    out = push(platform, repo)
    assert out.returncode != 0
    assert "remote: No app named 'nosuchapp'" in out.stderr and "apps:create nosuchapp" in out.stderr


@pytest.mark.parametrize("netrc", ["none", "bad"])
def test_push_without_a_valid_token_is_refused(platform, tmp_path, netrc):
    name, repo = new_app(platform, tmp_path, httpd_app("x"))
    platform.cli("git:remote", "-a", name, cwd=repo)
    env = dict(platform.env, HOME=str(tmp_path / "other-home"))
    (tmp_path / "other-home").mkdir()
    if netrc == "bad":
        (tmp_path / "other-home" / ".netrc").write_text("machine 127.0.0.1 login admin password wrong\n")
    out = run(["git", "push", "dockyard", "main"], cwd=repo, env=env, check=False)
    assert out.returncode != 0
    assert "dockyard login" in out.stderr
    assert platform.git("ls-remote", "dockyard", cwd=repo).stdout == ""


def test_repo_without_dockerfile_is_rejected_naming_what_was_looked_for(platform, tmp_path):
    name, repo = new_app(platform, tmp_path, {"README": "no dockerfile here"})
    out = push(platform, repo)
    assert out.returncode != 0
    assert "[remote rejected]" in out.stderr and "looked for a Dockerfile" in out.stderr
    assert platform.git("ls-remote", "dockyard", cwd=repo).stdout == ""


def test_failing_dockerfile_step_is_shown_and_nothing_changes(platform, tmp_path):
    name, repo = new_app(platform, tmp_path, httpd_app("good"))
    push(platform, repo, check=True)
    good_ref = platform.git("ls-remote", "dockyard", "main", cwd=repo).stdout
    make_app_repo(repo, httpd_app("bad", extra='RUN ["/bin/sh", "-c", "echo broken-step-output; exit 3"]\n'), platform)
    out = push(platform, repo)
    assert out.returncode != 0
    assert "broken-step-output" in out.stderr
    assert re.search(r"\[remote rejected\] main -> main \(Dockerfile step 3/\d+ \(RUN", out.stderr)
    assert "non-zero code: 3" in out.stderr
    assert platform.git("ls-remote", "dockyard", "main", cwd=repo).stdout == good_ref
    assert platform.curl(name) == (200, "good")


def test_from_an_image_not_in_the_engine_names_the_stack_image(platform, tmp_path):
    # an official image is admitted by the default pull pattern; this machine reaches no registry
    name, repo = new_app(platform, tmp_path, {"Dockerfile": "FROM python:3.11-slim\nCMD python -m http.server $PORT\n"})
    out = push(platform, repo)
    assert out.returncode != 0
    said = " ".join(out.stderr.split())
    assert "FROM python:3.11-slim" in said and "pulling it failed" in said and "no registry" in said, said
    assert "DOCKYARD_REGISTRY_MIRROR" in said and "dockyard/stack:bookworm" in said, said


def test_app_that_crashes_at_start_fails_the_push_and_old_release_keeps_serving(platform, tmp_path):
    name, repo = new_app(platform, tmp_path, httpd_app("stable"))
    push(platform, repo, check=True)
    crash = {"Dockerfile": "FROM dockyard-test/busybox:1\n"
                           'CMD ["/bin/sh", "-c", "echo about-to-crash; echo oops >&2; exit 7"]\n'}
    make_app_repo(repo, crash, platform)
    out = push(platform, repo)
    assert out.returncode != 0
    assert "exited with code 7" in out.stderr and "about-to-crash" in out.stderr and "oops" in out.stderr
    assert platform.curl(name) == (200, "stable")
    lines = {l.split()[0]: l for l in platform.cli("releases", "-a", name).stdout.splitlines()[1:]}
    assert "failed" in lines["v2"] and "(current)" in lines["v1"] and "(current)" not in lines["v2"]


def test_app_that_never_listens_fails_with_the_port_hint(platform, tmp_path):
    name, repo = new_app(platform, tmp_path, {"Dockerfile": "FROM dockyard-test/busybox:1\nCMD [\"sleep\", \"3600\"]\n"})
    out = push(platform, repo)
    assert out.returncode != 0
    assert "did not answer HTTP on 0.0.0.0:$PORT (5000) within 8 s" in out.stderr
    assert platform.containers(name) == []


def test_other_branches_are_refused_naming_the_deploy_branches(platform, tmp_path):
    name, repo = new_app(platform, tmp_path, httpd_app("x"))
    platform.git("checkout", "-q", "-b", "feature", cwd=repo)
    out = push(platform, repo, ref="feature")
    assert out.returncode != 0 and "only main or master deploy" in out.stderr


def test_unknown_host_gets_a_404_that_lists_no_apps(platform, tmp_path):
    name, repo = new_app(platform, tmp_path, httpd_app("secret-app"))
    push(platform, repo, check=True)
    code, body = platform.curl("", host=f"nope.{platform.domain}")
    assert code == 404
    assert f"nope.{platform.domain}" in body and "apps:create" in body
    assert name not in body


def test_concurrent_pushes_to_one_app_wait_for_each_other(platform, tmp_path):
    name, repo = new_app(platform, tmp_path, httpd_app("a", extra='RUN ["/bin/sh", "-c", "sleep 3"]\n'))
    clone = tmp_path / "clone"
    run(["cp", "-a", str(repo), str(clone)])
    make_app_repo(clone, {"index.html": "b"}, platform)
    results = {}

    def go(key, path):
        results[key] = push(platform, path)

    t1 = threading.Thread(target=go, args=("a", repo))
    t1.start()
    time.sleep(1.0)
    go("b", clone)
    t1.join(timeout=600)
    assert results["a"].returncode == 0
    # The second push waited for the first, then was refused because main moved under it.
    assert "Waiting for a deploy" in results["b"].stderr
    assert results["b"].returncode != 0 and "moved while you pushed" in results["b"].stderr


def test_destroy_removes_containers_and_route(platform, tmp_path):
    name, repo = new_app(platform, tmp_path, httpd_app("bye"))
    push(platform, repo, check=True)
    out = platform.cli("apps:destroy", "-a", name, check=False)
    assert out.returncode != 0 and f"--confirm {name}" in out.stderr
    platform.cli("apps:destroy", "-a", name, "--confirm", name)
    assert platform.curl(name)[0] == 404
    assert platform.containers(name) == []


def test_reconciler_replaces_a_removed_container(platform, tmp_path):
    name, repo = new_app(platform, tmp_path, httpd_app("self-healing"))
    push(platform, repo, check=True)
    cid = platform.containers(name, running_only=True)[0]
    run(["docker", "rm", "-f", cid])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and platform.curl(name) != (200, "self-healing"):
        time.sleep(0.5)
    assert platform.curl(name) == (200, "self-healing")


def test_logs_show_platform_events_and_app_output(platform, tmp_path):
    name, repo = new_app(platform, tmp_path, httpd_app("logged"))
    push(platform, repo, check=True)
    platform.curl(name)
    out = platform.cli("logs", "-a", name).stdout
    assert "dockyard[api]: Deployed v1" in out


def test_two_instances_run_side_by_side(platform, tmp_path):
    other = start_platform(tmp_path / "second")
    try:
        assert other.api_port != platform.api_port
        name = unique_app("twin")
        for p, text in ((platform, "first"), (other, "second")):
            repo = make_app_repo(tmp_path / f"{p.name}-{name}", httpd_app(text), p)
            p.cli("apps:create", name, cwd=repo)
            push(p, repo, check=True)
        assert platform.curl(name) == (200, "first")
        assert other.curl(name) == (200, "second")
    finally:
        stop_platform(other)
