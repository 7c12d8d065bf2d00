"""Cluster mode on a real 3-node Swarm whose nodes are all managers (Docker-in-Docker nodes,
`make cluster NODES=3 MANAGERS=3`), one cluster for the module: a Dockerfile and a buildpack
app, scaling over every node with the router reaching each instance, a config change and
deploys under load, rollback, one-offs' exit codes, drain, the loss of a node with no failed
request, an app's instances kept on different nodes, the loss of the manager the platform
talks to, the loss of the Raft leader's node with no failed request, an app's Postgres add-on
used from the nodes (and not by another tenant), a second user's instance and one-off kept by
the nodes' wall from every engine and the registry, and `make cluster-down` back to a single
host. About 8 minutes on a quiet machine before the add-on, wall and leader-loss tests (4-6,
~0.5 and ~2 more)."""
from __future__ import annotations

import contextlib
import fcntl
import http.client
import ipaddress
import json
import re
import secrets
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

from .conftest import (BUSYBOX_BASE, ROOT, make_app_repo, run, start_platform, stop_platform, unique_app,
                       wait_until as _wait_until)

pytestmark = pytest.mark.e2e

NODES = {"node1", "node2", "node3"}


@pytest.fixture(scope="module")
def cl(tmp_path_factory, busybox_base):
    p = start_platform(tmp_path_factory.mktemp("cluster-platform"), DOCKYARD_HEALTH_TIMEOUT="20")
    try:
        out = run(["make", "-C", str(ROOT), "cluster", "NODES=3", "MANAGERS=3"], env=p.env, timeout=300).stdout
        assert "3 node(s) ready, 3 manager(s)" in out, out
        yield p
    finally:
        run(["bash", str(ROOT / "scripts/cluster.sh"), "down"], env=p.env, check=False, timeout=300)
        stop_platform(p)


def wait_until(check, timeout: float, what: str):
    return _wait_until(check, timeout, what, every=0.5)   # each look asks the swarm manager


def api(p, method: str, path: str, body=None):
    req = urllib.request.Request(p.api + path, method=method, data=json.dumps(body).encode() if body else None,
                                 headers={"Authorization": f"Bearer {p.token()}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read())


def page_app(text: str) -> dict[str, str]:
    """A web page naming the instance that served it ($DYNO) and the release's text."""
    return {"Dockerfile": f"FROM {BUSYBOX_BASE}\n"
                          f"CMD [\"/bin/sh\", \"-c\", \"echo {text}-$DYNO > /www/index.html; "
                          "echo started $DYNO; exec httpd -f -p $PORT -h /www\"]\n"}


def body_of(p, app: str) -> str:
    code, body = p.curl(app)
    assert code == 200, (code, body)
    return body.strip()


class Load:
    """Bounded load on an app through the router: 3 threads, keep-alive, every answer counted."""

    def __init__(self, p, app: str):
        self.p, self.host = p, f"{app}.{p.domain}"
        self.ok, self.failed, self.fail_times, self.fail_codes = 0, 0, [], []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(3)]

    def _one(self, conn) -> int:
        conn.request("GET", "/", headers={"Host": self.host})
        resp = conn.getresponse()
        resp.read()
        return resp.status

    def _run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.p.router_port, timeout=15)
        while not self.stop.is_set():
            try:
                status = self._one(conn)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                conn.close()   # nginx closes idle keep-alive connections on reload: retried once
                conn = http.client.HTTPConnection("127.0.0.1", self.p.router_port, timeout=15)
                try:
                    status = self._one(conn)
                except OSError:
                    status = 0
            except OSError:
                status = 0
            if status == 200:
                self.ok += 1
            else:
                self.failed += 1
                self.fail_times.append(time.monotonic())
                self.fail_codes.append(status)
            time.sleep(0.02)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(20)


def dynos(p, app: str) -> list[dict]:
    return api(p, "GET", f"/apps/{app}/dynos")


@pytest.fixture(scope="module")
def web(cl, tmp_path_factory):
    """A Dockerfile app pushed to the cluster."""
    name = unique_app("cl")
    repo = make_app_repo(tmp_path_factory.mktemp("web") / name, page_app("one"), cl)
    cl.cli("apps:create", name, cwd=repo)
    cl.git("push", "dockyard", "main", cwd=repo)
    return name, repo


def test_nodes_lists_the_three_nodes_ready(cl):
    rows = api(cl, "GET", "/nodes")
    assert {r["hostname"] for r in rows} == NODES
    assert all(r["state"] == "ready" and r["availability"] == "active" for r in rows), rows
    out = cl.cli("nodes").stdout
    assert out.splitlines()[0].split()[:3] == ["HOSTNAME", "ADDRESS", "STATE"]
    join = cl.cli("nodes:join-command").stdout
    assert "docker swarm join --token" in join, join
    subnet = json.loads((cl.home / "cluster.json").read_text())["subnet"]   # the new host's wall first
    assert f"dockyard-node-firewall {subnet} " in join.splitlines()[0], join


def test_scale_spreads_over_every_node_and_the_router_reaches_each(cl, web):
    name, _ = web
    assert body_of(cl, name) == "one-web.1"
    cl.cli("ps:scale", "web=6", "-a", name)
    rows = [d for d in dynos(cl, name) if d["type"] == "web"]
    assert len(rows) == 6 and {d["node"] for d in rows} == NODES, rows
    assert all(d["state"] == "up" for d in rows), rows
    seen = {body_of(cl, name) for _ in range(60)}
    assert seen == {f"one-web.{i}" for i in range(1, 7)}, seen
    assert " on node" in cl.cli("ps", "-a", name).stdout


def test_config_change_and_two_deploys_under_load_fail_no_request(cl, web):
    name, repo = web
    cl.cli("ps:scale", "web=3", "-a", name)
    with Load(cl, name) as load:
        cl.cli("config:set", "GREETING=hi", "-a", name)
        for text in ("two", "three"):
            make_app_repo(repo, page_app(text), cl)
            cl.git("push", "dockyard", "main", cwd=repo)
        time.sleep(3)   # old instances drain in the background: the load stays on while they stop
    assert load.failed == 0 and load.ok > 50, (load.ok, load.failed)
    assert body_of(cl, name).startswith("three-web.")


def test_rollback_serves_the_previous_release(cl, web):
    name, _ = web
    cl.cli("rollback", "-a", name)
    wait_until(lambda: body_of(cl, name).startswith("two-web."), 30, "the rolled-back page")
    assert {d["node"] for d in dynos(cl, name)} <= NODES


