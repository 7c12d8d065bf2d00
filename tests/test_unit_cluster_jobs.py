"""Detached one-offs on the swarm (swarm_jobs.parse_jobs): a one-task service -> a `run`
instance that is running, being placed, or exited with its code; the host's own probe of the
nodes (swarm_reach) and the routes it gives."""
from __future__ import annotations

from controller.routing.table import compute_routes
from controller.scheduler.swarm_jobs import parse_jobs
from controller.scheduler.swarm_parse import PREFIX
from controller.scheduler.swarm_reach import mark_unreachable
from core.models import Instance

NODES = [{"ID": "n1", "Description": {"Hostname": "node1"}, "Status": {"State": "ready", "Addr": "10.0.0.2"},
          "Spec": {"Availability": "active", "Role": "manager"}}]


def job(sid: str, index: int, replicas: int = 1) -> dict:
    return {"ID": sid, "Spec": {"Name": f"x-shop-run-{index}", "Mode": {"Replicated": {"Replicas": replicas}},
                                "Labels": {"dockyard.app": "shop", "dockyard.release": "4", "dockyard.oneoff": "run",
                                           "dockyard.index": str(index), "dockyard.detached": "1",
                                           "dockyard.image": "d/shop:v4"}}}


def task(sid: str, state: str, exit_code: int | None = None) -> dict:
    status = {"State": state, "Timestamp": "2026-12-01T01:00:00Z"}
    if exit_code is not None:
        status["ContainerStatus"] = {"ExitCode": exit_code}
    return {"ServiceID": sid, "NodeID": "n1", "CreatedAt": "1", "DesiredState": "running", "Status": status}


def test_a_running_job_is_a_detached_run_instance_on_its_node():
    [one] = parse_jobs([job("s1", 2)], [task("s1", "running")], NODES)
    assert (one.container_id, one.process, one.index, one.label, one.detached) == (PREFIX + "s1", "run", 2, "run.2", True)
    assert (one.state, one.exit_code, one.node, one.version, one.app) == ("running", None, "node1", 4, "shop")


def test_a_job_being_placed_is_created_and_one_that_ended_is_exited_with_its_code():
    jobs = [job("s1", 1), job("s2", 2), job("s3", 3), job("s4", 4)]
    tasks = [task("s1", "pending"), task("s2", "complete", 0), task("s3", "failed", 7), task("s4", "rejected")]
    got = [(j.label, j.state, j.exit_code) for j in parse_jobs(jobs, tasks, NODES)]
    assert got == [("run.1", "created", None), ("run.2", "exited", 0), ("run.3", "exited", 7), ("run.4", "exited", -1)]


def test_a_stopped_job_is_exited():
    [one] = parse_jobs([job("s1", 1, replicas=0)], [task("s1", "running")], NODES)
    assert one.state == "exited"


# ---- the platform host's own view of the nodes (swarm_reach) and the routes it gives -------------
def inst(cid: str, address: str, state: str = "running") -> Instance:
    return Instance(cid, cid, "shop", 3, "web", int(cid[-1]), state, None, 30000 + int(cid[-1]), "d/shop:v3",
                    node="n" + address[-1], address=address)


def test_instances_on_a_node_this_host_does_not_reach_are_unreachable():
    got = mark_unreachable([inst("s1", "10.0.0.2"), inst("s2", "10.0.0.3", "unknown"),
                            inst("s3", "10.0.0.3", "exited"), inst("s4", "10.0.0.3", "lost")], {"10.0.0.3"})
    # a lost one stays lost: the reconciler replaces it (an unreachable one is left to Swarm)
    assert [i.state for i in got] == ["running", "unreachable", "exited", "lost"]


def test_unreachable_instances_are_routed_only_when_nothing_else_is():
    insts = [inst("s1", "10.0.0.2", "unreachable"), inst("s2", "10.0.0.3", "unknown"),
             inst("s3", "10.0.0.4", "running")]
    ids = {i.container_id for i in insts}

    def upstreams(found):
        [route] = compute_routes(["shop"], found, ids, "example.test")
        return {u.host for u in route.upstreams}
    assert upstreams(insts) == {"10.0.0.4"}
    assert upstreams(insts[:2]) == {"10.0.0.3"}           # a doubted node before one not reached
    assert upstreams(insts[:1]) == {"10.0.0.2"}           # never none while something may answer

