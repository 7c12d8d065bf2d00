"""A hostile tenant on a shared platform: `mallory`, a plain user an admin created, with apps of
her own, attacks `victor`, another plain user, through everything a tenant controls (builds,
buildpacks, Dockerfiles, images, domains, request bodies, pushes, config). Each attack is run for
real against one platform (`make up`, gunicorn, Docker, nginx, real git) and must hold; the
module prints how many were tried and held."""
from __future__ import annotations

import http.client
import json
import os
import secrets
from pathlib import Path

import pytest
import requests

from .conftest import (BUSYBOX_BASE, httpd_app, make_app_repo, run, start_platform, stop_platform,
                       unique_app)
from .test_e2e_access import As, new_user

pytestmark = pytest.mark.e2e
TALLY = {"tried": 0, "held": 0}
STACK = "dockyard/stack:bookworm"
UNPACKED_MB = 24
MAX_OBJECTS = 1500


class attack:
    """`with attack("what"):` counts one attack tried, and held when its block passes."""

    def __init__(self, what: str):
        self.what = what

    def __enter__(self):
        TALLY["tried"] += 1

    def __exit__(self, kind, value, tb):
        if kind is None:
            TALLY["held"] += 1
        return False


@pytest.fixture(scope="module")
def plat(tmp_path_factory, busybox_base):
    p = start_platform(tmp_path_factory.mktemp("tenants"), DOCKYARD_MAX_PUSH_UNPACKED_MB=str(UNPACKED_MB),
                       DOCKYARD_MAX_PUSH_OBJECTS=str(MAX_OBJECTS))
    try:
        yield p
    finally:
        stop_platform(p)
        print(f"\nhostile-tenant attacks tried: {TALLY['tried']}, held: {TALLY['held']}")


@pytest.fixture(scope="module")
def world(plat, tmp_path_factory):
    """victor's app (stack-based, so it runs as uid 1000 like a build does) with a secret in its
    config and one in its source; mallory with an app deployed from a busybox Dockerfile."""
    base = tmp_path_factory.mktemp("tenant-users")
    victor, mallory = new_user(plat, base, "victor"), new_user(plat, base, "mallory")
    w = {"victor": victor, "mallory": mallory, "base": base, "env_secret": "envsecret-" + secrets.token_hex(6),
         "src_secret": "srcsecret-" + secrets.token_hex(6), "victim": unique_app("victim")}
    victor.cli("apps:create", w["victim"])
    victor.cli("config:set", f"VICTIM_SECRET={w['env_secret']}", "-a", w["victim"])
    files = {"Dockerfile": f"FROM {STACK}\nCOPY www /app/www\n"
                           'CMD ["/bin/sh", "-c", "exec python3 -m http.server $PORT --directory /app/www"]\n',
             "www/index.html": "victor's app\n", "secret.txt": w["src_secret"] + "\n",
             "bin/start": "#!/bin/sh\necho start\n"}
    repo = make_app_repo(base / "victim", files, plat)
    assert "is live" in victor.git("push", f"{plat.api}/{w['victim']}.git", "HEAD:main", cwd=repo).stderr
    w["victim_image"] = victor.api("GET", f"/apps/{w['victim']}/releases").json()[-1]["image"]
    w["mine"] = unique_app("mine")
    mallory.cli("apps:create", w["mine"])
    w["mine_repo"] = make_app_repo(base / "mine", {**httpd_app("mallory's app"), **_spy_buildpack()}, plat)
    assert "is live" in mallory.git("push", f"{plat.api}/{w['mine']}.git", "HEAD:main", cwd=w["mine_repo"]).stderr
    return w


