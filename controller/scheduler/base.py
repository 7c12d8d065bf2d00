"""The scheduler interface: what the rest of the platform asks of whatever runs containers.

It speaks domain verbs (build an image, start or stop an instance of a release's process, list
an app's instances, read their logs, run a one-off) and takes and returns core.models records
only: no engine SDK object crosses it. Each backend implements every method with the contract its
docstring states: the single-host Docker engine (docker_backend.py), a Docker Swarm cluster
(docker_swarm.py; selector.py switches between the two while the platform runs), and an
in-memory one for fast tests of the deploy logic (memory.py). Each takes a SchedulerConfig
(config.py), never the controller's whole settings.

The interface is split by role, one protocol each: Nodes (the engine and a cluster's machines),
Images, Builds, Instances (a release's processes), Oneoffs, AddonServices and Stats. `Scheduler`
combines them, and is what the services object hands out; code that needs one role can say so
in its signature (a Stats reader, an Images user).

Contract shared by every method:
- Everything a backend makes carries the labels of controller/scheduler/labels.py, with
  LABEL_INSTANCE = config.name; listings return only this platform instance's objects.
- An instance id (`Instance.container_id`) is opaque to callers: they only hand it back.
- Engine failures raise core.errors.SchedulerError (a message that names the fix); build
  failures raise ImageBuildFailed, a build over its time limit BuildTimeout.
- Methods are safe to call from several threads and processes at once (the API's workers, the
  reconciler, a deploy's background retire all use the same engine)."""
from __future__ import annotations

import threading
from abc import abstractmethod
from typing import BinaryIO, Callable, Iterable, Protocol, TypeVar

from core.errors import BadRequest, SchedulerError
from core.models import BuildRun, Crash, Instance, InstanceStats, Limits, LogLine, Release, ServiceStatus

OnLine = Callable[[str], None]
Cancelled = Callable[[], bool]
T = TypeVar("T")


def never() -> bool:
    return False


class Nodes(Protocol):
    """The machines instances run on: the engine itself, and a cluster's nodes (a single host has
    none: `nodes` is empty and changing one is refused, naming how to start a cluster)."""

    @abstractmethod
    def ping(self) -> bool:
        """True when the engine answers; never raises."""

    @abstractmethod
    def network_subnets(self) -> list[str]:
        """The subnets (CIDR text) of every network the engine has (bridges, overlays, the
        apps' and add-ons'): where the platform's own containers listen, so never a target
        the platform connects to on a tenant's behalf."""

    @abstractmethod
    def host_memory_mb(self) -> int:
        """The memory of the machine(s) instances run on, in MB: no limit may exceed it."""

    def nodes(self) -> list[dict]:
        """The cluster's nodes (`dockyard nodes`), each {id, hostname, address, state,
        availability, role, instances}; [] on a single host."""
        return []

    def set_availability(self, name: str, availability: str) -> dict:
        """Set the node's availability (active, pause, drain) and return its row."""
        raise _single_host()

    def remove_node(self, name: str) -> None:
        """Take the node out of the cluster."""
        raise _single_host()

    def join_command(self) -> list[str]:
        """The commands that join a new host to the cluster."""
        raise _single_host()


