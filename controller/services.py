"""The platform's services for one Settings: store, scheduler and router, created lazily
so that pure code paths and tests need no engine."""
from __future__ import annotations

import threading
from typing import Callable

from .scheduler import Scheduler, make_scheduler
from .settings import Settings
from .store import Store

Out = Callable[[str], None]


class Services:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.store = Store(settings.db_path)
        self._scheduler: Scheduler | None = None
        self._router = None
        self._lock = threading.Lock()
        self.retiring: set[str] = set()     # container ids being stopped by a background thread
        self.retiring_lock = threading.Lock()

    @property
    def scheduler(self) -> Scheduler:
        with self._lock:
            if self._scheduler is None:
                self._scheduler = make_scheduler(self.settings)
            return self._scheduler

    @property
    def router(self):
        with self._lock:
            if self._router is None:
                from router.nginx import Nginx
                self._router = Nginx(self.settings)
                self._router.ensure_layout()
            return self._router

    def apply_routes(self) -> bool:
        """Compute the route table and apply it as one step under the router's lock, which
        every process shares, so an older computation (say, the reconciler's) is never
        applied after a newer one (a deploy's)."""
        from .routing import load_routes
        return self.router.apply_fresh(lambda: load_routes(self.settings, self.store, self.scheduler))
