"""The router process (Procfile: ``router: python -m controller.routerd``): the router loop
(``router.loop``) fed with the platform's route table (``controller.routing``: the store
and live containers), and the router's access-log lines ingested into each app's log.

A deploy does not wait for this process: it applies routes itself, under the same router
lock (``Services.apply_routes``). This loop catches up with everything else: containers
that died, a restarted engine, another process's change."""
from __future__ import annotations

import logging
import sys

from router import loop
from router.accesslog import Row
from router.nginx import Nginx

from .routing import load_routes
from .scheduler import make_scheduler
from .settings import Settings, from_env, router_config
from .store import Store


def record_router_lines(store: Store, by_app: dict[str, list[Row]]) -> None:
    """The router's access-log lines into each app's logs (events, bounded per app)."""
    store.add_router_lines(by_app)


def run(settings: Settings | None = None) -> int:
    settings = settings if settings is not None else from_env()
    store = Store(settings.db_path)
    scheduler = make_scheduler(settings)
    # nginx outlives this process: a restart or upgrade of the platform keeps apps served, and
    # `make down` stops nginx itself (stop_nginx) once the platform's processes have ended.
    return loop.run(router_config(settings), lambda _config: load_routes(settings, store, scheduler),
                    log_sink=lambda by_app: record_router_lines(store, by_app), keep_serving=True)


def stop_nginx(settings: Settings) -> None:
    Nginx(router_config(settings)).stop(timeout=float(settings.stop_grace))


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="router: %(levelname)s %(message)s")
    sys.exit(run())


if __name__ == "__main__":
    main()