class Images(Protocol):
    """The images releases run: what exists and who built it, tags, pulls, archives, removal."""

    @abstractmethod
    def image_exists(self, ref: str) -> bool:
        """Whether `ref` (a tag or an id) can be run or built on without pulling."""

    @abstractmethod
    def image_identity(self, ref: str) -> tuple[str, str | None] | None:
        """(the image's id, the app of this platform that built it, or None) for a tag or id;
        None when the engine has no such image. Decides who may deploy or build on it."""

    def image_size(self, ref: str) -> int | None:
        """The image's size in bytes, all layers counted (None when unknown)."""
        return None

    @abstractmethod
    def image_config(self, ref: str) -> dict:
        """The image's own settings as the engine shows them under Config (Cmd, Entrypoint,
        ExposedPorts, User)."""

    def image_is_app_build(self, ref: str) -> bool:
        """Whether the engine's image `ref` was built for an app (never pulled over or admitted
        by a pull pattern)."""
        return True

    @abstractmethod
    def tag(self, image: str, repo: str, tag: str) -> str:
        """Give `image` the name `repo:tag` and return that reference. A release's image is tagged
        this way; every place that runs the release must be able to use the reference."""

    def image_tags(self, repo: str, prefix: str) -> list[str]:
        """The tags `repo:<prefix>*` the engine has (none known: [])."""
        return []

    @abstractmethod
    def untag_images(self, repo: str, prefix: str, keep: str) -> int:
        """Remove the tags `repo:<prefix>*` other than `repo:<keep>` without force (an image that
        others build on only loses its tag); returns how many tags went."""

    def pull_image(self, ref: str, on_line: OnLine, cancelled: Cancelled = never) -> str:
        """Pull `ref` from its registry (Docker Hub's through DOCKYARD_REGISTRY_MIRROR when set),
        shared by every app; returns the image id. Progress goes to `on_line`."""
        raise SchedulerError("This scheduler cannot pull images: load the image into the engine.")

    def collect_pulled_images(self) -> int:
        """Remove the images this platform pulled that no image builds on and no container uses."""
        return 0

    @abstractmethod
    def remove_images(self, app: str, keep: Iterable[str] = (), builds_only: bool = False) -> int:
        """Remove the app's images (only those this platform labelled) except those tagged with
        one of `keep`; returns how many went. With `builds_only`, the shared dependency images
        (tags `deps-*`) stay. An image still in use is skipped, never forced out of a container."""

    @abstractmethod
    def save_images(self, refs: list[str], out: BinaryIO) -> None:
        """Write the images (by tag) as one archive the engine can load again (`docker save`)."""

    @abstractmethod
    def load_images(self, src: BinaryIO) -> None:
        """Load an archive written by save_images into the engine."""


class Builds(Protocol):
    """Building images: the platform's own builds, a tenant's Dockerfile in its sandbox, build steps."""

    @abstractmethod
    def build(self, context_dir: str, tag: str, on_line: OnLine, *, app: str, build_id: str | None = None,
              dockerfile: str | None = None, cancelled: Cancelled = never) -> str:
        """Build an image from `context_dir` (a directory the platform owns) with `dockerfile`
        (relative to it, or an absolute path; default `Dockerfile`), tag it `tag` and return its id.
        The backend labels the image itself: the app, and the build when `build_id` is given
        (dependency images shared by builds have none). Each output line goes to `on_line` as it
        comes. The build is stopped, and ImageBuildFailed raised, once `cancelled()` is true;
        BuildTimeout after config.build_timeout; memory is limited to config.build_memory_mb.
        Nothing is pulled: a base image the engine lacks fails the build."""

    @abstractmethod
    def sandbox_build(self, tenant: str, context_dir: str, tag: str, on_line: OnLine, *, app: str,
                      build_id: str | None = None, dockerfile: str | None = None, cancelled: Cancelled = never) -> str:
        """As `build`, for a Dockerfile a tenant wrote: it runs in the tenant's build sandbox (an
        engine holding only images loaded by `sandbox_provide` and the tenant's own builds, on a
        network without the host, the platform's networks or other tenants), and the image then
        moves to the engine that runs releases, tagged `tag`. Returns its id."""

    @abstractmethod
    def sandbox_provide(self, tenant: str, ref: str) -> bool:
        """Load the image `ref` into the tenant's build sandbox (kept there: only a changed image is
        loaded again). False when the platform has no such image. The caller has checked that the
        tenant may build on it."""

    @abstractmethod
    def remove_sandbox(self, tenant: str) -> None:
        """Remove the tenant's build sandbox and everything it kept (images, cache)."""

    def build_engine(self, tenant: str) -> "TenantBuilds":
        """What a build of `tenant` uses (builder.job.BuildEngine)."""
        return TenantBuilds(self, tenant)

    @abstractmethod
    def run_build_container(self, app: str, build_id: str, image: str, command: list[str],
                            binds: dict[str, tuple[str, bool]], env: dict[str, str], on_line: OnLine,
                            timeout: float, cancelled: Cancelled = never, user: str = "1000:1000",
                            finished: threading.Event | None = None) -> BuildRun:
        """Run a build step (buildpacks) to completion in a memory-limited container of `image`,
        streaming each output line to `on_line`. binds: container path -> (host path, read only);
        the step runs where those host paths are. Killed after `timeout` seconds (timed_out) or once
        `cancelled()` (ImageBuildFailed). `finished`, set by `on_line` when the step has printed
        its last line, ends the wait at once (exit code 0). The container is always removed."""