def oneoffs_on_nodes(p) -> dict[str, int]:
    """How many `run` one-off containers of this platform each node's engine holds now."""
    found = {}
    for k in (1, 2, 3):
        out = run(["docker", "exec", f"{p.name}-node{k}", "docker", "ps", "-q", "--filter", "label=dockyard.oneoff=run",
                   "--filter", f"label=dockyard.instance={p.name}"], check=False).stdout.split()
        found[f"node{k}"] = len(out)
    return found


def test_run_returns_the_exit_code_and_runs_on_a_node(cl, web):
    name, _ = web
    result = {}
    runner = threading.Thread(target=lambda: result.update(proc=cl.cli(
        "run", "-a", name, "--", "sh", "-c", "echo out-$DYNO; sleep 4; exit 7", check=False)))
    runner.start()
    seen = wait_until(lambda: sum(oneoffs_on_nodes(cl).values()) == 1, 30, "the one-off on a node")
    assert seen and not cl.containers(name, running_only=True), "the one-off ran on the platform host"
    runner.join(60)
    proc = result["proc"]
    assert proc.returncode == 7, (proc.stdout, proc.stderr)
    assert "out-run.1" in proc.stdout
    assert sum(oneoffs_on_nodes(cl).values()) == 0      # removed afterwards, as on one host


def test_a_crash_on_a_node_shows_in_ps_and_logs(cl, web):
    name, _ = web
    row = next(d for d in dynos(cl, name) if d["type"] == "web" and d["state"] == "up")
    node = row["node"]
    node_container = f"{cl.name}-node{node.removeprefix('node')}"
    labels = (f"dockyard.app={name}", "dockyard.process=web", f"dockyard.index={row['name'].split('.')[1]}",
              f"dockyard.release={row['release']['version']}")
    found = run(["docker", "exec", node_container, "docker", "ps", "-q",
                 *(arg for label in labels for arg in ("--filter", f"label={label}"))])
    run(["docker", "exec", node_container, "docker", "kill", found.stdout.split()[0]])
    wait_until(lambda: "crashed with exit code 137" in cl.cli("logs", "-a", name, "--source", "dockyard").stdout,
               60, "the crash as a platform line")
    crashed = [d for d in dynos(cl, name) if d["restarts"]]
    # Swarm may restart it on another node: the instance is the same
    assert [(d["name"], d["restarts"], d["last_exit"]) for d in crashed] == [(row["name"], 1, 137)], crashed
    wait_until(lambda: all(d["state"] == "up" for d in dynos(cl, name)), 60, "Swarm to restart it")


def test_drain_moves_instances_with_no_failed_request(cl, web):
    name, _ = web
    cl.cli("ps:scale", "web=3", "-a", name)
    node = dynos(cl, name)[0]["node"]
    with Load(cl, name) as load:
        out = cl.cli("nodes:drain", node).stdout
        time.sleep(2)
    assert load.failed == 0 and load.ok > 20, (load.ok, load.failed, out)
    rows = dynos(cl, name)
    assert len(rows) == 3 and not [d for d in rows if d["node"] == node], rows
    row = next(r for r in api(cl, "GET", "/nodes") if r["hostname"] == node)
    assert row["availability"] == "drain" and row["instances"] == 0
    cl.cli("nodes:activate", node)
    row = next(r for r in api(cl, "GET", "/nodes") if r["hostname"] == node)
    assert row["availability"] == "active"


def node_state(p, hostname: str) -> str:
    return next((r for r in api(p, "GET", "/nodes") if r["hostname"] == hostname), {}).get("state", "")


def electing(look):
    """`look()`, or None while the swarm has no leader: the API then answers 503 (no manager
    can read the swarm's state until the remaining managers elect one, a few seconds)."""
    def attempt():
        try:
            return look()
        except urllib.error.HTTPError as e:
            if e.code != 503:
                raise
            return None
    return attempt


def stop_node(p, hostname: str) -> None:
    run(["bash", str(ROOT / "scripts/cluster.sh"), "node-stop", hostname.removeprefix("node")], env=p.env)


def start_node(p, hostname: str) -> None:
    run(["bash", str(ROOT / "scripts/cluster.sh"), "node-start", hostname.removeprefix("node")], env=p.env, timeout=120)
    wait_until(electing(lambda: node_state(p, hostname) == "ready"), 60, f"{hostname} back")


def leader(p) -> str:
    """The hostname of the swarm's Raft leader, as a manager that answers says."""
    for k in (1, 2, 3):
        out = run(["docker", "exec", f"{p.name}-node{k}", "docker", "node", "ls", "--format",
                   "{{.Hostname}} {{.ManagerStatus}}"], check=False).stdout
        for line in out.splitlines():
            if line.endswith(" Leader"):
                return line.split()[0]
    return ""


def test_losing_a_node_fails_no_request_and_its_instances_run_elsewhere(cl, web):
    """A node that is not the Raft leader: losing the leader adds an election during which a
    new leader can misreport live nodes (docs/cluster.md has what that costs)."""
    name, _ = web
    cl.cli("ps:scale", "web=4", "-a", name)
    victim = next(d["node"] for d in dynos(cl, name) if d["node"] != leader(cl))
    try:
        with Load(cl, name) as load:
            time.sleep(1)
            lost_at = time.monotonic()
            stop_node(cl, victim)
            wait_until(electing(lambda: node_state(cl, victim) == "down"), 60, f"{victim} shown down")
            down = time.monotonic() - lost_at
            wait_until(electing(lambda: len([d for d in dynos(cl, name)
                                             if d["state"] == "up" and d["node"] != victim]) == 4),
                       90, "4 instances up on the remaining nodes")
            full = time.monotonic() - lost_at
            time.sleep(3)
    finally:   # the next tests need every node (two managers lost would lose the quorum)
        start_node(cl, victim)
    print(f"\nnode loss (web=4): {load.failed} failed of {load.ok + load.failed} requests; {victim} reported down "
          f"after {down:.1f} s; full strength on the other nodes after {full:.1f} s")
    assert load.failed == 0 and load.ok > 50, (load.ok, load.failed)


