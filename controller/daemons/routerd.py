"""The router, a loop of the platform process (controller/daemons/platformd.py): the router loop
(``router.loop``) fed with the platform's route table (``controller.routing.table``: the store
and live containers), and the router's access-log lines ingested into each app's log.

A deploy does not wait for this loop: it applies routes itself, under the same router
lock (``routing.table.apply_routes``). This loop catches up with everything else: containers
that died, a restarted engine, another process's change."""
from __future__ import annotations

import queue
import threading
import time

from core import prom
from router import accesslog, loop
from router.accesslog import Row
from router.nginx import Nginx
from router.table import Upstream

from controller.routing.table import load_routes
from controller.runtime import sleep
from controller.scheduler import make_scheduler
from controller.services import reload_recorder, scheduler_config
from controller.settings import Settings, router_config
from controller.store import Store


def record_router_lines(store: Store, by_app: dict[str, list[Row]]) -> None:
    """The router's access-log lines into each app's logs (events, bounded per app)."""
    store.add_router_lines(by_app)


class RequestMetrics:
    """Request metrics from the access log's requests: per minute per release for the
    dashboard, and cumulative Prometheus counters and histograms per app and process. The
    upstream address that answered names the instance, hence its release and process (live
    containers, looked up at most every `refresh` seconds; an unknown upstream counts for the
    app's live release and the web process, the only one the router sends requests to)."""

    def __init__(self, store: Store, scheduler, refresh: float = 5.0):
        self.store, self.scheduler, self.refresh = store, scheduler, refresh
        self._by_address: dict[str, tuple[int, str]] = {}
        self._at = 0.0

    def _version_of(self, app: str, upstream: str) -> int:
        if upstream in self._by_address:
            return self._by_address[upstream][0]
        found = self.store.find_app(app)
        return found.live_version if found is not None else 0

    def _process_of(self, app: str, upstream: str) -> str:
        return self._by_address.get(upstream, (0, "web"))[1]

    def __call__(self, reqs: list[dict]) -> None:
        if not reqs:
            return
        if time.monotonic() - self._at > self.refresh:
            self._at = time.monotonic()
            # as nginx names the upstream that answered: cluster nodes may publish the same port
            self._by_address = {str(Upstream(i.address, i.host_port)): (i.version, i.process)
                                for i in self.scheduler.instances() if i.host_port}
        self.store.add_request_minutes(accesslog.per_minute(reqs, self._version_of))
        self.store.add_prom(prom.request_deltas(reqs, self._process_of))
        self.store.record_requests(sleep.latest_requests(reqs))   # what autosleep counts idleness from


def refresh_on(store: Store, events: queue.SimpleQueue):
    """The router's answer to an instance's start or exit: a pass when the routes name that
    instance (marked healthy: it crashed, or the engine restarted it on a new port) or when the
    change names no instance (a node's state). A deploy's new instance is routed by the deploy
    once its check passed, and its old ones leave the routes before they stop: a pass for
    their events changes nothing and would hold the router lock while the deploy waits to switch."""
    def on_change(instance_id: str) -> None:
        if not instance_id or instance_id in store.healthy_ids():
            events.put(loop.REFRESH)
    return on_change


def serve(settings: Settings, stop: threading.Event) -> None:
    """The router loop until `stop` is set (a loop of the platform process)."""
    store = Store(settings.db_path)
    scheduler = make_scheduler(scheduler_config(settings))
    events: queue.SimpleQueue = queue.SimpleQueue()
    done = threading.Event()
    # An instance the engine restarted after a crash answers on a new port: routes follow the
    # engine's start/exit events at once instead of at the next pass.
    watcher = threading.Thread(target=scheduler.watch, args=(refresh_on(store, events), done.is_set),
                               name="instance-events", daemon=True)
    watcher.start()
    threading.Thread(target=_stop_when, args=(stop, done, events), name="router-stop", daemon=True).start()
    try:
        # nginx outlives this process: a restart or upgrade of the platform keeps apps served, and
        # `make down` stops nginx itself (supervisor.stop_nginx) once the platform's processes have ended.
        config = router_config(settings)
        code = loop.run(config, lambda _config: load_routes(settings, store, scheduler),
                        nginx=Nginx(config, on_reload=reload_recorder(store)), events=events,
                        log_sink=lambda by_app: record_router_lines(store, by_app),
                        stats_sink=RequestMetrics(store, scheduler), keep_serving=True)
        if code != 0:
            raise RuntimeError("the router could not start nginx (the reason is logged above)")
    finally:
        done.set()


def _stop_when(stop: threading.Event, done: threading.Event, events: queue.SimpleQueue) -> None:
    """Turns the platform's stop into the router loop's STOP event (ends with the loop)."""
    while not done.is_set():
        if stop.wait(0.5):
            events.put(loop.STOP)
            return
