"""Access and security end to end, on a real platform (`make up`, gunicorn, sshd, Docker, nginx), driven
with the real CLI, git, ssh/ssh-keygen and curl: users and tokens, per-app access on every
API route and on git push (HTTP and SSH), the audit log, container isolation, and hostile
input. The module runs its own instance (DOCKYARD_MAX_PUSH_MB=1 and DOCKYARD_BUILD_MEMORY_MB=128,
for the push-limit and out-of-memory build tests)."""
from __future__ import annotations

import concurrent.futures
import json
import os
import re
import secrets
import stat
import subprocess
from pathlib import Path

import pytest
import requests

from .conftest import BUSYBOX_BASE, ROOT, httpd_app, make_app_repo, run, start_platform, stop_platform, unique_app

pytestmark = pytest.mark.e2e
CASES: dict[str, int] = {}     # hostile-input cases run, by kind (printed at the end of the module)


def count(kind: str, n: int = 1) -> None:
    CASES[kind] = CASES.get(kind, 0) + n


@pytest.fixture(scope="module")
def plat(tmp_path_factory, busybox_base):
    p = start_platform(tmp_path_factory.mktemp("access"), DOCKYARD_MAX_PUSH_MB="1", DOCKYARD_BUILD_MEMORY_MB="128")
    try:
        yield p
    finally:
        stop_platform(p)
        if CASES:
            print("\nhostile-input cases run: " + json.dumps(CASES, sort_keys=True)
                  + f" total={sum(CASES.values())}")


class As:
    """One user of the platform, with their own HOME (so their own ~/.netrc) and SSH key."""

    def __init__(self, p, name: str, token: str, base: Path):
        self.p, self.name, self.token = p, name, token
        self.home = base / f"home-{name}"
        (self.home / ".ssh").mkdir(parents=True, exist_ok=True)
        self.env = {**p.env, "HOME": str(self.home)}
        self.key = self.home / ".ssh" / "id_ed25519"
        if not self.key.exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@test", "-f", str(self.key)])
        self.env["GIT_SSH_COMMAND"] = (f"ssh -i {self.key} -o IdentitiesOnly=yes -o BatchMode=yes "
                                       f"-o UserKnownHostsFile={base / 'known_hosts'} -o StrictHostKeyChecking=accept-new")
        self.cli("login", "--api", p.api, "--token", token)

    def cli(self, *args, cwd=None, check=True):
        return run([str(ROOT / ".venv/bin/dockyard"), *args], cwd=cwd or self.home, env=self.env, check=check,
                   timeout=600)

    def git(self, *args, cwd, check=True):
        return run(["git", *args], cwd=cwd, env=self.env, check=check, timeout=600)

    def api(self, method, path, **kw):
        return requests.request(method, self.p.api + path, headers={"Authorization": f"Bearer {self.token}"},
                                timeout=60, **kw)


def new_user(p, base: Path, name: str | None = None) -> As:
    name = name or f"u{secrets.token_hex(3)}"
    out = p.cli("users:add", name).stdout.strip().splitlines()
    return As(p, name, out[-1].strip(), base)


def admin(p, base: Path) -> As:
    return As(p, "admin", p.token(), base)


# ---- users and tokens ----------------------------------------------------------------
def test_users_tokens_rotation_and_logout(plat, tmp_path):
    alice = new_user(plat, tmp_path, "alice" + secrets.token_hex(2))
    netrc = alice.home / ".netrc"
    assert stat.S_IMODE(netrc.stat().st_mode) == 0o600 and alice.token in netrc.read_text()
    assert alice.cli("auth:whoami").stdout.strip() == alice.name
    assert alice.cli("auth:token").stdout.strip() == alice.token
    # Admin-only commands say so.
    for args in (["users"], ["users:add", "mallory"], ["audit"], ["auth:token", "--user", "admin"]):
        proc = alice.cli(*args, check=False)
        assert proc.returncode == 1 and "Only an admin may" in proc.stderr, (args, proc.stderr)
    assert alice.name in plat.cli("users").stdout
    # Tokens are stored hashed only.
    db = (plat.home / "dockyard.db").read_bytes()
    assert alice.token.encode() not in db
    # An admin mints another token for alice: it works, printed on the last line.
    minted = plat.cli("auth:token", "--user", alice.name).stdout.strip().splitlines()[-1]
    assert requests.get(plat.api + "/account", headers={"Authorization": f"Bearer {minted}"}).json()["name"] == alice.name
    # Rotation: the old token stops working at once; ~/.netrc holds the new one.
    new = alice.cli("auth:token", "--rotate").stdout.strip().splitlines()[-1]
    assert new != alice.token and new in netrc.read_text() and alice.token not in netrc.read_text()
    assert requests.get(plat.api + "/account", headers={"Authorization": f"Bearer {alice.token}"}).status_code == 401
    assert alice.cli("auth:whoami").stdout.strip() == alice.name
    # Logout revokes server-side and removes the netrc entry; the minted token still works.
    out = alice.cli("auth:logout").stdout
    assert "token revoked" in out
    assert "127.0.0.1" not in netrc.read_text()
    assert requests.get(plat.api + "/account", headers={"Authorization": f"Bearer {new}"}).status_code == 401
    proc = alice.cli("auth:whoami", check=False)
    assert proc.returncode == 1 and "dockyard login" in proc.stderr
    # Removing a user revokes everything they had.
    proc = plat.cli("users:remove", alice.name, check=False)
    assert proc.returncode == 1 and f"--confirm {alice.name}" in proc.stderr
    plat.cli("users:remove", alice.name, "--confirm", alice.name)
    assert requests.get(plat.api + "/account", headers={"Authorization": f"Bearer {minted}"}).status_code == 401
    proc = plat.cli("users:remove", "admin", "--confirm", "admin", check=False)
    assert "cannot remove yourself" in proc.stderr


