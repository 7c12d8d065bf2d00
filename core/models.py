"""Domain records. Plain frozen dataclasses: the store returns them, the API renders
them, the scheduler takes and returns them; no SDK or DB objects leak past a module."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class User:
    id: int
    name: str
    is_admin: bool
    email: str | None = None   # set by the user (PATCH /account); Heroku's tools know users by email

    @property
    def login(self) -> str:
        """What identifies the user where an email is expected: the email, else the name."""
        return self.email or self.name


@dataclass(frozen=True)
class App:
    id: str
    name: str
    owner_id: int | None
    created_at: str
    current_version: int       # the release that is (or should be) running; 0 = none yet
    last_version: int          # highest version ever allocated (CAS counter)
    live_version: int = 0      # the release the processes run (behind current after config --no-restart)


@dataclass(frozen=True)
class Build:
    id: str
    app_id: str
    status: str                # pending | succeeded | failed
    source_commit: str
    method: str                # dockerfile | ...
    image: str                 # image tag, e.g. dockyard/myapp:b-<id>
    process_types: dict = field(default_factory=dict)   # type -> command ("" = image default)
    created_at: str = ""
    finished_at: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class Release:
    app_id: str
    version: int
    build_id: str | None
    config: dict
    description: str
    status: str                # pending | succeeded | failed
    created_at: str
    created_by: str | None = None
    image: str | None = None
    process_types: dict = field(default_factory=dict)
    healthchecks: dict = field(default_factory=dict)    # app.json `healthchecks` of the build
    manifest: dict = field(default_factory=dict)        # app.json formation/scripts/env/cron, `port`

    @property
    def port(self) -> int | None:
        """The port the build's image EXPOSEs (routed to, and $PORT), else None: $PORT applies."""
        return self.manifest.get("port")


@dataclass(frozen=True)
class Instance:
    """A container the scheduler found (by label) or started."""
    container_id: str
    name: str
    app: str
    version: int
    process: str
    index: int
    state: str                 # running | exited | restarting | created | ...
    exit_code: int | None      # the last exit of an exited, dead or restarting instance; else None
    host_port: int | None
    image: str
    started_at: str = ""
    restart_count: int = 0     # restarts by the engine's restart policy (known from a single lookup)
    detached: bool = False     # a `dockyard run --detach` one-off
    oom_killed: bool = False   # its last exit was the kernel's out-of-memory kill (single lookup)
    node: str = ""             # the cluster node it runs on ("" on a single host)
    address: str = "127.0.0.1" # where the router and health checks reach host_port
    standby: str = ""          # a created, never started instance kept for a wake: its spec ("" otherwise)

    @property
    def label(self) -> str:
        return f"{self.process}.{self.index}"


@dataclass(frozen=True)
class InstanceStats:
    """One reading of an instance's resource use. `cpu_ns` is the instance's total CPU time so
    far (a rate is the difference of two readings); memory in bytes."""
    container_id: str
    at: float                  # Unix time of the reading
    cpu_ns: int
    mem_bytes: int
    mem_limit: int
    restarts: int
    started_at: str            # ISO time the current run started ("" if unknown)
    running: bool


@dataclass(frozen=True)
class Limits:
    """Resources of one process type's instances (ps:limits); None = the platform default."""
    memory_mb: int | None = None
    cpus: float | None = None


@dataclass(frozen=True)
class Crash:
    """An instance's process exited on its own (not stopped by the platform)."""
    container_id: str
    at: float                  # epoch seconds
    exit_code: int | None
    oom_killed: bool = False


@dataclass(frozen=True)
class LogLine:
    """One line of an instance's output, with its time in the store's format."""
    at: str                    # isoformat, microseconds, +00:00
    text: str


@dataclass(frozen=True)
class BuildRun:
    """How a build container ended."""
    exit_code: int
    oom_killed: bool
    timed_out: bool


@dataclass(frozen=True)
class Addon:
    """A backing service (Postgres, Redis) owned by one app; its data lives in its volume.
    `credentials` holds the owner's user, password and database: secret, like config."""
    id: str
    name: str                  # unique on the platform, e.g. postgres-amber-4821; also its hostname
    service: str               # postgres | redis
    app_id: str                # the owning app (it may be attached to others too)
    app: str
    memory_mb: int
    credentials: dict
    created_at: str
    backup_at: str | None = None     # daily automatic backup at HH:MM UTC; None = no schedule
    node: str | None = None          # where its volume is (cluster mode pins it there)


@dataclass(frozen=True)
class Attachment:
    """An app's use of an add-on: the config var it gets and its own credentials."""
    addon_id: str
    addon: str
    app_id: str
    app: str
    var: str                   # DATABASE_URL, REDIS_URL, or NAME_URL
    user: str
    password: str
    owner: bool                # the attachment made by addons:create (its user owns the data)
    created_at: str


@dataclass(frozen=True)
class ServiceStatus:
    """How a service container is, as the scheduler sees it."""
    state: str                 # running | restarting | exited | missing | created
    container_id: str | None = None
    exit_code: int | None = None
    oom_killed: bool = False
    restart_count: int = 0
    started_at: str | None = None
    memory_bytes: int | None = None


@dataclass(frozen=True)
class Pipeline:
    """Apps that carry one codebase through stages (review, development, staging, production)."""
    id: str
    name: str
    owner_id: int | None
    review_apps: bool          # a branch pushed to one of its apps makes a review app
    created_at: str


@dataclass(frozen=True)
class Coupling:
    """An app's place in a pipeline; a review app's also names its branch."""
    id: str
    pipeline_id: str
    pipeline: str
    app_id: str
    app: str
    stage: str                 # review | development | staging | production
    created_at: str
    branch: str | None = None  # review apps only: the branch they were made from
    pushed_at: str | None = None   # review apps only: the branch's last push (staleness)


@dataclass(frozen=True)
class Promotion:
    """One promotion: the source app's build released in each target (targets: dicts with app_id,
    app, status pending|succeeded|failed, version, error_message)."""
    id: str
    pipeline_id: str
    source_app_id: str
    source_version: int
    status: str
    created_by: str
    created_at: str
    targets: tuple = ()
