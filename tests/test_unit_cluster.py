"""Cluster mode's pure parts: swarm listings -> instances and nodes, the registry GC's choice,
the reconciler moving misplaced instances, routing to a node's address, the registry config."""
from __future__ import annotations

from pathlib import Path

from controller.runtime.reconcile import diff
from controller.daemons.registry import config_text
from controller.routing.table import compute_routes
from controller.scheduler.registry_gc import stale_tags
from controller.scheduler.swarm_parse import (PREFIX, REPORT_LAG, ReportedExits, epoch, parse_nodes, parse_services,
                                              parse_task_exits, spread_constraints)
from controller.settings import from_env
from core.models import Instance

NODES = [{"ID": "n1", "Description": {"Hostname": "node1"}, "Status": {"State": "ready", "Addr": "10.0.0.2"},
          "Spec": {"Availability": "active", "Role": "manager"}},
         {"ID": "n2", "Description": {"Hostname": "node2"}, "Status": {"State": "down", "Addr": "10.0.0.3"},
          "Spec": {"Availability": "drain", "Role": "worker"}}]


def service(sid: str, index: int, durable: str = "1", replicas: int = 1) -> dict:
    return {"ID": sid, "Spec": {"Name": f"x-web-{index}", "Mode": {"Replicated": {"Replicas": replicas}},
                                "Labels": {"dockyard.app": "shop", "dockyard.release": "3", "dockyard.process": "web",
                                           "dockyard.index": str(index), "dockyard.image": "d/shop:v3",
                                           "dockyard.durable": durable}}}


def task(sid: str, node: str, state: str, created: str, port: int | None = None, exit_code: int | None = None,
         desired: str = "running") -> dict:
    status = {"State": state, "Timestamp": "2026-12-01T01:00:00.123456789Z"}
    if port:
        status["PortStatus"] = {"Ports": [{"TargetPort": 5000, "PublishedPort": port}]}
    if exit_code is not None:
        status["ContainerStatus"] = {"ExitCode": exit_code}
    return {"ServiceID": sid, "NodeID": node, "CreatedAt": created, "DesiredState": desired, "Status": status}


def test_a_running_task_gives_its_node_address_and_port():
    [inst] = parse_services([service("s1", 1)], [task("s1", "n1", "running", "1", port=30001)], NODES, 5000)
    assert (inst.container_id, inst.state, inst.node, inst.address, inst.host_port) == \
        (PREFIX + "s1", "running", "node1", "10.0.0.2", 30001)
    assert (inst.app, inst.version, inst.process, inst.index, inst.image) == ("shop", 3, "web", 1, "d/shop:v3")
    assert inst.started_at == "2026-12-01T01:00:00.123456+00:00"


def test_a_crash_before_the_health_check_is_final_and_after_it_a_restart():
    tasks = [task("s1", "n1", "failed", "1", exit_code=3, desired="shutdown"), task("s1", "n1", "starting", "2")]
    [early] = parse_services([service("s1", 1, durable="0")], tasks, NODES, 5000)
    assert (early.state, early.exit_code, early.restart_count, early.host_port) == ("exited", 3, 1, None)
    [late] = parse_services([service("s1", 1, durable="1")], tasks, NODES, 5000)
    assert (late.state, late.exit_code) == ("restarting", 3)


def test_tasks_that_exited_on_their_own_in_the_window_are_crashes():
    at = epoch("2026-12-01T01:00:00.123456789Z")
    assert abs(at - 1796086800.123456) < 1e-3
    tasks = [task("s1", "n1", "failed", "1", exit_code=137), task("s1", "n1", "complete", "2", exit_code=0),
             task("s1", "n1", "shutdown", "3", exit_code=143),     # stopped by the platform: not a crash
             task("s1", "n1", "running", "4"), task("other", "n1", "failed", "5", exit_code=1)]
    found = parse_task_exits([service("s1", 1)], tasks, at - 1, at + 1)
    assert [(c.container_id, c.exit_code, t["NodeID"]) for c, t in found] == [(PREFIX + "s1", 137, "n1"),
                                                                              (PREFIX + "s1", 0, "n1")]
    assert parse_task_exits([service("s1", 1)], tasks, at + 1, at + 2) == []     # an earlier window's


