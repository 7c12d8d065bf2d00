"""More doors a hostile tenant tried (see tests/test_e2e_tenants.py for the suite's rules and
its `attack` tally, shared here): a destroyed app's backups and certificate key going to the
next owner of its name, a tree that checks out to far more than it pushes, quotas raced by
concurrent requests, log drains pointed at the platform's own services, and drain URLs that
write lines of their own on a terminal. One platform for the module; the closing line prints
the tally of every hostile-tenant module run so far."""
from __future__ import annotations

import json
import socket
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from .conftest import httpd_app, make_app_repo, run, start_platform, stop_platform, unique_app, wait_until
from .router_helpers import self_signed
from .test_e2e_access import As, admin, new_user
from .test_e2e_tenants import TALLY, attack, new_app, push

pytestmark = pytest.mark.e2e
CHECKOUT_MB, CHECKOUT_FILES = 64, 1000


@pytest.fixture(scope="module")
def plat(tmp_path_factory, busybox_base):
    p = start_platform(tmp_path_factory.mktemp("doors-a"), DOCKYARD_MAX_CHECKOUT_MB=str(CHECKOUT_MB),
                       DOCKYARD_MAX_CHECKOUT_FILES=str(CHECKOUT_FILES), DOCKYARD_HEALTH_TIMEOUT="30",
                       DOCKYARD_RECONCILE_INTERVAL="30")   # a slow router pass: a destroy cleans up itself
    try:
        yield p
    finally:
        stop_platform(p)     # its add-on volumes too
        print(f"\nhostile-tenant attacks tried: {TALLY['tried']}, held: {TALLY['held']}")


@pytest.fixture(scope="module")
def people(plat, tmp_path_factory):
    base = tmp_path_factory.mktemp("doors-a-users")
    return {"alice": new_user(plat, base, "alice"), "bob": new_user(plat, base, "bob"),
            "admin": admin(plat, base), "base": base}


# ---- 1. a destroyed app's artifacts never go to the next owner of its name ---------------
@pytest.fixture(scope="module")
def destroyed(plat, people):
    """alice's app `shop-…` with a Postgres add-on and a certificate, destroyed with its
    add-ons (a final dump kept)."""
    alice = people["alice"]
    shop = new_app(alice, "shop")
    r = alice.api("POST", f"/apps/{shop}/addons", json={"service": "postgres"})
    assert r.status_code == 201, r.text
    cert, key = self_signed([f"{shop}.{plat.domain}"])
    r = alice.api("POST", f"/apps/{shop}/sni-endpoints", json={"certificate_chain": cert, "private_key": key})
    assert r.status_code == 201, r.text
    wait_until(lambda: any(key in f.read_text() for f in (plat.home / "certs").glob("*.key")), 30,
               "the key written for nginx")
    r = alice.api("DELETE", f"/apps/{shop}", params={"addons": "destroy"})
    assert r.status_code == 200 and len(r.json()["final_backups"]) == 1, r.text
    return {"app": shop, "key": key, "final": r.json()["final_backups"][0]}


def test_a_destroyed_apps_certificate_key_is_deleted(plat, destroyed):
    with attack("a destroyed app's certificate key left on disk (until a router pass, if any)"):
        left = [f.name for f in (plat.home / "certs").glob("*") if destroyed["key"] in f.read_text()]
        assert not left, left


def test_the_next_owner_of_a_name_gets_none_of_its_backups(plat, people, destroyed):
    alice, bob, adm, shop = people["alice"], people["bob"], people["admin"], destroyed["app"]
    with attack("the next owner of a destroyed app's name lists and downloads its final dump"):
        bob.cli("apps:create", shop)
        listed = bob.api("GET", f"/apps/{shop}/addons/backups")
        assert listed.status_code == 200 and listed.json() == [], listed.text
        assert bob.api("GET", f"/apps/{shop}/addons/backups/{destroyed['final']}").status_code == 404
    # the owner, and an admin, still reach the final dump; the name's new owner does not
    mine = alice.api("GET", "/backups/destroyed").json()
    gone = [d for d in mine if d["app"] == shop]
    assert len(gone) == 1 and [b["name"] for b in gone[0]["backups"]] == [destroyed["final"]], mine
    path = f"/backups/destroyed/{gone[0]['id']}/{destroyed['final']}"
    got = alice.api("GET", path)
    assert got.status_code == 200 and got.content.startswith(b"PGDMP"), got.content[:40]
    assert adm.api("GET", path).status_code == 200
    assert shop not in json.dumps(bob.api("GET", "/backups/destroyed").json())
    assert bob.api("GET", path).status_code == 404
    bob.cli("apps:destroy", "-a", shop, "--confirm", shop)


