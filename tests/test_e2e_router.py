"""The router's features through the whole platform (`make up`, real git push, Docker,
nginx, curl, a real WebSocket client): custom and wildcard domains, certificates and HTTPS,
per-app settings and their error pages, maintenance, router lines in `dockyard logs`, and
routes restored after the router process and nginx are killed."""
from __future__ import annotations

import os
import secrets
import signal
import socket

import pytest

from .conftest import httpd_app, make_app_repo, run, unique_app, wait_until
from .router_helpers import write_pair

pytestmark = pytest.mark.e2e

STACK = os.environ.get("DOCKYARD_STACK_IMAGE", "dockyard/stack:bookworm")

# A WebSocket echo + plain HTTP app in python3 stdlib only (RFC 6455: handshake, masked client
# frames, unmasked server frames), run FROM the stack image.
WS_APP = r'''
import base64, hashlib, os, socketserver, struct
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

class H(socketserver.StreamRequestHandler):
    def handle(self):
        while True:
            line = self.rfile.readline()
            if not line:
                return
            headers = {}
            while True:
                h = self.rfile.readline().decode()
                if h in ("\r\n", "\n", ""):
                    break
                k, _, v = h.partition(":")
                headers[k.strip().lower()] = v.strip()
            if headers.get("upgrade", "").lower() == "websocket":
                accept = base64.b64encode(hashlib.sha1((headers["sec-websocket-key"] + GUID).encode()).digest())
                self.wfile.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                 b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
                return self.echo()
            n = int(headers.get("content-length", 0) or 0)
            if n:
                self.rfile.read(n)
            body = ("ws-app " + line.decode().split()[1] + "\n").encode()
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

    def echo(self):
        while True:
            head = self.rfile.read(2)
            if len(head) < 2:
                return
            op, n = head[0] & 0x0F, head[1] & 0x7F
            if n == 126:
                n = struct.unpack(">H", self.rfile.read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self.rfile.read(8))[0]
            mask = self.rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(n)))
            if op == 8:
                self.wfile.write(b"\x88\x00")
                return
            if op == 9:
                self.wfile.write(b"\x8a" + bytes([len(data)]) + data)
                continue
            reply = b"echo: " + data
            self.wfile.write(bytes([0x81, len(reply)]) + reply if len(reply) < 126
                             else bytes([0x81, 126]) + struct.pack(">H", len(reply)) + reply)

class S(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

S(("0.0.0.0", int(os.environ["PORT"])), H).serve_forever()
'''


def deploy(p, tmp_path, files, name=None):
    name = name or unique_app()
    repo = make_app_repo(tmp_path / name, files, p)
    p.cli("apps:create", name, cwd=repo)
    p.git("push", "dockyard", "main", cwd=repo)
    return name


def curl_host(p, host, path="/", *extra, scheme="http", port=None):
    port = port or (p.router_tls_port if scheme == "https" else p.router_port)
    proc = run(["curl", "-sS", "--max-time", "10", "--resolve", f"{host}:{port}:127.0.0.1", "-o", "-",
                "-w", "\n%{http_code} %{redirect_url}", *extra, f"{scheme}://{host}:{port}{path}"], check=False)
    body, _, tail = proc.stdout.rpartition("\n")
    code, _, location = tail.partition(" ")
    return int(code or 0), body, location.strip(), proc.stderr


def fails(p, *args):
    proc = p.cli(*args, check=False)
    assert proc.returncode != 0, proc.stdout
    return proc.stderr


def other_user_env(p, name="bob"):
    from controller.store import Store
    store = Store(p.home / "dockyard.db")
    user = store.create_user(f"{name}-{secrets.token_hex(2)}")
    token = secrets.token_hex(16)
    store.add_token(user.id, token)
    return {**p.env, "DOCKYARD_API_TOKEN": token}