def test_a_node_whose_engine_dies_starts_again_and_rejoins(cl, web):
    """A node's dockerd that dies (killed here; Docker 20.10's swarmkit has panicked as a manager
    became leader) starts again by itself, as systemd restarts a real node's engine, and the node
    is ready again: without that, the swarm keeps a node down and, with two managers lost, its
    quorum."""
    name, _ = web
    victim = next(f"node{k}" for k in (1, 2, 3) if f"node{k}" != leader(cl))
    container = f"{cl.name}-{victim}"
    pid = run(["docker", "inspect", "-f", "{{.State.Pid}}", container]).stdout.strip()
    run(["kill", "-9", pid])
    wait_until(lambda: run(["docker", "inspect", "-f", "{{.RestartCount}}", container]).stdout.strip() != "0",
               30, f"{container} started again")
    wait_until(lambda: run(["docker", "exec", container, "docker", "info", "-f", "{{.Swarm.LocalNodeState}}"],
                           check=False).stdout.strip() == "active", 60, f"{victim}'s engine back in the swarm")
    wait_until(electing(lambda: node_state(cl, victim) == "ready"), 90, f"{victim} ready again")
    wait_until(lambda: cl.curl(name)[0] == 200, 30, "the app's page")


def test_an_apps_instances_go_to_different_nodes_even_onto_an_empty_one(cl, tmp_path):
    """The node that came back holds nothing: Swarm alone (fewest tasks first) would put both
    instances of a new app there, and its loss would take the whole app down."""
    name = unique_app("clspread")
    repo = make_app_repo(tmp_path / name, page_app("spread"), cl)
    cl.cli("apps:create", name, cwd=repo)
    cl.git("push", "dockyard", "main", cwd=repo)
    cl.cli("ps:scale", "web=2", "-a", name)
    rows = dynos(cl, name)
    assert len({d["node"] for d in rows}) == 2, rows
    victim = next(d["node"] for d in rows if d["node"] != leader(cl))
    try:
        with Load(cl, name) as load:
            time.sleep(1)
            stop_node(cl, victim)
            wait_until(electing(lambda: len([d for d in dynos(cl, name)
                                             if d["state"] == "up" and d["node"] != victim]) == 2),
                       90, "2 instances up on the remaining nodes")
            time.sleep(2)
        assert load.failed == 0 and load.ok > 50, (load.ok, load.failed)
        assert len({d["node"] for d in dynos(cl, name)}) == 2
    finally:
        start_node(cl, victim)


def test_losing_the_manager_the_platform_talks_to_keeps_scheduling(cl, web):
    name, repo = web
    first = json.loads((cl.home / "cluster.json").read_text())["manager"]
    victim = next(r["hostname"] for r in api(cl, "GET", "/nodes") if first.startswith(f"tcp://{r['address']}:"))
    stop_node(cl, victim)
    try:
        wait_until(electing(lambda: node_state(cl, victim) == "down"), 60, f"{victim} shown down by another manager")
        cl.cli("ps:scale", "web=3", "-a", name)
        make_app_repo(repo, page_app("four"), cl)
        cl.git("push", "dockyard", "main", cwd=repo)
        rows = dynos(cl, name)
        assert len(rows) == 3 and all(d["state"] == "up" and d["node"] != victim for d in rows), rows
        assert body_of(cl, name).startswith("four-web.")
    finally:
        start_node(cl, victim)


def test_buildpack_app_runs_on_the_cluster(cl, tmp_path):
    name = unique_app("clbp")
    repo = make_app_repo(tmp_path / name, {"public/index.html": "<h1>static on the cluster</h1>\n"}, cl)
    cl.cli("apps:create", name, cwd=repo)
    out = cl.git("push", "dockyard", "main", cwd=repo).stderr
    assert "Static app detected" in out
    assert "static on the cluster" in body_of(cl, name)
    assert dynos(cl, name)[0]["node"] in NODES


# ---- one-offs in the background, cron and autosleep on the nodes (kept apart from the rest) --------
# They run before `cluster-down` below, which ends the module's cluster.