# ---- 4. a tree that checks out to far more than it pushes --------------------------------
def _tree_bomb(user: As, repo, blob_path, fan: int, levels: int, top: int) -> str:
    """A commit whose tree references one blob `fan` times per tree over `levels` trees, under
    a top tree of `top` entries: 1 blob and levels + 1 trees check out to top * fan**levels files."""
    def git(*args, data: str | None = None) -> str:
        return run(["git", *args], cwd=repo, env=user.env, input=data).stdout.strip()
    entry = f"100644 blob {git('hash-object', '-w', str(blob_path))}\tf"
    for _ in range(levels):
        sha = git("mktree", data="".join(f"{entry}{i}\n" for i in range(fan)))
        entry = f"040000 tree {sha}\td"
    sha = git("mktree", data="".join(f"{entry}{i}\n" for i in range(top)))
    return git("commit-tree", sha, "-m", "bomb")


def test_a_tree_bomb_is_refused_before_checkout(plat, people, tmp_path):
    bob = people["bob"]
    app = new_app(bob, "bomb")
    repo = make_app_repo(tmp_path / app, {"index.html": "x\n"}, plat)
    big = tmp_path / "zeros"
    big.write_bytes(bytes(1 << 20))                     # 1 MiB of zeros: a ~1 KiB object
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    cases = {"bytes: 1 MiB x 8 x 8 x 2 = 128 MiB": (big, 8, 2, 2, "DOCKYARD_MAX_CHECKOUT_MB"),
             "files: 16 x 16 x 16 empty files": (empty, 16, 2, 16, "DOCKYARD_MAX_CHECKOUT_FILES")}
    for what, (blob, fan, levels, top, setting) in cases.items():
        with attack(f"a tree bomb ({what})"):
            commit = _tree_bomb(bob, repo, blob, fan, levels, top)
            proc = push(bob, plat, app, repo, ref=commit)
            assert proc.returncode != 0 and setting in proc.stderr, proc.stderr[-2000:]
    repo = make_app_repo(tmp_path / "ok", httpd_app("fine"), plat)    # a normal tree still deploys
    assert "is live" in push(bob, plat, app, repo).stderr


# ---- 5. quotas are checked and reserved in one step --------------------------------------
def test_concurrent_app_creates_stay_within_the_quota(plat, people):
    carol = new_user(plat, people["base"], "carol")
    plat.cli("users:quota", carol.name, "--apps", "5")
    with attack("16 concurrent apps:create against a quota of 5"):
        names = [unique_app("race") for _ in range(16)]
        with ThreadPoolExecutor(16) as pool:
            codes = list(pool.map(lambda n: carol.api("POST", "/apps", json={"name": n}).status_code, names))
        owned = [a for a in carol.api("GET", "/apps").json() if a["name"] in names]
        assert codes.count(201) == 5 and len(owned) == 5, (codes, len(owned))
        assert set(codes) == {201, 403}, codes


def test_concurrent_first_deploys_stay_within_the_memory_quota(plat, people, tmp_path):
    dave = new_user(plat, people["base"], "dave")
    plat.cli("users:quota", dave.name, "--apps", "12", "--instances", "20", "--memory", "1024")
    first = new_app(dave, "mem")
    repo = make_app_repo(tmp_path / first, httpd_app("dave"), plat)
    assert "is live" in push(dave, plat, first, repo).stderr          # 512 MB of 1024
    image = dave.api("GET", f"/apps/{first}/releases").json()[-1]["image"]
    others = [new_app(dave, "mem") for _ in range(8)]
    with attack("8 concurrent first deploys against a memory quota with room for 1"):
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda a: dave.api("POST", f"/apps/{a}/builds", json={"image": image}).status_code,
                                  others))
        usage = dave.api("GET", f"/users/{dave.name}/quota").json()["usage"]
        running = [a for a in others if plat.containers(a, running_only=True)]
        assert usage["memory_mb"] <= 1024 and len(running) <= 1, (codes, usage, running)
        assert codes.count(201) == 1, codes