def test_domains_custom_wildcard_conflicts_and_validation(platform, tmp_path):
    p = platform
    a = deploy(p, tmp_path, httpd_app("app a"))
    b = deploy(p, tmp_path, httpd_app("app b"))
    host = f"www.{a}.example.com"
    out = p.cli("domains:add", host.upper(), "-a", a).stdout
    assert f"Adding {host} to {a}... done" in out
    p.cli("domains:add", f"*.{a}.example.org", "-a", a)
    listing = p.cli("domains", "-a", a).stdout
    assert f"{a}.{p.domain}" in listing and "default" in listing and host in listing
    assert curl_host(p, host)[:2] == (200, "app a")
    assert curl_host(p, f"eu.{a}.example.org")[:2] == (200, "app a")             # wildcard
    assert curl_host(p, f"{a}.{p.domain}")[:2] == (200, "app a")                  # default still works
    # Another app may not take it; the admin is told which app has it.
    err = fails(p, "domains:add", host, "-a", b)
    assert f"{host} is already used by app {a}" in err and f"domains:remove {host} -a {a}" in err
    # ... another user is not told the owner's name.
    from controller.store import Store
    bob = other_user_env(p)
    bob_app = unique_app("bob")
    run([*_cli(p), "apps:create", bob_app], env=bob, cwd=p.user_home)
    proc = run([*_cli(p), "domains:add", host, "-a", bob_app], env=bob, check=False)
    assert proc.returncode != 0 and "already used by another app" in proc.stderr and f"app {a}" not in proc.stderr
    # Someone else's default hostname, the platform domain, and anything that is not a hostname.
    assert "default hostname of app" in fails(p, "domains:add", f"{b}.{p.domain}", "-a", a)
    assert "platform domain" in fails(p, "domains:add", f"*.{p.domain}", "-a", a)
    for bad in ("evil.com;", "a b.com", "x.com\r\nX-Injected: 1", "$host.example.com", "http://x.com/"):
        assert "Invalid hostname" in fails(p, "domains:add", bad, "-a", a)
    p.cli("domains:remove", host, "-a", a)
    assert curl_host(p, host)[0] == 404
    assert "is not a domain of" in fails(p, "domains:remove", host, "-a", a)
    assert Store  # imported for other_user_env


def _cli(p):
    from .conftest import ROOT
    return [str(ROOT / ".venv/bin/dockyard")]


def test_certs_https_redirect_and_removal(platform, tmp_path):
    p = platform
    name = deploy(p, tmp_path, httpd_app("secure"))
    host = f"shop.{name}.example.com"
    p.cli("domains:add", host, "-a", name)
    crt, key = write_pair(tmp_path / "tls", "shop", [host], days=40)
    _, other_key = write_pair(tmp_path / "tls2", "other", [host])
    assert "does not match the certificate" in fails(p, "certs:add", str(crt), str(other_key), "-a", name)
    wrong_crt, wrong_key = write_pair(tmp_path / "tls3", "wrong", ["nothing.example.net"])
    assert "none of the app's hosts" in fails(p, "certs:add", str(wrong_crt), str(wrong_key), "-a", name)
    out = p.cli("certs:add", str(crt), str(key), "-a", name).stdout
    assert host in out and "(self-signed)" in out and "days)" in out
    assert f"not covered by this certificate: {name}.{p.domain}" in out
    assert curl_host(p, host, "/", "--cacert", str(crt), scheme="https")[:2] == (200, "secure")
    assert curl_host(p, host)[:2] == (200, "secure")                              # HTTP still served
    # Key and certificate files are private.
    files = list((p.home / "certs").iterdir())
    assert files and all(f.stat().st_mode & 0o777 == 0o600 for f in files)
    p.cli("router:set", "force-https=true", "-a", name)
    code, _, location, _ = curl_host(p, host, "/x?y=1")
    assert code == 308 and location == f"https://{host}:{p.router_tls_port}/x?y=1"
    assert "force-https: true" in p.cli("certs", "-a", name).stdout
    p.cli("certs:remove", "-a", name)
    assert curl_host(p, host, "/", "--cacert", str(crt), scheme="https")[0] == 0  # no HTTPS for it any more
    assert curl_host(p, host)[:2] == (200, "secure")                              # and no redirect
    # The default hostname keeps the platform's certificate, and force-https with it.
    default = f"{name}.{p.domain}"
    code, _, location, _ = curl_host(p, default, "/x")
    assert code == 308 and location == f"https://{default}:{p.router_tls_port}/x"
    assert "has no certificate" in p.cli("certs", "-a", name).stdout


