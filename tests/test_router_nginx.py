"""router.nginx and router.loop against the real nginx binary.

Each test gets its own router prefix (tmp_path) and port, and its own
upstreams: small threaded HTTP servers in subprocesses, bound to 127.0.0.1,
each answering with its own name. All traffic stays on 127.0.0.1; every wait
is bounded; nginx and upstreams are killed (process group) in teardown.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from controller.settings import Settings, router_config
from router import render
from router.errors import ConfigRejected, RouterError
from router.nginx import Nginx
from router.table import Route, Upstream, build_table

NGINX = "/usr/sbin/nginx"
REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not os.path.exists(NGINX), reason=f"nginx is not installed at {NGINX}")

UPSTREAM_SCRIPT = textwrap.dedent(
    r"""
    import hashlib, http.server, json, sys, time

    NAME = sys.argv[1]
    BIG = hashlib.sha256(b"dockyard").digest() * (5 * 1024 * 1024 // 32)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            if self.path == "/headers":
                self.reply(json.dumps({"name": NAME, "headers": dict(self.headers.items())}).encode())
            elif self.path == "/big":
                self.reply(BIG)
            elif self.path.startswith("/slow"):
                time.sleep(1.0)
                self.reply(f"{NAME} slow\n".encode())
            else:
                self.reply(f"{NAME}\n".encode())

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            self.reply(f"{NAME} got {len(body)} {hashlib.sha256(body).hexdigest()}\n".encode())

        def reply(self, body):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 256

    server = Server(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()
    """
)

RUNNER_SCRIPT = textwrap.dedent(
    r"""
    import json, logging, sys
    from pathlib import Path
    from controller.settings import Settings, router_config
    from router.loop import run
    from router.table import Upstream, build_table

    home, port, routes_json = sys.argv[1:4]

    def load(settings):
        with open(routes_json) as f:
            data = json.load(f)
        return build_table([(app, [Upstream(h, p) for h, p in ups]) for app, ups in data.items()], settings.domain)

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="router: %(levelname)s %(message)s")
    sys.exit(run(router_config(Settings(home=Path(home), router_port=int(port))), load_routes=load, interval=0.2))
    """
)


# ---------------------------------------------------------------- helpers
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port, host, path="/", method="GET", body=None, headers=None, timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"Host": host, **(headers or {})})
        resp = conn.getresponse()
        return resp.status, resp.read(), resp
    finally:
        conn.close()


def text(port, host, path="/"):
    status, body, _ = request(port, host, path)
    return status, body.decode()


def wait_for(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except OSError as exc:
            last = exc
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def kill_group(pid):
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def kill_nginx_for(prefix: Path, settle: float = 0.0):
    """Kill every nginx process started for ``prefix`` (a per-test tmp dir, so
    only this test's nginx can match): anything whose command line names the
    prefix, and the workers orphaned by a SIGKILLed master (its pid file names
    their process group). With ``settle``, sweep again until nothing was found
    for that long: an nginx that was starting may still be retrying bind()."""
    quiet_since = time.monotonic()
    deadline = quiet_since + 30
    while True:
        try:
            groups = {int((prefix / "logs/nginx.pid").read_text())}
        except (OSError, ValueError):
            groups = set()
        procs = []
        for name in filter(str.isdigit, os.listdir("/proc")):
            try:
                cmdline = Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2 :].split()  # state, ppid, pgrp, ...
            if fields[0] != "Z":
                procs.append((int(name), int(fields[2]), cmdline))
            if "nginx" in cmdline and f"-p {prefix}/" in cmdline:
                groups.add(int(fields[2]))
        victims = [pid for pid, pgid, cmdline in procs if pgid in groups and "nginx" in cmdline]
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if victims:
            quiet_since = time.monotonic()
        if time.monotonic() - quiet_since >= settle or time.monotonic() > deadline:
            return
        time.sleep(0.1)


@pytest.fixture
def upstreams():
    """Factory: start('A') -> Upstream serving 'A\\n'."""
    procs = []

    def start(name):
        proc = subprocess.Popen(
            [sys.executable, "-c", UPSTREAM_SCRIPT, name],
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        procs.append(proc)
        port = int(proc.stdout.readline())
        return Upstream("127.0.0.1", port)

    yield start
    for proc in procs:
        kill_group(proc.pid)
        proc.wait(timeout=10)


@pytest.fixture
def settings(tmp_path):
    return Settings(home=tmp_path / "home", router_port=free_port(), nginx_bin=NGINX)


@pytest.fixture
def router(settings, tmp_path):
    """A started Nginx serving an empty table."""
    nginx = Nginx(router_config(settings))
    nginx.ensure_layout()
    with open(tmp_path / "nginx.stderr", "wb") as err:
        proc = nginx.start_foreground(stderr=err)
    try:
        yield nginx
    finally:
        try:
            nginx.stop(timeout=5)
        finally:
            kill_group(proc.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
            kill_nginx_for(nginx.prefix)  # e.g. one a test started itself


def table(settings, **apps):
    return build_table(apps.items(), settings.domain)


def host(settings, app):
    return settings.app_host(app)


# ---------------------------------------------------------------- serving
def test_request_reaches_the_right_app(router, settings, upstreams):
    a, b = upstreams("A"), upstreams("B")
    assert router.apply(table(settings, myapp=[a], other=[b])) is True
    port = settings.router_port
    assert text(port, "myapp.localhost") == (200, "A\n")
    assert text(port, f"other.localhost:{port}") == (200, "B\n")
    assert text(port, "MyApp.LocalHost") == (200, "A\n")  # hostnames are case-insensitive


def test_unknown_host_gets_a_404_that_names_it(router, settings, upstreams):
    router.apply(table(settings, myapp=[upstreams("A")], idle=[]))
    status, body, resp = request(settings.router_port, "nope.localhost")
    body = body.decode()
    assert status == 404
    assert resp.getheader("Content-Type").startswith("text/plain")
    assert 'No app is configured for host "nope.localhost"' in body
    assert "dockyard apps:create" in body
    assert "myapp" not in body and "idle" not in body
    # Also for a bare IP / the domain itself.
    status, body, _ = request(settings.router_port, "127.0.0.1")
    assert status == 404 and b"myapp" not in body


def test_app_without_instances_gets_503_with_a_hint(router, settings):
    router.apply(table(settings, idle=[]))
    status, body, resp = request(settings.router_port, "idle.localhost")
    assert status == 503
    assert resp.getheader("Content-Type").startswith("text/plain")
    assert body.decode() == "App idle has no running web process. Scale it with: dockyard ps:scale web=1 -a idle\n"


def test_proxy_headers_and_websocket_upgrade(router, settings, upstreams):
    router.apply(table(settings, myapp=[upstreams("A")]))
    port = settings.router_port
    status, body, resp = request(
        port, f"myapp.localhost:{port}", "/headers", headers={"X-Forwarded-For": "1.2.3.4"}
    )
    assert status == 200
    seen = {k.lower(): v for k, v in json.loads(body)["headers"].items()}
    assert seen["host"] == f"myapp.localhost:{port}"
    assert seen["x-forwarded-for"] == "1.2.3.4, 127.0.0.1"
    assert seen["x-forwarded-proto"] == "http"
    assert seen["x-forwarded-host"] == "myapp.localhost"
    assert seen["x-forwarded-port"] == str(port)
    assert re.fullmatch(r"[0-9a-f]{32}", seen["x-request-id"])
    assert "connection" not in seen  # Connection "" => keep-alive to the upstream
    status, body, _ = request(
        port, "myapp.localhost", "/headers", headers={"Upgrade": "websocket", "Connection": "Upgrade"}
    )
    seen = {k.lower(): v for k, v in json.loads(body)["headers"].items()}
    assert seen["upgrade"] == "websocket" and seen["connection"] == "upgrade"


def test_round_robin_across_two_instances(router, settings, upstreams):
    router.apply(table(settings, myapp=[upstreams("A1"), upstreams("A2")]))
    seen = [text(settings.router_port, "myapp.localhost") for _ in range(10)]
    assert set(seen) == {(200, "A1\n"), (200, "A2\n")}


def test_dead_instance_fails_over_and_all_dead_gives_502(router, settings, upstreams):
    dead = Upstream("127.0.0.1", free_port())  # nothing listens there
    router.apply(table(settings, myapp=[dead, upstreams("A")], gone=[dead]))
    assert {text(settings.router_port, "myapp.localhost") for _ in range(10)} == {(200, "A\n")}
    status, body, resp = request(settings.router_port, "gone.localhost")
    assert status == 502
    assert resp.getheader("Content-Type").startswith("text/plain")
    assert body.decode() == "App gone is not answering: its web process may be crashing or restarting.\n"


def test_large_bodies_are_streamed(router, settings, upstreams):
    # Workers run as www-data and cannot write under the private DOCKYARD_HOME:
    # bodies larger than nginx's memory buffers must not need temp files.
    router.apply(table(settings, myapp=[upstreams("A")]))
    payload = os.urandom(3 * 1024 * 1024)
    status, body, _ = request(settings.router_port, "myapp.localhost", "/", "POST", payload)
    assert (status, body.decode()) == (200, f"A got {len(payload)} {hashlib.sha256(payload).hexdigest()}\n")
    status, body, _ = request(settings.router_port, "myapp.localhost", "/big")
    assert status == 200
    assert body == hashlib.sha256(b"dockyard").digest() * (5 * 1024 * 1024 // 32)


# ---------------------------------------------------------------- apply
def test_route_changes_are_served_when_apply_returns(router, settings, upstreams):
    a, b, c = upstreams("A"), upstreams("B"), upstreams("C")
    port = settings.router_port
    assert router.apply(table(settings, myapp=[a])) is True
    assert text(port, "other.localhost")[0] == 404
    assert router.apply(table(settings, myapp=[a], other=[b])) is True
    assert text(port, "other.localhost") == (200, "B\n")  # no sleep: apply waits for the reload
    assert router.apply(table(settings, myapp=[c], other=[b])) is True
    assert {text(port, "myapp.localhost") for _ in range(5)} == {(200, "C\n")}
    assert router.apply(table(settings, myapp=[c], other=[b])) is False  # unchanged: no reload
    assert router.apply(table(settings, other=[b])) is True
    assert text(port, "myapp.localhost")[0] == 404
    # Longest legal hostname fits nginx's server_names hash.
    long_host = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
    assert len(long_host) == 253
    assert router.apply((Route("long", (long_host,), (a,)),)) is True
    assert text(port, long_host) == (200, "A\n")


def test_apply_fresh_computes_under_the_lock_so_a_stale_table_never_lands_last(router, settings, upstreams):
    # The CI failure this guards against: the router loop computed a table, a deploy then
    # switched upstreams and stopped the old instance, and the router applied its stale
    # table last (the app had no live upstream: 503s until the next pass).
    a, b = upstreams("A"), upstreams("B")
    router.apply(table(settings, myapp=[a]))
    slow_started, release_slow, calls = threading.Event(), threading.Event(), []

    def slow_load():            # an older computation, still running when a newer one starts
        calls.append("slow")
        slow_started.set()
        assert release_slow.wait(10)
        return table(settings, myapp=[a])

    def fresh_load():
        calls.append("fresh")
        return table(settings, myapp=[b])

    slow = threading.Thread(target=router.apply_fresh, args=(slow_load,))
    slow.start()
    assert slow_started.wait(10)
    fresh = threading.Thread(target=router.apply_fresh, args=(fresh_load,))
    fresh.start()
    time.sleep(0.3)
    assert calls == ["slow"]    # the newer computation waits for the lock, it does not run alongside
    release_slow.set()
    slow.join(15)
    fresh.join(15)
    assert calls == ["slow", "fresh"]
    assert {text(settings.router_port, "myapp.localhost") for _ in range(5)} == {(200, "B\n")}


def test_apply_patch_computes_one_apps_route_only_while_the_live_routes_are_its_own(router, settings, upstreams):
    a, b, c = upstreams("A"), upstreams("B"), upstreams("C")
    port, loads = settings.router_port, []

    def load(**apps):
        def whole():
            loads.append(sorted(apps))
            return table(settings, **apps)
        return whole

    assert router.apply_fresh(load(myapp=[a], other=[b])) is True
    # the live routes are this object's last table: the other app's route is taken as it serves
    assert router.apply_patch("myapp", lambda: table(settings, myapp=[c])[0], load(myapp=[c], other=[b])) is True
    assert loads == [["myapp", "other"]]
    assert {text(port, "myapp.localhost") for _ in range(5)} == {(200, "C\n")}
    assert text(port, "other.localhost") == (200, "B\n")
    # another process (its own object) applied since: the whole table is loaded again
    elsewhere = Nginx(router_config(settings))
    assert elsewhere.apply_fresh(lambda: table(settings, myapp=[c], other=[a])) is True
    assert router.apply_patch("myapp", lambda: table(settings, myapp=[b])[0], load(myapp=[b], other=[a])) is True
    assert loads == [["myapp", "other"], ["myapp", "other"]]
    assert text(port, "myapp.localhost") == (200, "B\n") and text(port, "other.localhost") == (200, "A\n")
    # an app its last table lacks (created since), or one whose route is gone: the whole table
    assert router.apply_patch("third", lambda: table(settings, third=[c])[0],
                              load(myapp=[b], other=[a], third=[c])) is True
    assert router.apply_patch("myapp", lambda: None, load(other=[a], third=[c])) is True
    assert loads[2:] == [["myapp", "other", "third"], ["other", "third"]]
    assert text(port, "myapp.localhost")[0] == 404 and text(port, "third.localhost") == (200, "C\n")


def test_apply_current_serves_callers_that_waited_with_one_load_begun_after_them(router, settings, upstreams):
    # Parallel deploys or app creations each apply routes: the ones that waited while another
    # load ran share the next load (one render and reload), never the one that began before them.
    a, b = upstreams("A"), upstreams("B")
    router.apply(table(settings, myapp=[a]))
    slow_started, release_slow, calls, results = threading.Event(), threading.Event(), [], []

    def slow_load():
        calls.append("slow")
        slow_started.set()
        assert release_slow.wait(10)
        return table(settings, myapp=[a])

    def fresh_load():
        calls.append("fresh")
        return table(settings, myapp=[b])

    slow = threading.Thread(target=router.apply_current, args=(slow_load,))
    slow.start()
    assert slow_started.wait(10)
    waiters = [threading.Thread(target=lambda: results.append(router.apply_current(fresh_load))) for _ in range(4)]
    for t in waiters:
        t.start()
    time.sleep(0.3)
    assert calls == ["slow"]
    release_slow.set()
    for t in [slow, *waiters]:
        t.join(15)
    assert calls == ["slow", "fresh"]          # four callers, one load after the one they waited for
    assert results == [True] * 4               # each hears that the apply that served it changed routes
    assert {text(settings.router_port, "myapp.localhost") for _ in range(5)} == {(200, "B\n")}
    assert router.apply_current(fresh_load) is False and calls == ["slow", "fresh", "fresh"]


def test_rejected_config_keeps_the_previous_one_serving(router, settings, upstreams, monkeypatch):
    a, b = upstreams("A"), upstreams("B")
    heard = []
    router.on_reload = lambda result, seconds: heard.append((result, seconds))
    router.apply(table(settings, myapp=[a]))
    live = router.routes_path.read_bytes()
    good_render = render.render_routes
    monkeypatch.setattr(
        render, "render_routes", lambda *args, **kw: good_render(*args, **kw) + "bogus_directive on;\n"
    )
    with pytest.raises(ConfigRejected) as err:
        router.apply(table(settings, myapp=[b]))
    assert 'unknown directive "bogus_directive"' in err.value.output
    assert "bogus_directive" in str(err.value) and "previous config keeps serving" in str(err.value)
    assert str(router.rejected_path) in str(err.value)
    assert "bogus_directive" in router.rejected_path.read_text()
    assert router.routes_path.read_bytes() == live
    assert sorted(p.name for p in router.conf_path.parent.iterdir()) == [
        "nginx.conf",
        "routes.conf",
        "routes.conf.rejected",
    ]
    assert text(settings.router_port, "myapp.localhost") == (200, "A\n")
    monkeypatch.setattr(render, "render_routes", good_render)
    assert router.apply(table(settings, myapp=[b])) is True
    assert text(settings.router_port, "myapp.localhost") == (200, "B\n")
    assert [r for r, _ in heard] == ["ok", "rejected", "ok"]    # the reload metrics' source
    assert all(0 < t < 15 for r, t in heard if r == "ok")


def test_a_running_router_checks_a_change_by_its_reload_alone(router, settings, upstreams, monkeypatch):
    # No separate `nginx -t` while nginx runs: the reload parses the config once, and a config
    # it refuses (injected here) leaves the same master serving the old one, files put back.
    a, b = upstreams("A"), upstreams("B")
    monkeypatch.setattr(router, "_test_config", lambda conf: pytest.fail("nginx -t ran while nginx runs"))
    assert router.apply(table(settings, myapp=[a])) is True
    pid, live = router.master_pid(), router.routes_path.read_text()
    good = render.render_routes
    monkeypatch.setattr(render, "render_routes", lambda *x, **k: good(*x, **k) + "bogus_directive on;\n")
    with pytest.raises(ConfigRejected) as err:
        router.apply(table(settings, myapp=[b]))
    assert 'unknown directive "bogus_directive"' in str(err.value) and str(router.rejected_path) in err.value.output
    assert router.master_pid() == pid and router.routes_path.read_text() == live
    assert text(settings.router_port, "myapp.localhost") == (200, "A\n")
    monkeypatch.setattr(render, "render_routes", good)
    assert router.apply(table(settings, myapp=[b])) is True
    assert text(settings.router_port, "myapp.localhost") == (200, "B\n")


def test_render_error_touches_nothing(router, settings):
    router.apply(table(settings, ok=[]))
    live = router.routes_path.read_bytes()
    with pytest.raises(RouterError) as err:
        router.apply((Route("bad;app", ("x.localhost",)),))
    assert err.value.status == 400
    assert router.routes_path.read_bytes() == live


def test_concurrent_apply_is_safe(router, settings, upstreams):
    ups = [upstreams(f"U{i}") for i in range(3)]
    tables = [table(settings, **{f"app{i}": [ups[i % 3]], "shared": [ups[(i + 1) % 3]]}) for i in range(6)]
    errors = []

    def worker(t):
        try:
            for _ in range(3):
                Nginx(router_config(settings)).apply(t)  # a fresh instance, like separate processes
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    # Threads, and one real other process, all applying at once.
    other = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from controller.settings import Settings, router_config; "
            "from router.nginx import Nginx; from router.table import build_table, Upstream; "
            "s = Settings(home=Path(sys.argv[1]), router_port=int(sys.argv[2])); "
            "[Nginx(router_config(s)).apply(build_table([('proc', [Upstream('127.0.0.1', int(sys.argv[3]))])], s.domain)) "
            " for _ in range(3)]",
            str(settings.home),
            str(settings.router_port),
            str(ups[0].port),
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    threads = [threading.Thread(target=worker, args=(t,)) for t in tables]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert other.wait(timeout=120) == 0
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)
    # The live file is exactly one complete render, nginx accepts it, and serves it.
    live = router.routes_path.read_text()
    candidates = [render.render_routes(t, settings.router_port, domain=settings.domain) for t in tables]
    candidates.append(render.render_routes(build_table([("proc", [ups[0]])], settings.domain), settings.router_port,
                                           domain=settings.domain))
    assert live in candidates
    router.test_config()
    assert sorted(p.name for p in router.conf_path.parent.iterdir()) == ["nginx.conf", "routes.conf"]
    winner = candidates.index(live)
    app = f"app{winner}" if winner < len(tables) else "proc"
    assert text(settings.router_port, host(settings, app))[0] == 200


def test_apply_waits_for_the_lock_and_times_out(settings, tmp_path):
    nginx = Nginx(router_config(settings), lock_timeout=0.5)
    nginx.ensure_layout()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time; f = open(sys.argv[1], 'a+'); fcntl.flock(f, fcntl.LOCK_EX); "
            "print('locked', flush=True); time.sleep(30)",
            str(nginx.lock_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        with pytest.raises(RouterError, match="router lock"):
            nginx.apply(table(settings, myapp=[]))
        assert 0.4 < time.monotonic() - started < 5
    finally:
        holder.kill()
        holder.wait(timeout=10)
    assert nginx.apply(table(settings, myapp=[])) is True  # lock released with its holder


def test_zero_dropped_requests_while_reloading(router, settings, upstreams):
    """4 keep-alive clients hammer one app while its routes flip between two
    upstream sets 50 times. Every request must succeed.

    Like browsers and HTTP libraries (RFC 9112 section 9.3.1), the client
    retries a request once if a *reused* keep-alive connection turns out to be
    closed before any response byte arrived: nginx's old workers close idle
    keep-alive connections when they hand over to new ones. A failure on a
    fresh connection, an error status or a wrong body counts as dropped.
    """
    set_x = [upstreams("X1"), upstreams("X2")]
    set_y = [upstreams("Y1"), upstreams("Y2")]
    tables = [table(settings, myapp=set_x), table(settings, myapp=set_y)]
    router.apply(tables[0])
    port, done = settings.router_port, threading.Event()
    stats = {"ok": 0, "failed": [], "stale_retries": 0, "closed_idle": 0, "bodies": set()}
    lock = threading.Lock()
    expected = {"X1\n", "X2\n", "Y1\n", "Y2\n"}

    def client():
        conn, used, sent = None, False, 0
        while not done.is_set() and sent < 1500:
            for attempt in (1, 2):
                if conn is not None and select.select([conn.sock], [], [], 0)[0]:
                    # Like urllib3: an idle connection that became readable was closed by the server.
                    conn.close()
                    conn = None
                    with lock:
                        stats["closed_idle"] += 1
                if conn is None:
                    conn, used = http.client.HTTPConnection("127.0.0.1", port, timeout=10), False
                try:
                    conn.request("GET", "/", headers={"Host": "myapp.localhost"})
                    resp = conn.getresponse()
                    body = resp.read().decode()
                    used = True
                    with lock:
                        if resp.status == 200 and body in expected:
                            stats["ok"] += 1
                            stats["bodies"].add(body)
                        else:
                            stats["failed"].append((resp.status, body[:200]))
                    if resp.will_close:
                        conn.close()
                        conn = None
                    break
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                    conn.close()
                    conn = None
                    if used and attempt == 1:
                        with lock:
                            stats["stale_retries"] += 1
                        continue  # reused connection closed under us: retry once on a fresh one
                    with lock:
                        stats["failed"].append(repr(exc))
                    break
                except Exception as exc:  # noqa: BLE001 - any other error is a dropped request
                    conn.close()
                    conn = None
                    with lock:
                        stats["failed"].append(repr(exc))
                    break
            sent += 1
            time.sleep(0.003)
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(4)]
    started = time.monotonic()
    for t in threads:
        t.start()
    try:
        time.sleep(0.2)
        for i in range(50):
            assert router.apply(tables[(i + 1) % 2]) is True
            time.sleep(0.05)
            if time.monotonic() - started > 60:
                pytest.fail("50 reloads took over 60 s")
    finally:
        done.set()
        for t in threads:
            t.join(timeout=30)
    elapsed = time.monotonic() - started
    print(
        f"\nload: {stats['ok']} ok, {len(stats['failed'])} failed, {stats['closed_idle']} idle keep-alive "
        f"connections found closed, {stats['stale_retries']} retried, 50 reloads in {elapsed:.1f}s"
    )
    assert not any(t.is_alive() for t in threads)
    assert stats["failed"] == [], stats["failed"][:10]
    assert stats["ok"] >= 200
    assert stats["bodies"] == expected
    # The last apply was set_x (50 is even): only X answers now.
    assert {text(port, "myapp.localhost")[1] for _ in range(6)} == {"X1\n", "X2\n"}


# ---------------------------------------------------------------- process control
def test_start_fails_clearly_when_the_port_is_taken(settings):
    with socket.socket() as blocker:
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind(("127.0.0.1", settings.router_port))
        blocker.listen()
        nginx = Nginx(router_config(settings))
        with pytest.raises(RouterError) as err:
            nginx.start_foreground(stderr=subprocess.DEVNULL, timeout=15)
    assert "Address already in use" in str(err.value)
    assert "DOCKYARD_ROUTER_PORT" in str(err.value)
    assert not nginx.running()


def test_stop_is_graceful(router, settings, upstreams):
    router.apply(table(settings, myapp=[upstreams("A")]))
    result = {}

    def slow():
        result["r"] = text(settings.router_port, "myapp.localhost", "/slow")

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.3)  # the request is in flight at the upstream
    router.stop(timeout=10)
    t.join(timeout=10)
    assert result["r"] == (200, "A slow\n")
    assert not router.running()
    with pytest.raises(ConnectionRefusedError):
        request(settings.router_port, "myapp.localhost")


def test_reload_when_not_running_says_how_to_start(settings):
    nginx = Nginx(router_config(settings))
    nginx.ensure_layout()
    with pytest.raises(RouterError, match="python -m controller.daemons.platformd"):
        nginx.reload()
    assert nginx.apply(table(settings, myapp=[])) is True  # writes the config; nothing to reload


def test_main_run_in_a_thread_logs_rejections_and_keeps_serving(settings, upstreams, monkeypatch, caplog):
    import queue

    from router import loop as main

    a, b = upstreams("A"), upstreams("B")
    current = {"routes": table(settings, myapp=[a])}

    def load(_settings):
        if current["routes"] is None:
            raise OSError("database is locked")
        return current["routes"]

    events = queue.SimpleQueue()
    nginx = Nginx(router_config(settings))
    result = {}
    runner = threading.Thread(
        target=lambda: result.update(code=main.run(router_config(settings), load, 0.1, events=events, nginx=nginx))
    )
    caplog.set_level("INFO", logger="dockyard.router")
    runner.start()
    try:
        wait_for(lambda: text(settings.router_port, "myapp.localhost") == (200, "A\n"), what="A served")
        current["routes"] = None
        wait_for(lambda: "could not load routes" in caplog.text, what="load failure logged")
        assert "database is locked" in caplog.text
        good_render = render.render_routes
        monkeypatch.setattr(
            render, "render_routes", lambda *a, **k: good_render(*a, **k) + "bogus_directive on;\n"
        )
        current["routes"] = table(settings, myapp=[b])
        wait_for(lambda: "could not apply routes" in caplog.text, what="rejection logged")
        assert "bogus_directive" in caplog.text
        assert text(settings.router_port, "myapp.localhost") == (200, "A\n")
        monkeypatch.setattr(render, "render_routes", good_render)
        wait_for(lambda: text(settings.router_port, "myapp.localhost") == (200, "B\n"), what="B served")
    finally:
        events.put(main.STOP)
        runner.join(timeout=30)
        kill_nginx_for(nginx.prefix)
    assert result == {"code": 0}
    assert not nginx.running()


def test_main_restarts_nginx_after_sigkill_and_exits_0_on_sigterm(settings, upstreams, tmp_path):
    a, b = upstreams("A"), upstreams("B")
    routes_json = tmp_path / "routes.json"
    routes_json.write_text(json.dumps({"myapp": [[a.host, a.port]]}))
    log_path = tmp_path / "router.log"
    port = settings.router_port
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", RUNNER_SCRIPT, str(settings.home), str(port), str(routes_json)],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    nginx = Nginx(router_config(settings))
    try:
        wait_for(lambda: "router listening" in log_path.read_text(), what="router started")
        assert text(port, "myapp.localhost") == (200, "A\n")
        first = nginx.master_pid()
        assert first is not None
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: nginx.master_pid() not in (None, first), timeout=15, what="a new nginx master")
        wait_for(lambda: text(port, "myapp.localhost") == (200, "A\n"), what="A served again")
        # No orphaned worker of the killed master is left serving stale routes.
        routes_json.write_text(json.dumps({"myapp": [[b.host, b.port]]}))
        wait_for(lambda: text(port, "myapp.localhost") == (200, "B\n"), what="B served")
        assert {text(port, "myapp.localhost") for _ in range(10)} == {(200, "B\n")}
        # A broken loader is logged; the previous routes keep serving.
        routes_json.write_text("{not json")
        wait_for(lambda: "could not load routes" in log_path.read_text(), what="load failure logged")
        assert text(port, "myapp.localhost") == (200, "B\n")
        second = nginx.master_pid()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert not nginx.running()
        assert nginx.master_pid() is None
        with pytest.raises(ConnectionRefusedError):
            request(port, "myapp.localhost")
        assert second is not None
    finally:
        kill_group(proc.pid)
        proc.wait(timeout=10)
        kill_nginx_for(nginx.prefix, settle=1.5)  # orphaned workers, or an nginx being started
    output = log_path.read_text()
    assert "nginx exited with code" in output and "restarting it" in output, output


def test_a_refresh_event_applies_routes_at_once_not_at_the_next_pass(settings, upstreams):
    import queue

    from router import loop as main

    a, b = upstreams("A"), upstreams("B")
    current = {"routes": table(settings, myapp=[a])}
    events = queue.SimpleQueue()
    nginx = Nginx(router_config(settings))
    runner = threading.Thread(target=lambda: main.run(router_config(settings), lambda _s: current["routes"], 3600,
                                                      events=events, nginx=nginx))
    runner.start()
    try:
        wait_for(lambda: text(settings.router_port, "myapp.localhost") == (200, "A\n"), what="A served")
        current["routes"] = table(settings, myapp=[b])
        time.sleep(0.5)
        assert text(settings.router_port, "myapp.localhost") == (200, "A\n")   # no pass for an hour
        for _ in range(5):    # a burst of engine events is one pass
            events.put(main.REFRESH)
        wait_for(lambda: text(settings.router_port, "myapp.localhost") == (200, "B\n"), timeout=3, what="B served")
    finally:
        events.put(main.STOP)
        runner.join(timeout=30)
        kill_nginx_for(nginx.prefix)
