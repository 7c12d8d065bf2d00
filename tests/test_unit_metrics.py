"""Metrics' pure logic and the store's downsampling (a real SQLite file)."""
import json
import time

from controller.observe import drains
from controller.observe import metrics
from controller.observe import sampler
from controller.scheduler.docker_stats import parse_stats
from controller.store import Store
from controller.store.metrics import MINUTE_KEEP, RAW_KEEP
from core import latency
from core.models import InstanceStats
from router import accesslog

import pytest


def _stats(cpu_ns, at, started="2026-01-01T00:00:00+00:00"):
    return InstanceStats("c1", at, cpu_ns, 100, 200, 0, started, True)


def test_cpu_percent_between_readings():
    assert sampler.cpu_percent(None, _stats(10, 1.0)) == 0.0
    assert sampler.cpu_percent(_stats(0, 0.0), _stats(500_000_000, 1.0)) == 50.0
    assert sampler.cpu_percent(_stats(900, 0.0), _stats(10, 1.0)) == 0.0   # restarted: counter went back


def test_parse_stats_subtracts_page_cache():
    attrs = {"State": {"Running": True, "StartedAt": "2026-01-01T00:00:00.5Z"}, "RestartCount": 2,
             "HostConfig": {"Memory": 1 << 29}}
    st = {"memory_stats": {"usage": 5000, "stats": {"total_inactive_file": 1000}},
          "cpu_stats": {"cpu_usage": {"total_usage": 42}}}
    r = parse_stats("c", attrs, st, 1.0)
    assert (r.mem_bytes, r.mem_limit, r.cpu_ns, r.restarts, r.running) == (4000, 1 << 29, 42, 2, True)
    assert r.started_at.startswith("2026-01-01T00:00:00.5")


def test_latency_percentiles_within_a_bucket():
    hist = {}
    for ms in range(1, 101):
        b = str(latency.bucket(ms))
        hist[b] = hist.get(b, 0) + 1
    assert 50 <= latency.percentile(hist, 0.5) <= 50 * 1.26
    assert 99 <= latency.percentile(hist, 0.99) <= 100 * 1.26
    assert latency.percentile({}, 0.5) is None


def test_access_lines_aggregate_per_minute_and_release():
    line = lambda at, status, up: json.dumps({"msec": str(at), "app": "a", "status": status, "bytes": "10",
                                                "upstream_time": "0.020", "upstream": up})
    reqs = accesslog.requests([line(120.5, "200", "127.0.0.1:1"), line(121, "503", "127.0.0.1:2"),
                               line(185, "200", "127.0.0.1:1"), "junk"])
    out = accesslog.per_minute(reqs, lambda app, up: {"127.0.0.1:1": 1}.get(up, 2))
    assert out[("a", 1, 120)]["requests"] == 1 and out[("a", 2, 120)]["s5xx"] == 1
    assert out[("a", 1, 180)]["bytes"] == 10


def test_downsampling_keeps_the_store_bounded(tmp_path):
    store = Store(tmp_path / "db")
    store.migrate()
    owner = store.create_user("o")
    app = store.create_app("web1", owner.id)
    now = int(time.time()) // 600 * 600
    start = now - MINUTE_KEEP - 7200
    store.add_samples([("web1", "web", 1, t, 10.0, 100, 200, 0, t - start) for t in range(start, now, 5)])
    store.downsample(now)
    rows = store.samples(app, 0)
    by_res = {r: sum(1 for x in rows if x["res"] == r) for r in (0, 60, 600)}
    assert by_res[0] == RAW_KEEP // 5
    assert by_res[60] == (MINUTE_KEEP - RAW_KEEP) // 60
    assert by_res[600] == 7200 // 600
    assert all(x["cpu"] == 10.0 for x in rows)


def test_since_and_drain_urls_are_checked():
    assert metrics.parse_since("30m") == 1800
    with pytest.raises(Exception, match="30m"):
        metrics.parse_since("yesterday")
    assert drains.check_url("syslog://127.0.0.1:514") == "syslog://127.0.0.1:514"
    with pytest.raises(Exception, match="syslog://HOST:PORT"):
        drains.check_url("ftp://x")
    with pytest.raises(Exception, match="credentials"):
        drains.check_url("https://u:secret@example.test/x")


class _Anywhere:
    """Drain targets for these tests' own loopback collectors (the platform refuses loopback:
    tests/test_unit_netguard.py checks that)."""

    def connect(self, host, port, timeout=5.0):
        import socket
        return socket.create_connection((host, port), timeout=timeout)


def test_a_full_drain_drops_oldest_and_counts():
    d = drains.Drain(1, "syslog://127.0.0.1:9", capacity=3)   # port 9: nothing listens
    t0 = time.monotonic()
    for i in range(100):
        d.offer(f"line {i}")
    assert time.monotonic() - t0 < 0.5
    assert len(d.buffer) <= 3 and d.dropped >= 97
    d.close()
    msg = drains.rfc5424("2026-01-01T00:00:00+00:00", "host", "app", "web.1", "hello")
    assert msg == "<14>1 2026-01-01T00:00:00+00:00 host app web.1 - - hello"
    assert drains.octet_frame(msg).startswith(f"{len(msg)} ".encode())