def test_router_settings_pages_and_validation(platform, tmp_path):
    p = platform
    name = deploy(p, tmp_path, httpd_app("limits"))
    report = p.cli("router", "-a", name).stdout
    assert "client-max-body-size:   100m  (default)" in report and "read-timeout:           60  (default)" in report
    out = p.cli("router:set", "client-max-body-size=1k", "read-timeout=120", "-a", name).stdout
    assert "client-max-body-size:   1k\n" in out and "read-timeout:           120\n" in out
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 5000)
    code, body, _, _ = curl_host(p, f"{name}.{p.domain}", "/", "--data-binary", f"@{big}")
    assert code == 413 and "client-max-body-size=1k" in body and f"router:set client-max-body-size=200m -a {name}" in body
    assert "read-timeout='soon' is not a number of seconds" in fails(p, "router:set", "read-timeout=soon", "-a", name)
    assert "client-max-body-size='9g'" in fails(p, "router:set", "client-max-body-size=9g", "-a", name)
    assert "Unknown router setting 'bogus'" in fails(p, "router:set", "bogus=1", "-a", name)
    p.cli("router:set", "client-max-body-size=", "-a", name)                      # back to the default
    assert "client-max-body-size:   100m  (default)" in p.cli("router:report", "-a", name).stdout
    code, body, _, _ = curl_host(p, f"{name}.{p.domain}", "/", "--data-binary", f"@{big}")
    assert code != 413


def test_maintenance_mode_keeps_the_app_running(platform, tmp_path):
    p = platform
    name = deploy(p, tmp_path, httpd_app("open"))
    before = p.containers(name, running_only=True)
    p.cli("maintenance:on", "-a", name)
    code, body = p.curl(name)
    assert code == 503 and f"App {name} is down for maintenance" in body
    assert p.cli("maintenance", "-a", name).stdout.strip() == "on"
    assert p.containers(name, running_only=True) == before
    p.cli("maintenance:off", "-a", name)
    assert p.curl(name) == (200, "open")


def test_router_lines_show_in_the_apps_logs(platform, tmp_path):
    p = platform
    name = deploy(p, tmp_path, httpd_app("logged"))
    tag = secrets.token_hex(4)
    p.curl(name, f"/index.html?tag={tag}")
    p.curl(name, f"/missing-{tag}")

    def lines():
        out = p.cli("logs", "-a", name, "--source", "router").stdout
        return out if f"missing-{tag}" in out and f"tag={tag}" in out else None

    out = wait_until(lines, 30, "router lines in the app's logs", every=0.25)
    line = next(l for l in out.splitlines() if f"missing-{tag}" in l)
    assert "router[router]: at=info method=GET" in line and "status=404" in line
    assert "request_id=" in line and "bytes=" in line and "service=" in line
    assert "status=200" in next(l for l in out.splitlines() if f"tag={tag}" in l)
    # The file nginx writes is harvested, not kept growing (offset tracked, truncated when large).
    assert (p.home / "router/logs/access.log.offset").exists()


def test_websocket_through_the_router_to_a_container(platform, tmp_path):
    from websockets.sync.client import connect
    p = platform
    files = {"Dockerfile": f"FROM {STACK}\nCOPY app.py /app/app.py\nCMD [\"python3\", \"/app/app.py\"]\n",
             "app.py": WS_APP}
    name = deploy(p, tmp_path, files)
    assert p.curl(name, "/hello") == (200, "ws-app /hello\n")
    sock = socket.create_connection(("127.0.0.1", p.router_port), timeout=10)
    with connect(f"ws://{name}.{p.domain}:{p.router_port}/ws", sock=sock, open_timeout=10) as ws:
        for i in range(3):
            ws.send(f"hi {i}")
            assert ws.recv(timeout=10) == f"echo: hi {i}"


def test_restarting_the_router_and_nginx_restores_every_route(platform, tmp_path):
    p = platform
    name = deploy(p, tmp_path, httpd_app("survivor"))
    host = f"api.{name}.example.com"
    p.cli("domains:add", host, "-a", name)
    crt, key = write_pair(tmp_path / "tls", "api", [host])
    p.cli("certs:add", str(crt), str(key), "-a", name)
    p.cli("router:set", "read-timeout=90", "-a", name)
    routes_before = (p.home / "router/conf/routes.conf").read_text()
    router_pid = int((p.home / "run/platform.pid").read_text())
    nginx_pid = int((p.home / "router/logs/nginx.pid").read_text())
    os.kill(nginx_pid, signal.SIGKILL)          # nginx dies: the router starts it again
    wait_until(lambda: curl_host(p, host, "/", "--cacert", str(crt), scheme="https")[:2] == (200, "survivor"),
               30, "HTTPS served again after nginx died", every=0.25)
    os.kill(router_pid, signal.SIGKILL)         # the platform process (its router loop) dies: the supervisor starts it again
    (p.home / "router/conf/routes.conf").unlink()   # and its config is gone: it comes back from the store
    wait_until(lambda: (p.home / "run/platform.pid").exists()
               and int((p.home / "run/platform.pid").read_text()) != router_pid, 30, "a new platform process", every=0.25)
    wait_until(lambda: curl_host(p, host, "/", "--cacert", str(crt), scheme="https")[:2] == (200, "survivor"),
               30, "HTTPS served again after the router restarted", every=0.25)
    assert curl_host(p, host)[:2] == (200, "survivor") and p.curl(name) == (200, "survivor")
    # nginx kept serving from memory meanwhile: the file comes back (an empty table first, as the
    # router loop starts, then every route) with the router loop's first pass
    routes = p.home / "router/conf/routes.conf"
    wait_until(lambda: routes.exists() and "proxy_read_timeout 90s;" in routes.read_text(), 30,
               "the routes rewritten from the store")
    assert f"# App {name}:" in routes_before