def api_routes_with_app():
    """Every API rule that names an app, from the real Flask app's url_map (so a new
    blueprint is covered without editing this test)."""
    from controller.daemons.webapp import create_app
    from controller.settings import Settings
    app = create_app(Settings(home=Path("/nonexistent")))
    out = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/apps/<name>"):
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            path = rule.rule
            for arg in rule.arguments - {"name"}:
                path = re.sub(rf"<(?:[a-z]+:)?{arg}>", "web" if arg == "ptype" else "1", path)
            out.append((method, path))
    return out


def test_per_app_access_on_every_route_and_git_http(plat, tmp_path):
    olga, bob = new_user(plat, tmp_path), new_user(plat, tmp_path)
    name = unique_app("acl")
    repo = make_app_repo(tmp_path / name, httpd_app("owned"), plat)
    olga.cli("apps:create", name, cwd=repo)
    olga.cli("git:remote", "-a", name, cwd=repo)
    assert "is live" in olga.git("push", "dockyard", "main", cwd=repo).stderr
    olga.cli("config:set", "SECRET_TOKEN=hunter2-value", "-a", name)

    routes = api_routes_with_app()
    assert len(routes) >= 15, routes   # apps, config, formation, dynos, releases, builds, logs, collaborators
    for method, rule in routes:
        path = rule.replace("<name>", name)
        body = {} if method in ("POST", "PATCH") else None
        r = bob.api(method, path, json=body)
        assert r.status_code == 404, (method, path, r.status_code, r.text)
        assert "not found" in r.json()["message"] and "hunter2" not in r.text
        count("another user's token, every app route")
    assert name not in bob.cli("apps").stdout
    # git over HTTP with bob's token: the same "no such app".
    clone = bob.git("clone", f"{plat.api}/{name}.git", str(tmp_path / "stolen"), cwd=tmp_path, check=False)
    assert clone.returncode != 0 and f"No app named '{name}'" in clone.stderr
    bob.git("remote", "add", "bob", f"{plat.api}/{name}.git", cwd=repo)
    push = bob.git("push", "bob", "main", cwd=repo, check=False)
    assert push.returncode != 0 and "No app named" in push.stderr

    # Collaborator: may deploy, configure and scale; owner-only actions are a clear 403.
    proc = bob.cli("access:add", bob.name, "-a", name, check=False)
    assert proc.returncode == 1 and "not found" in proc.stderr
    olga.cli("access:add", bob.name, "-a", name)
    assert f"{bob.name:<24} collaborator" in olga.cli("access", "-a", name).stdout
    assert bob.cli("config:get", "SECRET_TOKEN", "-a", name).stdout.strip() == "hunter2-value"
    bob.cli("config:set", "FROM_BOB=1", "-a", name)
    make_app_repo(repo, {"index.html": "by bob"}, plat)
    assert "is live" in bob.git("push", "bob", "main", cwd=repo).stderr
    assert plat.curl(name) == (200, "by bob")
    for args, what in ((["apps:destroy", "-a", name, "--confirm", name], "destroy"),
                       (["access:add", olga.name, "-a", name], "access:add"),
                       (["access:remove", bob.name, "-a", name], "access:remove")):
        proc = bob.cli(*args, check=False)
        assert proc.returncode == 1 and f"Only the owner of {name} may do that" in proc.stderr, (what, proc.stderr)
    olga.cli("access:remove", bob.name, "-a", name)
    assert bob.api("GET", f"/apps/{name}").status_code == 404
    assert "No app named" in bob.git("push", "bob", "main", cwd=repo, check=False).stderr


