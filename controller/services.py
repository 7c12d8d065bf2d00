"""The platform's services for one Settings: store, scheduler and router, created lazily
so that pure code paths and tests need no engine."""
from __future__ import annotations

import threading
from typing import Callable

from builder.job import BuildConfig, CheckoutLimits
from router.nginx import Nginx

from .routing import load_routes
from .scheduler import Scheduler, make_scheduler
from .settings import Settings, router_config
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
    def build_config(self) -> BuildConfig:
        s = self.settings
        return BuildConfig(stack_image=s.stack_image, build_image=s.build_image, timeout=s.build_timeout,
                           memory_mb=s.build_memory_mb, app_port=s.app_port, ca_bundle=s.build_ca_bundle,
                           cache_root=s.home / "cache", image_namespace=s.name,
                           disk_paths=(str(s.home), "/var/lib/docker"), buildpack_paths=s.buildpack_paths,
                           runtimes_root=s.runtimes_dir,
                           checkout_limits=CheckoutLimits(s.max_checkout_mb << 20, s.max_checkout_files))

    @property
    def router(self):
        with self._lock:
            if self._router is None:
                self._router = Nginx(router_config(self.settings))
                self._router.ensure_layout()
            return self._router

    def apply_routes(self) -> bool:
        """Compute the route table and apply it as one step under the router's lock, which
        every process shares, so an older computation (say, the reconciler's) is never
        applied after a newer one (a deploy's)."""
        return self.router.apply_fresh(lambda: load_routes(self.settings, self.store, self.scheduler))