def test_an_exit_reported_late_is_handed_out_once():
    at = epoch("2026-12-01T01:00:00.123456789Z")
    failed = {**task("s1", "n1", "failed", "1", exit_code=1), "ID": "t1"}
    exits = ReportedExits()
    assert exits.start(at - 10) == at - 10                    # the first call: nothing before it
    assert exits.new([], at - 10) == []                       # the node has not told the manager yet
    start = exits.start(at + 5)                               # the next window begins after the exit ...
    assert start == at - 10
    found = parse_task_exits([service("s1", 1)], [failed], start, at + 10)
    assert [t["ID"] for _, t in exits.new(found, at + 5)] == ["t1"]   # ... and still finds it
    assert exits.new(found, at + 10) == []                    # once
    assert exits.start(at + 1000) == at + 1000 - REPORT_LAG


def test_a_task_rescheduled_off_a_lost_node_speaks_for_the_instance():
    tasks = [task("s1", "n2", "running", "1", port=30001, desired="shutdown"),
             task("s1", "n1", "running", "2", port=30002)]
    [inst] = parse_services([service("s1", 1)], tasks, NODES, 5000)
    assert (inst.node, inst.host_port) == ("node1", 30002)


def test_a_task_on_a_node_reported_down_is_unknown_and_routed_only_when_nothing_else_runs():
    [lost] = parse_services([service("s1", 1)], [task("s1", "n2", "running", "1", port=30001)], NODES, 5000)
    assert (lost.state, lost.host_port, lost.node) == ("unknown", 30001, "node2")
    up = Instance("up", "up", "shop", 3, "web", 2, "running", None, 30009, "img", node="node1", address="10.0.0.2")
    [route] = compute_routes(["shop"], [lost, up], {lost.container_id, "up"}, "example.test")
    assert [(u.host, u.port) for u in route.upstreams] == [("10.0.0.2", 30009)]
    [route] = compute_routes(["shop"], [lost], {lost.container_id}, "example.test")
    assert [(u.host, u.port) for u in route.upstreams] == [("10.0.0.3", 30001)]


def test_a_durable_instance_swarm_is_placing_again_is_kept_not_replaced():
    moving = [task("s1", "n2", "running", "1", port=30001, desired="shutdown"), task("s1", "", "pending", "2")]
    [inst] = parse_services([service("s1", 1)], moving, NODES, 5000)
    assert (inst.state, inst.host_port) == ("unknown", 30001)      # the old task may still serve
    start, stale, _ = diff([("web", 1)], 3, [inst])
    assert start == [] and stale == []
    gone = [task("s1", "n2", "shutdown", "1", desired="shutdown"), task("s1", "", "pending", "2")]
    [inst] = parse_services([service("s1", 1)], gone, NODES, 5000)
    assert (inst.state, inst.host_port) == ("restarting", None)
    assert diff([("web", 1)], 3, [inst])[:2] == ([], [])
    [new] = parse_services([service("s1", 1, durable="0")], [task("s1", "", "pending", "1")], NODES, 5000)
    assert new.state == "created"      # a first start: the deploy waits for it


def test_an_instance_no_node_can_take_is_exited_so_the_reconciler_replaces_it():
    stuck = task("s1", "", "pending", "2")
    stuck["Status"]["Err"] = "no suitable node (scheduling constraints not satisfied on 2 nodes)"
    [inst] = parse_services([service("s1", 1)], [stuck], NODES, 5000)
    assert inst.state == "exited"
    start, stale, _ = diff([("web", 1)], 3, [inst])
    assert start == [("web", 1)] and stale == [inst]
    # the old task still reported running (its node lost for a moment after a leader change):
    # replaced all the same, but routed while the app has nothing better
    serving = task("s1", "n2", "running", "1", port=30001, desired="shutdown")
    [inst] = parse_services([service("s1", 1)], [serving, stuck], NODES, 5000)
    assert (inst.state, inst.host_port) == ("lost", 30001)
    assert diff([("web", 1)], 3, [inst])[:2] == ([("web", 1)], [inst])
    [route] = compute_routes(["shop"], [inst], {inst.container_id}, "example.test")
    assert [(u.host, u.port) for u in route.upstreams] == [("10.0.0.3", 30001)]


