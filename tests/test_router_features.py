"""Router features against the real nginx with local upstreams (127.0.0.1 only): TLS and
HTTPS redirect, wildcard hosts, maintenance, per-app limits and their error pages, SSE and
WebSockets (a real client), retries only when safe, one app's bad certificate not taking the
others down, and access-log harvesting. Fixtures come from test_router_nginx.py."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from controller.settings import Settings
from router.accesslog import Harvester
from router.errors import ConfigRejected
from router.table import Route, RouteOptions, Tls, Upstream
from tests.router_helpers import write_pair
# `router` and `upstreams` are fixtures; `router` starts nginx with this module's `settings` (TLS port too)
from tests.test_router_nginx import (  # noqa: F401  (fixtures)
    NGINX, free_port, kill_group, request, router, text, upstreams, wait_for,
)

pytestmark = pytest.mark.skipif(not os.path.exists(NGINX), reason=f"nginx is not installed at {NGINX}")

# An upstream with slow, streaming (SSE), counting and WebSocket endpoints (websockets + stdlib).
FEATURE_UPSTREAM = textwrap.dedent(
    r"""
    import asyncio, json, sys, time
    from websockets.asyncio.server import serve
    from websockets.http11 import Response
    from websockets.datastructures import Headers

    NAME = sys.argv[1]
    COUNTS = {"post": 0, "get": 0}

    async def http(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:] if ":" in l)}
                n = int(headers.get("content-length", 0))
                if n:
                    await reader.readexactly(n)
                COUNTS["post" if method == "POST" else "get"] += 1
                if path == "/sse":
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                                 b"Transfer-Encoding: chunked\r\n\r\n")
                    for i in range(3):
                        chunk = f"data: tick {i} {time.time()}\n\n".encode()
                        writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                        await writer.drain()
                        await asyncio.sleep(1.0)
                    writer.write(b"0\r\n\r\n")
                    await writer.drain()
                    continue
                if path.startswith("/slow"):
                    await asyncio.sleep(3)
                if path == "/drop":        # close without answering: a connection error mid-request
                    writer.close()
                    return
                body = json.dumps({"name": NAME, "counts": COUNTS, "headers": headers}).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                             + str(len(body)).encode() + b"\r\n\r\n" + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def echo(ws):
        async for message in ws:
            await ws.send(f"{NAME} echo: {message}")

    async def main():
        server = await asyncio.start_server(http, "127.0.0.1", 0)
        ws = await serve(echo, "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], ws.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()

    asyncio.run(main())
    """
)


@pytest.fixture
def features():
    procs = []

    def start(name):
        proc = subprocess.Popen([sys.executable, "-c", FEATURE_UPSTREAM, name], stdout=subprocess.PIPE, text=True,
                                start_new_session=True)
        procs.append(proc)
        http_port, ws_port = map(int, proc.stdout.readline().split())
        return Upstream("127.0.0.1", http_port), Upstream("127.0.0.1", ws_port)

    yield start
    for proc in procs:
        kill_group(proc.pid)
        proc.wait(timeout=10)


@pytest.fixture
def settings(tmp_path):
    return Settings(home=tmp_path / "home", router_port=free_port(), router_tls_port=free_port(), nginx_bin=NGINX)


def curl(*args, timeout=10) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", "--max-time", str(timeout), *args], capture_output=True, text=True,
                          timeout=timeout + 5)


def https(settings, host, path="/", cacert=None, extra=()):
    port = settings.router_tls_port
    args = ["--resolve", f"{host}:{port}:127.0.0.1", "-o", "-", "-w", "\n%{http_code}", *extra]
    args += ["--cacert", str(cacert)] if cacert else ["-k"]
    proc = curl(*args, f"https://{host}:{port}{path}")
    body, _, code = proc.stdout.rpartition("\n")
    return int(code or 0), body, proc.stderr


# ---------------------------------------------------------------- TLS
def test_https_with_the_apps_certificate_and_redirect(router, settings, tmp_path, upstreams):
    a = upstreams("A")
    crt, key = write_pair(tmp_path / "c", "shop", ["shop.example.com", "*.shop.example.com"])
    route = Route("shop", ("shop.localhost", "shop.example.com", "*.shop.example.com"), (a,),
                  tls=Tls(str(crt), str(key)))
    router.apply((route, Route("plain", ("plain.localhost",), (a,))))
    # Verified against the certificate (no -k): the right certificate is served for the name.
    assert https(settings, "shop.example.com", cacert=crt)[:2] == (200, "A\n")
    assert https(settings, "eu.shop.example.com", cacert=crt)[:2] == (200, "A\n")   # wildcard
    # Plain HTTP still works without force-https.
    assert text(settings.router_port, "shop.example.com") == (200, "A\n")
    # A name with no certificate: the handshake is refused, no wrong certificate is shown.
    code, _, err = https(settings, "plain.localhost")
    assert code == 0 and err
    # force-https: plain HTTP is redirected (308 keeps the method), HTTPS says so to the app.
    router.apply((Route("shop", route.hostnames, (a,), tls=route.tls, force_https=True),))
    status, _, resp = request(settings.router_port, "shop.example.com", "/a?b=1")
    assert status == 308
    assert resp.getheader("Location") == f"https://shop.example.com:{settings.router_tls_port}/a?b=1"
    code, body, _ = https(settings, "shop.example.com", "/headers", cacert=crt)
    assert code == 200 and json.loads(body)["headers"]["X-Forwarded-Proto"] == "https"


def test_one_apps_broken_certificate_does_not_take_the_router_down(router, settings, tmp_path, upstreams):
    a, b = upstreams("A"), upstreams("B")
    good_crt, good_key = write_pair(tmp_path / "c", "good", ["good.example.com"])
    bad_crt, bad_key = write_pair(tmp_path / "c", "bad", ["bad.example.com"])
    bad_crt.write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    routes = (
        Route("good", ("good.example.com",), (a,), tls=Tls(str(good_crt), str(good_key))),
        Route("bad", ("bad.example.com",), (b,), tls=Tls(str(bad_crt), str(bad_key)),
              options=RouteOptions(read_timeout=120)),
    )
    assert router.apply(routes) is True
    refused = router.refused()
    assert list(refused) == ["bad"]
    assert "cannot load certificate" in refused["bad"] and str(bad_crt) in refused["bad"]
    # Everyone is served; the bad app without its certificate (plain HTTP still works).
    assert https(settings, "good.example.com", cacert=good_crt)[:2] == (200, "A\n")
    assert text(settings.router_port, "bad.example.com") == (200, "B\n")
    assert "read_timeout 120s" not in router.routes_path.read_text()
    # A fixed certificate is picked up and the refusal is cleared.
    bad_crt2, bad_key2 = write_pair(tmp_path / "c2", "bad", ["bad.example.com"])
    router.apply((routes[0], Route("bad", ("bad.example.com",), (b,), tls=Tls(str(bad_crt2), str(bad_key2)))))
    assert router.refused() == {}
    assert https(settings, "bad.example.com", cacert=bad_crt2)[:2] == (200, "B\n")


def test_a_bad_setting_nginx_refuses_is_blamed_on_its_app(router, settings, upstreams, monkeypatch):
    # An app setting that passes our validation but that nginx refuses (simulated by a
    # render that emits an invalid value for that one app): others keep their changes.
    from router import render
    a, b = upstreams("A"), upstreams("B")
    good = render._render_app

    def broken(route, *args):
        out = good(route, *args)
        return out.replace("proxy_read_timeout 77s;", "proxy_read_timeout 77parsecs;")

    monkeypatch.setattr(render, "_render_app", broken)
    router.apply((Route("one", ("one.localhost",), (a,), options=RouteOptions(read_timeout=77)),
                  Route("two", ("two.localhost",), (b,))))
    assert list(router.refused()) == ["one"]
    assert 'nginx said: "proxy_read_timeout" directive invalid value' in router.refused()["one"]
    assert text(settings.router_port, "one.localhost") == (200, "A\n")
    assert text(settings.router_port, "two.localhost") == (200, "B\n")


def test_a_refusal_no_app_explains_keeps_the_previous_config(router, settings, upstreams, monkeypatch):
    from router import render
    a = upstreams("A")
    router.apply((Route("one", ("one.localhost",), (a,)),))
    good = render.render_routes
    monkeypatch.setattr(render, "render_routes", lambda *x, **k: good(*x, **k) + "bogus on;\n")
    with pytest.raises(ConfigRejected):
        router.apply((Route("one", ("one.localhost",), (a,)), Route("two", ("two.localhost",), (a,))))
    assert text(settings.router_port, "two.localhost")[0] == 404
    assert text(settings.router_port, "one.localhost") == (200, "A\n")


# ---------------------------------------------------------------- per-app settings and pages
def test_maintenance_page_without_touching_the_app(router, settings, upstreams):
    a = upstreams("A")
    router.apply((Route("shop", ("shop.localhost",), (a,), maintenance=True),))
    status, body, resp = request(settings.router_port, "shop.localhost")
    assert status == 503 and resp.getheader("Retry-After") == "60"
    assert b"App shop is down for maintenance" in body and b"dockyard maintenance:off -a shop" in body
    router.apply((Route("shop", ("shop.localhost",), (a,)),))
    assert text(settings.router_port, "shop.localhost") == (200, "A\n")


def test_body_limit_413_page_names_the_setting(router, settings, upstreams):
    a = upstreams("A")
    router.apply((Route("small", ("small.localhost",), (a,), options=RouteOptions(client_max_body_size="1k")),
                  Route("big", ("big.localhost",), (a,))))
    status, body, _ = request(settings.router_port, "small.localhost", "/", "POST", b"x" * 5000)
    assert status == 413
    assert b"client-max-body-size=1k" in body and b"dockyard router:set client-max-body-size=" in body
    # The default is larger than nginx's 1 MB.
    payload = b"y" * (3 * 1024 * 1024)
    status, body, _ = request(settings.router_port, "big.localhost", "/", "POST", payload)
    assert status == 200 and body.startswith(b"A got 3145728")


def test_read_timeout_504_page_names_the_setting(router, settings, features):
    http_up, _ = features("S")
    router.apply((Route("slow", ("slow.localhost",), (http_up,), options=RouteOptions(read_timeout=1)),
                  Route("patient", ("patient.localhost",), (http_up,), options=RouteOptions(read_timeout=10))))
    status, body, _ = request(settings.router_port, "slow.localhost", "/slow", timeout=20)
    assert status == 504
    assert b"read-timeout=1s" in body and b"dockyard router:set read-timeout=" in body
    status, body, _ = request(settings.router_port, "patient.localhost", "/slow", timeout=20)
    assert status == 200 and json.loads(body)["name"] == "S"


def test_request_id_forwarded_headers_and_client_request_id(router, settings, features):
    http_up, _ = features("H")
    router.apply((Route("h", ("h.localhost",), (http_up,)),))
    _, body, _ = request(settings.router_port, "h.localhost", "/x", headers={"X-Request-Id": "client-supplied-id-0123456789"})
    seen = json.loads(body)["headers"]
    assert seen["x-request-id"] == "client-supplied-id-0123456789"
    assert seen["x-forwarded-proto"] == "http" and seen["x-forwarded-host"] == "h.localhost"
    assert seen["x-forwarded-for"] == "127.0.0.1"
    _, body, _ = request(settings.router_port, "h.localhost", "/x", headers={"X-Request-Id": "bad id\twith spaces"})
    assert len(json.loads(body)["headers"]["x-request-id"]) == 32


# ---------------------------------------------------------------- streams
def test_server_sent_events_are_not_buffered(router, settings, features):
    http_up, _ = features("E")
    router.apply((Route("ev", ("ev.localhost",), (http_up,)),))
    sock = socket.create_connection(("127.0.0.1", settings.router_port), timeout=10)
    try:
        sock.sendall(b"GET /sse HTTP/1.1\r\nHost: ev.localhost\r\nAccept: text/event-stream\r\n\r\n")
        start = time.monotonic()
        data = b""
        while b"tick 0" not in data:
            chunk = sock.recv(4096)
            assert chunk, data
            data += chunk
        first = time.monotonic() - start
        while b"tick 2" not in data:
            chunk = sock.recv(4096)
            assert chunk, data
            data += chunk
        # The first event arrived before the stream ended (the stream takes >= 2 s): not buffered.
        assert time.monotonic() - start - first >= 1.5
        assert b"text/event-stream" in data
    finally:
        sock.close()


def test_websocket_through_the_router_with_a_real_client(router, settings, features):
    from websockets.sync.client import connect
    _, ws_up = features("W")
    router.apply((Route("ws", ("ws.localhost",), (ws_up,), options=RouteOptions(read_timeout=5)),))
    url = f"ws://ws.localhost:{settings.router_port}/chat"
    sock = socket.create_connection(("127.0.0.1", settings.router_port), timeout=10)
    with connect(url, sock=sock, open_timeout=10) as ws:
        for i in range(3):
            ws.send(f"hello {i}")
            assert ws.recv(timeout=10) == f"W echo: hello {i}"
        # A route change (reload) does not cut an open WebSocket.
        router.apply((Route("ws", ("ws.localhost", "ws2.localhost"), (ws_up,), options=RouteOptions(read_timeout=5)),))
        ws.send("after reload")
        assert ws.recv(timeout=10) == "W echo: after reload"


# ---------------------------------------------------------------- failover
def test_get_is_retried_on_another_instance_but_post_is_not(router, settings, features):
    dead = Upstream("127.0.0.1", free_port())
    (a, _), (b, _) = features("A"), features("B")
    router.apply((Route("r", ("r.localhost",), (dead, a)),))
    for _ in range(6):
        status, body, _ = request(settings.router_port, "r.localhost", "/")
        assert status == 200 and json.loads(body)["name"] == "A"
    # POST to an instance that drops the connection mid-request is not replayed elsewhere.
    router.apply((Route("p", ("p.localhost",), (a, b)),))
    codes = [request(settings.router_port, "p.localhost", "/drop", "POST", b"x")[0] for _ in range(4)]
    assert codes == [502] * 4
    posts = {}   # instance name -> POSTs it received, read back through the router
    for _ in range(8):
        seen = json.loads(request(settings.router_port, "p.localhost", "/")[1])
        posts[seen["name"]] = seen["counts"]["post"]
    assert set(posts) == {"A", "B"} and sum(posts.values()) == 4, posts   # none was sent twice


# ---------------------------------------------------------------- access logs
def test_access_log_lines_reach_the_sink_per_app_and_the_file_stays_bounded(router, settings, upstreams):
    a = upstreams("A")
    router.apply((Route("one", ("one.localhost",), (a,)), Route("two", ("two.localhost",), (a,))))
    got: dict[str, list] = {}
    harvester = Harvester(router.prefix, lambda by_app: [got.setdefault(k, []).extend(v) for k, v in by_app.items()],
                          max_bytes=2000)
    for i in range(20):
        request(settings.router_port, "one.localhost", f"/p{i}?q=1")
    request(settings.router_port, "two.localhost", "/x", "POST", b"abc")
    request(settings.router_port, "nobody.localhost", "/")   # unknown host: not an app's line
    wait_for(lambda: (harvester.harvest(), len(got.get("one", [])) == 20 and "two" in got)[1], timeout=15,
             what="lines harvested")
    at, source, process, message = got["two"][0]
    assert (source, process) == ("router", "router")
    assert "method=POST" in message and 'path="/x"' in message and "status=200" in message
    assert "bytes=" in message and "service=" in message and "request_id=" in message
    paths = {m[3].split('path="')[1].split('"')[0] for m in got["one"]}   # workers flush in any order
    assert paths == {f"/p{i}?q=1" for i in range(20)}
    assert set(got) == {"one", "two"}
    assert (router.prefix / "logs/access.log").stat().st_size < 2000   # truncated once read
    before = len(got["one"])
    request(settings.router_port, "one.localhost", "/after")
    wait_for(lambda: (harvester.harvest(), len(got["one"]) == before + 1)[1], timeout=15, what="next line")
    assert 'path="/after"' in got["one"][-1][3]
