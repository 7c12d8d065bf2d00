"""Router benchmark, one run, side by side, loopback only, bounded.

1. Small responses with keep-alive, measured with wrk (1 thread, 32 connections, a few
   seconds each, rounds interleaved): direct to the container, through a hand-written minimal
   nginx `proxy_pass` config with upstream keepalive, and through the Dockyard router (the
   same router/nginx.py + render.py code the platform runs, access log included). Prints
   req/s and p99 and the ratios Dockyard / hand-written (targets: >= 0.95x throughput, p99
   <= 1.1x).
2. Route change -> first request served by the new instance (target < 200 ms).
3. Render + `nginx -t` + swap + reload with 500 apps (target < 1 s), and render alone.

The upstream is a tiny asyncio HTTP/1.1 keep-alive server (python3 stdlib) in a container
FROM the stack image. Prints numbers; never asserts on time.

    .venv/bin/python bench/router.py [--seconds 5] [--rounds 3]
"""
from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from controller.settings import Settings, router_config  # noqa: E402
from router import render  # noqa: E402
from router.nginx import Nginx  # noqa: E402
from router.table import Route, Upstream, build_table  # noqa: E402

STACK = os.environ.get("DOCKYARD_STACK_IMAGE", "dockyard/stack:bookworm")
NGINX = os.environ.get("DOCKYARD_NGINX", "/usr/sbin/nginx")
APP = textwrap.dedent(r"""
    import asyncio, os
    BODY = (os.environ.get("NAME", "app") + "\n").encode()
    RESP = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
    class P(asyncio.Protocol):
        def connection_made(self, t):
            self.t, self.buf = t, b""
        def data_received(self, data):
            self.buf += data
            n = self.buf.count(b"\r\n\r\n")
            if n:
                self.buf = self.buf[self.buf.rfind(b"\r\n\r\n") + 4:]
                self.t.write(RESP * n)
    async def main():
        server = await asyncio.get_running_loop().create_server(P, "0.0.0.0", int(os.environ["PORT"]), backlog=1024)
        await server.serve_forever()
    asyncio.run(main())
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sh(*argv, **kw) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=kw.pop("timeout", 120), **kw)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])}... exited {proc.returncode}: {proc.stderr.strip()[-800:]}")
    return proc.stdout


def start_container(name: str) -> tuple[str, int]:
    cid = sh("docker", "run", "-d", "--rm", "--label", "dockyard.bench=router", "-e", f"NAME={name}", "-e",
             "PORT=5000", "-p", "127.0.0.1::5000", STACK, "python3", "-c", APP).strip()
    port = int(sh("docker", "port", cid, "5000/tcp").split(":")[-1].split()[0])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if get(port, "x") == f"{name}\n":
                return cid, port
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"container {name} did not answer within 30 s")


def get(port: int, host: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/", headers={"Host": host})
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def hand_written_conf(prefix: Path, port: int, upstream: int) -> Path:
    conf = prefix / "nginx.conf"
    (prefix / "logs").mkdir(parents=True, exist_ok=True)
    conf.write_text(f"""
worker_processes auto;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/tmp; proxy_temp_path {prefix}/tmp;
    fastcgi_temp_path {prefix}/tmp; uwsgi_temp_path {prefix}/tmp; scgi_temp_path {prefix}/tmp;
    upstream app {{ server 127.0.0.1:{upstream}; keepalive 32; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
""")
    return conf


_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def cpu_seconds(master: int | None) -> float:
    """utime + stime of ``master``'s live children (the nginx workers), in seconds."""
    if master is None:
        return 0.0
    total = 0
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if int(fields[1]) == master:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def wrk(port: int, host: str, seconds: int, master: int | None = None) -> tuple[float, float, float]:
    """(req/s, p99 ms, nginx worker CPU microseconds per request; 0 when there is no nginx)."""
    cpu0 = cpu_seconds(master)
    out = sh("wrk", "-t1", "-c32", f"-d{seconds}s", "--latency", "-H", f"Host: {host}", f"http://127.0.0.1:{port}/",
             timeout=seconds + 60)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    if errors:
        print(f"   (wrk reported: {errors.group(0)})")
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    cpu_us = (cpu_seconds(master) - cpu0) * 1e6 / max(requests, 1)
    return rps, float(m.group(1)) * _UNIT[m.group(2)], cpu_us


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--apps", type=int, default=500)
    args = ap.parse_args()
    for tool in ("wrk", "docker", NGINX):
        if not shutil.which(tool) and not os.path.exists(tool):
            raise SystemExit(f"{tool} is not installed (apt-get install wrk nginx docker.io)")

    tmp = Path(tempfile.mkdtemp(prefix="dockyard-bench-router-"))
    containers: list[str] = []
    hand: subprocess.Popen | None = None
    router: Nginx | None = None
    proc: subprocess.Popen | None = None
    try:
        cid_a, port_a = start_container("A")
        containers.append(cid_a)
        cid_b, port_b = start_container("B")
        containers.append(cid_b)

        settings = Settings(home=tmp / "home", router_port=free_port(), router_tls_port=free_port(),
                            nginx_bin=NGINX)
        router = Nginx(router_config(settings))
        router.ensure_layout()
        proc = router.start_foreground(stderr=subprocess.DEVNULL)
        router.apply(build_table([("bench", [Upstream("127.0.0.1", port_a)])], settings.domain))
        host = settings.app_host("bench")
        assert get(settings.router_port, host) == "A\n"

        hand_port = free_port()
        conf = hand_written_conf(tmp / "hand", hand_port, port_a)
        (tmp / "hand/tmp").mkdir(exist_ok=True)
        hand = subprocess.Popen([NGINX, "-p", f"{tmp}/hand/", "-c", str(conf), "-g", "daemon off;"],
                                start_new_session=True, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                if get(hand_port, "x") == "A\n":
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the hand-written nginx did not come up")
            time.sleep(0.05)

        # ---- 1. throughput and p99, interleaved rounds
        targets = {"direct": (port_a, "x", None), "hand-written nginx": (hand_port, "x", hand.pid),
                   "dockyard router": (settings.router_port, host, router.master_pid())}
        results: dict[str, list[tuple[float, float, float]]] = {k: [] for k in targets}
        print(f"1. small responses, keep-alive: wrk -t1 -c32 -d{args.seconds}s, {args.rounds} interleaved rounds (order rotated)")
        names = list(targets)
        for r in range(args.rounds):
            for name in names[r % 3:] + names[:r % 3]:   # rotate the order: no target always runs last
                port, h, master = targets[name]
                results[name].append(wrk(port, h, args.seconds, master))
        med = {k: tuple(statistics.median(x[i] for x in v) for i in range(3)) for k, v in results.items()}
        for name, (rps, p99, cpu) in med.items():
            cpu_text = f"   nginx CPU {cpu:5.1f} us/req" if name != "direct" else " " * 27
            print(f"   {name:<20} {rps:>10.0f} req/s   p99 {p99:>7.2f} ms{cpu_text}   (rounds: "
                  + ", ".join(f"{x[0]:.0f}" for x in results[name]) + ")")
        d, hw = med["dockyard router"], med["hand-written nginx"]
        print(f"   dockyard / hand-written: throughput {d[0] / hw[0]:.3f}x (target >= 0.95), "
              f"p99 {d[1] / hw[1]:.3f}x (target <= 1.1)")
        print(f"   dockyard / direct:       throughput {d[0] / med['direct'][0]:.3f}x")
        print(f"   nginx CPU per request, dockyard / hand-written: {d[2] / hw[2]:.3f}x (the router's own cost, "
              "insensitive to other load on the machine)")
        best = {k: (max(x[0] for x in v), min(x[1] for x in v)) for k, v in results.items()}
        bd, bh = best["dockyard router"], best["hand-written nginx"]
        print(f"   best round of each (less sensitive to other load on the machine): dockyard {bd[0]:.0f} req/s "
              f"p99 {bd[1]:.2f} ms, hand-written {bh[0]:.0f} req/s p99 {bh[1]:.2f} ms: throughput "
              f"{bd[0] / bh[0]:.3f}x, p99 {bd[1] / bh[1]:.3f}x")

        # ---- 2. route change -> first request served by the new instance. A poller sends
        # requests back to back while apply() runs; "served" is its first answer from the new
        # instance. apply() itself returns once every worker runs the new config (nginx waits
        # 100 ms before it retires old workers).
        first_t, apply_t_ = [], []
        for i in range(10):
            new, want = (port_b, "B\n") if i % 2 == 0 else (port_a, "A\n")
            seen: list[float] = []
            stop = threading.Event()

            def poll() -> None:
                while not stop.is_set():
                    try:
                        if get(settings.router_port, host) == want:
                            seen.append(time.perf_counter())
                            return
                    except OSError:
                        pass

            poller = threading.Thread(target=poll)
            t0 = time.perf_counter()
            poller.start()
            router.apply(build_table([("bench", [Upstream("127.0.0.1", new)])], settings.domain))
            apply_t_.append((time.perf_counter() - t0) * 1000)
            poller.join(10)
            stop.set()
            first_t.append((seen[0] - t0) * 1000 if seen else float("nan"))
        print(f"2. route change -> first request served by the new instance: median {statistics.median(first_t):.0f} ms, "
              f"max {max(first_t):.0f} ms over {len(first_t)} changes (target < 200 ms); apply() returned "
              f"(all workers on the new config) after median {statistics.median(apply_t_):.0f} ms")

        # ---- 3. render + reload with many apps
        def big_table(shift: int) -> tuple[Route, ...]:
            return build_table([(f"app{i:04d}", [Upstream("127.0.0.1", 20000 + (i + shift) % 20000),
                                                 Upstream("127.0.0.1", 40000 + i)]) for i in range(args.apps)]
                               + [("bench", [Upstream("127.0.0.1", port_a)])], settings.domain)
        render_t, apply_t = [], []
        for shift in range(1, 6):
            table = big_table(shift)
            t0 = time.perf_counter()
            render.render_routes(table, settings.router_port, tls_port=settings.router_tls_port)
            render_t.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            router.apply(table)
            apply_t.append((time.perf_counter() - t0) * 1000)
        assert get(settings.router_port, host) == "A\n"
        print(f"3. {args.apps} apps: render {statistics.median(render_t):.0f} ms; render + nginx -t + swap + reload "
              f"(new workers serving) median {statistics.median(apply_t):.0f} ms, max {max(apply_t):.0f} ms "
              "(target < 1000 ms)")
    finally:
        if hand is not None:
            with_suppress(lambda: os.killpg(hand.pid, signal.SIGQUIT))
            with_suppress(lambda: hand.wait(timeout=10))
            with_suppress(lambda: os.killpg(hand.pid, signal.SIGKILL))
        if router is not None:
            with_suppress(lambda: router.stop(timeout=5))
        if proc is not None:
            with_suppress(lambda: os.killpg(proc.pid, signal.SIGKILL))
        if containers:
            subprocess.run(["docker", "rm", "-f", *containers], capture_output=True, timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)


def with_suppress(fn) -> None:
    try:
        fn()
    except Exception:  # cleanup: best effort, the next step still runs
        pass


if __name__ == "__main__":
    main()