def test_a_manager_reported_at_0_0_0_0_is_reached_at_its_manager_address():
    n = {"ID": "n3", "Description": {"Hostname": "node3"}, "Status": {"State": "ready", "Addr": "0.0.0.0"},
         "ManagerStatus": {"Addr": "10.0.0.4:2377"}, "Spec": {"Availability": "active", "Role": "manager"}}
    [inst] = parse_services([service("s1", 1)], [task("s1", "n3", "running", "1", port=30001)], [n], 5000)
    assert (inst.address, inst.state) == ("10.0.0.4", "running")
    assert parse_nodes([n], [inst])[0]["address"] == "10.0.0.4"


def test_routes_stay_while_the_managers_elect_a_leader():
    """After a leader change every node is "unknown" for a moment, and a live one may even be
    reported down while the dead one is still unknown: all of them stay routable (nginx
    retries the dead one's requests on the live one) as long as no node is ready."""
    unknown = {"ID": "n1", "Description": {"Hostname": "node1"}, "Status": {"State": "unknown", "Addr": "10.0.0.2"}}
    down = {"ID": "n2", "Description": {"Hostname": "node2"}, "Status": {"State": "down", "Addr": "10.0.0.3"}}
    insts = parse_services([service("s1", 1), service("s2", 2)], [task("s1", "n1", "running", "1", port=30001),
                                                                task("s2", "n2", "running", "1", port=30002)],
                           [unknown, down], 5000)
    assert [(i.state, i.host_port) for i in insts] == [("unknown", 30001), ("unknown", 30002)]
    [route] = compute_routes(["shop"], insts, {i.container_id for i in insts}, "example.test")
    assert {(u.host, u.port) for u in route.upstreams} == {("10.0.0.2", 30001), ("10.0.0.3", 30002)}


def node(nid: str, host: str, state: str = "ready", availability: str = "active") -> dict:
    return {"ID": nid, "Description": {"Hostname": host}, "Status": {"State": state, "Addr": "10.0.0.9"},
            "Spec": {"Availability": availability, "Role": "manager"}}


def on(host: str, index: int, version: int = 3, process: str = "web", app: str = "shop") -> Instance:
    return Instance(f"c{host}{index}", "", app, version, process, index, "running", None, 1, "img", node=host)


def test_placement_keeps_an_apps_instances_off_the_nodes_that_hold_more_of_them():
    nodes = [node("a", "node1"), node("b", "node2"), node("c", "node3")]
    assert spread_constraints(nodes, [], "shop", "web", 3) == []
    assert spread_constraints(nodes, [on("node1", 1)], "shop", "web", 3) == ["node.id!=a"]
    assert spread_constraints(nodes, [on("node1", 1), on("node3", 2)], "shop", "web", 3) == ["node.id!=a", "node.id!=c"]
    # every node holds one: any will do (Swarm then picks the one with the fewest tasks)
    assert spread_constraints(nodes, [on("node1", 1), on("node2", 2), on("node3", 3)], "shop", "web", 3) == []
    # other apps and other process types do not count
    assert spread_constraints(nodes, [on("node1", 1, app="blog"), on("node2", 1, process="worker")], "shop", "web", 3) == []


def test_placement_during_a_deploy_counts_the_new_release_once_it_has_an_instance():
    nodes = [node("a", "node1"), node("b", "node2"), node("c", "node3")]
    old = [on("node1", 1, version=2), on("node2", 2, version=2)]
    assert spread_constraints(nodes, old, "shop", "web", 3) == ["node.id!=a", "node.id!=b"]
    assert spread_constraints(nodes, old + [on("node3", 1)], "shop", "web", 3) == ["node.id!=c"]


