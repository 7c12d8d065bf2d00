"""Builds on a cluster's nodes: which node a build goes to, and the build slots (one per node,
a queue in arrival order when every node is building). No engine: node rows are plain dicts."""
from __future__ import annotations

import threading
import time

import pytest

from core.errors import ImageBuildFailed, SchedulerError

from controller.scheduler.swarm_build import BuildSlots, build_order


def node(name: str, instances: int, state: str = "ready", availability: str = "active") -> dict:
    return {"hostname": name, "address": f"10.0.0.{name[-1]}", "state": state, "availability": availability,
            "instances": instances}


ROWS = [node("node1", 3), node("node2", 1), node("node3", 0, state="down"), node("node4", 0, availability="drain")]


def test_a_build_goes_to_a_ready_active_node_least_loaded_first():
    assert [n["hostname"] for n in build_order(ROWS)] == ["node2", "node1"]
    assert build_order(ROWS[2:]) == []


def test_each_node_takes_one_build_and_the_next_waits_for_a_free_slot(tmp_path):
    slots = BuildSlots(tmp_path)
    waits: list[str] = []
    first = slots.take(lambda: ROWS, waits.append, lambda: False)
    second = slots.take(lambda: ROWS, waits.append, lambda: False)
    assert (first.hostname, second.hostname) == ("node2", "node1")
    assert waits == []
    got: list[str] = []
    third = threading.Thread(target=lambda: got.append(slots.take(lambda: ROWS, waits.append, lambda: False).hostname))
    third.start()
    time.sleep(0.8)
    assert got == [] and len(waits) == 1 and "waiting for a build slot" in waits[0]
    slots.give_back(second)
    third.join(5)
    assert got == ["node1"]


def test_slots_are_shared_by_the_platforms_processes(tmp_path):
    """Another process's slot is a lock on the same file: this one sees the node busy."""
    other = BuildSlots(tmp_path).take(lambda: ROWS[1:2], lambda _: None, lambda: False)
    mine = BuildSlots(tmp_path).take(lambda: ROWS, lambda _: None, lambda: False)
    assert (other.hostname, mine.hostname) == ("node2", "node1")


def test_a_waiting_build_stops_when_its_client_goes_and_frees_its_place(tmp_path):
    slots = BuildSlots(tmp_path)
    held = slots.take(lambda: ROWS[1:2], lambda _: None, lambda: False)
    with pytest.raises(ImageBuildFailed, match="cancelled"):
        slots.take(lambda: ROWS[1:2], lambda _: None, lambda: True)
    slots.give_back(held)
    assert slots.take(lambda: ROWS[1:2], lambda _: None, lambda: False).hostname == "node2"


def test_no_node_to_build_on_is_a_clear_error(tmp_path):
    with pytest.raises(SchedulerError, match="dockyard nodes"):
        BuildSlots(tmp_path).take(lambda: ROWS[2:], lambda _: None, lambda: False)