# ---- git over SSH ----------------------------------------------------------------------
def test_git_push_over_ssh(plat, tmp_path):
    olga, bob = new_user(plat, tmp_path), new_user(plat, tmp_path)
    name = unique_app("ssh")
    repo = make_app_repo(tmp_path / name, httpd_app("over ssh v1"), plat)
    olga.cli("apps:create", name, cwd=repo)
    # No key yet: Permission denied, which key was offered, how to add one.
    url = olga.cli("git:remote", "-a", name, "--ssh", cwd=repo).stdout.splitlines()[0]
    assert url == f"ssh://git@127.0.0.1:{plat.env['DOCKYARD_SSH_PORT']}/{name}.git"
    assert olga.git("remote", "get-url", "dockyard", cwd=repo).stdout.strip() == url
    fp = run(["ssh-keygen", "-lf", str(olga.key) + ".pub"]).stdout.split()[1]
    denied = olga.git("push", "dockyard", "main", cwd=repo, check=False)
    assert denied.returncode != 0
    assert "Permission denied" in denied.stderr and fp in denied.stderr
    assert "dockyard keys:add ~/.ssh/id_ed25519.pub" in denied.stderr

    out = olga.cli("keys:add", str(olga.key) + ".pub").stdout
    assert fp in out and fp in olga.cli("keys").stdout
    keys_file = plat.home / "ssh" / "authorized_keys"
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
    line = [ln for ln in keys_file.read_text().splitlines() if not ln.startswith("#")][0]
    assert re.fullmatch(r'command="\S+ -I \S+/controller/git/ssh_command\.py \S+ \d+",restrict ssh-ed25519 \S+', line), line
    # Same output and checks as HTTP: build lines, health check, live URL; then served.
    pushed = olga.git("push", "dockyard", "main", cwd=repo)
    assert "remote: -----> Building" in pushed.stderr and "check passed" in pushed.stderr
    assert "v1 is live" in pushed.stderr
    assert plat.curl(name) == (200, "over ssh v1")
    # Same refusals as HTTP: other branches, failed builds keep the old release.
    other = olga.git("push", "dockyard", "main:refs/heads/feature", cwd=repo, check=False)
    assert "only main or master deploy" in other.stderr
    make_app_repo(repo, {"Dockerfile": "FROM dockyard-test/nonexistent:1\n"}, plat)
    bad = olga.git("push", "dockyard", "main", cwd=repo, check=False)
    assert bad.returncode != 0 and "[remote rejected] main" in bad.stderr
    assert plat.curl(name) == (200, "over ssh v1")
    olga.git("reset", "-q", "--hard", "HEAD~1", cwd=repo)
    # Fetch/clone over SSH works for people with access.
    clone = olga.git("clone", url, str(tmp_path / "clone"), cwd=tmp_path)
    assert (tmp_path / "clone" / "index.html").read_text() == "over ssh v1", clone.stderr

    # bob's registered key gets "No app named" (no leak) until he is a collaborator.
    bob.cli("keys:add", str(bob.key) + ".pub", "--name", "laptop")
    bob.git("remote", "add", "bobssh", url, cwd=repo)
    no = bob.git("push", "bobssh", "main", cwd=repo, check=False)
    assert no.returncode != 0 and f"No app named '{name}'" in no.stderr
    olga.cli("access:add", bob.name, "-a", name)
    make_app_repo(repo, {"index.html": "bob over ssh"}, plat)
    assert "is live" in bob.git("push", "bobssh", "main", cwd=repo).stderr
    assert plat.curl(name) == (200, "bob over ssh")
    # A removed key no longer works.
    bob.cli("keys:remove", "laptop")
    assert "Permission denied" in bob.git("push", "bobssh", "main", cwd=repo, check=False).stderr

    # The shell and other commands are refused; sessions run as the unprivileged `git` user.
    ssh = olga.env["GIT_SSH_COMMAND"].split() + ["-p", plat.env["DOCKYARD_SSH_PORT"], "git@127.0.0.1"]
    for cmd in ["id", f"cat {plat.home}/dockyard.db", f"git-receive-pack '/{name}.git'; id",
                f"git-receive-pack '/../../{name}.git'", "git-upload-archive '/x.git'"]:
        proc = run(ssh + [cmd], check=False, env=olga.env, stdin=subprocess.DEVNULL)
        assert proc.returncode != 0 and "uid=" not in proc.stdout, (cmd, proc.stdout)
        assert "Only `git push` and `git fetch`" in proc.stderr, (cmd, proc.stderr)
        count("ssh: forced command refuses other commands")
    for user in ("root", "admin"):
        proc = run(ssh[:-1] + [f"{user}@127.0.0.1", "true"], check=False, env=olga.env, stdin=subprocess.DEVNULL)
        assert proc.returncode == 255 and "Permission denied" in proc.stderr
    # The session user cannot read the platform's state (the gateway does the work as root).
    proc = run(["su", "git", "-s", "/bin/sh", "-c", f"cat {plat.home}/dockyard.db"], check=False)
    assert proc.returncode != 0 and "Permission denied" in proc.stderr
    config = (plat.home / "ssh" / "sshd_config").read_text()
    assert "AllowUsers git" in config and "PasswordAuthentication no" in config and "ListenAddress 127.0.0.1" in config