def test_cgroup_readings_v1_and_v2(tmp_path):
    from controller.scheduler.docker_stats import cgroup_stats
    v1 = tmp_path / "v1"
    (v1 / "cpuacct/docker/abc").mkdir(parents=True)
    (v1 / "memory/docker/abc").mkdir(parents=True)
    (v1 / "cpuacct/docker/abc/cpuacct.usage").write_text("123456\n")
    (v1 / "memory/docker/abc/memory.usage_in_bytes").write_text("5000\n")
    (v1 / "memory/docker/abc/memory.stat").write_text("cache 10\ntotal_inactive_file 1000\n")
    r = parse_stats("abc", {"State": {"Running": True}}, cgroup_stats("abc", root=v1), 1.0)
    assert (r.cpu_ns, r.mem_bytes) == (123456, 4000)
    v2 = tmp_path / "v2" / "system.slice" / "docker-abc.scope"
    v2.mkdir(parents=True)
    (v2 / "cpu.stat").write_text("usage_usec 7\nuser_usec 5\n")
    (v2 / "memory.current").write_text("9000\n")
    (v2 / "memory.stat").write_text("anon 1\ninactive_file 2000\n")
    r = parse_stats("abc", {"State": {"Running": True}}, cgroup_stats("abc", root=tmp_path / "v2"), 1.0)
    assert (r.cpu_ns, r.mem_bytes) == (7000, 7000)
    assert cgroup_stats("nope", root=tmp_path / "v1") is None


def _self_signed(tmp_path):
    import datetime
    import ipaddress
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    return tmp_path / "cert.pem", tmp_path / "key.pem"


def test_a_tls_drain_verifies_the_certificate_and_delivers_framed_lines(tmp_path):
    import socket
    import ssl
    import threading
    cert, key = _self_signed(tmp_path)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    got = []

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            try:
                with server.wrap_socket(conn, server_side=True) as tls:
                    while data := tls.recv(65536):
                        got.append(data)
            except (ssl.SSLError, OSError):
                pass   # the untrusting client hangs up during the handshake

    threading.Thread(target=serve, daemon=True).start()
    try:
        untrusting = drains.Drain(1, f"syslog+tls://127.0.0.1:{port}", targets=_Anywhere())
        untrusting.offer("<14>1 - h a web.1 - - refused")
        deadline = time.monotonic() + 10
        while "CERTIFICATE_VERIFY_FAILED" not in untrusting.error and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "CERTIFICATE_VERIFY_FAILED" in untrusting.error and untrusting.sent == 0
        untrusting.close()
        trusting = drains.Drain(2, f"syslog+tls://127.0.0.1:{port}", tls=ssl.create_default_context(cafile=str(cert)),
                                 targets=_Anywhere())
        for i in range(3):
            trusting.offer(f"<14>1 - h a web.1 - - line {i}")
        deadline = time.monotonic() + 10
        while trusting.sent < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        trusting.close()
    finally:
        listener.close()
    data = b"".join(got)
    assert data.startswith(b"28 <14>1 - h a web.1 - - line 028 <14>1")
    assert data.count(b"line ") == 3


def test_an_https_drain_posts_logplex_batches(tmp_path):
    import http.server
    import ssl
    import threading
    cert, key = _self_signed(tmp_path)
    posts = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            posts.append((self.path, self.headers["Content-Type"], self.headers["Logplex-Msg-Count"], body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        d = drains.Drain(3, f"https://127.0.0.1:{httpd.server_address[1]}/logs/tok",
                         tls=ssl.create_default_context(cafile=str(cert)), targets=_Anywhere())
        d.offer("<14>1 - h a router - - hello")
        deadline = time.monotonic() + 10
        while d.sent < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        d.close()
    finally:
        httpd.shutdown()
    assert posts == [("/logs/tok", "application/logplex-1", "1", b"28 <14>1 - h a router - - hello")]


def test_requests_count_for_the_release_of_the_instance_that_answered():
    """Instances on two cluster nodes may be published on the same port: the answering upstream's
    whole address names the instance (a deploy's old and new releases answer side by side)."""
    from controller.daemons.routerd import RequestMetrics
    from core.models import Instance

    def inst(cid, version, process, address):
        return Instance(cid, cid, "shop", version, process, 1, "running", None, 5000, "img", address=address)

    class Scheduler:
        def instances(self):
            return [inst("a", 3, "web", "10.0.7.2"), inst("b", 4, "web", "10.0.7.3")]

    class Store:
        minutes: dict = {}

        def add_request_minutes(self, m):
            self.minutes = m

        def add_prom(self, d):
            pass

        def record_requests(self, r):
            pass

        def find_app(self, app):
            raise AssertionError("every upstream is known")

    store = Store()
    reqs = [{"app": "shop", "upstream": up, "at": 120.0, "status": "200", "bytes": 1, "ms": 2.0, "path": "/"}
            for up in ("10.0.7.2:5000", "10.0.7.3:5000", "10.0.7.3:5000")]
    RequestMetrics(store, Scheduler())(reqs)
    assert {k: v["requests"] for k, v in store.minutes.items()} == {("shop", 3, 120): 1, ("shop", 4, 120): 2}


def test_instances_started_together_are_inspected_again_at_different_passes():
    from controller.scheduler.docker_stats import INSPECT_EVERY, inspect_every
    ids = [f"{i:04x}" + "0" * 60 for i in range(0, 0x10000, 0x0800)]
    spans = [inspect_every(cid) for cid in ids]
    assert all(INSPECT_EVERY * 0.5 <= s <= INSPECT_EVERY * 1.5 for s in spans)
    assert len({round(s) for s in spans}) >= 16          # spread over the whole range, not one moment
    assert inspect_every(ids[3]) == inspect_every(ids[3])   # the same container keeps its own period
    assert inspect_every("not-hex") == INSPECT_EVERY