def test_a_certificate_nginx_refuses_is_reported_for_its_app_and_others_keep_working(platform, tmp_path):
    # A stored certificate nginx cannot load (say, a future ACME source wrote a bad one): the
    # router serves that app without it, says so in `dockyard router`, and other apps' changes
    # still go live.
    from controller.routing.certs import store_bundle
    from controller.routing.certs import CertBundle, inspect_bundle
    from controller.store import Store
    p = platform
    a = deploy(p, tmp_path, httpd_app("app a"))
    b = deploy(p, tmp_path, httpd_app("app b"))
    host = f"www.{a}.example.com"
    p.cli("domains:add", host, "-a", a)
    crt, key = write_pair(tmp_path / "tls", "a", [host])
    info = inspect_bundle(crt.read_text(), key.read_text(), [host])
    store = Store(p.home / "dockyard.db")
    broken = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"
    store_bundle(store, store.get_app(a), CertBundle(cert_pem=broken, key_pem=key.read_text(), info=info))
    p.cli("router:set", "read-timeout=30", "-a", a)   # any API change applies the routes at once
    report = wait_until(lambda: (lambda out: out if "Refused by the router" in out else None)(
        p.cli("router", "-a", a).stdout), 30, "the refusal in the app's router report", every=0.25)
    assert "cannot load certificate" in report and "served without them" in report
    assert "Refused" not in p.cli("router", "-a", b).stdout
    assert curl_host(p, host)[:2] == (200, "app a")              # served, without its extras
    other = f"www.{b}.example.com"
    p.cli("domains:add", other, "-a", b)                          # others' changes go live
    assert curl_host(p, other)[:2] == (200, "app b")
    # A good certificate clears it.
    p.cli("certs:add", str(crt), str(key), "-a", a)
    assert "Refused" not in p.cli("router", "-a", a).stdout
    assert curl_host(p, host, "/", "--cacert", str(crt), scheme="https")[:2] == (200, "app a")


def test_a_custom_domain_with_its_certificate_and_default_hostnames_serve_through_the_shared_blocks(platform, tmp_path):
    p = platform
    shop, plain = deploy(p, tmp_path, httpd_app("shop")), deploy(p, tmp_path, httpd_app("plain"))
    custom = f"www.{shop}.example.com"
    p.cli("domains:add", custom, "-a", shop)
    crt, key = write_pair(tmp_path / "tls", "www", [custom])
    p.cli("certs:add", str(crt), str(key), "-a", shop)
    ca = tmp_path / "ca.pem"
    ca.write_text(p.cli("certs:ca").stdout)
    assert curl_host(p, custom, "/", "--cacert", str(crt), scheme="https")[:2] == (200, "shop")
    assert curl_host(p, custom)[:2] == (200, "shop")
    for name, body in ((shop, "shop"), (plain, "plain")):
        host = f"{name}.{p.domain}"
        assert curl_host(p, host)[:2] == (200, body)
        assert curl_host(p, host, "/", "--cacert", str(ca), scheme="https")[:2] == (200, body)
    # Both default hostnames are served by the shared blocks (one per way of serving, whatever the
    # number of apps); the custom domain keeps its own block, with its own certificate.
    conf = (p.home / "router" / "conf" / "routes.conf").read_text()
    blocks = conf.split("\nserver {")
    for name in (shop, plain):
        [block] = [b for b in blocks if f"server_name {name}.{p.domain};" in b]
        assert "proxy_pass http://$dockyard_shared_upstream;" in block
        assert f"    {name}.{p.domain} app_{name.replace('-', '_')};\n" in conf
    [own] = [b for b in blocks if f"server_name {custom};" in b]
    assert f'ssl_certificate "{p.home / "certs"}' in own and "proxy_pass http://app_" in own
    shared = [b for b in blocks if "set $dockyard_app $dockyard_shared_app;" in b]
    assert 1 <= len(shared) <= 8
