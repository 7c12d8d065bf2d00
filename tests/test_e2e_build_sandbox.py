"""Tenants' Dockerfiles build in a sandbox (docs/build-sandbox.md): an engine of the building
user's own, holding only images that user may use, on a network without the host, the
platform's networks or other tenants. `mallory`, a plain user, attacks `victor`'s app and the
platform through her Dockerfiles, as a second user against one real platform; then a normal
Dockerfile app of hers still deploys and redeploys."""
from __future__ import annotations

import contextlib
import http.server
import ipaddress
import json
import re
import secrets
import subprocess
import threading
import time
from pathlib import Path

import pytest

from .conftest import BUSYBOX_BASE, httpd_app, make_app_repo, run, start_platform, stop_platform, unique_app, wait_until
from .test_e2e_access import As, new_user

pytestmark = pytest.mark.e2e
STACK = "dockyard/stack:bookworm"


@pytest.fixture(scope="module")
def packs(tmp_path_factory) -> Path:
    """A buildpack the operator allows (DOCKYARD_BUILDPACK_PATHS) whose detect step prints, as its
    name, the step's capability bounding set and its address."""
    root = tmp_path_factory.mktemp("packs")
    probe = root / "probe" / "bin"
    probe.mkdir(parents=True)
    scripts = {"detect": 'echo "PROBE caps=$(grep CapBnd /proc/self/status | cut -f2) addr=$(hostname -i)"\nexit 0\n',
               "compile": "exit 0\n", "release": "echo '---'\n"}
    for name, body in scripts.items():
        (probe / name).write_text("#!/bin/sh\n" + body)
        (probe / name).chmod(0o755)
    return root


@pytest.fixture(scope="module")
def plat(tmp_path_factory, busybox_base, packs):
    p = start_platform(tmp_path_factory.mktemp("sandbox"), DOCKYARD_BUILDPACK_PATHS=str(packs))
    try:
        yield p
    finally:
        stop_platform(p)


@pytest.fixture(scope="module")
def world(plat, tmp_path_factory):
    """victor's app, whose image holds a secret file; mallory, another plain user."""
    base = tmp_path_factory.mktemp("sandbox-users")
    victor, mallory = new_user(plat, base, "victor"), new_user(plat, base, "mallory")
    w = {"victor": victor, "mallory": mallory, "secret": "srcsecret-" + secrets.token_hex(6),
         "victim": unique_app("victim")}
    victor.cli("apps:create", w["victim"])
    files = {**httpd_app("victor's app\n", extra="COPY secret.txt /app/secret.txt\n"), "secret.txt": w["secret"] + "\n"}
    repo = make_app_repo(base / "victim", files, plat)
    assert "is live" in victor.git("push", f"{plat.api}/{w['victim']}.git", "HEAD:main", cwd=repo).stderr
    w["image"] = victor.api("GET", f"/apps/{w['victim']}/releases").json()[-1]["image"]
    assert w["image"].startswith(f"{plat.name}/{w['victim']}:"), w["image"]
    return w


def push(user: As, plat, app: str, repo: Path, check: bool = False):
    return user.git("push", f"{plat.api}/{app}.git", "HEAD:refs/heads/main", cwd=repo, check=check)


def attempt(w, plat, tmp: Path, what: str, files: dict[str, str]):
    """mallory pushes `files` as a new app of hers; returns the push (the app is destroyed)."""
    m = w["mallory"]
    app = unique_app("atk")
    m.cli("apps:create", app)
    try:
        return push(m, plat, app, make_app_repo(tmp / app, files, plat))
    finally:
        m.cli("apps:destroy", "-a", app, "--confirm", app)


# ---- the parser can be fooled; the sandbox has no such image ------------------------------
def fooling_dockerfiles(image: str) -> dict[str, str]:
    steal = "RUN cat /app/secret.txt\n"
    return {
        "a byte-order mark before FROM": f"\ufeffFROM {image}\n{steal}",
        "FROM \\ + a blank line + the image": f"FROM \\\n\n{image}\n{steal}",
        "# escape= with AS on the next line": f"# escape=`\nFROM {image} `\nAS stolen\n{steal}",
        "a comment inside a continuation": f"FROM \\\n# the base\n{image}\n{steal}",
        "COPY \\ + a blank line + --from=": (f"FROM {BUSYBOX_BASE}\nCOPY \\\n\n--from={image} /app/secret.txt "
                                            "/stolen.txt\nRUN cat /stolen.txt\n"),
    }