def get_page(p, app: str, timeout: float = 60) -> tuple[int, str]:
    """GET / through the router, waiting as long as a wake on a node may take."""
    req = urllib.request.Request(f"http://127.0.0.1:{p.router_port}/", headers={"Host": f"{app}.{p.domain}"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode().strip()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def host_oneoffs(p, app: str) -> list[str]:
    return run(["docker", "ps", "-aq", "--filter", f"label=dockyard.app={app}", "--filter", "label=dockyard.oneoff=run",
                "--filter", f"label=dockyard.instance={p.name}"]).stdout.split()


@pytest.fixture(scope="module")
def jobs_app(cl, tmp_path_factory):
    """An app with a cron job every minute (its first run comes while the other tests run)."""
    name = unique_app("cljob")
    files = {**page_app("jobs"), "app.json": json.dumps({"cron": [{"command": "echo cron-ran-$DYNO; sleep 6",
                                                                   "schedule": "* * * * *"}]})}
    repo = make_app_repo(tmp_path_factory.mktemp("jobs") / name, files, cl)
    cl.cli("apps:create", name, cwd=repo)
    cl.git("push", "dockyard", "main", cwd=repo)
    return name


def test_a_detached_one_off_runs_on_a_node_is_listed_logged_and_stoppable(cl, jobs_app):
    name = jobs_app
    out = cl.cli("run", "--detach", "-a", name, "--", "sh", "-c", "echo bg-$DYNO; sleep 300").stdout
    label = re.search(r"run\.\d+", out).group(0)
    row = wait_until(lambda: next((d for d in dynos(cl, name) if d["name"] == label and d["state"] == "up"), None),
                     60, f"{label} up on a node")
    assert row["node"] in NODES and not host_oneoffs(cl, name), (row, "ran on the platform host")
    assert f"{label}" in cl.cli("ps", "-a", name).stdout
    wait_until(lambda: f"bg-{label}" in cl.cli("logs", "-a", name, "-n", "200").stdout, 60, "its output in logs")
    # `heroku ps:stop run.N`
    req = urllib.request.Request(f"{cl.api}/apps/{name}/dynos/{label}/actions/stop", method="POST", data=b"{}",
                                 headers={"Authorization": f"Bearer {cl.token()}", "Content-Type": "application/json",
                                          "Accept": "application/vnd.heroku+json; version=3"})
    urllib.request.urlopen(req, timeout=60).close()
    assert not [d for d in dynos(cl, name) if d["name"] == label]
    # one that ends on its own: its output and exit code stay in the logs after it is removed
    label = re.search(r"run\.\d+", cl.cli("run", "--detach", "-a", name, "--", "sh", "-c",
                                             "echo short-$DYNO; exit 3").stdout).group(0)
    wait_until(lambda: f"One-off {label} exited with code 3" in cl.cli("logs", "-a", name, "-n", "200").stdout,
               60, "the exit recorded")
    logs = cl.cli("logs", "-a", name, "-n", "200").stdout
    assert f"short-{label}" in logs, logs
    # the reconciler removes the ended one-off's service before it records the exit
    assert not [d for d in dynos(cl, name) if d["name"] == label] and not host_oneoffs(cl, name), label


def test_a_sleeping_app_on_the_nodes_wakes_on_a_request(cl, tmp_path):
    name = unique_app("clnap")
    repo = make_app_repo(tmp_path / name, page_app("nap"), cl)
    cl.cli("apps:create", name, cwd=repo)
    cl.git("push", "dockyard", "main", cwd=repo)
    assert dynos(cl, name)[0]["node"] in NODES
    cl.cli("ps:autosleep", "web", "--after", "3s", "-a", name)
    wait_until(lambda: "web: sleeping since" in cl.cli("ps", "-a", name).stdout and not dynos(cl, name), 60,
               f"{name} to sleep")
    started = time.monotonic()
    assert get_page(cl, name) == (200, "nap-web.1")
    woke = time.monotonic() - started
    rows = dynos(cl, name)
    assert [(d["name"], d["state"]) for d in rows] == [("web.1", "up")] and rows[0]["node"] in NODES, rows
    print(f"\nwake on the cluster: first answer after {woke:.1f} s")


def test_losing_the_raft_leader_fails_no_request(cl, jobs_app):
    """While the managers elect a new leader no manager answers (10-20 s): the router drops the
    lost node's instances by its own probe of the nodes, from the last listing, without waiting
    for the managers. The new leader then lists the tasks still running on the live nodes
    without their published ports: they keep the ports they had (seen failing before: the
    routes were left with the lost node's instance only, 3 requests failed with 504)."""
    name = jobs_app
    cl.cli("ps:scale", "web=3", "-a", name)
    victim = leader(cl)
    assert victim in {d["node"] for d in dynos(cl, name) if d["type"] == "web"}, dynos(cl, name)
    try:
        with Load(cl, name) as load:
            time.sleep(1)
            lost_at = time.monotonic()
            stop_node(cl, victim)
            wait_until(electing(lambda: len([d for d in dynos(cl, name) if d["type"] == "web" and d["state"] == "up"
                                             and d["node"] != victim]) == 3), 120, "3 instances up on the others")
            full = time.monotonic() - lost_at
            time.sleep(2)
    finally:
        start_node(cl, victim)
    print(f"\nleader loss (web=3): {load.failed} failed of {load.ok + load.failed} requests; full strength "
          f"after {full:.1f} s; failures {load.fail_codes} at {[round(t - lost_at, 1) for t in load.fail_times]} s")
    if load.failed:     # which tasks Swarm moved or stopped, for the failure's report
        for k in (1, 2, 3):
            print(run(["docker", "exec", f"{cl.name}-node{k}", "sh", "-c", "docker service ps --no-trunc --format "
                       "'{{.Name}} {{.Node}} {{.DesiredState}} {{.CurrentState}} {{.Error}}' "
                       "$(docker service ls -q --filter label=dockyard.app=" + name + ")"], check=False).stdout)
    assert load.failed == 0 and load.ok > 50, (load.ok, load.failed)


def test_cron_runs_on_a_node(cl, jobs_app):
    name = jobs_app
    # a job's task is listed from its creation; its node is named once the swarm placed it
    row = wait_until(lambda: next((d for d in dynos(cl, name) if d["type"] == "run" and d["node"]), None), 150,
                     "the cron job's first run, placed")
    assert row["container"].startswith("swarm:") and row["node"] in NODES, row
    assert not host_oneoffs(cl, name), "ran on the platform host"

    def ran():      # not the router's lines: the load of the tests before can fill any window
        logs = cl.cli("logs", "-a", name, "-n", "300", "--source", "app").stdout
        return logs if "cron-ran-run." in logs else None
    wait_until(ran, 60, "the cron job's output")
    wait_until(lambda: "(cron job) exited with code 0" in cl.cli("logs", "-a", name, "-n", "300", "--source",
                                                                 "dockyard").stdout, 60, "the cron job's exit")
    # the reconciler writes the exit line to the log, then the job's record: `cron` may lag a pass
    wait_until(lambda: "exit code 0" in cl.cli("cron", "-a", name).stdout, 30, "the cron job's exit code in `cron`")


# ---- builds on the nodes (kept before cluster-down, which ends the module's cluster) --------
def node_engine(p, hostname: str, *args: str) -> str:
    """The docker CLI against a node's own engine (inside its Docker-in-Docker container)."""
    return run(["docker", "exec", f"{p.name}-{hostname}", "docker", *args], timeout=60).stdout


def test_a_push_builds_on_a_node_in_the_tenants_sandbox_and_serves(cl, tmp_path):
    name = unique_app("clbuild")
    repo = make_app_repo(tmp_path / name, {"Dockerfile": f"FROM {BUSYBOX_BASE}\n"
                                           "RUN echo built-on-a-node > /www/built.html\n"
                                           "CMD [\"/bin/sh\", \"-c\", \"exec httpd -f -p $PORT -h /www\"]\n"}, cl)
    cl.cli("apps:create", name, cwd=repo)
    out = cl.git("push", "dockyard", "main", cwd=repo).stderr
    built_on = re.search(r"Building on (node\d)", out)
    assert built_on, out
    node = built_on.group(1)
    assert body_of_path(cl, name, "/built.html") == "built-on-a-node"
    assert f"dockerfile on {node}" in cl.cli("builds", "-a", name).stdout
    # the build ran in the tenant's sandbox on that node (its own engine there), not on the host
    sandboxes = node_engine(cl, node, "ps", "--filter", "label=dockyard.sandbox", "--format", "{{.Names}}").split()
    assert sandboxes and all(s.startswith(f"{cl.name}-sandbox-u") for s in sandboxes), sandboxes
    assert node_engine(cl, node, "images", "-q", f"*/{cl.name}/{name}").strip(), "the node pushed what it built"
    # The platform reaches that sandbox's engine from the cluster's network: however many
    # networks the sandbox's engine makes for builds, none takes that network (seen hanging every
    # later build on the node once Docker's default pools reached it: replies went to a build's bridge)
    sandbox = next(s for s in sandboxes if sandbox_engine(cl, node, s, "images", "-q", f"{cl.name}/{name}").strip())
    subnet = ipaddress.ip_network(json.loads((cl.home / "cluster.json").read_text())["subnet"])
    made = [f"dytnet{k}" for k in range(16)]     # as many as Docker's default pools have in 172.17-31
    try:
        for net in made:
            sandbox_engine(cl, node, sandbox, "network", "create", net)
        for net in made:
            got = ipaddress.ip_network(sandbox_engine(cl, node, sandbox, "network", "inspect", "-f",
                                                      "{{(index .IPAM.Config 0).Subnet}}", net).strip())
            assert not got.overlaps(subnet), (net, got, subnet)
        engine = node_engine(cl, node, "port", sandbox, "2375").split()[0]
        with urllib.request.urlopen(f"http://{engine}/_ping", timeout=10) as r:
            assert r.read() == b"OK"
    finally:
        for net in made:
            run(["docker", "exec", f"{cl.name}-{node}", "docker", "exec", sandbox, "docker", "-H",
                 "unix:///sandbox/docker.sock", "network", "rm", net], check=False)
    # The tidy after a build leaves the older builds' images in the sandbox while another build
    # runs there (its builder may be about to use one from its cache): held as a build holds it
    builds = lambda: sandbox_engine(cl, node, sandbox, "images", "--format", "{{.Tag}}",  # noqa: E731
                                    f"{cl.name}/{name}").split()
    assert len(builds()) == 1, builds()
    lock = cl.home / "sandboxes" / f"{node}-{sandbox}.builds.lock"
    with open(lock, "a+") as held:
        fcntl.flock(held, fcntl.LOCK_SH)
        make_app_repo(repo, {"Dockerfile": (repo / "Dockerfile").read_text().replace("built-on", "again-on")}, cl)
        assert f"Building on {node}" in cl.git("push", "dockyard", "main", cwd=repo).stderr
    assert body_of_path(cl, name, "/built.html") == "again-on-a-node"
    assert len(builds()) == 2, builds()
    make_app_repo(repo, {"Dockerfile": (repo / "Dockerfile").read_text().replace("again-on", "third-on")}, cl)
    assert f"Building on {node}" in cl.git("push", "dockyard", "main", cwd=repo).stderr
    assert len(builds()) == 1, builds()     # none runs: the older builds' images go


def sandbox_engine(p, hostname: str, sandbox: str, *args: str) -> str:
    """The docker CLI against a tenant's build sandbox engine on a node."""
    return run(["docker", "exec", f"{p.name}-{hostname}", "docker", "exec", sandbox, "docker", "-H",
                "unix:///sandbox/docker.sock", *args], timeout=60).stdout


def test_a_node_lost_mid_build_builds_again_on_another_and_deploys(cl, tmp_path):
    def slow_app(text: str, sleep: int) -> dict[str, str]:
        return {"Dockerfile": f"FROM {BUSYBOX_BASE}\nRUN echo slow-step; sleep {sleep}\n"
                              f"CMD [\"/bin/sh\", \"-c\", \"echo {text} > /www/index.html; exec httpd -f -p $PORT -h /www\"]\n"}

    name = unique_app("cllost")
    repo = make_app_repo(tmp_path / name, slow_app("first", 0), cl)
    cl.cli("apps:create", name, cwd=repo)
    cl.git("push", "dockyard", "main", cwd=repo)
    assert body_of(cl, name) == "first"
    make_app_repo(repo, slow_app("second", 30), cl)
    lose_the_building_node(cl, repo, timeout=400)
    assert body_of(cl, name) == "second"


def lose_the_building_node(cl, repo, timeout: float) -> str:
    """Push, stop the node that builds as soon as the build's slow step runs, and check that
    the build ran again on another node and the push succeeded; its output."""
    # the build must not go to the Raft leader: losing it would stall the deploy for an election
    ruler = leader(cl)
    node_engine(cl, ruler, "node", "update", "--availability", "pause", ruler)
    push = subprocess.Popen(["git", "push", "dockyard", "main"], cwd=repo, env=cl.env, stderr=subprocess.PIPE, text=True)
    seen, victim = [], None
    try:
        for line in push.stderr:
            seen.append(line)
            found = re.search(r"Building on (node\d)", line)
            victim = found.group(1) if found else victim
            if victim and "slow-step" in line:
                break
        assert victim, "".join(seen)
        stop_node(cl, victim)
        out = "".join(seen) + push.communicate(timeout=timeout)[1]
        assert push.returncode == 0, out
        assert f"Node {victim} was lost during the build: building again on another node" in out, out
        again = re.findall(r"Building on (node\d)", out)
        assert len(again) == 2 and again[1] != victim, again
        return out
    finally:
        if push.poll() is None:
            push.kill()
        if victim:
            start_node(cl, victim)
        node_engine(cl, ruler, "node", "update", "--availability", "active", ruler)


# ---- add-ons reached from the nodes (kept before cluster-down, which ends the module's cluster) ----
# An app with a Postgres add-on (on the platform host) runs web=2 on the nodes, its release phase
# and `run` on nodes too, through its forwarder; a second user's app on the nodes cannot get at
# it. 224 s and 332 s here under load (two buildpack builds, one add-on), beside the module's
# cluster.
ADDONS_SAMPLE = ROOT / "tests" / "samples" / "python-addons"
RELEASE_PY = """import os
url = os.environ.get("DATABASE_URL")
if url:
    import psycopg
    with psycopg.connect(url, connect_timeout=10) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS released (at timestamptz DEFAULT now())")
        conn.execute("INSERT INTO released DEFAULT VALUES")
    print("release phase wrote to the database")
"""
COUNT_PY = ("import os, time, psycopg\n"
            "c = psycopg.connect(os.environ['DATABASE_URL'], connect_timeout=10)\n"
            "print('items', c.execute('SELECT count(*) FROM items').fetchone()[0],"
            " 'released', c.execute('SELECT count(*) FROM released').fetchone()[0])\n"
            "time.sleep(6)\n")
# Run by the second user's one-off: the ways in it has to the first app's add-on. Each probe
# sends Postgres' SSLRequest, which Postgres answers with one byte ("N" here). The forwarder's
# own address is not tried: it is on the first app's overlay network only, so from anywhere
# else it routes out of this machine, not to a container.
ATTACK_PY = """import socket, sys
gateway, port, app, addon, own = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
def probe(host, p, first=b""):
    try:
        s = socket.create_connection((host, p), timeout=5)
    except OSError as e:
        return "unreachable"
    s.settimeout(8)
    try:
        s.sendall(first + bytes([0, 0, 0, 8, 4, 210, 22, 47]))
        got = s.recv(1)
    except OSError:
        got = b""
    return "answered" if got else "closed"
print("by-name", probe(addon, 5432))
print("forged", probe(gateway, port, ("dockyard-addon/1 %s %s 5432 %s\\n" % (app, addon, "0" * 64)).encode()))
print("own-name", probe(gateway, port, ("dockyard-addon/1 %s %s 5432 %s\\n" % (own, addon, "0" * 64)).encode()))
print("bare", probe(gateway, port))
"""


def second_user(p, base) -> dict:
    """A user of their own (not an admin), logged in with their own HOME: their CLI's env."""
    name = f"u{secrets.token_hex(3)}"
    token = p.cli("users:add", name).stdout.strip().splitlines()[-1].strip()
    home = base / f"home-{name}"
    home.mkdir(parents=True)
    env = {**p.env, "HOME": str(home)}
    run([str(ROOT / ".venv/bin/dockyard"), "login", "--api", p.api, "--token", token], cwd=home, env=env)
    return env


def node_events(p, app: str, since: float) -> str:
    """The containers of `app` created on any node's engine since `since`, by their labels."""
    return "".join(run(["docker", "exec", f"{p.name}-node{k}", "docker", "events", "--since", str(int(since)),
                        "--until", str(int(time.time()) + 1), "--filter", "event=create", "--filter",
                        f"label=dockyard.app={app}", "--format", "{{json .Actor.Attributes}}"],
                       check=False).stdout for k in (1, 2, 3))


def test_an_app_with_postgres_uses_it_from_the_nodes_and_another_tenant_cannot(cl, tmp_path):
    started = time.time()
    name = unique_app("clpg")
    files = {str(f.relative_to(ADDONS_SAMPLE)): f.read_bytes() for f in sorted(ADDONS_SAMPLE.rglob("*")) if f.is_file()}
    files["Procfile"] = files["Procfile"].decode() + "release: python release.py\n"
    files["release.py"] = RELEASE_PY
    repo = make_app_repo(tmp_path / name, files, cl)
    cl.cli("apps:create", name, cwd=repo)
    cl.git("push", "dockyard", "main", cwd=repo, timeout=900)
    since = time.time() - 1
    out = cl.cli("addons:create", "postgres", "-a", name).stdout
    assert "as DATABASE_URL" in out, out
    addon = next(a["name"] for a in json.loads(cl.cli("addons", "-a", name, "--json").stdout))
    # the release phase of the new release (DATABASE_URL set) ran on a node and wrote there
    assert '"dockyard.oneoff":"release"' in node_events(cl, name, since)
    cl.cli("ps:scale", "web=2", "-a", name)
    wait_until(lambda: len({d["node"] for d in dynos(cl, name) if d["type"] == "web" and d["state"] == "up"}) == 2,
               120, "web=2 on two nodes")
    assert body_of_path(cl, name, "/write?n=20") == "wrote 20"
    for _ in range(4):      # both instances, on their nodes, read the rows through the forwarder
        assert json.loads(body_of_path(cl, name, "/rows"))["count"] == 20
    assert not cl.containers(name), "an instance or one-off of the app runs on the platform host"

    # `run` on a node reaches the database under the unchanged DATABASE_URL
    result = {}
    runner = threading.Thread(target=lambda: result.update(proc=cl.cli("run", "-a", name, "--", "python", "-c", COUNT_PY,
                                                                       check=False)))
    runner.start()
    assert wait_until(lambda: sum(oneoffs_on_nodes(cl).values()) == 1, 60, "the one-off on a node")
    # listed by `ps` with its node while it runs, as a one-off on one host is
    wait_until(lambda: any(d["name"] == "run.1" and d["node"] in NODES for d in dynos(cl, name)), 10, "run.1 in ps")
    assert re.search(r"run\.1: .* on node[123]", cl.cli("ps", "-a", name).stdout)
    runner.join(120)
    proc = result["proc"]
    assert proc.returncode == 0 and re.search(r"items 20 released [1-9]", proc.stdout), (proc.stdout, proc.stderr)

    # a second user's app on the nodes: no way in to the first app's add-on
    env = second_user(cl, tmp_path)
    other = unique_app("clev")
    other_repo = make_app_repo(tmp_path / other, {"public/index.html": "<h1>other tenant</h1>\n"}, cl)
    run([str(ROOT / ".venv/bin/dockyard"), "apps:create", other], cwd=other_repo, env=env)
    run(["git", "push", "dockyard", "main"], cwd=other_repo, env=env, timeout=900)
    gateway = json.loads((cl.home / "cluster.json").read_text())["registry"].rpartition(":")[0]
    port = cl.env["DOCKYARD_ADDON_GATEWAY_PORT"]
    attack = run([str(ROOT / ".venv/bin/dockyard"), "run", "-a", other, "--", "python3", "-c", ATTACK_PY,
                  gateway, port, name, addon, other], cwd=other_repo, env=env, check=False, timeout=300)
    assert attack.returncode == 0, (attack.stdout, attack.stderr)
    seen = dict(line.split(" ", 1) for line in attack.stdout.splitlines() if line.count(" ") == 1)
    assert seen.get("by-name") == "unreachable", attack.stdout
    assert seen.get("forged") == "closed" and seen.get("own-name") == "closed" and seen.get("bare") == "closed", attack.stdout
    print(f"\nadd-ons from the nodes: {time.time() - started:.0f} s")


# ---- tenants on the nodes: the node's wall (scripts/node-firewall.sh) -------------------------
# (kept before cluster-down, which ends the module's cluster)
ATTACK_IMAGE = {"Dockerfile": f"FROM {BUSYBOX_BASE}\n"
                # the instance serves at once (the health check) and probes in the background
                "CMD [\"/bin/sh\", \"-c\", \"(eval \\\"$PROBE\\\" > /www/r.tmp; mv /www/r.tmp /www/probe.txt) & "
                "exec httpd -f -p $PORT -h /www\"]\n"}


def second_user_env(p) -> dict:
    from controller.store import Store
    store = Store(p.home / "dockyard.db")
    user = store.create_user(f"mallory-{secrets.token_hex(2)}")
    token = secrets.token_hex(16)
    store.add_token(user.id, token)
    return {**p.env, "DOCKYARD_API_TOKEN": token}


def probe_script(targets: list[tuple[str, str, str, str]]) -> str:
    """A shell script for busybox: each (label, HOST:PORT, request line, expected text) is tried
    at once (HTTP/1.0 over nc, whose input stays open a moment: the registry's forwarder ends a
    connection half-closed by its client) and printed as label=open or label=shut; `route` is
    the container's default gateway (its node's bridge address)."""
    lines = ['hit() { out=$( (printf "$3 HTTP/1.0\\r\\nContent-Length: 0\\r\\n\\r\\n"; sleep 2) | timeout 8 nc -w 4 "${2%:*}" '
             '"${2##*:}" 2>/dev/null | head -c 4000); case "$out" in *"$4"*) echo "$1=open";; *) echo "$1=shut";; esac; }',
             # a connection only (an empty expected text): open when the peer accepts it, even if
             # it closes at once with nothing said (the add-on gateway, to a line not signed)
             'tcp() { if (printf "$3\\n"; sleep 2) | timeout 8 nc -w 4 "${2%:*}" "${2##*:}" >/dev/null 2>&1; '
             'then echo "$1=open"; else echo "$1=shut"; fi; }',
             "route=$(ip route | awk '/^default/ {print $3}')"]
    lines += [f'{"hit" if expect else "tcp"} {label} "{target}" "{request}" \'{expect}\' &'
              for label, target, request, expect in targets]
    return "\n".join(lines + ["wait"]) + "\n"


def results(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.split() if "=" in line)


def wall_drops(p) -> int:
    """Packets the nodes' walls dropped so far (the DROP rules' counters in every node)."""
    total = 0
    for k in (1, 2, 3):
        for chain in ("DOCKYARD-TASKS-IN", "DOCKYARD-TASKS-OUT"):
            out = run(["docker", "exec", f"{p.name}-node{k}", "iptables", "-L", chain, "-v", "-n", "-x"]).stdout
            total += sum(int(line.split()[0]) for line in out.splitlines()[2:] if line.split()[2] == "DROP")
    return total


def test_a_tenant_on_a_node_reaches_no_engine_nor_the_registry_only_the_addon_gateway(cl, web, tmp_path):
    victim, _ = web
    mallory = second_user_env(cl)
    name = unique_app("clwall")
    repo = make_app_repo(tmp_path / name, ATTACK_IMAGE)
    cli = [str(ROOT / ".venv/bin/dockyard")]
    run([*cli, "apps:create", name], env=mallory, cwd=repo)
    out = run(["git", "push", "dockyard", "main"], env=mallory, cwd=repo, timeout=600).stderr
    assert re.search(r"Building on node\d", out), out     # so a sandbox (mallory's) exists on a node
    net = f"{cl.name}-cluster"
    gateway = run(["docker", "network", "inspect", "-f", "{{(index .IPAM.Config 0).Gateway}}", net]).stdout.strip()
    targets = []
    for k in (1, 2, 3):
        address = run(["docker", "inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{net}").IPAddress}}}}',
                       f"{cl.name}-node{k}"]).stdout.strip()
        targets.append((f"engine-node{k}", f"{address}:2375", "GET /version", "ApiVersion"))
        for sandbox in node_engine(cl, f"node{k}", "ps", "-q", "--filter", "label=dockyard.sandbox").split():
            published = node_engine(cl, f"node{k}", "port", sandbox, "2375/tcp").split()[0]
            targets.append((f"sandbox-node{k}-{sandbox[:6]}", published, "GET /version", "ApiVersion"))
    assert any(t[0].startswith("sandbox-") for t in targets), targets
    targets.append(("engine-route", "$route:2375", "GET /version", "ApiVersion"))
    registry = f"{gateway}:{cl.env['DOCKYARD_REGISTRY_PORT']}"
    targets.append(("registry-pull", registry, f"GET /v2/{cl.name}/{victim}/tags/list", '"tags"'))
    targets.append(("registry-push", registry, f"POST /v2/{cl.name}/{victim}/blobs/uploads/", "202 Accepted"))
    # the add-on gateway's port on the gateway address stays open: a connection is accepted (the
    # platform's gateway then closes it, the line being unsigned; a stand-in listener when the
    # platform's own gateway is not there)
    addon = (gateway, int(cl.env.get("DOCKYARD_ADDON_GATEWAY_PORT", "5004")))
    targets.append(("addon-gateway", f"{addon[0]}:{addon[1]}", "GET /", ""))
    stand_in = None
    try:
        stand_in = socket.create_server(addon)
    except OSError:
        pass
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            with contextlib.suppress(OSError):
                conn, _ = stand_in.accept()
                with conn:
                    conn.sendall(b"addon-hello\n")

    if stand_in:
        stand_in.settimeout(0.5)
        threading.Thread(target=serve, daemon=True).start()
    dropped = wall_drops(cl)
    try:
        run([*cli, "config:set", f"PROBE={probe_script(targets)}", "-a", name], env=mallory)
        oneoff = run([*cli, "run", "-a", name, "--", "sh", "-c", 'eval "$PROBE"'], env=mallory, timeout=120).stdout
        page = wait_until(lambda: (lambda r: r[0] == 200 and r[1])(cl.curl(name, "/probe.txt")), 90,
                          "the instance's probe results")
    finally:
        stop.set()
        if stand_in:
            stand_in.close()
    assert any(d["node"] for d in dynos(cl, name)), "the instance ran on the platform host"
    expected = {t[0]: "open" if t[0] == "addon-gateway" else "shut" for t in targets}
    assert (results(oneoff), results(page)) == (expected, expected), (oneoff, page)
    assert wall_drops(cl) > dropped      # refused by the nodes' walls, not by anything else


