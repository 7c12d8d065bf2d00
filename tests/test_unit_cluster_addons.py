"""The add-ons of an app on the cluster: the signed hello a forwarder opens each connection to
the platform's add-on gateway with, and which forwarders an app's attachments call for (pure)."""
from __future__ import annotations

import os

from controller.scheduler.swarm_addons import (HELLO_MAX, admitted, forwarder_name, gateway_key, hello, plan,
                                               signature)

KEY = bytes(range(32))


def test_a_hello_signed_with_the_key_is_admitted_for_its_attachment_only():
    line = hello(KEY, "shop", "postgres-calm-1234", 5432).encode()
    assert admitted(KEY, line) == ("shop", "postgres-calm-1234", 5432)
    assert admitted(KEY, line + b"\r") == ("shop", "postgres-calm-1234", 5432)


def test_a_forged_or_altered_hello_is_refused():
    sig = signature(KEY, "shop", "postgres-calm-1234", 5432)
    # another app naming the first app's add-on with its own (or a guessed) signature
    assert admitted(KEY, f"dockyard-addon/1 evil postgres-calm-1234 5432 {sig}".encode()) is None
    assert admitted(KEY, b"dockyard-addon/1 shop postgres-calm-1234 5432 " + b"0" * 64) is None
    # the right signature for another port, another key, or a malformed line
    assert admitted(KEY, f"dockyard-addon/1 shop postgres-calm-1234 5433 {sig}".encode()) is None
    assert admitted(os.urandom(32), f"dockyard-addon/1 shop postgres-calm-1234 5432 {sig}".encode()) is None
    for bad in (b"", b"GET / HTTP/1.1", b"\xff\xfe", b"dockyard-addon/1 shop postgres-calm-1234 5432",
                f"dockyard-addon/2 shop postgres-calm-1234 5432 {sig}".encode(),
                f"dockyard-addon/1 shop postgres-calm-1234 x {sig}".encode(),
                f"dockyard-addon/1 Shop/.. postgres-calm-1234 5432 {signature(KEY, 'Shop/..', 'postgres-calm-1234', 5432)}"
                .encode()):
        assert admitted(KEY, bad) is None, bad
    assert len(hello(KEY, "a" * 63, "b" * 63, 65535)) < HELLO_MAX


def test_the_plan_starts_missing_forwarders_and_removes_those_of_detached_addons():
    assert plan({"pg-a": 5432, "redis-b": 6379}, {"pg-a": "s1"}) == (["redis-b"], [])
    assert plan({}, {"pg-a": "s1", "redis-b": "s2"}) == ([], ["s1", "s2"])
    assert plan({"pg-a": 5432}, {"pg-a": "s1"}) == ([], [])


def test_forwarder_names_are_dns_labels_unique_per_attachment():
    one = forwarder_name("dyt123456", "a" * 40, "postgres-mellow-9999")
    assert len(one) <= 63 and one.startswith("dyt123456-fwd-")
    assert one != forwarder_name("dyt123456", "a" * 40, "postgres-mellow-9998")
    assert forwarder_name("dyt1", "ab", "c") != forwarder_name("dyt1", "a", "bc")


def test_the_gateway_key_is_made_once_private_and_kept(tmp_path):
    key = gateway_key(tmp_path)
    assert len(key) == 32 and gateway_key(tmp_path) == key
    assert (tmp_path / "addon-gateway.key").stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["addon-gateway.key"]


def test_a_one_off_on_a_nodes_engine_is_listed_with_its_node_and_routed_by_its_id():
    from controller.scheduler.swarm_oneoff import node_container_id, on_node, split_node_container
    row = {"Id": "c0ffee", "Names": ["/dyt1.shop.run.2.v7.ab12"], "State": "running", "Status": "Up 3 seconds",
           "Image": "172.23.0.1:5001/dyt1/shop:v7", "Created": 1700000000,
           "Labels": {"dockyard.app": "shop", "dockyard.release": "7", "dockyard.oneoff": "run",
                      "dockyard.index": "2", "dockyard.detached": "0"}}
    inst = on_node(row, "node2", "172.23.0.3", 5000)
    assert (inst.app, inst.process, inst.index, inst.version, inst.label) == ("shop", "run", 2, 7, "run.2")
    assert (inst.node, inst.address, inst.detached, inst.state) == ("node2", "172.23.0.3", False, "running")
    assert inst.container_id == node_container_id("172.23.0.3", "c0ffee") == "node:172.23.0.3/c0ffee"
    assert split_node_container(inst.container_id) == ("172.23.0.3", "c0ffee")
    for other in ("swarm:abc", "c0ffee", "node:", "node:172.23.0.3", "node:/c0ffee", "node:172.23.0.3/"):
        assert split_node_container(other) is None, other


def test_a_nodes_release_images_lose_the_tags_no_release_keeps():
    from controller.scheduler.swarm_images import node_removals
    reg, repo = "172.23.0.1:5001", "dyt1/shop"
    tags = [f"{reg}/dyt1/shop:v1", f"{reg}/dyt1/shop:v3", f"{reg}/dyt1/shopx:v1", "dyt1/shop:v1",
            f"{reg}/dockyard/stack:bookworm", f"10.0.0.9:5001/dyt1/shop:v1"]
    assert node_removals(tags, reg, repo, {"dyt1/shop:v3"}) == [f"{reg}/dyt1/shop:v1"]
    assert node_removals(tags, reg, repo, {"dyt1/shop:v1", "dyt1/shop:v3"}) == []
