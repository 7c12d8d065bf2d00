"""Autosleep without Docker: durations, idle judgement, the sleeping route's nginx block, and the
sleep/wake use cases and the wake listener on the in-memory scheduler (its web instances answer
real HTTP on loopback, so a woken app's page comes back through the listener unchanged)."""
from __future__ import annotations

import asyncio
import socket
import threading

import pytest

from core.appjson import AppJsonError, parse_formation
from core.durations import format_duration, parse_duration
from core.errors import WakeFailed
from core.models import Instance, Limits
from router import render
from router.errors import RenderError
from router.table import Route, Upstream, Wake

from controller.apps import autosleep, releases
from controller.daemons import waked
from controller.routing.table import load_routes, with_wake
from controller.runtime import sleep, standby
from controller.runtime.reconcile import reconcile_all
from controller.scheduler.memory import Behaviour
from controller.store.sleep import SleepRow
from tests.test_unit_deploy_logic import deploy, new_app, running, settled, svc  # noqa: F401 - the fixture

WAKE = Wake(Upstream("127.0.0.1", 5003), 31)


def test_durations():
    assert [parse_duration(x) for x in ("30m", "90s", "2h", "1h30m", "45", 7)] == [1800, 90, 7200, 5400, 45, 7]
    for bad in ("", "30 minutes", "m", "-5", "1.5h", None, True, "99999d"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    assert [format_duration(s) for s in (1800, 5400, 45, 0)] == ["30m", "1h30m", "45s", "0s"]


def test_app_json_autosleep():
    assert parse_formation({"web": {"quantity": 1, "autosleep": "30m"}})[0] == {"web": {"quantity": 1, "autosleep": 1800}}
    with pytest.raises(AppJsonError, match="formation.web.autosleep"):
        parse_formation({"web": {"autosleep": "soon"}})


def row(after=60, awake_at=0.0, last=None, since=None, app="a", type_="web"):
    return SleepRow(app, type_, after, awake_at, since, last)


def test_idle_counts_from_the_later_of_the_last_request_and_the_last_wake():
    assert sleep.due([row(after=60, awake_at=100.0, last=None)], 159.0) == {}
    assert sleep.due([row(after=60, awake_at=100.0, last=None)], 160.0) == {"a": ["web"]}
    assert sleep.due([row(after=60, awake_at=100.0, last=150.0)], 200.0) == {}
    assert sleep.due([row(after=60, awake_at=100.0, last=150.0, since=190.0)], 1000.0) == {}   # asleep already
    assert sleep.latest_requests([{"app": "a", "at": 5.0}, {"app": "a", "at": 9.0}, {"app": "b", "at": 1.0},
                                  {"app": "a", "at": 7.0}]) == {"a": 9.0, "b": 1.0}


def test_sleeping_route_goes_to_the_wake_listener_with_every_header():
    routes = with_wake((Route("shop", ("shop.x.localhost",)), Route("blog", ("blog.x.localhost",))), {"shop"}, WAKE)
    text = render.render_routes(routes, 8080)
    block = text[text.index("# App shop"):text.index("# Any other host")]
    assert "proxy_pass http://127.0.0.1:5003;" in block and 'X-Dockyard-Wake "shop"' in block
    assert "proxy_set_header X-Request-Id $dockyard_request_id;" in block
    assert "proxy_read_timeout 91s;" in block          # the app's 60 s plus the wake's wait
    assert "5003" not in text[text.index("# App blog"):text.index("# App shop")]
    awake = with_wake((Route("shop", ("shop.x.localhost",), (Upstream("127.0.0.1", 4000),)),), {"shop"}, WAKE)
    assert awake[0].wake is None                        # an instance is up: it is served directly
    with pytest.raises(RenderError, match="wait of at least 1 s"):
        render.render_routes([Route("shop", ("s.x.localhost",), wake=Wake(Upstream("127.0.0.1", 1), 0))], 8080)


def test_wake_listener_reads_the_app_from_the_router_header_only():
    head = b"GET / HTTP/1.1\r\nHost: shop.x\r\nX-Dockyard-Wake: shop\r\nAccept: */*\r\n\r\n"
    assert waked.app_of(head) == ("shop", b"GET / HTTP/1.1\r\nHost: shop.x\r\nAccept: */*\r\n\r\n")
    assert waked.app_of(b"GET / HTTP/1.1\r\nHost: shop.x\r\n\r\n")[0] is None
    assert waked.app_of(b"GET / HTTP/1.1\r\nX-Dockyard-Wake: ../etc\r\n\r\n")[0] is None
    reply = waked.answer("503 Service Unavailable", "later", 5)
    assert reply.startswith(b"HTTP/1.1 503") and b"Retry-After: 5\r\n" in reply and reply.endswith(b"later\n")


def finished() -> None:
    """A wake answers once an instance is healthy; its route switch ends in its own thread."""
    for thread in threading.enumerate():
        if thread.name.startswith("wake-"):
            thread.join(30)


def _asleep(svc, name="shop"):
    app = new_app(svc, name)
    deploy(svc, app, "one")
    svc.store.set_autosleep(app, "web", 60)
    slept = sleep.tick(svc, now=10 ** 10)
    settled()
    return svc.store.get_app(name), slept


def test_an_idle_app_sleeps_keeps_its_formation_and_a_deploy_does_not_wake_it(svc):
    app, slept = _asleep(svc)
    assert slept == ["shop:web"] and running(svc, "shop") == []
    assert svc.store.formation(app) == {"web": 1}
    route = [r for r in load_routes(svc.settings, svc.store, svc.scheduler) if r.app == "shop"][0]
    assert route.wake is not None and not route.upstreams
    assert releases.formation(svc, app)[0]["autosleep"]["sleeping_since"] is not None
    _, out = deploy(svc, app, "two")
    assert running(svc, "shop") == [] and any("starts on the next request" in line for line in out)
    target = sleep.wake(svc, "shop", 5)
    finished()
    assert running(svc, "shop") == [("web.1", 2)]      # the release made while asleep
    assert [r.upstreams for r in svc.router.tables[-1] if r.app == "shop"][0] == (target,)
    assert sleep.tick(svc) == []                       # the window counts from the wake


def test_an_app_created_asleep_is_released_without_starting_and_the_first_request_wakes_it(svc):
    app = releases.create_app(svc, "shop", svc.store.get_user("alice"), asleep_after=60)
    assert svc.store.sleeping_types(app) == {"web"} and autosleep.show(svc, app)["web"]["after"] == "1m"
    route = [r for r in load_routes(svc.settings, svc.store, svc.scheduler) if r.app == "shop"][0]
    assert route.wake is None and not route.deployed      # never deployed: the page says how to deploy
    _, out = deploy(svc, app, "one")
    assert running(svc, "shop") == [] and any("starts on the next request" in line for line in out)
    assert svc.store.formation(app) == {"web": 1}
    route = [r for r in load_routes(svc.settings, svc.store, svc.scheduler) if r.app == "shop"][0]
    assert route.wake is not None and not route.upstreams
    assert sleep.tick(svc, now=10 ** 10) == []            # asleep already: nothing to put to sleep
    sleep.wake(svc, "shop", 5)
    finished()
    assert running(svc, "shop") == [("web.1", 1)]
    other = releases.create_app(svc, "blog", svc.store.get_user("alice"))
    assert svc.store.sleeping_types(other) == set()       # without it, a deploy starts the app as before


def test_a_wake_that_crashes_reports_why_and_sleeps_again(svc):
    app, _ = _asleep(svc)
    svc.scheduler.behave("shop", app.current_version, "web", Behaviour(exit_code=3, output=("boom: no DATABASE_URL",)))
    with pytest.raises(WakeFailed, match="could not wake: web.1 exited with code 3") as e:
        sleep.wake(svc, "shop", 5)
    assert "web.1: boom: no DATABASE_URL" in e.value.message and "previous release" not in e.value.message
    assert svc.store.sleeping_types(app) == {"web"}
    assert any(e["message"].startswith("Wake failed: web.1 exited with code 3") for e in svc.store.events(app))


def test_autosleep_off_starts_a_sleeping_type(svc):
    app, _ = _asleep(svc)
    autosleep.set_autosleep(svc, app, "web", None, svc.store.get_user("alice"), lambda line: None)
    assert running(svc, "shop") == [("web.1", 1)] and autosleep.show(svc, app) == {}
    with pytest.raises(Exception, match="not a duration"):
        autosleep.set_autosleep(svc, app, "web", "soon", svc.store.get_user("alice"), lambda line: None)


def _get(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: shop\r\nX-Dockyard-Wake: shop\r\nConnection: close\r\n\r\n")
        chunks = []
        while data := s.recv(65536):
            chunks.append(data)
    return b"".join(chunks)


def test_twenty_requests_during_a_wake_start_one_instance(svc, monkeypatch):
    _asleep(svc)
    calls = []
    real = sleep.wake
    asleep = len(svc.scheduler.calls)
    # a wake that takes a second, as a real one does: every request arrives during it
    monkeypatch.setattr(sleep, "wake", lambda *a: calls.append(a[1]) or threading.Event().wait(1) or real(*a))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    server = threading.Thread(target=lambda: loop.run_until_complete(_serve(svc, port, stop)), daemon=True)
    server.start()
    try:
        _wait_listening(port)
        answers: list[bytes] = []
        threads = [threading.Thread(target=lambda: answers.append(_get(port))) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(answers) == 20 and all(a.startswith(b"HTTP/1.0 200") and a.endswith(b"ok") for a in answers)
        assert calls == ["shop"] and running(svc, "shop") == [("web.1", 1)]
        assert [c for c in svc.scheduler.calls[asleep:] if c[0] == "start"] == [("start", "shop", "web.1", "v1", "standby")]
    finally:
        loop.call_soon_threadsafe(stop.set)
        server.join(10)


async def _serve(svc, port, stop):
    with waked.ThreadPoolExecutor(max_workers=4) as pool:
        w = waked.Waker(svc, pool)
        srv = await asyncio.start_server(lambda r, wr: waked.handle(w, 10.0, r, wr), "127.0.0.1", port)
        async with srv:
            await stop.wait()
        await asyncio.sleep(0.2)     # let the last handlers close their connections


def _wait_listening(port: int) -> None:
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            threading.Event().wait(0.05)
    raise AssertionError("the wake listener did not listen")


def test_a_waking_app_stays_routed_to_the_listener_until_its_instance_is_up(svc):
    app, _ = _asleep(svc)
    svc.store.mark_awake(app, 0.0)          # what a wake does first; no instance yet
    shop = [r for r in load_routes(svc.settings, svc.store, svc.scheduler) if r.app == "shop"][0]
    assert shop.wake is not None            # not the "starting" 503 a router pass would otherwise apply
    sleep.wake(svc, "shop", 5)
    finished()
    shop = [r for r in load_routes(svc.settings, svc.store, svc.scheduler) if r.app == "shop"][0]
    assert shop.wake is None and len(shop.upstreams) == 1


def test_the_listener_passes_an_upgraded_connection_both_ways(monkeypatch):
    """A WebSocket (any upgrade) and a body sent after the head stream through: the listener
    relays bytes, it does not parse HTTP past the head."""
    with socket.socket() as upstream:
        upstream.bind(("127.0.0.1", 0))
        upstream.listen(1)

        def echo():
            conn, _ = upstream.accept()
            with conn:
                head = b""
                while b"\r\n\r\n" not in head:
                    head += conn.recv(1024)
                assert b"X-Dockyard-Wake" not in head
                conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
                while data := conn.recv(1024):
                    conn.sendall(b"echo:" + data)

        threading.Thread(target=echo, daemon=True).start()
        target = Upstream("127.0.0.1", upstream.getsockname()[1])
        monkeypatch.setattr(sleep, "wake", lambda svc, app, wait: target)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        loop, stop = asyncio.new_event_loop(), asyncio.Event()

        async def serve():
            with waked.ThreadPoolExecutor(max_workers=1) as pool:
                w = waked.Waker(type("S", (), {"settings": type("T", (), {"wake_timeout": 5, "health_timeout": 5})})(),
                                pool)
                srv = await asyncio.start_server(lambda r, wr: waked.handle(w, 5.0, r, wr), "127.0.0.1", port)
                async with srv:
                    await stop.wait()
                await asyncio.sleep(0.2)

        server = threading.Thread(target=lambda: loop.run_until_complete(serve()), daemon=True)
        server.start()
        try:
            _wait_listening(port)
            with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
                c.sendall(b"GET /ws HTTP/1.1\r\nHost: shop\r\nX-Dockyard-Wake: shop\r\nUpgrade: websocket\r\n"
                          b"Connection: Upgrade\r\n\r\n")
                assert c.recv(1024).startswith(b"HTTP/1.1 101")
                c.sendall(b"frame-1")
                assert c.recv(1024) == b"echo:frame-1"
                c.sendall(b"frame-2")
                assert c.recv(1024) == b"echo:frame-2"
        finally:
            loop.call_soon_threadsafe(stop.set)
            server.join(10)


# ---- standbys: a created container per sleeping instance, so a wake only starts it ----------
def _inst(cid, process="web", index=1, spec="s1"):
    return Instance(cid, cid, "shop", 1, process, index, "created", None, None, "img", standby=spec)


def test_standby_plan_keeps_one_matching_standby_per_instance():
    want = {("web", 1): "s2", ("web", 2): "s2"}
    make, remove = standby.plan(want, [_inst("a", spec="s1"), _inst("b", spec="s2"), _inst("c", spec="s2"),
                                       _inst("d", "worker")])
    assert make == [("web", 2)] and [i.container_id for i in remove] == ["a", "c", "d"]
    assert standby.plan({}, [_inst("a")])[1] == [_inst("a")]                    # awake: none is kept
    assert standby.plan(want, [_inst("b", spec="s2")], misplaced=lambda i: True)[0] == [("web", 1), ("web", 2)]
    assert standby.take([_inst("a", spec="s1"), _inst("b", spec="s2")], "web", 1, "s2").container_id == "b"
    assert standby.take([_inst("a", spec="s1")], "web", 2, "s1") is None
    specs = {standby.spec_of(1, "i", None, Limits()), standby.spec_of(2, "i", None, Limits()),
             standby.spec_of(1, "i", "x", Limits()), standby.spec_of(1, "i", None, Limits(memory_mb=256))}
    assert len(specs) == 4                              # a release, command or limit change is a new spec


def _standbys(svc):
    return [(i.label, i.version) for i in svc.scheduler.standbys("shop")]


def test_a_sleeping_app_keeps_standbys_that_follow_releases_scale_and_destroy(svc):
    app, _ = _asleep(svc)
    assert _standbys(svc) == [("web.1", 1)] and svc.scheduler.instances("shop") == []
    reconcile_all(svc)                                  # neither a crashed nor a stray instance
    assert _standbys(svc) == [("web.1", 1)] and running(svc, "shop") == []
    deploy(svc, app, "two")                             # released while asleep: replaced
    assert _standbys(svc) == [("web.1", 2)] and running(svc, "shop") == []
    releases.scale(svc, svc.store.get_app("shop"), [{"type": "web", "quantity": 2}], "alice", lambda _: None, 50)
    assert _standbys(svc) == [("web.1", 2), ("web.2", 2)] and running(svc, "shop") == []
    releases.destroy_app(svc, svc.store.get_app("shop"))
    assert svc.scheduler.standbys() == []


def test_a_wake_starts_the_standby_and_tells_the_router_at_once(svc):
    app, _ = _asleep(svc)
    [ready] = svc.scheduler.standbys("shop")
    target = sleep.wake(svc, "shop", 5)
    finished()
    [inst] = svc.scheduler.instances("shop")
    assert inst.container_id == ready.container_id and inst.state == "running" and svc.scheduler.is_durable(
        inst.container_id)
    assert [c for c in svc.scheduler.calls if c[0] == "start"][-1] == ("start", "shop", "web.1", "v1", "standby")
    assert svc.scheduler.standbys() == [] and target == Upstream("127.0.0.1", inst.host_port)
    assert [r.upstreams for r in svc.router.tables[-1] if r.app == "shop"][0] == (target,)
    sleep.tick(svc, now=10 ** 11)                       # asleep again: a new standby
    settled()
    assert _standbys(svc) == [("web.1", 1)]


def test_the_dashboard_lists_the_latest_sleeps_and_wakes(svc):
    from controller.apps import queries       # what the app page shows under its processes
    _asleep(svc)
    sleep.wake(svc, "shop", 5)
    finished()
    shown = [e["message"] for e in queries.sleep_events(svc, svc.store.get_app("shop"))]
    assert shown[0].startswith("Woke web on a request in ") and shown[1].startswith("web sleeps: no request for")
    assert len(shown) == 2                              # only autosleep's lines
