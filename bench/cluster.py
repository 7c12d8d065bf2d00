"""Cluster benchmarks on a 3-node swarm of Docker-in-Docker nodes (`make cluster NODES=3`), each
beside its raw floor in the same run; prints numbers and ratios, never asserts.

(a) git push -> first 200 through the router on the cluster, beside the raw floor: `docker
    build`, push to the platform's registry, `docker service create` (host-mode port), first
    200 from the task at its node.                                          target <= 1.5x
(b) `ps:scale web=1 -> web=12` until every instance answered through the router, beside the raw
    `docker service scale` 1 -> 12 until every task answered at its node.  target <= 1.2x
(c) node loss: an app with web=2 (on two different nodes) under a bounded load (3 keep-alive
    clients, 10 s client timeout); the node of one of them (not the Raft leader) stopped: requests failed (target 0), when
    the manager reported the node down, and the time to full strength (both instances up on
    the other nodes).
(d) parallel pushes: 6 apps pushed at once, until every one serves its new page, on the
    3-node cluster (builds on the nodes, one per node at a time: twice, the first paying for
    each node's first build, the sandbox image's pull), then the same 6 pushes again on one
    host (after `make cluster-down`; every build on the platform host).

(e) leader loss: the same load on an app with web=4 while the node of the swarm's Raft leader
    (holding at least one of its instances) is stopped: requests failed (target 0) through the
    election (no manager answers) and the new leader's first reports, and the time to full
    strength.

The cluster has 3 managers (`make cluster NODES=3 MANAGERS=3`).

    .venv/bin/python bench/cluster.py [--scale 12] [--only a,b,c,d,e]
"""
from __future__ import annotations

import argparse
import collections
import concurrent.futures
import http.client
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import push_and_wait, wait_all_answer  # noqa: E402
from bench.workflow import Load  # noqa: E402
from tests.conftest import (BUSYBOX_BASE, ROOT, ensure_busybox_base, make_app_repo, run,  # noqa: E402
                            start_platform, stop_platform)


def page_app(text: str) -> dict[str, str]:
    return {"Dockerfile": f"FROM {BUSYBOX_BASE}\n"
                          f"CMD [\"/bin/sh\", \"-c\", \"echo {text} $DYNO > /www/index.html; "
                          "exec httpd -f -p $PORT -h /www\"]\n"}


def answers(address: str, port: int) -> bool:
    try:
        conn = http.client.HTTPConnection(address, port, timeout=2)
        conn.request("GET", "/")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False