def body_of_path(p, app: str, path: str) -> str:
    code, body = p.curl(app, path)
    assert code == 200, (code, body)
    return body.strip()


# ---- buildpack builds on the nodes, and the platform's labels stamped on a node's image ---------
# (kept before cluster-down, which ends the module's cluster)
def py_app(text: str, build_command: str = "") -> dict[str, str]:
    """A tiny Python app with one dependency (its virtualenv is the build cache's and the
    dependency image's), served by the stack's python3."""
    files = {"requirements.txt": "six==1.16.0\n", "public/index.html": f"{text}\n",
             "Procfile": "web: python -c 'import six' && exec python -m http.server $PORT --directory public\n"}
    if build_command:
        files["render.yaml"] = f"services:\n  - type: web\n    name: web\n    buildCommand: {build_command}\n"
    return files


def current_image(p, app: str) -> str:
    return next(r["image"] for r in api(p, "GET", f"/apps/{app}/releases") if r["current"])


@pytest.mark.timeout(900)   # a node's first buildpack build pulls the build image (1.3 GB) there, once
def test_a_buildpack_push_builds_on_a_node_and_a_warm_push_reuses_its_cache(cl, tmp_path):
    name = unique_app("clbpnode")
    repo = make_app_repo(tmp_path / name, py_app("cold"), cl)
    cl.cli("apps:create", name, cwd=repo)
    started = time.monotonic()
    out = cl.git("push", "dockyard", "main", cwd=repo).stderr
    cold = time.monotonic() - started
    node = re.search(r"Building on (node\d)", out)
    assert node and "Python app detected" in out and "Successfully installed six" in out, out
    node = node.group(1)
    assert body_of(cl, name) == "cold"
    assert f"buildpack:python (Python) on {node}" in cl.cli("builds", "-a", name).stdout
    # the steps ran in the tenant's sandbox on that node: the app's build cache is a volume there
    # (the one holding the app's images: other tenants of the module have sandboxes there too)
    sandboxes = node_engine(cl, node, "ps", "--filter", "label=dockyard.sandbox", "--format", "{{.Names}}").split()
    sandbox = next((s for s in sandboxes if sandbox_engine(cl, node, s, "images", "-q", f"{cl.name}/{name}").strip()),
                   sandboxes[0])
    volumes = sandbox_engine(cl, node, sandbox, "volume", "ls", "-q").split()
    assert any(v.startswith(f"{cl.name}-cache-") for v in volumes), volumes
    # a code-only change builds on the same node, warm: nothing installed, the dependency image reused
    make_app_repo(repo, {"public/index.html": "warm\n"}, cl)
    started = time.monotonic()
    out = cl.git("push", "dockyard", "main", cwd=repo).stderr
    warm = time.monotonic() - started
    assert f"Building on {node} (the app's previous build node" in out, out
    assert "-----> Dependencies unchanged: reusing their image layer (nothing copied)" in out, out
    assert "Successfully installed" not in out
    assert body_of(cl, name) == "warm"
    # the sandbox keeps the app's newest build and its dependency image (the next build's warm start)
    tags = sandbox_engine(cl, node, sandbox, "images", "--format", "{{.Tag}}", f"{cl.name}/{name}").split()
    assert len([t for t in tags if t.startswith("build-")]) == 1 and any(t.startswith("deps-k") for t in tags), tags
    labels = json.loads(run(["docker", "image", "inspect", "-f", "{{json .Config.Labels}}",
                             current_image(cl, name)]).stdout)
    assert labels["dockyard.app"] == name and labels["dockyard.instance"] == cl.name, labels
    print(f"buildpack push on a node: cold {cold:.1f} s, warm {warm:.1f} s")


