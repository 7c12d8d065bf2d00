"""The metrics process (Procfile: ``metrics: python -m controller.daemons.metricsd``): the sampler
(resource readings of every instance every DOCKYARD_METRICS_INTERVAL s) and the log-drain
forwarder (every app's, router and platform lines to its drains).

A process of its own rather than a thread of the reconciler: an engine slow to answer stats,
or a drain that hangs, never delays reconciliation, and its CPU cost is measured alone."""
from __future__ import annotations

import logging
import signal
import socket
import sys
import threading
import time
from datetime import datetime, timezone

from controller.observe.drains import Drain, Targets, rfc5424
from controller.observe.sampler import Sampler
from controller.scheduler import make_scheduler
from controller.services import scheduler_config
from controller.settings import Settings, from_env
from controller.store import Store

log = logging.getLogger("dockyard.metrics")


class Forwarder:
    """Feeds each drain its app's new lines: platform and router lines from the store's
    events, app output from the live instances' logs (followed by timestamp)."""

    def __init__(self, store: Store, scheduler, host: str | None = None, targets: Targets | None = None):
        self.store, self.scheduler = store, scheduler
        self.targets = targets or Targets(networks=scheduler.network_subnets)
        self.host = host or socket.gethostname()
        self.drains: dict[int, Drain] = {}
        self.by_app: dict[str, list[Drain]] = {}
        self.last_event = store.last_event_id()
        self.seen: dict[str, str] = {}     # container id -> timestamp of its last forwarded line

    def _sync(self) -> None:
        rows = self.store.drains()
        wanted = {r["id"]: r for r in rows}
        for gone in set(self.drains) - set(wanted):
            self.drains.pop(gone).close()
        for r in rows:
            if r["id"] not in self.drains:
                self.drains[r["id"]] = Drain(r["id"], r["url"], targets=self.targets)
        self.by_app = {}
        for r in rows:
            self.by_app.setdefault(r["app"], []).append(self.drains[r["id"]])

    def _offer(self, app: str, at: str, process: str, message: str) -> None:
        msg = rfc5424(at, self.host, app, process, message)
        for d in self.by_app.get(app, ()):
            d.offer(msg)

    def _follow(self, inst) -> None:
        """Forward the instance's lines printed since the last pass (the first pass of an
        instance starts a few seconds back, so a line printed as the drain was added gets there)."""
        last = self.seen.get(inst.container_id) or _iso(time.time() - 5)
        since = int(datetime.fromisoformat(last).timestamp())
        for line in self.scheduler.logs(inst.container_id, tail="all", since=since):
            if line.at > last:
                self._offer(inst.app, line.at, inst.label, line.text)
                last = line.at
        self.seen[inst.container_id] = last

    def pass_once(self) -> None:
        self._sync()
        for e in self.store.events_after(self.last_event):
            self.last_event = e["id"]
            self._offer(e["app"], e["at"], e["process"] if e["source"] == "router" else e["source"], e["message"])
        live = [i for i in self.scheduler.instances()] if self.by_app else []
        self.seen = {i.container_id: self.seen.get(i.container_id) for i in live}
        for inst in live:
            if inst.app in self.by_app:
                self._follow(inst)
        for d in self.drains.values():
            sent, dropped, error = d.take_counts()
            if sent or dropped or error:
                self.store.drain_progress(d.id, sent, dropped, error)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="microseconds")


def _loop(name: str, period: float, step, stop: threading.Event) -> None:
    while not stop.is_set():
        started = time.monotonic()
        try:
            step()
        except Exception:
            log.exception("%s pass failed; will retry", name)
        stop.wait(max(0.1, period - (time.monotonic() - started)))


def run(settings: Settings | None = None) -> int:
    settings = settings if settings is not None else from_env()
    store = Store(settings.db_path)
    store.migrate()
    scheduler = make_scheduler(scheduler_config(settings))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    forwarder = Forwarder(store, scheduler, targets=Targets(settings.drain_private_hosts, scheduler.network_subnets))
    threading.Thread(target=_loop, args=("drain", 1.0, forwarder.pass_once, stop), daemon=True).start()
    log.info("sampling every %.1f s", settings.metrics_interval)
    _loop("sampler", settings.metrics_interval, Sampler(store, scheduler).sample_once, stop)
    return 0


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="metrics: %(levelname)s %(message)s")
    sys.exit(run())


if __name__ == "__main__":
    main()