def _spy_buildpack() -> dict[str, str]:
    """A buildpack whose bin/detect prints (as its name) the first secret it finds in the next
    buildpack's directory: a source file, or a process environment through a host /proc."""
    detect = ("#!/bin/sh\n"
              "found=$( (cat /buildpacks/1/secret.txt; for f in /buildpacks/1/proc/[0-9]*/environ; do "
              "tr '\\0' '\\n' < \"$f\" | grep '^VICTIM_SECRET='; done) 2>/dev/null | head -n 1)\n"
              'echo "LEAK:${found:-none}"\nexit 0\n')
    return {"bin/detect": detect, "bin/compile": "#!/bin/sh\nexit 0\n", "bin/release": "#!/bin/sh\necho '---'\n"}


def push(user: As, plat, app: str, repo: Path, ref: str = "HEAD"):
    return user.git("push", f"{plat.api}/{app}.git", f"{ref}:refs/heads/main", cwd=repo, check=False)


def new_app(user: As, prefix: str) -> str:
    name = unique_app(prefix)
    user.cli("apps:create", name)
    return name


def leaked(w, *texts: str) -> bool:
    return any(w["env_secret"] in t or w["src_secret"] in t for t in texts)


# ---- 1. custom buildpacks never reach the host ------------------------------------------
def test_buildpacks_cannot_reach_the_host_or_other_apps(plat, world, tmp_path):
    w, m = world, world["mallory"]
    own = f"file://{plat.home}/repos/{w['mine']}.git"
    victim_http = f"http://127.0.0.1:{plat.api_port}/{w['victim']}.git"
    cases = {
        "host / as a buildpack (host /proc: another app's environment)": f"{own}\n/\n",
        "another app's repo by file://": f"{own}\nfile://{plat.home}/repos/{w['victim']}.git\n",
        "another app's repo over the platform's git HTTP": f"{own}\n{victim_http}\n",
    }
    for what, buildpacks in cases.items():
        with attack(what):
            app = new_app(m, "bp")
            repo = make_app_repo(tmp_path / app, {".buildpacks": buildpacks, "hello.txt": "x"}, plat)
            proc = push(m, plat, app, repo)
            assert proc.returncode != 0 and not leaked(w, proc.stdout, proc.stderr), (what, proc.stderr)
            assert "refused" in proc.stderr or "not allowed" in proc.stderr, (what, proc.stderr)
            m.cli("apps:destroy", "-a", app, "--confirm", app)
    with attack("a git buildpack URL pointing at the platform's API"):
        app = new_app(m, "bpurl")
        m.cli("config:set", f"BUILDPACK_URL={victim_http}", "-a", app)
        repo = make_app_repo(tmp_path / app, {"hello.txt": "x"}, plat)
        proc = push(m, plat, app, repo)
        # cloned in a container with no credentials, which cannot reach the API on the host
        assert proc.returncode != 0 and "Could not fetch the buildpack" in proc.stderr, proc.stderr
        assert "never the platform itself" in proc.stderr and not leaked(w, proc.stderr)
    with attack("a host path as BUILDPACK_URL"):
        m.cli("config:set", f"BUILDPACK_URL={plat.home}/cache/{app}", "-a", app)
        proc = push(m, plat, app, repo)
        assert proc.returncode != 0 and "DOCKYARD_BUILDPACK_PATHS" in proc.stderr, proc.stderr