class Instances(Protocol):
    """A release's long-running processes: start, watch, list, stop; their exits and logs."""

    @abstractmethod
    def start(self, app: str, release: Release, process: str, index: int, command: str | None,
              image: str, limits: Limits | None = None) -> Instance:
        """Start instance `process.index` of the release: the release's config plus DYNO,
        DOCKYARD_APP, DOCKYARD_RELEASE and PORT in its environment, `command` run by /bin/sh (None:
        the image's own), the platform's isolation and `limits` (None: the defaults). A web
        instance's `host_port` is where the router reaches it. It is not restarted if it exits
        until `make_durable` (so a crash during its health check is final)."""

    def prepare(self, app: str, release: Release, process: str, index: int, command: str | None,
                image: str, limits: Limits | None, spec: str) -> Instance | None:
        """Create instance `process.index` as `start` would, without starting it: a standby for
        a wake, marked with the caller's `spec` (Instance.standby). `instances` never lists a
        standby; `standbys` does until `start_prepared` starts it. None when the backend keeps
        no standby (a wake then starts a new instance)."""
        return None

    def standbys(self, app: str | None = None) -> list[Instance]:
        """The standbys made by `prepare` and not started (of one app, or all), in one call."""
        return []

    def start_prepared(self, container_id: str) -> Instance:
        """Start a standby; from then on it is an instance like one `start` made."""
        raise SchedulerError("This scheduler keeps no standby instances.")

    @abstractmethod
    def make_durable(self, container_id: str) -> None:
        """From now on, restart the instance when it exits and after an engine or host restart."""

    @abstractmethod
    def get(self, container_id: str) -> Instance | None:
        """The instance or one-off as it is now, with its restart count and whether its last exit
        was an out-of-memory kill; None once it is gone."""

    @abstractmethod
    def instances(self, app: str | None = None) -> list[Instance]:
        """Every app instance of this platform (or of one app) in any state, exited and
        restarting ones included (the reconciler repairs them), sorted by (app, process, index,
        version); never one-offs or build containers. One call to the engine: the reconciler and
        the router call it every few seconds."""

    def watch(self, on_change: Callable[[str], None], stopped: Callable[[], bool]) -> None:
        """Call `on_change` as soon as an app instance of this platform starts or exits (a
        crash, a restart by the engine, whose published port then changes), until `stopped()`,
        with that instance's id, or "" when the change names none of them (a node's state).
        Blocks; an engine that stops answering is retried. A backend that cannot watch
        returns at once: callers also poll `instances()`."""

    @abstractmethod
    def crashes(self, since: float, until: float) -> list[Crash]:
        """The exits of this platform's app instances between two epoch times, oldest first,
        each with its exit code and whether the kernel killed it for memory. Exits the platform
        caused (stop, remove) are included too: callers tell them apart by what they stopped."""

    @abstractmethod
    def logs(self, container_id: str, tail: int | str = 100, since: int | None = None) -> list[LogLine]:
        """The last `tail` lines ("all" for every line) of its stdout and stderr, since the Unix
        time `since` if given, oldest first; [] once it is gone."""

    @abstractmethod
    def stop(self, container_id: str, grace: int | None = None, remove: bool = True) -> None:
        """Stop restarting the instance, send SIGTERM, SIGKILL after `grace` seconds (None:
        config.stop_grace), then remove it unless `remove` is false. An instance already gone
        or stopping is not an error."""

    @abstractmethod
    def remove(self, container_id: str) -> None:
        """Remove the instance or one-off at once (killed if it runs). Already gone, or being
        removed by another process, is not an error."""

    @abstractmethod
    def remove_leftovers(self, app: str) -> int:
        """Remove the app's build containers and release-phase containers, running or not.
        Called only when no build or deploy of the app runs (its lock is free): what is left
        then belongs to a process that was killed. Returns how many were removed."""

    def apps_with_leftovers(self) -> set[str] | None:
        """The apps `remove_leftovers` would find something of, from one look at the engine for
        all apps (a sweep then asks about each app only when it has something to remove); None
        when the backend cannot tell, and every app is asked."""
        return None

    def misplaced(self, inst: Instance) -> bool:
        """Whether the instance runs where it should no longer (the platform switched between
        single host and cluster): the reconciler starts its replacement, then retires it."""
        return False


