"""The router loop: runs our own nginx as a child and keeps its routes in line with
whatever ``load_routes`` returns: every ``config.interval`` seconds it loads the routing
table and applies it (a no-op when nothing changed). A failing load or a config nginx
rejects is logged and the previous config keeps serving. If nginx dies, it is started
again at once (its exit is watched, not found at the next pass), and ``REFRESH`` put on
``events`` (an instance started or died) runs a pass at once. Access-log lines go to
``log_sink``. SIGTERM / SIGINT end the loop and return 0: nginx is stopped gracefully, or,
with ``keep_serving``, left serving for the next run to adopt (a platform restart or upgrade
then drops no request). The process that embeds it chooses where routes come from and where
lines go.
"""
from __future__ import annotations

import logging
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from router.accesslog import Harvester, Sink, StatsSink, cap_log
from router.config import RouterConfig
from router.errors import RouterError
from router.nginx import Nginx
from router.table import Route

log = logging.getLogger("dockyard.router")

LoadRoutes = Callable[[RouterConfig], Sequence[Route]]
STOP = "stop"
REFRESH = "refresh"   # something routes depend on changed: reconcile now, not at the next pass


def _harvest_loop(harvester: Harvester, stop: threading.Event, period: float) -> None:
    """Access-log lines into the apps' logs, every ``period`` seconds until ``stop``."""
    while True:
        try:
            harvester.harvest()
        except Exception:  # a full disk or a locked DB must not stop the router
            log.exception("could not harvest the router access log; will retry")
        if stop.wait(period):
            break
    try:
        harvester.harvest()  # what nginx flushed while stopping
    except Exception:
        log.exception("could not harvest the router access log")


class _LoadFailed(Exception):
    pass


def reconcile(nginx: Nginx, config: RouterConfig, load_routes: LoadRoutes) -> bool | None:
    """Load routes and apply them, under the router lock (so this pass can never apply a
    table older than one another process applied meanwhile). Returns apply's result, or
    None on failure (logged, with the reason; the live config is left as it was)."""
    def load() -> tuple[Route, ...]:
        try:
            return tuple(load_routes(config))
        except Exception as exc:  # the loader talks to the DB/Docker: any failure must not kill the router
            raise _LoadFailed(f"{type(exc).__name__}: {exc}") from exc

    try:
        changed = nginx.apply_fresh(load)
    except _LoadFailed as exc:
        log.error("could not load routes, keeping the current config: %s", exc)
        return None
    except RouterError as exc:
        log.error("could not apply routes, keeping the current config: %s", exc)
        return None
    except Exception:
        log.exception("unexpected error applying routes, keeping the current config")
        return None
    if changed:
        log.info("routes applied")
        for app, reason in sorted(nginx.refused().items()):
            log.warning("app %s is served without its own router settings/certificate: %s", app, reason)
    return changed


def run(
    config: RouterConfig,
    load_routes: LoadRoutes,
    interval: float | None = None,
    *,
    events: queue.SimpleQueue | None = None,
    nginx: Nginx | None = None,
    log_sink: Sink | None = None,
    stats_sink: StatsSink | None = None,
    harvest_period: float = 1.0,
    keep_serving: bool = False,
) -> int:
    """Run the router until SIGTERM/SIGINT (or ``STOP`` put on ``events``).

    Returns the process exit code. Signal handlers are only installed when
    called from the main thread; tests running it in a thread stop it by
    putting ``STOP`` on ``events``. Without a ``log_sink`` the access-log
    lines stay in the file. ``stats_sink`` gets each pass's parsed requests (request metrics).
    """
    interval = config.interval if interval is None else interval
    events = events if events is not None else queue.SimpleQueue()
    nginx = nginx if nginx is not None else Nginx(config)

    previous_handlers = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            # SimpleQueue.put is reentrant: safe to call from a signal handler.
            previous_handlers[sig] = signal.signal(sig, lambda signum, frame: events.put(STOP))
    try:
        try:
            proc = _start(nginx, config, load_routes, adopt=keep_serving)
        except RouterError as exc:
            log.error("router could not start: %s", exc)
            return 1
        log.info("router listening on %s:%d (apps at %s)", nginx.listen_host, config.port, config.apps_url)
        stop_harvest = threading.Event()
        harvester_thread = None
        if log_sink is not None:
            harvester_thread = threading.Thread(
                target=_harvest_loop, args=(Harvester(nginx.prefix, log_sink, stats_sink=stats_sink), stop_harvest, harvest_period),
                name="access-log-harvester", daemon=True)
            harvester_thread.start()
        try:
            _serve(nginx, config, load_routes, proc, events, interval)
        finally:
            if keep_serving and nginx.running():
                log.info("leaving nginx serving (pid %s) for the next router", nginx.master_pid())
            else:
                log.info("stopping nginx")
                nginx.stop(timeout=float(config.stop_grace))
            stop_harvest.set()
            if harvester_thread is not None:
                harvester_thread.join(timeout=30)
        return 0
    finally:
        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)


def _start(nginx: Nginx, config: RouterConfig, load_routes: LoadRoutes, adopt: bool) -> subprocess.Popen | None:
    """Apply the routes and start nginx; an nginx a previous run left serving is adopted
    (None: no child of ours to wait for) or, without `adopt`, stopped first."""
    nginx.ensure_layout()
    if nginx.running():
        if adopt:
            log.info("adopting the nginx a previous router left serving (pid %s)", nginx.master_pid())
            reconcile(nginx, config, load_routes)
            return None
        log.warning("an nginx from a previous run is serving %s; stopping it", nginx.prefix)
        nginx.stop()
    reconcile(nginx, config, load_routes)
    return nginx.start_foreground()


WATCH = 0.1   # seconds between checks that nginx still runs (a dead master costs requests)


def _next_event(events: queue.SimpleQueue) -> str:
    """The next event within WATCH seconds (queue.Empty if none); a burst of REFRESH
    events is one pass, and a STOP among them wins."""
    event = events.get(timeout=WATCH)
    while event != STOP and not events.empty():
        event = events.get_nowait()
    return event


def _serve(nginx: Nginx, config: RouterConfig, load_routes: LoadRoutes, proc: subprocess.Popen | None,
           events: queue.SimpleQueue, interval: float) -> None:
    """Until ``STOP``: watch nginx every WATCH seconds and start it again the moment it dies;
    reconcile routes every ``interval`` seconds. `proc` is None for an adopted nginx."""
    adopted = proc is None
    next_pass = time.monotonic() + interval
    while True:
        try:
            if _next_event(events) == STOP:
                return
            next_pass = time.monotonic()
        except queue.Empty:
            pass
        dead = (not nginx.running()) if adopted else (proc is None or proc.poll() is not None)
        if dead:
            if proc is not None:
                log.error("nginx exited with code %s; restarting it", proc.returncode)
            elif adopted:
                log.error("nginx exited with code ?; restarting it (it was adopted from a previous router)")
            try:
                proc, adopted = nginx.start_foreground(), False
                log.info("nginx restarted (pid %d)", proc.pid)
            except RouterError as exc:
                proc, adopted = None, False
                log.error("could not restart nginx, retrying in %gs: %s", interval, exc)
                time.sleep(interval)
                continue
            reconcile(nginx, config, load_routes)
            next_pass = time.monotonic() + interval
        elif time.monotonic() >= next_pass:
            reconcile(nginx, config, load_routes)
            if cap_log(Path(nginx.error_log), config.log_max_bytes):
                log.info("nginx's error log reached %d bytes: its tail is in %s.1", config.log_max_bytes,
                         nginx.error_log)
            next_pass = time.monotonic() + interval