# ---- 2. nothing from a build is followed on the host ------------------------------------
def test_symlinks_in_the_slug_and_tree_are_never_followed(plat, world, tmp_path):
    m = world["mallory"]
    target = tmp_path / "host-dir"
    (target / "rootfs").mkdir(parents=True)
    (target / "rootfs" / "root-only").write_text("host secret\n")
    os.chmod(target / "rootfs" / "root-only", 0o600)
    with attack(".dockyard -> a host directory, built by the static buildpack"):
        app = new_app(m, "link")
        repo = make_app_repo(tmp_path / app, {"index.html": "static\n"}, plat)
        os.symlink(target, repo / ".dockyard")
        make_app_repo(repo, {}, plat)
        proc = push(m, plat, app, repo)
        assert proc.returncode != 0 and ".dockyard in the app is a symlink" in proc.stderr, proc.stderr
        assert sorted(p.name for p in target.iterdir()) == ["rootfs"]           # nothing created there
        assert (target / "rootfs" / "root-only").read_text() == "host secret\n"  # nothing moved away
    with attack("a crafted tree: link -> host dir, and a file link/pwned"):
        app = new_app(m, "tree")
        repo = make_app_repo(tmp_path / app, {"index.html": "x\n"}, plat)

        def obj(*args, data: str = "") -> str:
            return m.git(*args, cwd=repo, check=True).stdout.strip() if not data else run(
                ["git", *args], cwd=repo, env=m.env, input=data).stdout.strip()
        link = obj("hash-object", "-w", "--stdin", data=str(target))
        blob = obj("hash-object", "-w", "--stdin", data="pwned\n")
        sub = obj("mktree", data=f"100644 blob {blob}\tpwned\n")
        tree = obj("mktree", data=f"120000 blob {link}\tlink\n040000 tree {sub}\tlink\n100644 blob {blob}\tindex.html\n")
        commit = obj("commit-tree", tree, "-m", "crafted")
        push(m, plat, app, repo, ref=commit)    # refused, or built with `link` as a plain directory
        assert sorted(p.name for p in target.iterdir()) == ["rootfs"]


# ---- 3. images: only the stack, one's own, and allowed ones ------------------------------
def test_other_tenants_images_cannot_be_deployed_or_built_on(plat, world, tmp_path):
    w, m = world, world["mallory"]
    image = w["victim_image"]
    assert image.startswith(f"{plat.name}/{w['victim']}:"), image
    with attack("deploy --image of another app's image"):
        r = m.api("POST", f"/apps/{w['mine']}/builds", json={"image": image})
        assert r.status_code == 403 and "not one you may deploy" in r.json()["message"], r.text
        proc = m.cli("deploy", "-a", w["mine"], "--image", image, check=False)
        assert proc.returncode != 0 and "images:allow" in proc.stderr
    dockerfiles = {
        "FROM another app's image": f"FROM {image}\nRUN cat /app/www/index.html\n",
        "COPY --from another app's image": f"FROM {BUSYBOX_BASE}\nCOPY --from={image} /app /stolen\n",
        "FROM a build ARG naming another app's image": f"ARG B={image}\nFROM $B\n",
    }
    for what, dockerfile in dockerfiles.items():
        with attack(what):
            app = new_app(m, "img")
            repo = make_app_repo(tmp_path / app, {"Dockerfile": dockerfile, "secret.txt": "x"}, plat)
            proc = push(m, plat, app, repo)
            assert proc.returncode != 0 and ("may not use" in proc.stderr or "build ARG" in proc.stderr), proc.stderr
            m.cli("apps:destroy", "-a", app, "--confirm", app)
    with attack("a tenant allowing an image for everyone"):
        assert m.api("POST", "/images/allowed", json={"image": image}).status_code == 403
    # What is allowed still works: the stack and the operator's list (mallory's app runs on the
    # busybox base), her own app's image, and an image an admin allows.
    own = m.api("GET", f"/apps/{w['mine']}/releases").json()[-1]["image"]
    assert m.api("POST", f"/apps/{w['mine']}/builds", json={"image": own}).status_code == 201
    assert BUSYBOX_BASE in m.cli("images:allowed").stdout
    plat.cli("images:allow", image)
    try:
        app = new_app(m, "allowed")
        assert m.api("POST", f"/apps/{app}/builds", json={"image": image}).status_code == 201
    finally:
        plat.cli("images:disallow", image)


def raw(user: As, method: str, path: str, data: bytes):
    return requests.request(method, user.p.api + path, data=data, timeout=60, headers={
        "Authorization": f"Bearer {user.token}", "Content-Type": "application/json"})


