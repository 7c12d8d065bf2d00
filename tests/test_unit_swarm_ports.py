"""A running web task whose status lost its published port (the new Raft leader's listing after
an election) keeps the port it had, from an earlier listing or from its node's engine."""
from __future__ import annotations

from controller.scheduler.swarm_parse import parse_services
from controller.scheduler.swarm_ports import TaskPorts, container_ports, needs_port, publishing, with_ports

WEB = {"ID": "s1", "Spec": {"Name": "x-web-1", "Labels": {"dockyard.app": "shop", "dockyard.process": "web",
                                                          "dockyard.index": "1", "dockyard.durable": "1"},
                            "EndpointSpec": {"Ports": [{"TargetPort": 5000, "PublishMode": "host"}]}}}
WORKER = {"ID": "s2", "Spec": {"Name": "x-worker-1", "Labels": {"dockyard.app": "shop", "dockyard.process": "worker",
                                                                "dockyard.index": "1"}}}
NODES = [{"ID": "n1", "Description": {"Hostname": "node1"}, "Status": {"State": "ready", "Addr": "10.0.0.2"}}]


def task(tid: str, sid: str, port: int | None = None, state: str = "running") -> dict:
    status = {"State": state}
    if port:
        status["PortStatus"] = {"Ports": [{"TargetPort": 5000, "PublishedPort": port}]}
    return {"ID": tid, "ServiceID": sid, "NodeID": "n1", "CreatedAt": "1", "DesiredState": "running",
            "Status": status}


def test_only_running_web_tasks_without_a_port_need_one():
    web = publishing([WEB, WORKER], 5000)
    assert web == {"s1"}
    assert needs_port(task("t1", "s1"), 5000, web)
    assert not needs_port(task("t1", "s1", port=30001), 5000, web)
    assert not needs_port(task("t2", "s2"), 5000, web)                    # a worker publishes nothing
    assert not needs_port(task("t1", "s1", state="starting"), 5000, web)


def test_a_known_port_fills_the_status_and_the_instance_is_routable_again():
    [filled] = with_ports([task("t1", "s1")], {"t1": 30001}, 5000, {"s1"})
    [inst] = parse_services([WEB], [filled], NODES, 5000)
    assert (inst.state, inst.host_port) == ("running", 30001)
    [bare] = parse_services([WEB], [task("t1", "s1")], NODES, 5000)
    assert bare.host_port is None                                         # what the new leader's listing gives


def test_a_node_engines_containers_give_each_tasks_port():
    containers = [{"Labels": {"com.docker.swarm.task.id": "t1"}, "Ports": [{"PrivatePort": 5000, "PublicPort": 30005,
                                                                            "Type": "tcp"}]},
                  {"Labels": {"com.docker.swarm.task.id": "t2"}, "Ports": []},
                  {"Labels": {}, "Ports": [{"PrivatePort": 5000, "PublicPort": 30006}]}]
    assert container_ports(containers, 5000) == {"t1": 30005}


def test_task_ports_remembers_a_port_and_asks_the_node_only_for_unknown_ones():
    asked = []

    def node_containers(address):
        asked.append(address)
        return [{"Labels": {"com.docker.swarm.task.id": "t9"}, "Ports": [{"PrivatePort": 5000, "PublicPort": 30009}]}]
    ports = TaskPorts(5000, node_containers)
    ports.fill([WEB], [task("t1", "s1", port=30001)], {"n1": "10.0.0.2"})          # before the election
    [t1] = ports.fill([WEB], [task("t1", "s1")], {"n1": "10.0.0.2"})               # after: no port in the status
    assert t1["Status"]["PortStatus"]["Ports"][0]["PublishedPort"] == 30001 and asked == []
    [t9] = ports.fill([WEB], [task("t9", "s1")], {"n1": "10.0.0.2"})               # never seen with a port
    assert t9["Status"]["PortStatus"]["Ports"][0]["PublishedPort"] == 30009 and asked == ["10.0.0.2"]
    ports.fill([WEB], [task("t8", "s1")], {"n1": "10.0.0.2"})                      # not on the node
    ports.fill([WEB], [task("t8", "s1")], {"n1": "10.0.0.2"})                      # not asked again at once
    assert asked == ["10.0.0.2", "10.0.0.2"]