def test_placement_ignores_nodes_that_are_down_paused_or_drained():
    nodes = [node("a", "node1"), node("b", "node2", state="down"), node("c", "node3", availability="pause")]
    assert spread_constraints(nodes, [on("node2", 1), on("node3", 2)], "shop", "web", 3) == []
    assert spread_constraints(nodes, [on("node1", 1)], "shop", "web", 3) == []   # the only node left takes it


def test_a_service_scaled_to_zero_is_stopped():
    [inst] = parse_services([service("s1", 1, replicas=0)], [task("s1", "n1", "running", "1", port=1)], NODES, 5000)
    assert inst.state == "exited" and inst.host_port is None


def test_nodes_count_running_instances():
    insts = parse_services([service("s1", 1), service("s2", 2)],
                           [task("s1", "n1", "running", "1", port=1), task("s2", "n1", "running", "1", port=2)],
                           NODES, 5000)
    rows = parse_nodes(NODES, insts)
    assert [(r["hostname"], r["state"], r["availability"], r["role"], r["instances"]) for r in rows] == \
        [("node1", "ready", "active", "manager", 2), ("node2", "down", "drain", "worker", 0)]


def test_registry_gc_keeps_release_tags_still_needed():
    assert stale_tags("d/shop", ["v1", "v2", "v3", "latest"], {"d/shop:v3", "d/shop:v2"}) == ["v1"]


def inst(cid: str, index: int, version: int = 3) -> Instance:
    return Instance(cid, cid, "shop", version, "web", index, "running", None, 30000, "img")


def test_misplaced_instances_are_replaced_then_retired():
    here, there = inst("abc", 1), inst(PREFIX + "s1", 2)
    start, retire, have = diff([("web", 1), ("web", 2)], 3, [here, there],
                               misplaced=lambda i: not i.container_id.startswith(PREFIX))
    assert start == [("web", 1)] and retire == [here] and list(have.values()) == [there]


def test_routes_go_to_each_instance_on_its_node():
    a = Instance("a", "a", "shop", 3, "web", 1, "running", None, 30001, "img", node="node1", address="10.0.0.2")
    b = Instance("b", "b", "shop", 3, "web", 2, "running", None, 30002, "img")
    [route] = compute_routes(["shop"], [a, b], {"a", "b"}, "example.test")
    assert {(u.host, u.port) for u in route.upstreams} == {("10.0.0.2", 30001), ("127.0.0.1", 30002)}


def test_registry_serves_loopback_only_with_deletes(tmp_path: Path):
    s = from_env({"DOCKYARD_HOME": str(tmp_path), "DOCKYARD_REGISTRY_PORT": "5999"})
    text = config_text(s)
    assert "addr: 127.0.0.1:5999" in text and f"rootdirectory: {tmp_path / 'registry' / 'data'}" in text
    assert "enabled: true" in text
    assert s.scheduler == "auto" and s.cluster_file == tmp_path / "cluster.json"


def test_a_one_off_goes_to_the_ready_active_node_with_the_least_running():
    from controller.scheduler.swarm_oneoff import pick_node
    rows = [{"hostname": "node1", "address": "10.0.0.2", "state": "ready", "availability": "active", "instances": 3},
            {"hostname": "node2", "address": "10.0.0.3", "state": "ready", "availability": "active", "instances": 1},
            {"hostname": "node3", "address": "10.0.0.4", "state": "down", "availability": "active", "instances": 0},
            {"hostname": "node4", "address": "10.0.0.5", "state": "ready", "availability": "drain", "instances": 0}]
    assert pick_node(rows, {})["hostname"] == "node2"
    assert pick_node(rows, {"node2": 3})["hostname"] == "node1"     # one-offs running there count too
    assert pick_node(rows[2:], {}) is None
