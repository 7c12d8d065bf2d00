"""Platform settings, read once from the environment.

Every setting has a default that works on a fresh machine; two instances with
different DOCKYARD_HOME / ports / domain / name run side by side.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from core.netguard import parse_allowed
from router.config import RouterConfig

from .isolation import Isolation

_CAP = re.compile(r"^[A-Z_]{2,30}$")
ROUTER_COMMAND = "python -m controller.routerd"   # the Procfile's router process


def _number(env: dict, key: str, default, cast):
    raw = env.get(key)
    if raw in (None, ""):
        return default
    try:
        return cast(raw)
    except ValueError:
        kind = "a whole number" if cast is int else "a number"
        raise ValueError(f"{key}={raw!r} is not {kind}; set it to e.g. {default}") from None


def _int(env: dict, key: str, default: int) -> int:
    return _number(env, key, default, int)


def _float(env: dict, key: str, default: float) -> float:
    return _number(env, key, default, float)


@dataclass(frozen=True)
class Settings:
    home: Path                      # DOCKYARD_HOME: all state (db, repos, router, logs)
    name: str = "dockyard"          # DOCKYARD_NAME: instance name; labels + image namespace
    api_host: str = "127.0.0.1"     # DOCKYARD_API_HOST
    api_port: int = 5000            # DOCKYARD_API_PORT (API + git smart HTTP)
    router_port: int = 8080         # DOCKYARD_ROUTER_PORT
    domain: str = "localhost"       # DOCKYARD_DOMAIN: apps answer at <app>.<domain>
    stack_image: str = "dockyard/stack:bookworm"   # DOCKYARD_STACK_IMAGE
    nginx_bin: str = "/usr/sbin/nginx"             # DOCKYARD_NGINX
    health_timeout: int = 30        # DOCKYARD_HEALTH_TIMEOUT: seconds for a new instance to answer HTTP
    build_timeout: int = 1800       # DOCKYARD_BUILD_TIMEOUT: seconds before a build is stopped
    build_memory_mb: int = 2048     # DOCKYARD_BUILD_MEMORY_MB: memory limit of a build
    app_memory_mb: int = 512        # DOCKYARD_APP_MEMORY_MB: default memory limit per instance
    app_port: int = 5000            # DOCKYARD_APP_PORT: $PORT inside app containers
    stop_grace: int = 10            # DOCKYARD_STOP_GRACE: SIGTERM -> SIGKILL seconds for old instances
    reconcile_interval: float = 5.0 # DOCKYARD_RECONCILE_INTERVAL
    metrics_interval: float = 5.0   # DOCKYARD_METRICS_INTERVAL: seconds between resource samples
    metrics_token: str = ""         # DOCKYARD_METRICS_TOKEN: a scraper's bearer token for GET /metrics
    session_hours: int = 12         # DOCKYARD_SESSION_HOURS: dashboard sessions expire after this
    gunicorn_timeout: int = 3600    # DOCKYARD_GUNICORN_TIMEOUT (gthread workers heartbeat anyway)
    app_cpus: float = 1.0           # DOCKYARD_APP_CPUS: default CPU limit per instance (0 = none)
    run_timeout: int = 3600         # DOCKYARD_RUN_TIMEOUT: seconds a one-off (`dockyard run`) may run
    keep_releases: int = 10         # DOCKYARD_KEEP_RELEASES: newest succeeded releases whose images are kept
    router_tls_port: int = 8443     # DOCKYARD_ROUTER_TLS_PORT: HTTPS for apps with a certificate (127.0.0.1)
    build_image: str = "dockyard/build-stack:bookworm"   # DOCKYARD_BUILD_IMAGE: where buildpacks run
    build_ca_bundle: str = ""       # DOCKYARD_BUILD_CA_BUNDLE: CA bundle mounted into build containers ("none": off)
    app_user: str = "auto"          # DOCKYARD_APP_USER: auto | root | UID[:GID] (controller/isolation.py)
    app_caps: tuple[str, ...] = ()  # DOCKYARD_APP_CAPS: capabilities given back to app containers
    app_tmp_mb: int = 64            # DOCKYARD_APP_TMP_MB: size of each container's private /tmp
    ssh_port: int = 2222            # DOCKYARD_SSH_PORT: the platform's sshd for git over SSH (127.0.0.1)
    max_push_mb: int = 512          # DOCKYARD_MAX_PUSH_MB: the largest pack a push may send
    sweep_interval: float = 60.0    # DOCKYARD_SWEEP_INTERVAL: seconds between sweeps of what killed processes left
    stable_after: float = 30.0      # DOCKYARD_STABLE_AFTER: seconds of running after which a crash is not a crash loop
    log_max_mb: int = 10            # DOCKYARD_LOG_MAX_MB: a platform log file is rotated at this size
    log_keep: int = 3               # DOCKYARD_LOG_KEEP: rotated files kept per log
    max_push_unpacked_mb: int = 2048   # DOCKYARD_MAX_PUSH_UNPACKED_MB: the most a push's objects may inflate to
    max_push_objects: int = 1_000_000  # DOCKYARD_MAX_PUSH_OBJECTS: the most objects one push may send
    max_checkout_mb: int = 2048     # DOCKYARD_MAX_CHECKOUT_MB: the most a pushed tree may check out to
    max_checkout_files: int = 200_000   # DOCKYARD_MAX_CHECKOUT_FILES: the most files a pushed tree may hold
    buildpack_paths: tuple[str, ...] = ()   # DOCKYARD_BUILDPACK_PATHS: host dirs tenants' buildpacks may come from
    allowed_images: tuple[str, ...] = ()    # DOCKYARD_ALLOWED_IMAGES: images anyone may deploy or build on
    quota_apps: int = 20            # DOCKYARD_QUOTA_APPS: default apps a (non-admin) user may own
    quota_instances: int = 20       # DOCKYARD_QUOTA_INSTANCES: default instances over all of a user's apps
    quota_memory_mb: int = 8192     # DOCKYARD_QUOTA_MEMORY_MB: default memory over all of a user's instances
    scheduler: str = "auto"         # DOCKYARD_SCHEDULER: auto (swarm while a cluster file exists) | docker | swarm
    registry_port: int = 5001       # DOCKYARD_REGISTRY_PORT: the local image registry (127.0.0.1)
    registry_bin: str = "/usr/bin/docker-registry"   # DOCKYARD_REGISTRY_BIN
    runtimes_dir: Path = Path("/var/cache/dockyard/runtimes")   # DOCKYARD_RUNTIMES_DIR: Go/Node toolchains, machine-wide
    postgres_image: str = "dockyard/postgres:bookworm"   # DOCKYARD_POSTGRES_IMAGE: the Postgres add-on's image
    redis_image: str = "dockyard/redis:bookworm"         # DOCKYARD_REDIS_IMAGE: the Redis add-on's image
    addon_memory_mb: int = 256      # DOCKYARD_ADDON_MEMORY_MB: default memory limit of an add-on
    backup_retention: int = 7       # DOCKYARD_BACKUP_RETENTION: scheduled backups kept per add-on
    destroyed_backup_days: int = 30  # DOCKYARD_DESTROYED_BACKUP_DAYS: a destroyed app's backups are kept this long
    drain_private_hosts: tuple[str, ...] = ()   # DOCKYARD_DRAIN_PRIVATE_HOSTS: private collectors drains may reach

    @property
    def isolation(self) -> Isolation:
        return Isolation(user=self.app_user, cpus=self.app_cpus, caps=self.app_caps, tmp_mb=self.app_tmp_mb)

    @property
    def max_push_bytes(self) -> int:
        return self.max_push_mb << 20

    @property
    def log_max_bytes(self) -> int:
        return self.log_max_mb << 20

    def cache_dir(self, app_id: str) -> Path:
        """The app's buildpack CACHE_DIR, kept between builds; keyed by the app's id, which is
        never reused (a name is: the next app of that name must start from nothing)."""
        return self.home / "cache" / app_id

    def backups_dir(self, app_id: str) -> Path:
        """The app's add-on backups, keyed by its id: they outlive a destroyed app (for its owner
        and admins, DOCKYARD_DESTROYED_BACKUP_DAYS) and never go to the name's next owner."""
        return self.home / "backups" / app_id

    # ---- derived paths -------------------------------------------------
    @property
    def db_path(self) -> Path:
        return self.home / "dockyard.db"

    @property
    def repos_dir(self) -> Path:
        return self.home / "repos"

    @property
    def router_dir(self) -> Path:
        return self.home / "router"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def locks_dir(self) -> Path:
        return self.home / "locks"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def certs_dir(self) -> Path:
        return self.home / "certs"

    @property
    def cluster_file(self) -> Path:
        """Written by `make cluster` (the swarm manager, the nodes' registry address); its
        presence switches an `auto` platform to the Swarm backend."""
        return self.home / "cluster.json"

    @property
    def registry_dir(self) -> Path:
        return self.home / "registry"

    @property
    def api_url(self) -> str:
        return f"http://{self.api_host}:{self.api_port}"

    @property
    def router_url(self) -> str:
        return f"http://<app>.{self.domain}:{self.router_port}/"

    def app_host(self, app: str) -> str:
        return f"{app}.{self.domain}"

    def image_repo(self, app: str) -> str:
        return f"{self.name}/{app}"

    def ensure_dirs(self) -> None:
        for d in (self.home, self.repos_dir, self.router_dir, self.logs_dir, self.locks_dir, self.run_dir):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(self.home, 0o700)


