"""Which instance events make the router loop run a pass (controller/daemons/routerd.py)."""
from __future__ import annotations

import queue

from controller.daemons.routerd import refresh_on
from controller.store import Store
from router import loop


def drained(events: queue.SimpleQueue) -> list[str]:
    out = []
    while not events.empty():
        out.append(events.get_nowait())
    return out


def test_only_routed_instances_and_unnamed_changes_start_a_router_pass(tmp_path):
    store = Store(tmp_path / "db")
    store.migrate()
    app = store.create_app("web", None)
    store.mark_healthy(app, "c-routed", 1, "web")
    events: queue.SimpleQueue = queue.SimpleQueue()
    on_change = refresh_on(store, events)

    on_change("c-new")           # a deploy's new container starting: the deploy routes it
    assert drained(events) == []
    on_change("c-routed")        # a routed instance crashed or was restarted on a new port
    assert drained(events) == [loop.REFRESH]
    on_change("")                # a node's state: no instance named
    assert drained(events) == [loop.REFRESH]
    store.forget_instance("c-routed")   # retired by a deploy, out of the routes before it stops
    on_change("c-routed")
    assert drained(events) == []