def test_a_node_build_drops_the_tenants_platform_labels(cl, tmp_path):
    name = unique_app("cllabel")
    repo = make_app_repo(tmp_path / name, {"Dockerfile": f"FROM {BUSYBOX_BASE}\n"
                         'LABEL dockyard.addon="victims-db" dockyard.app="victim" keep="me"\n'
                         "CMD [\"/bin/sh\", \"-c\", \"echo labelled > /www/index.html; exec httpd -f -p $PORT -h /www\"]\n"}, cl)
    cl.cli("apps:create", name, cwd=repo)
    out = cl.git("push", "dockyard", "main", cwd=repo).stderr
    assert re.search(r"Building on node\d", out) and "LABEL dockyard.instance" not in out, out
    assert body_of(cl, name) == "labelled"
    labels = json.loads(run(["docker", "image", "inspect", "-f", "{{json .Config.Labels}}",
                             current_image(cl, name)]).stdout)
    assert labels["dockyard.app"] == name and labels.get("keep") == "me", labels
    assert "dockyard.addon" not in labels, labels


@pytest.mark.timeout(900)   # the build may go again to a node that has no build image yet
def test_a_node_lost_mid_buildpack_build_builds_again_on_another(cl, tmp_path):
    name = unique_app("clbplost")
    repo = make_app_repo(tmp_path / name, py_app("after-loss", "echo slow-step; sleep 30"), cl)
    cl.cli("apps:create", name, cwd=repo)
    lose_the_building_node(cl, repo, timeout=780)
    assert body_of(cl, name) == "after-loss"