# ---- 4. every body on a mutating request: 400/413, audited, never 500 --------------------
def test_request_bodies_cannot_bypass_the_audit(plat, world):
    m = world["mallory"]
    app = new_app(m, "audit")
    bodies = {"nested 5,000 deep": b"[" * 5000 + b"]" * 5000, "not JSON": b"{nope",
              "nested object 5,000 deep": b'{"a":' * 5000 + b"1" + b"}" * 5000}
    for what, data in bodies.items():
        for method, path in (("DELETE", f"/apps/{app}"), ("PATCH", f"/apps/{app}/config-vars")):
            with attack(f"{method} with a body {what}"):
                r = raw(m, method, path, data)
                assert r.status_code == 400, (what, r.status_code, r.text)
    with attack("DELETE with a body over 1 MB"):
        r = raw(m, "DELETE", f"/apps/{app}", b"[" + b"1," * (700 * 1024) + b"1]")
        assert r.status_code == 413, r.status_code
    assert m.api("GET", f"/apps/{app}").status_code == 200            # nothing was destroyed
    with attack("a destroy that succeeds is audited"):
        assert m.api("DELETE", f"/apps/{app}").status_code == 200
        audit = requests.get(f"{plat.api}/audit", params={"app": app},
                             headers={"Authorization": f"Bearer {plat.token()}"}, timeout=30).json()
        assert any(a["action"] == "apps:destroy" and a["actor"] == m.name and a["status"] == 200
                   for a in audit), audit


# ---- 5. credentials in BUILDPACK_URL are never shown ------------------------------------
def test_buildpack_url_credentials_are_redacted(plat, world, tmp_path):
    m, token = world["mallory"], "tok3n-" + secrets.token_hex(8)
    app = new_app(m, "cred")
    with attack("user:token@ in BUILDPACK_URL shown back"):
        m.cli("config:set", f"BUILDPACK_URL=https://mallory:{token}@127.0.0.1:9/bp.git", "-a", app)
        repo = make_app_repo(tmp_path / app, {"hello.txt": "x"}, plat)
        proc = push(m, plat, app, repo)
        assert proc.returncode != 0 and "Fetching buildpack https://127.0.0.1:9/bp.git" in proc.stderr, proc.stderr
        builds = m.api("GET", f"/apps/{app}/builds").json()
        detail = m.api("GET", f"/apps/{app}/builds/{builds[-1]['id']}").text
        logs = m.cli("logs", "-a", app, "-n", "200").stdout
        for text in (proc.stdout, proc.stderr, json.dumps(builds), detail, logs):
            assert token not in text


# ---- 6. domains: names under someone else's are theirs ----------------------------------
def test_domain_hijacking_is_refused(plat, world):
    w, m, v = world, world["mallory"], world["victor"]
    corp = f"corp-{secrets.token_hex(3)}.example"
    assert v.api("POST", f"/apps/{w['victim']}/domains", json={"hostname": f"*.{corp}"}).status_code == 201
    for host, code in ((f"api.{corp}", 409), (f"*.x.{corp}", 409), (f"a.b.{corp}", 409), ("127.0.0.1", 400),
                       ("10.1.2.3", 400), (f"x.{w['victim']}.{plat.domain}", 409),
                       (f"*.{w['victim']}.{plat.domain}", 409), (f"x.y.{plat.domain}", 409)):
        with attack(f"claim {host}"):
            r = m.api("POST", f"/apps/{w['mine']}/domains", json={"hostname": host})
            assert r.status_code == code, (host, r.status_code, r.text)
    # names of her own still work, and the owner of the wildcard may add under it
    assert m.api("POST", f"/apps/{w['mine']}/domains", json={"hostname": f"www.{corp}x"}).status_code == 201
    assert m.api("POST", f"/apps/{w['mine']}/domains",
                 json={"hostname": f"api.{w['mine']}.{plat.domain}"}).status_code == 201
    assert v.api("POST", f"/apps/{w['victim']}/domains", json={"hostname": f"api.{corp}"}).status_code == 201


# ---- 7. decompression bombs -------------------------------------------------------------
def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def api_workers_peak_rss_mb(plat) -> dict[int, float]:
    """Peak RSS (VmHWM) of this platform's gunicorn processes, by pid."""
    peaks = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        if b"gunicorn" in cmdline and f"DOCKYARD_HOME={plat.home}\0".encode() in environ + b"\0":
            kb = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)
            peaks[int(pid)] = kb / 1024
    return peaks