def from_env(env: dict | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    home = Path(env.get("DOCKYARD_HOME") or Path.home() / ".dockyard").expanduser().resolve()
    name = env.get("DOCKYARD_NAME") or "dockyard"
    return Settings(
        home=home,
        name=name,
        api_host=env.get("DOCKYARD_API_HOST") or "127.0.0.1",
        api_port=_int(env, "DOCKYARD_API_PORT", 5000),
        router_port=_int(env, "DOCKYARD_ROUTER_PORT", 8080),
        domain=(env.get("DOCKYARD_DOMAIN") or "localhost").strip(".").lower(),
        stack_image=env.get("DOCKYARD_STACK_IMAGE") or "dockyard/stack:bookworm",
        nginx_bin=env.get("DOCKYARD_NGINX") or "/usr/sbin/nginx",
        health_timeout=_int(env, "DOCKYARD_HEALTH_TIMEOUT", 30),
        build_timeout=_int(env, "DOCKYARD_BUILD_TIMEOUT", 1800),
        build_memory_mb=_int(env, "DOCKYARD_BUILD_MEMORY_MB", 2048),
        app_memory_mb=_int(env, "DOCKYARD_APP_MEMORY_MB", 512),
        app_port=_int(env, "DOCKYARD_APP_PORT", 5000),
        stop_grace=_int(env, "DOCKYARD_STOP_GRACE", 10),
        reconcile_interval=_float(env, "DOCKYARD_RECONCILE_INTERVAL", 5.0),
        metrics_interval=_float(env, "DOCKYARD_METRICS_INTERVAL", 5.0),
        metrics_token=env.get("DOCKYARD_METRICS_TOKEN", ""),
        session_hours=_int(env, "DOCKYARD_SESSION_HOURS", 12),
        gunicorn_timeout=_int(env, "DOCKYARD_GUNICORN_TIMEOUT", 3600),
        app_cpus=_float(env, "DOCKYARD_APP_CPUS", 1.0),
        run_timeout=_int(env, "DOCKYARD_RUN_TIMEOUT", 3600),
        keep_releases=max(1, _int(env, "DOCKYARD_KEEP_RELEASES", 10)),
        router_tls_port=_int(env, "DOCKYARD_ROUTER_TLS_PORT", 8443),
        build_image=env.get("DOCKYARD_BUILD_IMAGE") or "dockyard/build-stack:bookworm",
        build_ca_bundle=_ca_bundle(env.get("DOCKYARD_BUILD_CA_BUNDLE")),
        app_user=(env.get("DOCKYARD_APP_USER") or "auto").strip(),
        app_caps=_caps(env.get("DOCKYARD_APP_CAPS")),
        app_tmp_mb=_int(env, "DOCKYARD_APP_TMP_MB", 64),
        ssh_port=_int(env, "DOCKYARD_SSH_PORT", 2222),
        max_push_mb=max(1, _int(env, "DOCKYARD_MAX_PUSH_MB", 512)),
        sweep_interval=max(1.0, _float(env, "DOCKYARD_SWEEP_INTERVAL", 60.0)),
        stable_after=max(1.0, _float(env, "DOCKYARD_STABLE_AFTER", 30.0)),
        log_max_mb=max(1, _int(env, "DOCKYARD_LOG_MAX_MB", 10)),
        log_keep=max(1, _int(env, "DOCKYARD_LOG_KEEP", 3)),
        max_push_unpacked_mb=max(1, _int(env, "DOCKYARD_MAX_PUSH_UNPACKED_MB", 2048)),
        max_push_objects=max(1, _int(env, "DOCKYARD_MAX_PUSH_OBJECTS", 1_000_000)),
        max_checkout_mb=max(1, _int(env, "DOCKYARD_MAX_CHECKOUT_MB", 2048)),
        max_checkout_files=max(1, _int(env, "DOCKYARD_MAX_CHECKOUT_FILES", 200_000)),
        buildpack_paths=_paths(env.get("DOCKYARD_BUILDPACK_PATHS")),
        allowed_images=_list(env.get("DOCKYARD_ALLOWED_IMAGES")),
        quota_apps=max(0, _int(env, "DOCKYARD_QUOTA_APPS", 20)),
        quota_instances=max(0, _int(env, "DOCKYARD_QUOTA_INSTANCES", 20)),
        quota_memory_mb=max(0, _int(env, "DOCKYARD_QUOTA_MEMORY_MB", 8192)),
        scheduler=_scheduler(env.get("DOCKYARD_SCHEDULER")),
        registry_port=_int(env, "DOCKYARD_REGISTRY_PORT", 5001),
        registry_bin=env.get("DOCKYARD_REGISTRY_BIN") or "/usr/bin/docker-registry",
        runtimes_dir=Path(env.get("DOCKYARD_RUNTIMES_DIR") or "/var/cache/dockyard/runtimes"),
        postgres_image=env.get("DOCKYARD_POSTGRES_IMAGE") or "dockyard/postgres:bookworm",
        redis_image=env.get("DOCKYARD_REDIS_IMAGE") or "dockyard/redis:bookworm",
        addon_memory_mb=max(32, _int(env, "DOCKYARD_ADDON_MEMORY_MB", 256)),
        backup_retention=max(1, _int(env, "DOCKYARD_BACKUP_RETENTION", 7)),
        destroyed_backup_days=max(1, _int(env, "DOCKYARD_DESTROYED_BACKUP_DAYS", 30)),
        drain_private_hosts=_drain_hosts(env.get("DOCKYARD_DRAIN_PRIVATE_HOSTS")),
    )


def _scheduler(raw: str | None) -> str:
    value = (raw or "auto").strip().lower()
    if value not in ("auto", "docker", "swarm"):
        raise ValueError(f"DOCKYARD_SCHEDULER={raw!r} is not a scheduler; set it to auto, docker or swarm")
    return value


def router_config(s: Settings) -> RouterConfig:
    """What the router library needs of these settings."""
    return RouterConfig(prefix=s.router_dir, port=s.router_port, tls_port=s.router_tls_port,
                        nginx_bin=s.nginx_bin, domain=s.domain, interval=s.reconcile_interval,
                        stop_grace=float(s.stop_grace), start_command=ROUTER_COMMAND,
                        log_max_bytes=s.log_max_bytes)


def _list(raw: str | None) -> tuple[str, ...]:
    return tuple(x.strip() for x in (raw or "").split(",") if x.strip())


def _drain_hosts(raw: str | None) -> tuple[str, ...]:
    """DOCKYARD_DRAIN_PRIVATE_HOSTS: host names or CIDRs of collectors on private addresses that
    drains may reach (loopback, link-local and the engine's networks stay refused)."""
    hosts = _list(raw)
    try:
        parse_allowed(hosts)
    except ValueError as e:
        raise ValueError(f"DOCKYARD_DRAIN_PRIVATE_HOSTS: {e}; list host names or CIDRs, e.g. logs.internal,10.0.5.0/24") from None
    return hosts


def _paths(raw: str | None) -> tuple[str, ...]:
    """DOCKYARD_BUILDPACK_PATHS: absolute directories, resolved (so a link in the operator's own
    path still matches what tenants name); empty by default: no host path at all."""
    paths = _list(raw)
    bad = [p for p in paths if not p.startswith("/") or p.rstrip("/") == ""]
    if bad:
        raise ValueError(f"DOCKYARD_BUILDPACK_PATHS must list absolute directories other than /, not {bad}")
    return tuple(os.path.realpath(p) for p in paths)


def _caps(raw: str | None) -> tuple[str, ...]:
    caps = tuple(c.strip().upper() for c in (raw or "").split(",") if c.strip())
    bad = [c for c in caps if not _CAP.fullmatch(c)]
    if bad:
        raise ValueError(f"DOCKYARD_APP_CAPS has invalid capability names {bad}: use e.g. NET_BIND_SERVICE")
    return caps


def _ca_bundle(raw: str | None) -> str:
    """DOCKYARD_BUILD_CA_BUNDLE: unset = the host's bundle when it exists; "none" = no bundle."""
    if raw is None or raw == "":
        default = "/etc/ssl/certs/ca-certificates.crt"
        return default if os.path.isfile(default) else ""
    return "" if raw.lower() == "none" else raw