class Raw:
    """The docker CLI against the swarm's manager, as an operator would use it."""

    def __init__(self, cluster: dict):
        self.host = cluster["manager"]
        self.registry = cluster["registry"]

    def docker(self, *args, timeout: float = 600) -> str:
        return run(["docker", "-H", self.host, *args], timeout=timeout).stdout

    def task_ports(self, service: str) -> list[tuple[str, int]]:
        """(node address, published port) of each running task of the service."""
        nodes = {n["ID"]: n["Status"]["Addr"] for n in
                 json.loads(self.docker("node", "inspect", *self.docker("node", "ls", "-q").split()))}
        ids = self.docker("service", "ps", "-q", "--filter", "desired-state=running", service).split()
        out = []
        for t in json.loads(self.docker("inspect", *ids)) if ids else []:
            ports = ((t.get("Status") or {}).get("PortStatus") or {}).get("Ports") or []
            if t["Status"]["State"] == "running" and ports:
                out.append((nodes.get(t.get("NodeID"), ""), ports[0]["PublishedPort"]))
        return out

    def wait_tasks_answer(self, service: str, n: int, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ports = self.task_ports(service)
            if len(ports) >= n and all(answers(a, p) for a, p in ports):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{service}: {n} tasks never all answered")


def floor_push(raw: Raw, ctx: Path, registry_port: int, tag: str) -> tuple[float, str]:
    """docker build + push + service create until the task answers."""
    start = time.monotonic()
    local = f"127.0.0.1:{registry_port}/bench/floor:{tag}"
    run(["docker", "build", "-q", "-t", local, str(ctx)])
    run(["docker", "push", "-q", local])
    name = f"bench-floor-{tag}"
    raw.docker("service", "create", "-d", "--name", name, "--publish", "mode=host,target=5000",
               "-e", "PORT=5000", "-e", "DYNO=web.1", f"{raw.registry}/bench/floor:{tag}")
    raw.wait_tasks_answer(name, 1)
    return time.monotonic() - start, name


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=12)
    ap.add_argument("--only", default="a,b,c,d,e", help="the parts to run, e.g. c,e")
    args = ap.parse_args()
    parts = set(args.only.split(","))
    pushes, floors, scale, raw_scale, lost, parallel, leader = [], [], None, None, None, {}, None
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-") as tmp:
        tmp = Path(tmp)
        ensure_busybox_base(tmp / "busybox")
        p = start_platform(tmp / "platform")
        try:
            run(["make", "-C", str(ROOT), "cluster", "NODES=3", "MANAGERS=3"], env=p.env, timeout=600)
            raw = Raw(json.loads((p.home / "cluster.json").read_text()))
            registry_port = int(p.env["DOCKYARD_REGISTRY_PORT"])
            host = f"bench.{p.domain}"
            repo = make_app_repo(tmp / "bench", page_app("v0"), p)
            p.cli("apps:create", "bench", cwd=repo)
            p.git("push", "-q", "dockyard", "main", cwd=repo)
            if "a" in parts:
                # (a) push -> first 200, 3 times each, interleaved (the first ones pay for the nodes' first
                # pulls of the base layers and the app's overlay network on each node)
                for i in range(1, 4):
                    ctx = tmp / f"floor{i}"
                    make_app_repo(ctx, page_app(f"floor{i}"))
                    took, service = floor_push(raw, ctx, registry_port, f"t{i}")
                    floors.append(took)
                    raw.docker("service", "rm", service)
                    make_app_repo(repo, page_app(f"v{i}"), p)
                    served, _ = push_and_wait(["git", "push", "-q", "dockyard", "main"], repo, p.env, p.router_port,
                                              host, f"v{i} ")
                    pushes.append(served)
            if "b" in parts:
                # (b) scale 1 -> N, beside `docker service scale` 1 -> N
                expected = {f"web.{i}" for i in range(1, args.scale + 1)}
                start = time.monotonic()
                p.cli("ps:scale", f"web={args.scale}", "-a", "bench")
                wait_all_answer(p.router_port, host, expected, timeout=600)
                scale = time.monotonic() - start
                p.cli("ps:scale", "web=1", "-a", "bench")
                ctx = tmp / "floor-scale"
                make_app_repo(ctx, page_app("scale"))
                _, service = floor_push(raw, ctx, registry_port, "scale")
                start = time.monotonic()
                raw.docker("service", "scale", "-d", f"{service}={args.scale}")
                raw.wait_tasks_answer(service, args.scale)
                raw_scale = time.monotonic() - start
                raw.docker("service", "rm", service)
            if "c" in parts:
                p.cli("ps:scale", "web=2", "-a", "bench")
                lost = _lose_a_node(p, host)
            if "e" in parts:
                p.cli("ps:scale", "web=4", "-a", "bench")
                leader = _lose_the_leader(p, host)
            if "d" in parts:
                parallel["cluster-cold"] = _parallel_pushes(p, tmp, "c")
                parallel["cluster"] = _parallel_pushes(p, tmp, "w")
                run(["bash", str(ROOT / "scripts/cluster.sh"), "down"], env=p.env, timeout=600)
                parallel["host"] = _parallel_pushes(p, tmp, "h")
        finally:
            run(["bash", str(ROOT / "scripts/cluster.sh"), "down"], env=p.env, check=False, timeout=600)
            stop_platform(p)
    if floors:
        print("(a) git push -> first 200 on the cluster (3 runs each, interleaved)")
        print(f"    raw floor (docker build, push to the registry, service create, first 200): "
              f"{', '.join(f'{f:.2f}' for f in floors)} s")
        print(f"    dockyard push: {', '.join(f'{s:.2f}' for s in pushes)} s; "
              f"ratio of the last (warm) runs: {pushes[-1] / floors[-1]:.2f}, of the medians: "
              f"{statistics.median(pushes) / statistics.median(floors):.2f}  (target <= 1.5)")
    if scale is not None:
        print(f"(b) scale web=1 -> web={args.scale}")
        print(f"    raw docker service scale until every task answered at its node: {raw_scale:.2f} s")
        print(f"    dockyard ps:scale until every instance answered through the router: {scale:.2f} s; "
              f"ratio {scale / raw_scale:.2f}  (target <= 1.2)")
    if lost is not None:
        print(f"(c) a node of the app (not the leader) stopped under load (3 keep-alive clients, web=2 on {lost['nodes']} nodes)")
        print(f"    requests: {lost['total']}; failed: {lost['failed']} (target 0); slowest {lost['slowest']:.1f} s; "
              f"node reported down after {lost['down']:.1f} s; full strength (2 up on the other nodes) after "
              f"{lost['moved']:.1f} s")
    if leader is not None:
        print(f"(e) the Raft leader's node ({leader['on_it']} of the app's 4 instances) stopped under load "
              "(3 keep-alive clients, 10 s client timeout)")
        print(f"    requests: {leader['total']}; failed: {leader['failed']} (target 0); "
              f"slowest {leader['slowest']:.1f} s; "
              f"node reported down after {leader['down']:.1f} s; full strength (4 up on the other nodes) after "
              f"{leader['moved']:.1f} s")
    if parallel:
        print("(d) 6 pushes of different apps at once, until all 6 serve their new page")
        print(f"    3-node cluster, builds on the nodes: {parallel['cluster']:.1f} s (first time on fresh nodes, "
              f"pulling the sandbox image: {parallel['cluster-cold']:.1f} s); one host: {parallel['host']:.1f} s; "
              f"ratio {parallel['cluster'] / parallel['host']:.2f}")
    return 0