# ---- audit log and secrets -------------------------------------------------------------
def test_audit_log_records_who_did_what_without_values(plat, tmp_path):
    olga, bob = new_user(plat, tmp_path), new_user(plat, tmp_path)
    name = unique_app("aud")
    repo = make_app_repo(tmp_path / name, httpd_app("audited"), plat)
    olga.cli("apps:create", name, cwd=repo)
    olga.cli("git:remote", "-a", name, cwd=repo)
    olga.git("push", "dockyard", "main", cwd=repo)
    secret = "s3cr3t-" + secrets.token_hex(8)
    olga.cli("config:set", f"API_KEY={secret}", "PLAIN=x", "-a", name)
    olga.cli("config:unset", "PLAIN", "-a", name)
    olga.cli("ps:scale", "web=2", "-a", name)
    olga.cli("access:add", bob.name, "-a", name)
    olga.cli("keys:add", str(olga.key) + ".pub")
    bob.cli("apps:destroy", "-a", name, "--confirm", name, check=False)   # refused: recorded with 403

    rows = json.loads(plat.cli("audit", "--json", "-n", "500").stdout)
    mine = [r for r in rows if r["actor"] in (olga.name, bob.name) or r["detail"].get("user") in (olga.name, bob.name)]
    by_action = {}
    for r in mine:
        by_action.setdefault(r["action"], []).append(r)
    assert by_action["apps:create"][0]["app"] == name and by_action["apps:create"][0]["actor"] == olga.name
    deploy = by_action["deploy"][0]
    assert deploy["app"] == name and deploy["detail"]["via"] == "http" and deploy["detail"]["result"] == "succeeded"
    sets = [r["detail"] for r in by_action["config:set"]]
    assert {"set": ["API_KEY", "PLAIN"], "unset": []} in sets and {"set": [], "unset": ["PLAIN"]} in sets
    assert by_action["ps:scale"][0]["detail"]["updates"] == [{"type": "web", "quantity": 2}]
    assert by_action["access:add"][0]["detail"] == {"user": bob.name}
    assert by_action["keys:add"][0]["detail"]["fingerprint"].startswith("SHA256:")
    assert any(r["detail"].get("user") == olga.name for r in by_action["users:add"])
    refused = by_action["apps:destroy"][0]
    assert refused["actor"] == bob.name and refused["status"] == 403
    text = plat.cli("audit").stdout
    assert f"{olga.name}" in text and "config:set" in text
    # The secret value is in none of: the audit log, the API's release/build/log answers, the
    # platform's own log files, error messages.
    assert secret not in json.dumps(rows) and secret not in text
    for path in (f"/apps/{name}/releases", f"/apps/{name}/builds", f"/apps/{name}/logs?lines=1000",
                 f"/apps/{name}", f"/apps/{name}/dynos"):
        assert secret not in olga.api("GET", path).text, path
    for log in (plat.home / "logs").glob("*.log"):
        assert secret.encode() not in log.read_bytes(), log
    r = olga.api("PATCH", f"/apps/{name}/config-vars", json={"BAD KEY": secret})
    assert r.status_code == 400 and secret not in r.text and "config var name" in r.text
    # Config is shown to people with access only (bob, a collaborator, may read it).
    outsider = new_user(plat, tmp_path)
    assert outsider.api("GET", f"/apps/{name}/config-vars").status_code == 404
    proc = outsider.cli("config", "-a", name, check=False)
    assert proc.returncode == 1 and secret not in proc.stdout + proc.stderr


# ---- isolation of app containers ------------------------------------------------------------
def _inspect(cid):
    return json.loads(run(["docker", "inspect", cid]).stdout)[0]


def _apps_network_here(plat) -> str:
    """The network this engine's settings make the platform's app containers join
    (core/isolation.py): the default bridge when its ICC is off, unless the platform is told
    to keep its own."""
    opts = json.loads(run(["docker", "network", "inspect", "bridge"]).stdout)[0]["Options"]
    if plat.env.get("DOCKYARD_APPS_NETWORK") != "own" and opts.get("com.docker.network.bridge.enable_icc") == "false":
        return "bridge"
    return f"{plat.name}-apps"


@pytest.mark.parametrize("choice", ["auto", "own"])
def test_app_containers_are_hardened_and_cannot_reach_each_other(plat, tmp_path, choice):
    if choice == "own":     # a platform of its own, told to keep its own apps network whatever the engine
        own = start_platform(tmp_path / "own", DOCKYARD_APPS_NETWORK="own")
        try:
            _hardened_and_apart(own, tmp_path)
        finally:
            stop_platform(own)
    else:
        _hardened_and_apart(plat, tmp_path)


