"""The platform's services for one Settings: store, scheduler and router, created lazily
so that pure code paths and tests need no engine."""
from __future__ import annotations

import logging
import tempfile
import threading
from typing import Callable

from builder.job import BuildConfig, CheckoutLimits, DiskCheck
from core import prom
from router.nginx import Nginx

from controller.scheduler import Scheduler, SchedulerConfig, make_scheduler
from controller.settings import Settings, router_config
from controller.store import Store

Out = Callable[[str], None]
log = logging.getLogger("dockyard.metrics")


def reload_recorder(store: Store) -> Callable[[str, float], None]:
    """Nginx's on_reload: each route apply's result and reload time into the store (Prometheus'
    router reload series). A store that cannot take it (locked too long, disk full) costs the
    count, never the route change."""
    def record(result: str, seconds: float) -> None:
        deltas = [prom.Delta("dockyard_router_reloads", {"result": result}, 1.0)]
        if result == "ok":
            deltas.append(prom.observe("dockyard_router_reload_duration_seconds", {}, seconds))
        try:
            store.add_prom(deltas)
        except Exception:  # noqa: BLE001 - the reload happened; only its count is lost
            log.exception("could not record a router reload in the metrics")
    return record


def scheduler_config(s: Settings) -> SchedulerConfig:
    """What the scheduler needs of these settings (as router_config for the router)."""
    return SchedulerConfig(name=s.name, home=s.home, backend=s.scheduler, cluster_file=s.cluster_file,
                           app_port=s.app_port, app_memory_mb=s.app_memory_mb, stop_grace=s.stop_grace,
                           stack_image=s.stack_image, sandbox_image=s.sandbox_image, build_timeout=s.build_timeout,
                           build_memory_mb=s.build_memory_mb, registry_port=s.registry_port,
                           registry_mirror=s.registry_mirror, isolation=s.isolation,
                           addon_gateway_port=s.addon_gateway_port)


def migrated(settings: Settings) -> "Services":
    """The services of a process that starts on its own (sshd's setup, `manage`), with the
    store's schema brought up to date first."""
    svc = Services(settings)
    svc.store.migrate()
    return svc


class Services:
    """`scheduler` and `router` may be given (the in-memory scheduler and a recording router of
    the fast deploy-logic tests); by default they are made from the settings on first use."""

    def __init__(self, settings: Settings, scheduler: Scheduler | None = None, router=None):
        self.settings = settings
        self.store = Store(settings.db_path)
        self._scheduler: Scheduler | None = scheduler
        self._router = router
        self._lock = threading.Lock()
        self.retiring: set[str] = set()     # container ids being stopped by a background thread
        self.retiring_lock = threading.Lock()

    @property
    def scheduler(self) -> Scheduler:
        with self._lock:
            if self._scheduler is None:
                self._scheduler = make_scheduler(scheduler_config(self.settings))
            return self._scheduler

    @property
    def build_config(self) -> BuildConfig:
        s = self.settings
        return BuildConfig(stack_image=s.stack_image, build_image=s.build_image, timeout=s.build_timeout,
                           memory_mb=s.build_memory_mb, app_port=s.app_port, ca_bundle=s.build_ca_bundle,
                           cache_root=s.home / "cache", image_namespace=s.name,
                           disk_checks=self.disk_checks(), min_free_mb=s.min_free_mb, buildpack_paths=s.buildpack_paths,
                           runtimes_root=s.runtimes_dir, pip_index_url=s.pip_index_url, npm_registry=s.npm_registry,
                           dependency_sources={"ruby": s.rubygems_url, "php": s.composer_repo,
                                               "java": s.maven_mirror},
                           checkout_limits=CheckoutLimits(s.max_checkout_mb << 20, s.max_checkout_files))

    def disk_checks(self) -> tuple[DiskCheck, ...]:
        """The filesystems a build writes to, each with what frees room there that belongs to this
        platform alone (on a shared engine, never another platform's images)."""
        s = self.settings
        return (
            DiskCheck(str(s.home), "DOCKYARD_HOME", f"Free space under {s.home}: `dockyard repo:purge-cache -a APP` "
                      f"clears an app's build cache, `dockyard pg:backups` lists backups you may delete"),
            DiskCheck(self.scheduler.data_root() or "/var/lib/docker", "the Docker engine's data root",
                      f"`docker image prune -f --filter label=dockyard.instance={s.name}` removes this platform's "
                      "dangling images (never a release's or another platform's)"),
            DiskCheck(tempfile.gettempdir(), "the temporary directory builds unpack into",
                      f"Free space in {tempfile.gettempdir()}"),
        )

    @property
    def router(self):
        with self._lock:
            if self._router is None:
                self._router = Nginx(router_config(self.settings), on_reload=reload_recorder(self.store))
                self._router.ensure_layout()
            return self._router