class Oneoffs(Protocol):
    """One-offs and the release phase: commands run to completion, attached or in the background,
    and commands run inside a running instance."""

    @abstractmethod
    def run_once(self, app: str, release: Release, process: str, command: str, image: str,
                 on_line: OnLine, timeout: float) -> int:
        """Run `command` to completion in a one-off of the release (its config, the platform's
        isolation), streaming each output line to `on_line`; return its exit code. Still running
        after `timeout` seconds: killed, SchedulerError. Always removed afterwards. The release
        phase runs this way, with `process` naming it."""

    @abstractmethod
    def exec(self, container_id: str, command: str, timeout: float) -> tuple[int, str]:
        """Run `command` by /bin/sh inside a running instance (a health check): (exit code,
        output). Raises TimeoutError when it has not finished after `timeout` seconds."""

    @abstractmethod
    def oneoffs(self, app: str | None = None) -> list[Instance]:
        """`dockyard run` one-offs (attached and detached) in any state, as instances of process
        `run`, numbered from 1 per app, sorted by (app, index)."""

    @abstractmethod
    def run_attached(self, app: str, release: Release, command: str, image: str,
                     read_stdin: Callable[[float], bytes | None | bool], on_output: Callable[[int, bytes], None],
                     on_started: Callable[[str], None], timeout: float,
                     env: dict[str, str] | None = None, index: int | None = None,
                     terminal: tuple[int, int] | None = None) -> int:
        """Run a one-off with stdin, stdout and stderr attached and return its exit code.
        `read_stdin(wait)` gives bytes, None at end of input (stdin is closed), or False when
        nothing came within `wait` s; `on_output(stream, data)` gets stdout (1) and stderr (2) as
        they come; `on_started(label)` names it (`run.N`) once it runs. Killed when a callback
        raises (the client went away) or after `timeout` s (SchedulerError); always removed.
        `env` is added to the release's config; `index` is its number (default: the lowest free);
        a `terminal` (columns, lines) gives it a pseudo-terminal of that size, whose output (stdout
        and stderr together) comes as stream 1."""

    @abstractmethod
    def run_detached(self, app: str, release: Release, command: str, image: str,
                     env: dict[str, str] | None = None) -> Instance:
        """Start a one-off in the background and return it; its output goes to the app's logs
        (`logs` of the returned instance) until the reconciler removes it after it exits."""


class AddonServices(Protocol):
    """Backing services (add-ons). An add-on is one service container named after it, with its data
    in a volume of its own that outlives the container. It is reachable, under its name as a
    hostname, only from the containers of the apps connected to it. A cluster backend pins it to
    the node its volume is on."""

    @abstractmethod
    def start_service(self, name: str, kind: str, image: str, memory_mb: int,
                      env: dict[str, str] | None = None, new: bool = False) -> ServiceStatus:
        """Make the add-on run: (re)create its container on its volume when it is missing
        (rejoining every app connected to it), start it when it is stopped. It restarts on exit
        and after an engine restart. Only a `new` add-on gets a new, empty volume: when an
        existing one's volume is gone, SchedulerError (never an empty service in its place)."""

    @abstractmethod
    def service_status(self, name: str) -> ServiceStatus:
        """The add-on's container as it is now (state `missing` when there is none)."""

    @abstractmethod
    def services(self) -> dict[str, ServiceStatus]:
        """Every add-on container of this platform, by add-on name, in one call."""

    @abstractmethod
    def service_memory(self, name: str) -> int | None:
        """Bytes of memory the add-on uses now (without the page cache); None when it is down."""

    @abstractmethod
    def set_service_memory(self, name: str, memory_mb: int) -> None:
        """Change the add-on's memory limit in place."""

    @abstractmethod
    def service_logs(self, name: str, tail: int = 20) -> list[LogLine]:
        """The add-on's last `tail` output lines, oldest first."""

    @abstractmethod
    def restart_service(self, name: str) -> None:
        """Stop (SIGTERM, config.stop_grace) and start the add-on's container."""

    @abstractmethod
    def remove_service(self, name: str, keep_data: bool = False) -> None:
        """Remove the add-on's container and networks, and its volume unless `keep_data`."""

    @abstractmethod
    def connect_service(self, name: str, app: str) -> None:
        """Let the app's containers (those running and those started later) reach the add-on."""

    @abstractmethod
    def disconnect_service(self, name: str, app: str) -> None:
        """The app's containers no longer reach the add-on."""

    @abstractmethod
    def service_exec(self, name: str, command: list[str], stdin: BinaryIO | bytes | None = None,
                     stdout: BinaryIO | None = None, timeout: float = 3600) -> tuple[int, bytes]:
        """Run `command` (no shell) in the add-on's container, `stdin` fed to it, its stdout
        streamed to the `stdout` file when given. Returns (exit code, the rest of its output)."""

    @abstractmethod
    def service_exec_attached(self, name: str, command: list[str], read_stdin: Callable[[float], bytes | None | bool],
                              on_output: Callable[[int, bytes], None], timeout: float,
                              env: dict[str, str] | None = None) -> int:
        """Run `command` in the add-on's container with stdin and output attached, as
        run_attached does for one-offs (psql, redis-cli), with `env` added to its environment
        (a password goes there, never into the command); returns its exit code."""