def _dynos(p, app: str) -> list[dict]:
    import urllib.error
    import urllib.request
    req = urllib.request.Request(f"{p.api}/apps/{app}/dynos", headers={"Authorization": f"Bearer {p.token()}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        if e.code == 503:     # no swarm leader yet (an election after a manager's loss)
            return []
        raise


def _node_down(p, hostname: str) -> bool:
    import urllib.error
    import urllib.request
    req = urllib.request.Request(f"{p.api}/nodes", headers={"Authorization": f"Bearer {p.token()}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return any(n["hostname"] == hostname and n["state"] == "down" for n in json.loads(r.read()))
    except urllib.error.HTTPError:
        return False


def _leader(p) -> str:
    """The hostname of the swarm's Raft leader."""
    out = run(["docker", "-H", json.loads((p.home / "cluster.json").read_text())["manager"], "node", "ls",
               "--filter", "role=manager", "--format", "{{.Hostname}} {{.ManagerStatus}}"]).stdout
    return next((line.split()[0] for line in out.splitlines() if line.endswith(" Leader")), "")


def _lose_a_node(p, host: str) -> dict:
    """(c) a node of the app that is not the Raft leader (its loss: part e)."""
    leader = _leader(p)
    return _stop_under_load(p, host, "c", lambda rows: next(d["node"] for d in rows if d["node"] != leader), 2, 120)


def _lose_the_leader(p, host: str) -> dict:
    """(e) the Raft leader's node."""
    leader = _leader(p)
    return _stop_under_load(p, host, "e", lambda rows: leader, 4, 150)


def _stop_under_load(p, host: str, part: str, choose, wanted: int, limit: float) -> dict:
    """Stop the node `choose(instances)` names under the bounded load; requests failed, when the
    manager reported it down, and when `wanted` instances were up on the other nodes."""
    rows = _dynos(p, "bench")
    victim = choose(rows)
    down = moved = float("nan")
    with Load(p.router_port, host) as load:
        time.sleep(2)
        stopped = time.monotonic()
        run(["bash", str(ROOT / "scripts/cluster.sh"), "node-stop", victim.removeprefix("node")], env=p.env)
        while time.monotonic() - stopped < limit:
            if down != down and _node_down(p, victim):
                down = time.monotonic() - stopped
            up = [d for d in _dynos(p, "bench") if d["state"] == "up" and d["node"] != victim]
            if len(up) == wanted:
                moved = time.monotonic() - stopped
                break
            time.sleep(0.5)
        time.sleep(5)
    run(["bash", str(ROOT / "scripts/cluster.sh"), "node-start", victim.removeprefix("node")], env=p.env)
    if load.failed:
        print(f"    ({part}) failures: {collections.Counter(load.failed).most_common()} at "
              f"{', '.join(f'{t - stopped:.1f}' for t in load.fail_times)} s after the stop", file=sys.stderr)
    return {"total": len(load.latencies) + len(load.failed), "failed": len(load.failed), "down": down,
            "moved": moved, "nodes": len({d["node"] for d in rows}),
            "on_it": len([d for d in rows if d["node"] == victim]), "slowest": max(load.latencies, default=float("nan"))}


def build_app(text: str) -> dict[str, str]:
    """A page app whose build does a little work of its own (as real builds do)."""
    return {"Dockerfile": f"FROM {BUSYBOX_BASE}\n"
                          "RUN i=0; while [ $i -lt 40000 ]; do i=$((i+1)); done; echo built > /www/built\n"
                          f"CMD [\"/bin/sh\", \"-c\", \"echo {text} $DYNO > /www/index.html; "
                          "exec httpd -f -p $PORT -h /www\"]\n"}


def _parallel_pushes(p, tmp: Path, tag: str) -> float:
    """6 apps pushed at once; seconds until each serves its new page through the router."""
    repos = []
    for i in range(1, 7):
        name = f"par{i}"
        repo = make_app_repo(tmp / name, build_app(f"{tag}{i}"), p)
        if not (tmp / f"{name}.created").exists():
            p.cli("apps:create", name, cwd=repo)
            (tmp / f"{name}.created").touch()
        repos.append((name, repo))
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        futs = [pool.submit(push_and_wait, ["git", "push", "-q", "dockyard", "main"], repo, p.env, p.router_port,
                            f"{name}.{p.domain}", f"{tag}{name[3:]} ") for name, repo in repos]
        for fut in futs:
            fut.result()
    return time.monotonic() - start


if __name__ == "__main__":
    sys.exit(main())