def _hardened_and_apart(plat, tmp_path):
    a, b = unique_app("isoa"), unique_app("isob")
    repo_a = make_app_repo(tmp_path / a, httpd_app("app a"), plat)
    repo_b = make_app_repo(tmp_path / b, {   # the stack image: python, user app (uid 1000)
        "Dockerfile": "FROM dockyard/stack:bookworm\nWORKDIR /app\nCOPY index.html /app/index.html\n"
                      'CMD ["/bin/sh", "-c", "exec python3 -m http.server $PORT"]\n',
        "index.html": "app b"}, plat)
    for name, repo in ((a, repo_a), (b, repo_b)):
        plat.cli("apps:create", name, cwd=repo)
        plat.cli("git:remote", "-a", name, cwd=repo)
        assert "is live" in plat.git("push", "dockyard", "main", cwd=repo).stderr
    # The router reaches both.
    assert plat.curl(a) == (200, "app a") and plat.curl(b) == (200, "app b")
    ca, cb = plat.containers(a, running_only=True)[0], plat.containers(b, running_only=True)[0]
    ia, ib = _inspect(ca), _inspect(cb)
    for info in (ia, ib):
        hc = info["HostConfig"]
        assert hc["CapDrop"] == ["ALL"] and not hc["CapAdd"] and hc["Privileged"] is False
        assert "no-new-privileges" in hc["SecurityOpt"]
        assert hc["PidsLimit"] == 1024 and hc["Memory"] > 0 and hc["NanoCpus"] == 10**9
        assert not hc["Binds"] and not [m for m in info["Mounts"] if m.get("Type") == "bind"]
        assert "docker.sock" not in json.dumps(info)
        assert all(p["HostIp"] == "127.0.0.1" for p in hc["PortBindings"][f"{plat.env.get('DOCKYARD_APP_PORT', '5000')}/tcp"])
    apps_net = _apps_network_here(plat)
    assert ia["HostConfig"]["NetworkMode"] == ib["HostConfig"]["NetworkMode"] == apps_net
    net = json.loads(run(["docker", "network", "inspect", apps_net]).stdout)[0]
    assert net["Options"]["com.docker.network.bridge.enable_icc"] == "false"
    if apps_net != "bridge":
        assert net["Labels"]["dockyard.instance"] == plat.name
    # The stack-based app runs as `app` (uid 1000); the FROM scratch one (no users, root-owned
    # dirs the app may write to) as root without any capability.
    assert ib["Config"]["User"] == "1000:1000" and ia["Config"]["User"] == ""
    assert run(["docker", "exec", cb, "id", "-un"]).stdout.strip() == "app"
    assert run(["docker", "exec", ca, "grep", "^CapEff", "/proc/self/status"]).stdout.split()[1] == "0" * 16
    # A cannot reach B's container IP (nor B A's); each still answers itself.
    ip_a = ia["NetworkSettings"]["Networks"][apps_net]["IPAddress"]
    ip_b = ib["NetworkSettings"]["Networks"][apps_net]["IPAddress"]
    request = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {ip} 5000"
    self_check = run(["docker", "exec", ca, "sh", "-c", request.format(ip="127.0.0.1")], check=False)
    assert "HTTP/1" in self_check.stdout
    cross = run(["docker", "exec", ca, "sh", "-c", request.format(ip=ip_b)], check=False)
    assert "HTTP/1" not in cross.stdout and "app b" not in cross.stdout, cross
    reverse = run(["docker", "exec", cb, "python3", "-c",
                   f"import socket; s=socket.socket(); s.settimeout(3); s.connect(('{ip_a}', 5000))"], check=False)
    assert reverse.returncode != 0 and ("timed out" in reverse.stderr or "refused" in reverse.stderr), reverse
    # No capability: even as root, privileged operations fail inside (changing a file's owner).
    chown = run(["docker", "exec", ca, "sh", "-c", "touch /tmp/f && chown 1234 /tmp/f"], check=False)
    assert chown.returncode != 0 and "Operation not permitted" in chown.stderr, chown


# ---- hostile input ------------------------------------------------------------------------
def pkt(data: bytes) -> bytes:
    return f"{len(data) + 4:04x}".encode() + data


def repo_state(plat, name) -> tuple[str, list[str]]:
    """(the deploy branch's commit, every file in the bare repo except objects under pack/
    that git itself keeps) as the server holds them."""
    path = plat.home / "repos" / f"{name}.git"
    ref = run(["git", "--git-dir", str(path), "for-each-ref"], check=False).stdout
    files = sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())
    return ref, files


def receive_pack(plat, name, body: bytes, token: str):
    return requests.post(f"{plat.api}/{name}.git/git-receive-pack", data=body, timeout=60,
                         headers={"Content-Type": "application/x-git-receive-pack-request",
                                  "Authorization": f"Bearer {token}"})


def healthy(plat) -> bool:
    r = requests.get(plat.api + "/apps", headers={"Authorization": f"Bearer {plat.token()}"}, timeout=30)
    return r.status_code == 200