class Stats(Protocol):
    """Resource readings: per instance, and what the engine holds for this platform."""

    @abstractmethod
    def stats(self, container_ids: Iterable[str]) -> dict[str, InstanceStats]:
        """One resource reading per instance (CPU time, memory used and limit, restarts, start
        time), keyed by id; ids that are gone are left out. Cheap enough to call every few
        seconds for every instance: it never waits for a second engine sample."""

    @abstractmethod
    def disk_usage(self) -> dict:
        """Bytes the engine holds for this platform: {"images": .., "volumes": .., "containers": ..,
        "images_by_app": {app: bytes of its images' own layers}} (its labelled objects only; the
        stack image counts under images)."""

    def data_root(self) -> str:
        """The directory where the engine that builds keeps images and containers (a build needs
        room there); "" when the engine does not say."""
        return ""


class Scheduler(Nodes, Images, Builds, Instances, Oneoffs, AddonServices, Stats):
    """The whole interface: every role above, as the platform's services object hands it out.
    A caller that needs one role may name that role in its signature instead."""


def _single_host() -> BadRequest:
    return BadRequest("The platform runs on a single host: there are no nodes.",
                      fix="start a cluster with `make cluster NODES=3` (README: cluster mode)")


class TenantBuilds:
    """The builder's engine for one tenant's builds: Dockerfiles the tenant wrote go to the
    tenant's sandbox; build steps and the images the platform writes (buildpack slugs) use the
    scheduler itself."""

    node: str | None = None   # the cluster node the tenant's Dockerfile was built on, once it was

    def __init__(self, scheduler: Scheduler, tenant: str):
        self.scheduler, self.tenant = scheduler, tenant

    def building(self, build: Callable[[], T], out: OnLine, cancelled: Cancelled = never, app: str = "") -> T:
        """Run `build` (the builder's whole build of `app`, calling this engine's verbs): on one
        host once; on a cluster it holds its node until it ends (the app's previous build node
        first, where its build cache is), and runs again on another when that node is lost."""
        return build()

    def image_exists(self, ref: str) -> bool:
        return self.scheduler.image_exists(ref)

    def image_config(self, ref: str) -> dict:
        return self.scheduler.image_config(ref)

    def image_size(self, ref: str) -> int | None:
        return self.scheduler.image_size(ref)

    def provide_image(self, ref: str) -> bool:
        return self.scheduler.sandbox_provide(self.tenant, ref)

    def build(self, context_dir: str, tag: str, on_line: OnLine, **kw) -> str:
        return self.scheduler.build(context_dir, tag, on_line, **kw)

    def build_sandboxed(self, context_dir: str, tag: str, on_line: OnLine, **kw) -> str:
        return self.scheduler.sandbox_build(self.tenant, context_dir, tag, on_line, **kw)

    def run_build_container(self, *args, **kw) -> BuildRun:
        return self.scheduler.run_build_container(*args, **kw)

    def untag_images(self, repo: str, prefix: str, keep: str) -> int:
        return self.scheduler.untag_images(repo, prefix, keep)

    def image_tags(self, repo: str, prefix: str) -> list[str]:
        return self.scheduler.image_tags(repo, prefix)

    def pull_image(self, ref: str, on_line: OnLine, cancelled: Cancelled = never) -> str:
        """Into the platform's engine (never the sandbox, which reaches no registry of the platform's)."""
        return self.scheduler.pull_image(ref, on_line, cancelled)