def test_pack_bombs_are_refused_while_streaming(plat, world, tmp_path):
    m = world["mallory"]
    app = new_app(m, "bomb")
    objects = plat.home / "repos" / f"{app}.git" / "objects"
    before = api_workers_peak_rss_mb(plat)
    assert before, "the platform's API workers are found"
    with attack(f"a push of {UNPACKED_MB * 4} MB of zeros compressed to a few hundred KB"):
        repo = make_app_repo(tmp_path / "bomb", {"zeros.bin": b"\0" * (UNPACKED_MB * 4 << 20)}, plat)
        proc = push(m, plat, app, repo)
        assert proc.returncode != 0 and "DOCKYARD_MAX_PUSH_UNPACKED_MB" in proc.stderr, proc.stderr
        assert _dir_bytes(objects) < 1 << 20, _dir_bytes(objects)          # nothing of it was kept
        after = api_workers_peak_rss_mb(plat)
        growth = max(after.get(pid, 0) - mb for pid, mb in before.items())
        print(f"\nAPI worker peak RSS before/after a {UNPACKED_MB * 4} MB bomb: "
              f"{max(before.values()):.0f}/{max(after.values()):.0f} MB (growth {growth:.0f} MB)")
        assert growth < UNPACKED_MB * 2 + 16, growth                        # bounded by the setting, not the bomb
    with attack(f"a push of more than {MAX_OBJECTS} objects"):
        repo = make_app_repo(tmp_path / "many", {f"f/{i}.txt": f"{i}\n" for i in range(MAX_OBJECTS + 10)}, plat)
        proc = push(m, plat, app, repo)
        assert proc.returncode != 0 and "DOCKYARD_MAX_PUSH_OBJECTS" in proc.stderr, proc.stderr
        assert _dir_bytes(objects) < 1 << 20
    with attack("a rejected push's objects left behind in the repo"):
        repo = make_app_repo(tmp_path / "rejected", {"noise.bin": os.urandom(512 << 10)}, plat)
        proc = push(m, plat, app, repo)
        assert proc.returncode != 0 and "no buildpack detected" in proc.stderr, proc.stderr
        assert _dir_bytes(objects) < 256 << 10, _dir_bytes(objects)
    assert m.api("GET", f"/apps/{app}").status_code == 200                 # the API still answers


# ---- 8. quotas ----------------------------------------------------------------------------
def test_quotas_bound_what_one_user_takes(plat, world, tmp_path):
    carol = new_user(plat, world["base"], "carol")
    plat.cli("users:quota", carol.name, "--apps", "1", "--instances", "2", "--memory", "600")
    app = new_app(carol, "quota")
    with attack("a second app over the app quota"):
        proc = carol.cli("apps:create", unique_app("quota"), check=False)
        assert proc.returncode != 0 and "your quota" in proc.stderr, proc.stderr
    repo = make_app_repo(tmp_path / app, httpd_app("carol"), plat)
    assert "is live" in push(carol, plat, app, repo).stderr
    with attack("scale over the instance quota"):
        r = carol.api("PATCH", f"/apps/{app}/formation", json={"updates": [{"type": "web", "quantity": 3}]})
        assert r.status_code == 403 and "the quota is 2" in r.json()["message"], r.text
    with attack("scale over the memory quota"):
        r = carol.api("PATCH", f"/apps/{app}/formation", json={"updates": [{"type": "web", "quantity": 2}]})
        assert r.status_code == 403 and "MB of instance memory" in r.json()["message"], r.text
    with attack("a memory limit above what the host has"):
        r = carol.api("PATCH", f"/apps/{app}/limits/web", json={"memory_mb": 65536})
        assert r.status_code == 403 and "more than this machine has" in r.json()["message"], r.text
    with attack("a tenant raising their own quota"):
        assert carol.api("PATCH", f"/users/{carol.name}/quota", json={"max_apps": 100}).status_code == 403
    assert "apps       1 of 1 (set)" in carol.cli("users:quota", carol.name).stdout
    r = carol.api("PATCH", f"/apps/{app}/limits/web", json={"memory_mb": 256})
    assert r.status_code == 200, r.text
    r = carol.api("PATCH", f"/apps/{app}/formation", json={"updates": [{"type": "web", "quantity": 2}]})
    assert r.status_code == 200, r.text                                    # 2 x 256 MB fits


