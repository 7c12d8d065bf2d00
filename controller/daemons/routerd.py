"""The router process (Procfile: ``router: python -m controller.daemons.routerd``): the router loop
(``router.loop``) fed with the platform's route table (``controller.routing.table``: the store
and live containers), and the router's access-log lines ingested into each app's log.

A deploy does not wait for this process: it applies routes itself, under the same router
lock (``routing.table.apply_routes``). This loop catches up with everything else: containers
that died, a restarted engine, another process's change."""
from __future__ import annotations

import logging
import queue
import sys
import threading
import time

from core import prom
from router import accesslog, loop
from router.accesslog import Row
from router.nginx import Nginx

from controller.routing.table import load_routes
from controller.scheduler import make_scheduler
from controller.services import reload_recorder, scheduler_config
from controller.settings import Settings, from_env, router_config
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
        self._by_port: dict[str, tuple[int, str]] = {}
        self._at = 0.0

    def _version_of(self, app: str, upstream: str) -> int:
        port = upstream.rsplit(":", 1)[-1]
        if port in self._by_port:
            return self._by_port[port][0]
        found = self.store.find_app(app)
        return found.live_version if found is not None else 0

    def _process_of(self, app: str, upstream: str) -> str:
        return self._by_port.get(upstream.rsplit(":", 1)[-1], (0, "web"))[1]

    def __call__(self, reqs: list[dict]) -> None:
        if not reqs:
            return
        if time.monotonic() - self._at > self.refresh:
            self._at = time.monotonic()
            self._by_port = {str(i.host_port): (i.version, i.process) for i in self.scheduler.instances()
                             if i.host_port}
        self.store.add_request_minutes(accesslog.per_minute(reqs, self._version_of))
        self.store.add_prom(prom.request_deltas(reqs, self._process_of))


def run(settings: Settings | None = None) -> int:
    settings = settings if settings is not None else from_env()
    store = Store(settings.db_path)
    scheduler = make_scheduler(scheduler_config(settings))
    events: queue.SimpleQueue = queue.SimpleQueue()
    done = threading.Event()
    # An instance the engine restarted after a crash answers on a new port: routes follow the
    # engine's start/exit events at once instead of at the next pass.
    watcher = threading.Thread(target=scheduler.watch, args=(lambda: events.put(loop.REFRESH), done.is_set),
                               name="instance-events", daemon=True)
    watcher.start()
    try:
        # nginx outlives this process: a restart or upgrade of the platform keeps apps served, and
        # `make down` stops nginx itself (stop_nginx) once the platform's processes have ended.
        config = router_config(settings)
        return loop.run(config, lambda _config: load_routes(settings, store, scheduler),
                        nginx=Nginx(config, on_reload=reload_recorder(store)), events=events,
                        log_sink=lambda by_app: record_router_lines(store, by_app),
                        stats_sink=RequestMetrics(store, scheduler), keep_serving=True)
    finally:
        done.set()


def stop_nginx(settings: Settings) -> None:
    Nginx(router_config(settings)).stop(timeout=float(settings.stop_grace))


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="router: %(levelname)s %(message)s")
    sys.exit(run())


if __name__ == "__main__":
    main()