def test_cluster_down_returns_apps_to_this_host(cl, web):
    name, _ = web
    with Load(cl, name) as load:
        run(["make", "-C", str(ROOT), "cluster-down"], env=cl.env, timeout=300)
    rows = dynos(cl, name)
    assert rows and all(d["node"] == "" for d in rows), rows
    assert body_of(cl, name).startswith("four-web.")
    assert load.failed == 0, (load.ok, load.failed)
    assert api(cl, "GET", "/nodes") == []


def test_apps_starting_at_once_agree_on_one_apps_network(tmp_path, monkeypatch):
    """Six apps moving back from the cluster at once used to create the apps network twice
    (the engine does not refuse a duplicate made at the same moment), after which every
    start failed: "network ... is ambiguous"."""
    from concurrent.futures import ThreadPoolExecutor

    from controller.scheduler.docker_engine import DockerEngine
    from controller.services import scheduler_config
    from controller.settings import from_env
    name = "dyt" + secrets.token_hex(3)
    monkeypatch.setenv("DOCKYARD_NAME", name)
    monkeypatch.setenv("DOCKYARD_HOME", str(tmp_path))
    monkeypatch.setenv("DOCKYARD_APPS_NETWORK", "own")     # the network of its own, whatever the engine's bridge
    engines = [DockerEngine(scheduler_config(from_env())) for _ in range(8)]
    try:
        with ThreadPoolExecutor(8) as pool:
            got = list(pool.map(lambda e: e._apps_network(), engines))
        assert set(got) == {f"{name}-apps"}
        left = run(["docker", "network", "ls", "-q", "--filter", f"name=^{name}-apps$"]).stdout.split()
        assert len(left) == 1, left
    finally:
        for net in run(["docker", "network", "ls", "-q", "--filter", f"label=dockyard.instance={name}"]).stdout.split():
            run(["docker", "network", "rm", net], check=False)