def test_a_first_deploy_counts_against_the_quota(plat, world, tmp_path):
    dave = new_user(plat, world["base"], "dave")
    plat.cli("users:quota", dave.name, "--apps", "2", "--instances", "1", "--memory", "600")
    first = new_app(dave, "quota")
    with attack("app.json formation asking for more instances than the quota"):
        repo = make_app_repo(tmp_path / "many", {**httpd_app("many"),
                                                 "app.json": json.dumps({"formation": {"web": {"quantity": 5}}})}, plat)
        proc = push(dave, plat, first, repo)
        assert proc.returncode != 0 and "app.json formation: That makes 5 instances" in proc.stderr, proc.stderr
        assert not plat.containers(first)
    with attack("app.json formation asking for more memory than the quota"):
        repo = make_app_repo(tmp_path / "big", {**httpd_app("big"),
                                                "app.json": json.dumps({"formation": {"web": {"size": "standard-2x"}}})}, plat)
        proc = push(dave, plat, first, repo)
        assert proc.returncode != 0 and "1024 MB of instance memory" in proc.stderr, proc.stderr
        assert not plat.containers(first)
    repo = make_app_repo(tmp_path / "one", httpd_app("one"), plat)
    assert "is live" in push(dave, plat, first, repo).stderr
    with attack("a second app's first deploy over the instance quota"):
        second = new_app(dave, "quota")
        proc = push(dave, plat, second, repo)
        assert proc.returncode != 0 and "the quota is 1" in proc.stderr, proc.stderr
        assert not plat.containers(second)
    assert plat.curl(first) == (200, "one")


# ---- 9 and 10: hostile values and paths --------------------------------------------------
def test_nul_in_a_config_value_is_refused_without_echo(plat, world):
    m, secret = world["mallory"], "nulsecret-" + secrets.token_hex(6)
    with attack("a NUL in a config value"):
        r = m.api("PATCH", f"/apps/{world['mine']}/config-vars", json={"KEY": f"abc\x00{secret}"})
        assert r.status_code == 400 and secret not in r.text, (r.status_code, r.text)
        assert secret not in m.cli("logs", "-a", world["mine"], "-n", "300").stdout
        assert "KEY" not in m.api("GET", f"/apps/{world['mine']}/config-vars").json()


def test_dumb_http_paths_with_dot_dot_never_500(plat, world):
    w, m = world, world["mallory"]
    paths = [f"/{w['mine']}.git/../{w['victim']}.git/HEAD", f"/{w['mine']}.git/objects/../../{w['victim']}.git/HEAD",
             f"/{w['mine']}.git/objects/info/../../HEAD", f"/{w['mine']}.git/info/refs/..",
             f"/{w['mine']}.git/../../../etc/passwd", f"/{w['mine']}.git/./HEAD", f"/{w['mine']}.git//HEAD",
             f"/{w['mine']}.git/objects/%2e%2e/%2e%2e/HEAD"]
    for path in paths:
        with attack(f"GET {path}"):
            conn = http.client.HTTPConnection("127.0.0.1", plat.api_port, timeout=30)
            conn.request("GET", path, headers={"Authorization": f"Bearer {m.token}"})
            resp = conn.getresponse()
            body = resp.read().decode("utf-8", "replace")
            conn.close()
            assert resp.status < 500 and w["src_secret"] not in body and "root:" not in body, (path, resp.status)