@pytest.mark.parametrize("what", list(fooling_dockerfiles("x")))
def test_a_dockerfile_the_parser_misreads_cannot_build_on_another_apps_image(plat, world, tmp_path, what):
    proc = attempt(world, plat, tmp_path, what, {"Dockerfile": fooling_dockerfiles(world["image"])[what]})
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and world["secret"] not in out, (what, out[-2000:])
    # the parsing was fooled (no early refusal): the engine ran the build and failed at the step
    # naming the image, which is simply not in the sandbox's engine (and cannot be pulled there)
    assert "may not use" not in out and "Step 1/" in out and world["image"] in out, (what, out[-2000:])


# ---- ADD URLs are fetched from the sandbox, which reaches no platform service --------------
@pytest.fixture(scope="module")
def host_service(plat):
    """A service of the host on the host's address on a bridge network (the gateway of a network
    this test makes, as docker0's gateway is), answering a secret to anyone who connects."""
    net = f"{plat.name}-probe"
    run(["docker", "network", "create", "--label", f"dockyard.instance={plat.name}", net])
    gateway = run(["docker", "network", "inspect", "-f", "{{(index .IPAM.Config 0).Gateway}}", net]).stdout.strip()
    secret = "hostsecret-" + secrets.token_hex(6)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = f"{secret}\n".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer((gateway, 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{gateway}:{server.server_address[1]}/", secret
    finally:
        server.shutdown()
        server.server_close()
        run(["docker", "network", "rm", net], check=False)


def test_add_urls_cannot_reach_the_api_the_registry_or_the_host(plat, world, tmp_path, host_service):
    url, secret = host_service
    targets = {
        "the API on the host's loopback": f"http://127.0.0.1:{plat.api_port}/healthz",
        "the platform registry's catalogue on the host's loopback": f"http://127.0.0.1:{plat.env['DOCKYARD_REGISTRY_PORT']}/v2/_catalog",
        "a host service on the host's address": url,
    }
    for what, target in targets.items():
        dockerfile = f"FROM {BUSYBOX_BASE}\nADD {target} /fetched\nRUN cat /fetched\n"
        proc = attempt(world, plat, tmp_path, what, {"Dockerfile": dockerfile})
        out = proc.stdout + proc.stderr
        # the ADD step itself failed: nothing was fetched, the step that would print it never ran
        assert proc.returncode != 0 and "Step 2/" in out and "Step 3/" not in out, (what, out[-2000:])
        assert secret not in out and "repositories" not in out and '"status"' not in out, (what, out[-2000:])


# ---- a raw socket in a build sees no other tenant's traffic -------------------------------
BROADCAST = """import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
print("BROADCASTING", flush=True)
end = time.time() + 120
while time.time() < end:
    s.sendto(b"VICTOR-%s" % sys.argv[1].encode(), ("255.255.255.255", 9999))
    time.sleep(0.2)
sys.exit(1)
"""
SNIFF = """import socket, sys, time
try:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
except PermissionError as e:
    sys.exit(print("NO RAW SOCKET:", e, flush=True))
s.settimeout(1)
end, frames, seen = time.time() + 20, 0, set()
while time.time() < end:
    try:
        data = s.recv(65535)
    except socket.timeout:
        continue
    frames += 1
    if b"VICTOR-" in data:
        i = data.index(b"VICTOR-")
        seen.add(data[i:i + 40].decode(errors="replace"))
print("SNIFFED", frames, "frames", " ".join(sorted(seen)) or "and nothing of another tenant", flush=True)
"""


def test_a_raw_socket_in_a_build_sees_no_other_tenants_traffic(plat, world, tmp_path):
    v, m = world["victor"], world["mallory"]
    marker = secrets.token_hex(6)
    loud, sniffer = unique_app("loud"), unique_app("sniff")
    v.cli("apps:create", loud)
    m.cli("apps:create", sniffer)
    loud_repo = make_app_repo(tmp_path / loud, {"Dockerfile": f"FROM {STACK}\nCOPY b.py /b.py\n"
                                                f"RUN python3 /b.py {marker}\n", "b.py": BROADCAST}, plat)
    sniff_repo = make_app_repo(tmp_path / sniffer, {"Dockerfile": f"FROM {STACK}\nUSER root\nCOPY s.py /s.py\n"
                                                    "RUN python3 /s.py\n", "s.py": SNIFF}, plat)
    # victor's build broadcasts on its network until his push is killed (its build is cancelled then);
    # mallory's build sniffs for 20 s meanwhile
    loud_push = subprocess.Popen(["git", "push", f"{plat.api}/{loud}.git", "HEAD:refs/heads/main"], cwd=loud_repo,
                                 env=v.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        seen = []
        for line in loud_push.stdout:
            seen.append(line)
            if "BROADCASTING" in line:
                break
        assert any("BROADCASTING" in line for line in seen), "".join(seen)[-2000:]
        proc = push(m, plat, sniffer, sniff_repo)
    finally:
        loud_push.kill()
        loud_push.wait()
    out = proc.stdout + proc.stderr
    assert marker not in out and "VICTOR-" not in out, out[-2000:]
    # NET_RAW is gone from build steps; and had it not been, victor's builds are in his own sandbox
    assert "NO RAW SOCKET: [Errno 1] Operation not permitted" in out, out[-2000:]


# ---- buildpack steps: a network of their own, no capabilities ------------------------------
def test_buildpack_steps_are_off_the_default_bridge_and_have_no_capabilities(plat, world, tmp_path, packs):
    m = world["mallory"]
    app = unique_app("bp")
    m.cli("apps:create", app)
    m.cli("config:set", f"BUILDPACK_URL={packs / 'probe'}", "-a", app)
    out = push(m, plat, app, make_app_repo(tmp_path / app, {"hello.txt": "x"}, plat)).stderr
    found = [line for line in out.splitlines() if "PROBE caps=" in line]
    assert found, out[-2000:]
    caps = found[0].split("caps=")[1].split()[0]
    addr = ipaddress.ip_address(found[0].split("addr=")[1].split()[0])
    assert int(caps, 16) == 0, found        # NET_RAW included: not even in the bounding set
    default = run(["docker", "network", "inspect", "-f", "{{(index .IPAM.Config 0).Subnet}}", "bridge"]).stdout.strip()
    assert addr not in ipaddress.ip_network(default), (found, default)   # not beside other tenants' containers


# ---- what is allowed still works ------------------------------------------------------------
def test_a_dockerfile_app_deploys_and_redeploys(plat, world, tmp_path):
    m = world["mallory"]
    app = unique_app("fine")
    m.cli("apps:create", app)
    repo = make_app_repo(tmp_path / app, httpd_app("first\n"), plat)
    assert "is live" in push(m, plat, app, repo, check=True).stderr
    assert plat.curl(app) == (200, "first\n")
    # a Dockerfile claiming another app's labels, and an add-on's and a standby's (containers inherit
    # them, and the scheduler finds add-ons by them): the platform's own are stamped over them as the
    # image leaves the sandbox, the others dropped, with no build step of its own in the Dockerfile
    claims = 'LABEL dockyard.app="victim" dockyard.instance="other" dockyard.addon="victims-db" dockyard.standby="x" keep="me"\n'
    since = run(["date", "+%s"]).stdout.strip()
    make_app_repo(repo, httpd_app("second\n", extra=claims), plat)
    proc = push(m, plat, app, repo, check=True)
    assert "is live" in proc.stderr and plat.curl(app) == (200, "second\n")
    # an image this small (2 MB) leaves as one archive: the host's engine loaded it, pulled nothing
    loaded, pulled = (_image_events(since, action) for action in ("load", "pull"))
    assert run(["docker", "image", "inspect", "-f", "{{.Id}}", f"{plat.name}/{app}:v2"]).stdout.strip() in loaded, loaded
    assert not [ref for ref in pulled if f"/{app}:" in ref], pulled
    assert "Step 4/4 : CMD" in proc.stderr and "LABEL dockyard.instance" not in proc.stderr
    ids = sorted(set(run(["docker", "images", "-q", f"{plat.name}/{app}"]).stdout.split()))
    every = [json.loads(run(["docker", "image", "inspect", "-f", "{{json .Config.Labels}}", i]).stdout) for i in ids]
    for labels in every:
        assert labels["dockyard.app"] == app and labels["dockyard.instance"] == plat.name, labels
        assert re.fullmatch(r"[0-9a-f]{12}", labels["dockyard.build"]), labels
        assert not {"dockyard.addon", "dockyard.standby"} & set(labels), labels
    assert any(labels.get("keep") == "me" for labels in every), every   # the tenant's own labels stay
    assert len(ids) == 2, ids
    # a bigger one (over 16 MB) leaves through the sandbox's registry, stamped the same way
    since = run(["date", "+%s"]).stdout.strip()
    make_app_repo(repo, httpd_app("third\n", extra=claims + "RUN head -c 20000000 /dev/urandom > /big\n"), plat)
    assert "is live" in push(m, plat, app, repo, check=True).stderr and plat.curl(app) == (200, "third\n")
    assert any(f"/{plat.name}/{app}:" in ref for ref in _image_events(since, "pull"))
    labels = json.loads(run(["docker", "image", "inspect", "-f", "{{json .Config.Labels}}", f"{plat.name}/{app}:v3"]).stdout)
    assert labels["dockyard.app"] == app and labels["keep"] == "me" and "dockyard.addon" not in labels, labels
    # the image left the sandbox through its registry, under the app's own name only
    images = run(["docker", "images", "--format", "{{.Repository}}", "--filter",
                  f"label=dockyard.instance={plat.name}"]).stdout.split()
    assert images and not any(i.startswith("127.0.0.1:") for i in images), images
    # each user has a sandbox of their own, on a network of its own
    sandboxes = run(["docker", "ps", "--format", "{{.Names}} {{.Networks}}", "--filter",
                     f"label=dockyard.instance={plat.name}", "--filter", "label=dockyard.sandbox"]).stdout.split("\n")
    rows = [r.split() for r in sandboxes if r.strip()]
    assert len(rows) >= 2 and all(name == net for name, net in rows), rows



def _image_events(since: str, action: str) -> list[str]:
    """The host engine's image events of one kind since `since` (epoch seconds): pulled
    references, loaded image ids."""
    time.sleep(1)   # the events of this second are all in before --until
    return run(["docker", "events", "--since", since, "--until", run(["date", "+%s"]).stdout.strip(),
                "--filter", "type=image", "--filter", f"event={action}", "--format", "{{.Actor.ID}}"]).stdout.split()


def test_a_build_failing_after_a_step_moved_out_early_leaves_nothing_and_the_app_serving(plat, world, tmp_path):
    m = world["mallory"]
    app = unique_app("early")
    m.cli("apps:create", app)
    repo = make_app_repo(tmp_path / app, httpd_app("first\n"), plat)
    assert "is live" in push(m, plat, app, repo, check=True).stderr
    mine = ["docker", "images", "-q", "--no-trunc", "--filter", f"label=dockyard.app={app}",
            "--filter", f"label=dockyard.instance={plat.name}"]
    kept = sorted(run(mine).stdout.split())
    since = run(["date", "+%s"]).stdout.strip()
    # a step adding 20 MB leaves the sandbox while the step after it runs, then that step fails
    # (the COPY before it is too small to move early: the final image's trip carries it)
    make_app_repo(repo, httpd_app("second\n", extra="RUN head -c 20000000 /dev/urandom > /big\nRUN sleep 6; exit 3\n"),
                  plat)
    proc = push(m, plat, app, repo)
    assert proc.returncode != 0 and "Step 4/5 : RUN" in proc.stderr and "non-zero code: 3" in proc.stderr, proc.stderr
    pulls = run(["docker", "events", "--since", since, "--until", run(["date", "+%s"]).stdout.strip(),
                 "--filter", "type=image", "--filter", "event=pull", "--format", "{{.Actor.ID}}"]).stdout.split()
    assert any(f"/{plat.name}/{app}:" in ref and "-ahead1" in ref for ref in pulls), pulls
    assert plat.curl(app) == (200, "first\n")          # the failed build changed nothing that serves
    # what moved early is removed again (in the background): no image, tag or name of it stays
    wait_until(lambda: sorted(run(mine).stdout.split()) == kept, 30, "the early image to go")
    names = run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"]).stdout.split()
    assert not [n for n in names if f"/{app}:" in n and "-ahead" in n.rpartition(":")[2]], names


def test_a_tidy_leaves_older_builds_images_while_a_build_runs_in_the_sandbox(plat, world):
    """A build's tidy (2 s after it) removes the app's older builds' images from the sandbox; a
    build running then may be about to use one of them from its cache (it failed with "unable to
    find image" in a run of five quick deploys). The tidy removes them only while no build runs."""
    import fcntl
    from controller.scheduler.docker_sandbox import DockerSandboxes, _Sandbox
    from controller.scheduler.sandbox_policy import SOCKET_DIR
    [name, *_] = run(["docker", "ps", "--format", "{{.Names}}", "--filter", f"label=dockyard.instance={plat.name}",
                      "--filter", "label=dockyard.sandbox"]).stdout.split()
    sock_dir = run(["docker", "inspect", "-f", f'{{{{range .Mounts}}}}{{{{if eq .Destination "{SOCKET_DIR}"}}}}'
                    "{{.Source}}{{end}}{{end}}", name]).stdout.strip()
    sandbox = _Sandbox(f"unix://{sock_dir}/docker.sock", 0, "1.41", 0.0)
    repo = f"{plat.name}/tidy-{secrets.token_hex(3)}"
    older, newer = f"{repo}:build-0123456789ab-100", f"{repo}:build-ba9876543210-200"
    with contextlib.closing(sandbox.api()) as api:
        base = api.inspect_image(BUSYBOX_BASE)["Id"]
        for tag in (older, newer):
            api.tag(base, repo, tag.rpartition(":")[2])

        def tags() -> set[str]:
            return {t for img in api.images(name=repo) for t in img.get("RepoTags") or []}

        with open(sandbox.builds_lock, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_SH)        # a build is running in the sandbox
            DockerSandboxes._tidy(sandbox, newer, [])
            assert tags() == {older, newer}
        DockerSandboxes._tidy(sandbox, newer, [])   # none runs: the older build's image goes
        assert tags() == {newer}
        api.remove_image(newer)