def test_fuzz_git_smart_http_nothing_crashes_or_moves(plat, tmp_path):
    from hypothesis import HealthCheck, given, settings, strategies as st
    name = unique_app("fuzz")
    repo = make_app_repo(tmp_path / name, httpd_app("fuzz v1"), plat)
    plat.cli("apps:create", name, cwd=repo)
    plat.cli("git:remote", "-a", name, cwd=repo)
    plat.git("push", "dockyard", "main", cwd=repo)
    old = plat.git("rev-parse", "HEAD", cwd=repo).stdout.strip()
    make_app_repo(repo, {"index.html": "fuzz v2 never deployed"}, plat)
    new = plat.git("rev-parse", "HEAD", cwd=repo).stdout.strip()
    pack = run(["git", "pack-objects", "--stdout", "--revs"], cwd=repo, input=f"{new}\n^{old}\n".encode(),
               text=False).stdout
    assert pack.startswith(b"PACK")
    before = repo_state(plat, name)
    token = plat.token()
    command = pkt(f"{old} {new} refs/heads/main\0report-status side-band-64k\n".encode()) + b"0000"

    def check(resp) -> None:
        assert resp.status_code < 500 or resp.status_code == 503, resp.status_code
        assert repo_state(plat, name)[0] == before[0]

    # 1. Truncated packs: every cut of the real pack, at 40 offsets, is refused; nothing moves.
    cuts = sorted({int(len(pack) * i / 40) for i in range(40)} | {12, len(pack) - 20, len(pack) - 1})
    for cut in cuts:
        resp = receive_pack(plat, name, command + pack[:cut], token)
        check(resp)
        assert b"unpack ok" not in resp.content or b"ng refs/heads/main" in resp.content
        count("truncated pack")
    # 2. Corrupted packs (one byte flipped) at 20 positions.
    for i in range(20):
        pos = 12 + (len(pack) - 12) * i // 20
        bad = pack[:pos] + bytes([pack[pos] ^ 0xFF]) + pack[pos + 1:]
        check(receive_pack(plat, name, command + bad, token))
        count("corrupted pack")

    # 3. hypothesis: malformed pkt-lines, random bodies, random framing.
    pktline = st.one_of(
        st.binary(max_size=64),
        st.builds(lambda d: pkt(d), st.binary(max_size=200)),
        st.builds(lambda n, d: f"{n:04x}".encode() + d, st.integers(0, 0xFFFF), st.binary(max_size=50)),
        st.sampled_from([b"0000", b"0001", b"0002", b"0003", b"ffff", b"zzzz", b"PACK\x00\x00\x00\x02"]),
        st.builds(lambda ref: pkt(f"{old} {new} ".encode() + ref + b"\0report-status\n"),
                  st.binary(min_size=1, max_size=40)))

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(st.lists(pktline, max_size=6), st.booleans())
    def fuzz(parts, with_pack):
        body = b"".join(parts) + (pack[: len(pack) // 2] if with_pack else b"")
        check(receive_pack(plat, name, body, token))
        count("fuzzed receive-pack body")

    fuzz()

    # 4. info/refs and upload-pack with junk, and the unauthenticated variants.
    @settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(st.text(max_size=40), st.binary(max_size=300))
    def fuzz_other(service, body):
        r = requests.get(f"{plat.api}/{name}.git/info/refs", params={"service": service},
                         headers={"Authorization": f"Bearer {token}"}, timeout=60)
        check(r)
        r = requests.post(f"{plat.api}/{name}.git/git-upload-pack", data=body, timeout=60,
                          headers={"Authorization": f"Bearer {token}",
                                   "Content-Type": "application/x-git-upload-pack-request"})
        check(r)
        r = requests.post(f"{plat.api}/{name}.git/git-receive-pack", data=body, timeout=60)
        assert r.status_code == 401
        count("fuzzed info/refs + upload-pack + unauthenticated receive-pack", 3)

    fuzz_other()
    after = repo_state(plat, name)
    assert after[0] == before[0]
    stray = [f for f in after[1] if f not in before[1] and not re.fullmatch(r"objects/[0-9a-f]{2}/[0-9a-f]{38}", f)]
    assert stray == [], stray
    assert healthy(plat) and plat.curl(name) == (200, "fuzz v1")


def test_ref_names_with_dotdot_and_control_chars_are_refused(plat, tmp_path):
    name = unique_app("refs")
    repo = make_app_repo(tmp_path / name, httpd_app("refs v1"), plat)
    plat.cli("apps:create", name, cwd=repo)
    plat.cli("git:remote", "-a", name, cwd=repo)
    plat.git("push", "dockyard", "main", cwd=repo)
    head = plat.git("rev-parse", "HEAD", cwd=repo).stdout.strip()
    before = repo_state(plat, name)
    zero = "0" * 40
    refs = [b"refs/heads/a..b", b"refs/heads/../../../../tmp/x", b"refs/heads/ma\x01in", b"refs/heads/main\x7f",
            b"refs/heads/main\r\nX: y", b"refs/../config", b"HEAD", b"config", b"../../outside",
            b"refs/heads/main.lock", b"refs/heads/@{1}", b"refs/heads/ma in", b"refs/heads/~main",
            b"refs/heads/", b"refs/heads/main/"]
    for ref in refs:
        body = pkt(f"{zero} {head} ".encode() + ref + b"\0report-status\n") + b"0000"
        r = receive_pack(plat, name, body, plat.token())
        assert r.status_code == 200
        assert b"ok " + ref not in r.content, ref
        assert repo_state(plat, name) == before, ref
        count("hostile ref name")
    assert not list((plat.home / "repos").glob("**/x")) and not Path("/tmp/x").exists()
    # The real git client, too: a non-deploy branch is refused with how to push.
    out = plat.git("push", "dockyard", "main:refs/heads/a.b", cwd=repo, check=False)
    assert "only main or master deploy" in out.stderr


def test_oversized_push_is_refused_with_the_limit(plat, tmp_path):
    name = unique_app("big")
    repo = make_app_repo(tmp_path / name, {**httpd_app("small"), "blob.bin": os.urandom(3 << 20)}, plat)
    plat.cli("apps:create", name, cwd=repo)
    plat.cli("git:remote", "-a", name, cwd=repo)
    out = plat.git("push", "dockyard", "main", cwd=repo, check=False)
    assert out.returncode != 0
    assert "larger than the 1 MB limit" in out.stderr and "DOCKYARD_MAX_PUSH_MB" in out.stderr
    assert plat.git("ls-remote", "dockyard", cwd=repo).stdout == ""
    assert healthy(plat)
    count("oversized push")
    # The same over SSH.
    root = admin(plat, tmp_path)
    root.cli("keys:add", str(root.key) + ".pub")
    root.cli("git:remote", "-a", name, "--ssh", "-r", "viassh", cwd=repo)
    out = root.git("push", "viassh", "main", cwd=repo, check=False)
    assert out.returncode != 0
    assert "larger than the 1 MB limit" in out.stderr and "DOCKYARD_MAX_PUSH_MB" in out.stderr
    assert plat.git("ls-remote", "dockyard", cwd=repo).stdout == ""
    stray = list((plat.home / "repos" / f"{name}.git" / "objects").glob("tmp_pack_*"))
    assert stray == []
    count("oversized push")


SHELLY = ["a;id", "a$(id)", "a`id`", "a|id", "a&&id", "a\nid", "../etc", "..%2fetc", "a b", "a'b", 'a"b',
          "A\r\nSet-Cookie: x=1", "a\x00b", "*", "$HOME", "a>b", "%0d%0aX-Injected: 1", "a/../b"]


def test_shell_metacharacters_traversal_and_header_injection(plat, tmp_path):
    name = unique_app("meta")
    repo = make_app_repo(tmp_path / name, httpd_app("meta v1"), plat)
    plat.cli("apps:create", name, cwd=repo)
    plat.cli("git:remote", "-a", name, cwd=repo)
    plat.git("push", "dockyard", "main", cwd=repo)
    hdr = {"Authorization": f"Bearer {plat.token()}"}
    sentinel = tmp_path / "pwned"
    for bad in SHELLY + [f"x; touch {sentinel}", f"$(touch {sentinel})"]:
        # app names
        r = requests.post(plat.api + "/apps", json={"name": bad}, headers=hdr, timeout=30)
        assert r.status_code == 400 and "Invalid app name" in r.json()["message"], (bad, r.text)
        # config keys (and values with CR/LF are just data)
        r = requests.patch(f"{plat.api}/apps/{name}/config-vars", json={bad: "v"}, headers=hdr, timeout=30)
        assert r.status_code == 400 and "config var name" in r.json()["message"], bad
        # process types (scale and restart)
        r = requests.patch(f"{plat.api}/apps/{name}/formation", json={"updates": [{"type": bad, "quantity": 1}]},
                           headers=hdr, timeout=30)
        assert r.status_code in (400, 404) and "process type" in r.json()["message"].lower(), (bad, r.text)
        # user names and key names
        r = requests.post(plat.api + "/users", json={"name": bad}, headers=hdr, timeout=30)
        assert r.status_code == 400 and "Invalid user name" in r.json()["message"]
        # hosts at the router (domain names): a 404 page, never a crash or an injected header
        proc = run(["curl", "-sS", "-o", "/dev/null", "-D", "-", "--max-time", "10", "-H",
                    f"Host: {bad.replace(chr(10), '').replace(chr(13), '').replace(chr(0), '')}.{plat.domain}",
                    f"http://127.0.0.1:{plat.router_port}/"], check=False)
        assert "X-Injected" not in proc.stdout and "Set-Cookie: x=1" not in proc.stdout
        count("shell metacharacters: app name, config key, process type, user name, Host header", 5)
    assert not sentinel.exists()
    # CR/LF in the request path: no header is injected into the answer, the API keeps answering.
    for path in ["/apps/x%0d%0aSet-Cookie:%20a=1", "/apps/%0aX-Injected:%201/config-vars", "/x%0d%0a.git/info/refs",
                 "/apps/..%2f..%2fetc%2fpasswd", "/apps/../../etc/passwd", "/..%2f..%2fetc%2fpasswd.git/info/refs",
                 f"/{name}.git/../../dockyard.db", f"/{name}.git/objects/../../../dockyard.db",
                 "/%2e%2e/%2e%2e/etc/passwd.git/info/refs", "/apps/%00/config-vars"]:
        proc = run(["curl", "-sS", "-D", "-", "--path-as-is", "--max-time", "10", "-H",
                    f"Authorization: Bearer {plat.token()}", plat.api + path], check=False)
        head, _, body = proc.stdout.partition("\n\n")   # text mode: CRLF arrives as LF
        assert "Set-Cookie: a=1" not in head and "X-Injected" not in head, (path, head)
        assert "SQLite format" not in body and "root:x:0:0" not in body, path
        assert re.match(r"HTTP/1\.[01] (4\d\d)", head), (path, head)
        count("traversal / CR-LF in request path")
    # Header values with CR/LF never get as far as a response header.
    r = requests.get(f"{plat.api}/apps/{name}", headers={**hdr, "X-Test": "a%0d%0aSet-Cookie: b=1"}, timeout=30)
    assert "b=1" not in json.dumps(dict(r.headers))
    # Keys: traversal in keys:remove, junk keys.
    r = requests.delete(f"{plat.api}/account/keys/..%2f..%2fetc%2fpasswd", headers=hdr, timeout=30)
    assert r.status_code == 404 and "keys" in r.json()["message"]
    for junk in ["ssh-ed25519 AAAA;id", 'command="id" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5', "ssh-ed25519\nid", "x" * 5000]:
        r = requests.post(f"{plat.api}/account/keys", json={"public_key": junk}, headers=hdr, timeout=30)
        assert r.status_code == 400, junk
        count("hostile public key")
    assert 'command="id"' not in (plat.home / "ssh" / "authorized_keys").read_text()
    assert healthy(plat) and plat.curl(name) == (200, "meta v1")


def test_dockerfile_copy_outside_the_context_fails_clearly(plat, tmp_path):
    name = unique_app("escape")
    repo = make_app_repo(tmp_path / name, {
        "Dockerfile": f"FROM {BUSYBOX_BASE}\nCOPY ../../etc/shadow /www/index.html\n"
                      'CMD ["/bin/sh", "-c", "exec httpd -f -p $PORT -h /www"]\n'}, plat)
    plat.cli("apps:create", name, cwd=repo)
    plat.cli("git:remote", "-a", name, cwd=repo)
    out = plat.git("push", "dockyard", "main", cwd=repo, check=False)
    assert out.returncode != 0 and "[remote rejected] main" in out.stderr
    assert re.search(r"outside the build context|forbidden path|no such file", out.stderr, re.I), out.stderr
    assert "root:" not in out.stderr
    assert plat.git("ls-remote", "dockyard", cwd=repo).stdout == ""
    assert plat.containers(name) == []
    count("Dockerfile COPY outside the context")


def test_burst_of_200_unauthenticated_requests(plat):
    paths = ["/apps", "/account", "/users", "/audit", "/apps/x/config-vars", "/x.git/info/refs?service=git-receive-pack"]
    headers = [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic !!!"},
               {"Authorization": "Basic " + "YWRtaW46d3Jvbmc="}]

    def one(i):
        try:
            r = requests.get(plat.api + paths[i % len(paths)], headers=headers[i % len(headers)], timeout=120)
            return r.status_code
        except requests.RequestException as e:
            return repr(e)

    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        codes = list(pool.map(one, range(200)))
    assert codes == [401] * 200, sorted(set(map(str, codes)))
    count("concurrent unauthenticated requests", 200)
    assert requests.get(plat.api + "/healthz", timeout=30).status_code == 200 and healthy(plat)


def test_build_out_of_memory_fails_clearly_and_harms_nothing(plat, tmp_path):
    good = unique_app("oomok")
    repo = make_app_repo(tmp_path / good, httpd_app("still here"), plat)
    plat.cli("apps:create", good, cwd=repo)
    plat.cli("git:remote", "-a", good, cwd=repo)
    plat.git("push", "dockyard", "main", cwd=repo)
    name = unique_app("oom")
    repo = make_app_repo(tmp_path / name, {
        "Dockerfile": "FROM dockyard/stack:bookworm\n"
                      'RUN python3 -c "x = bytearray(600 * 1024 * 1024); print(len(x))"\n'}, plat)
    plat.cli("apps:create", name, cwd=repo)
    plat.cli("git:remote", "-a", name, cwd=repo)
    out = plat.git("push", "dockyard", "main", cwd=repo, check=False)
    assert out.returncode != 0 and "[remote rejected] main" in out.stderr
    assert "out of memory (the build limit is 128 MB; raise DOCKYARD_BUILD_MEMORY_MB)" in out.stderr
    assert plat.curl(good) == (200, "still here") and healthy(plat)
    count("out-of-memory build")