# ---- 6 and 13. log drains reach only collectors outside the platform ---------------------
def _db(plat):
    return sqlite3.connect(plat.home / "dockyard.db", timeout=30)


def _engine_address(plat) -> str:
    """An address on the platform's own networks: one of its containers' (an app's)."""
    ids = run(["docker", "ps", "-q", "--filter", f"label=dockyard.instance={plat.name}"]).stdout.split()
    out = run(["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", *ids]).stdout
    return next(a for a in out.split() if a)


def test_drains_cannot_reach_the_platform_or_private_networks(plat, people):
    bob = people["bob"]
    app = new_app(bob, "drain")
    registry = plat.env["DOCKYARD_REGISTRY_PORT"]
    api = plat.api_port
    targets = [f"syslog://127.0.0.1:{api}", f"syslog://localhost:{registry}", f"syslog://0x7f000001:{api}",
               f"syslog://127.1:{api}", f"syslog://[::ffff:127.0.0.1]:{api}", f"syslog://[::1]:{api}",
               "syslog://169.254.169.254:80", f"https://127.0.0.1:{api}/apps", "syslog://0.0.0.0:22",
               f"syslog://{_engine_address(plat)}:5432", "syslog+tls://10.0.0.1:6514", "syslog://192.168.1.1:514"]
    for url in targets:
        with attack(f"drains:add {url}"):
            r = bob.api("POST", f"/apps/{app}/drains", json={"url": url})
            assert r.status_code == 400 and "drain" in r.json()["message"].lower(), (url, r.status_code, r.text)
    assert bob.api("GET", f"/apps/{app}/drains").json() == []


def test_a_stored_drain_is_judged_again_at_connect(plat, people):
    """A drain stored before these checks (or a name whose DNS now points inside) is never
    connected to: a listener on loopback sees no connection, and `drains` says why."""
    bob = people["bob"]
    app = new_app(bob, "stored")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(1)
    port = listener.getsockname()[1]
    accepted = []

    def accept():
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline:
            try:
                conn, _ = listener.accept()
                accepted.append(conn)
            except OSError:
                continue
    with _db(plat) as db:
        db.execute("INSERT INTO drains (app_id, url, created_at) SELECT id, ?, '2026-01-01' FROM apps WHERE name = ?",
                   (f"syslog://127.0.0.1:{port}", app))
    with attack("a stored drain to loopback, connected by the forwarder"):
        t = threading.Thread(target=accept)
        t.start()
        bob.cli("config:set", "PING=1", "-a", app)                 # a platform line to forward
        t.join()
        listener.close()
        assert not accepted, "the forwarder connected to a loopback drain"
        listing = bob.cli("drains", "-a", app).stdout
        assert "loopback" in listing, listing


def test_drain_urls_cannot_forge_lines_or_name_impossible_ports(plat, people):
    bob = people["bob"]
    app = new_app(bob, "crlf")
    for url in ("syslog://logs.example.com:514\r\nFAKE: admin token rotated", "syslog://logs.example.com:99999",
                "https://logs.example.com:99999/x", "syslog://logs.example.com:5\x1b]0;pwned\x0714"):
        with attack(f"drains:add {url!r}"):
            r = bob.api("POST", f"/apps/{app}/drains", json={"url": url})
            assert r.status_code == 400, (url, r.status_code, r.text)
    with _db(plat) as db:   # one stored before the check: shown escaped
        db.execute("INSERT INTO drains (app_id, url, created_at) SELECT id, ?, '2026-01-01' FROM apps WHERE name = ?",
                   ("syslog://logs.example.com:514\r\nFAKE line\x1b[2J", app))
    with attack("a stored drain URL with CR/LF and ESC printed raw by `dockyard drains`"):
        out = bob.cli("drains", "-a", app).stdout
        assert "\r" not in out and "\x1b" not in out and not any(l.startswith("FAKE") for l in out.splitlines()), out
        assert "514\\x0d\\nFAKE line\\x1b[2J" in out, out
