"""An in-memory scheduler: the Scheduler interface with no engine behind it, for fast tests of
the deploy logic (rollout, reconcile, health gating, crash-loop rollback, locks) without Docker,
as Deis' controller had scheduler/mock.py.

Instances are records in a dict. A `web` instance that is meant to answer HTTP gets a real
little HTTP server on 127.0.0.1 (a thread), so the platform's own health checks and probes run
unchanged against it. Tests decide how each release's processes behave (`behave`) and inject
faults (`crash`, `kill_engine_side`). Builds are out of scope: `build` and
`run_build_container` refuse, and images exist once a test `add_image`s them."""
from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import BinaryIO, Callable, Iterable

from core.errors import SchedulerError
from core.models import BuildRun, Crash, Instance, InstanceStats, Limits, LogLine, Release, ServiceStatus

from controller.scheduler.base import Cancelled, OnLine, Scheduler, never


@dataclass
class Behaviour:
    """How the instances of one release's process type behave once started."""
    answers: bool = True            # a web instance serves HTTP on its port
    status: int = 200
    body: str = "ok"
    exit_code: int | None = None    # the process exits at once with this code (never answers)
    oom: bool = False               # ... killed for memory
    output: tuple[str, ...] = ()    # what it prints when it starts
    exec_result: tuple[int, str] = (0, "")   # what a command check inside it gets
    release_phase_exit: int = 0     # the exit code of a one-off of this release (release phase)


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


class _Answer(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the stdlib's name
        status, body = self.server.answer  # type: ignore[attr-defined]
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:   # quiet: tests read the platform's output, not this
        pass


@dataclass
class _Record:
    inst: Instance
    durable: bool = False
    server: ThreadingHTTPServer | None = None
    logs: list[LogLine] = field(default_factory=list)
    behaviour: Behaviour = field(default_factory=Behaviour)


class MemoryScheduler(Scheduler):
    """Every method keeps the contract of base.Scheduler, on records in memory."""

    def __init__(self, host_memory_mb: int = 16384):
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._records: dict[str, _Record] = {}
        self._images: dict[str, tuple[str, str | None]] = {}     # ref -> (image id, app)
        self._crashes: list[tuple[str, Crash]] = []               # (app, crash)
        self._behaviours: dict[tuple[str, int, str], Behaviour] = {}
        self._services: dict[str, ServiceStatus] = {}
        self._host_memory_mb = host_memory_mb
        self.calls: list[tuple[str, ...]] = []   # what the platform asked, in order (for assertions)

    # ---- what tests set up and inject -----------------------------------------------------
    def add_image(self, ref: str, app: str | None = None) -> str:
        with self._lock:
            image_id = f"sha256:{next(self._ids):064x}"
            self._images[ref] = (image_id, app)
            return image_id

    def behave(self, app: str, version: int, process: str, behaviour: Behaviour) -> None:
        """How instances of release `version`'s `process` behave when they start."""
        self._behaviours[(app, version, process)] = behaviour

    def crash(self, container_id: str, exit_code: int = 1, oom: bool = False) -> None:
        """The instance's process exits on its own: the engine restarts a durable one (same
        record, a new port, one more restart), a new one stays exited."""
        with self._lock:
            rec = self._records[container_id]
            self._stop_server(rec)
            self._crashes.append((rec.inst.app, Crash(container_id, time.time(), exit_code, oom)))
            if rec.durable:
                rec.inst = replace(rec.inst, restart_count=rec.inst.restart_count + 1, exit_code=exit_code,
                                   oom_killed=oom, started_at=_now_iso())
                self._serve(rec)
            else:
                rec.inst = replace(rec.inst, state="exited", exit_code=exit_code, oom_killed=oom, host_port=None)

    def vanish(self, container_id: str) -> None:
        """The container is gone behind the platform's back (removed by hand, engine wiped)."""
        with self._lock:
            rec = self._records.pop(container_id)
            self._stop_server(rec)

    # ---- the engine -----------------------------------------------------------------------
    def ping(self) -> bool:
        return True

    # ---- images ---------------------------------------------------------------------------
    def image_exists(self, ref: str) -> bool:
        return ref in self._images or any(ref == i for i, _ in self._images.values())

    def image_identity(self, ref: str) -> tuple[str, str | None] | None:
        return self._images.get(ref)

    def host_memory_mb(self) -> int:
        return self._host_memory_mb

    def network_subnets(self) -> list[str]:
        return []      # instances here are loopback servers: loopback is refused anyway

    def tag(self, image: str, repo: str, tag: str) -> str:
        with self._lock:
            found = self._images.get(image) or next(((i, a) for i, a in self._images.values() if i == image), None)
            if found is None:
                raise SchedulerError(f"No image {image} in the in-memory engine: add_image it first.")
            ref = f"{repo}:{tag}"
            # a name in another app's repository (a promotion) is that app's to collect, as the
            # engine backend only untags this app's names of an image another app runs
            self._images[ref] = (found[0], repo.rsplit("/", 1)[-1] if "/" in repo else found[1])
            self.calls.append(("tag", image, ref))
            return ref

    def image_config(self, ref: str) -> dict:
        return {}

    def remove_images(self, app: str, keep: Iterable[str] = (), builds_only: bool = False) -> int:
        keep = set(keep)
        with self._lock:
            in_use = {r.inst.image for r in self._records.values()}
            gone = [ref for ref, (_, owner) in self._images.items()
                    if owner == app and ref not in keep and ref not in in_use
                    and not (builds_only and ref.rsplit(":", 1)[-1].startswith("deps-"))]
            for ref in gone:
                del self._images[ref]
            return len(gone)

    def image_tags(self, repo: str, prefix: str) -> list[str]:
        with self._lock:
            return sorted(r.rpartition(":")[2] for r in self._images if r.startswith(f"{repo}:{prefix}"))

    def untag_images(self, repo: str, prefix: str, keep: str) -> int:
        with self._lock:
            gone = [r for r in self._images if r.startswith(f"{repo}:{prefix}") and r != f"{repo}:{keep}"]
            for ref in gone:
                del self._images[ref]
            return len(gone)

    def build(self, context_dir: str, tag: str, on_line: OnLine, *, app: str, build_id: str | None = None,
              dockerfile: str | None = None, cancelled: Cancelled = never) -> str:
        raise SchedulerError("The in-memory scheduler does not build images: add_image the result instead.")

    def sandbox_build(self, tenant: str, context_dir: str, tag: str, on_line: OnLine, *, app: str,
                      build_id: str | None = None, dockerfile: str | None = None, cancelled: Cancelled = never) -> str:
        raise SchedulerError("The in-memory scheduler does not build images: add_image the result instead.")

    def sandbox_provide(self, tenant: str, ref: str) -> bool:
        return self.image_exists(ref)

    def remove_sandbox(self, tenant: str) -> None:
        pass   # it keeps no sandbox

    def run_build_container(self, app: str, build_id: str, image: str, command: list[str],
                            binds: dict[str, tuple[str, bool]], env: dict[str, str], on_line: OnLine,
                            timeout: float, cancelled: Cancelled = never, user: str = "1000:1000",
                            finished: threading.Event | None = None) -> BuildRun:
        raise SchedulerError("The in-memory scheduler does not run build containers.")

    def save_images(self, refs: list[str], out: BinaryIO) -> None:
        raise SchedulerError("The in-memory scheduler has no image archive.")

    def load_images(self, src: BinaryIO) -> None:
        raise SchedulerError("The in-memory scheduler has no image archive.")

    # ---- app instances --------------------------------------------------------------------
    def start(self, app: str, release: Release, process: str, index: int, command: str | None,
              image: str, limits: Limits | None = None) -> Instance:
        if not self.image_exists(image):
            raise SchedulerError(f"No image {image}: the release's image is missing.")
        with self._lock:
            cid = f"mem{next(self._ids):012d}"
            behaviour = self._behaviours.get((app, release.version, process), Behaviour())
            inst = Instance(cid, f"{app}.{process}.{index}", app, release.version, process, index, "running", None,
                            None, image, started_at=_now_iso())
            rec = _Record(inst, behaviour=behaviour)
            rec.logs = [LogLine(_now_iso(), line) for line in behaviour.output]
            self._records[cid] = rec
            self.calls.append(("start", app, f"{process}.{index}", f"v{release.version}"))
            if behaviour.exit_code is not None:
                rec.inst = replace(inst, state="exited", exit_code=behaviour.exit_code, oom_killed=behaviour.oom)
                self._crashes.append((app, Crash(cid, time.time(), behaviour.exit_code, behaviour.oom)))
            elif process == "web":
                self._serve(rec)
            return rec.inst

    def prepare(self, app: str, release: Release, process: str, index: int, command: str | None,
                image: str, limits: Limits | None, spec: str) -> Instance | None:
        if not self.image_exists(image):
            raise SchedulerError(f"No image {image}: the release's image is missing.")
        with self._lock:
            cid = f"mem{next(self._ids):012d}"
            inst = Instance(cid, f"{app}.{process}.{index}", app, release.version, process, index, "created", None,
                            None, image, standby=spec)
            self._records[cid] = _Record(inst)
            self.calls.append(("prepare", app, f"{process}.{index}", f"v{release.version}"))
            return inst

    def standbys(self, app: str | None = None) -> list[Instance]:
        with self._lock:
            return sorted((r.inst for r in self._records.values() if r.inst.standby
                           and (app is None or r.inst.app == app)), key=lambda i: (i.app, i.process, i.index))

    def start_prepared(self, container_id: str) -> Instance:
        with self._lock:
            rec = self._records.get(container_id)
            if rec is None or not rec.inst.standby:
                raise SchedulerError(f"No standby {container_id}.")
            # how its process behaves is decided when it starts, as for `start`
            rec.behaviour = self._behaviours.get((rec.inst.app, rec.inst.version, rec.inst.process), Behaviour())
            rec.inst = replace(rec.inst, state="running", standby="", started_at=_now_iso())
            rec.logs = [LogLine(_now_iso(), line) for line in rec.behaviour.output]
            self.calls.append(("start", rec.inst.app, rec.inst.label, f"v{rec.inst.version}", "standby"))
            if rec.behaviour.exit_code is not None:
                rec.inst = replace(rec.inst, state="exited", exit_code=rec.behaviour.exit_code,
                                   oom_killed=rec.behaviour.oom)
                self._crashes.append((rec.inst.app, Crash(container_id, time.time(), rec.behaviour.exit_code,
                                                          rec.behaviour.oom)))
            elif rec.inst.process == "web":
                self._serve(rec)
            return rec.inst

    def _serve(self, rec: _Record) -> None:
        """A web instance that answers gets a fresh port (an engine restart changes it too)."""
        if rec.inst.process != "web" or not rec.behaviour.answers:
            return
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
        server.answer = (rec.behaviour.status, rec.behaviour.body)   # type: ignore[attr-defined]
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        rec.server = server
        rec.inst = replace(rec.inst, state="running", host_port=server.server_address[1])

    @staticmethod
    def _stop_server(rec: _Record) -> None:
        if rec.server is not None:
            rec.server.shutdown()
            rec.server.server_close()
            rec.server = None

    def make_durable(self, container_id: str) -> None:
        with self._lock:
            if container_id in self._records:
                self._records[container_id].durable = True

    def get(self, container_id: str) -> Instance | None:
        with self._lock:
            rec = self._records.get(container_id)
            return rec.inst if rec else None

    def is_durable(self, container_id: str) -> bool:
        with self._lock:
            rec = self._records.get(container_id)
            return bool(rec and rec.durable)

    def remove_leftovers(self, app: str) -> int:
        return 0

    def apps_with_leftovers(self) -> set[str]:
        return set()

    def crashes(self, since: float, until: float) -> list[Crash]:
        with self._lock:
            return [c for _, c in self._crashes if since <= c.at < until]

    def instances(self, app: str | None = None) -> list[Instance]:
        with self._lock:
            found = [r.inst for r in self._records.values()
                     if r.inst.process != "run" and not r.inst.standby and (app is None or r.inst.app == app)]
        return sorted(found, key=lambda i: (i.app, i.process, i.index, i.version))

    def stop(self, container_id: str, grace: int | None = None, remove: bool = True) -> None:
        with self._lock:
            rec = self._records.get(container_id)
            if rec is None:
                return
            self._stop_server(rec)
            rec.durable = False
            rec.inst = replace(rec.inst, state="exited", exit_code=0 if rec.inst.exit_code is None else rec.inst.exit_code,
                               host_port=None)
            self.calls.append(("stop", rec.inst.app, rec.inst.label, f"v{rec.inst.version}"))
            if remove:
                del self._records[container_id]

    def remove(self, container_id: str) -> None:
        with self._lock:
            rec = self._records.pop(container_id, None)
            if rec is not None:
                self._stop_server(rec)

    def stats(self, container_ids: Iterable[str]) -> dict[str, InstanceStats]:
        with self._lock:
            return {cid: InstanceStats(cid, time.time(), 0, 0, 512 << 20, self._records[cid].inst.restart_count,
                                       self._records[cid].inst.started_at, self._records[cid].inst.state == "running")
                    for cid in container_ids if cid in self._records}

    def disk_usage(self) -> dict:
        return {"images": 0, "volumes": 0, "containers": 0, "images_by_app": {}}

    def logs(self, container_id: str, tail: int | str = 100, since: int | None = None) -> list[LogLine]:
        with self._lock:
            rec = self._records.get(container_id)
            lines = list(rec.logs) if rec else []
        return lines if tail == "all" else lines[-int(tail):]

    # ---- one-offs and the release phase ---------------------------------------------------
    def run_once(self, app: str, release: Release, process: str, command: str, image: str,
                 on_line: OnLine, timeout: float) -> int:
        behaviour = self._behaviours.get((app, release.version, process), Behaviour())
        self.calls.append(("run_once", app, process, f"v{release.version}"))
        for line in behaviour.output:
            on_line(line)
        return behaviour.release_phase_exit

    def exec(self, container_id: str, command: str, timeout: float) -> tuple[int, str]:
        with self._lock:
            rec = self._records.get(container_id)
        if rec is None:
            raise SchedulerError("That instance is gone.")
        return rec.behaviour.exec_result

    def oneoffs(self, app: str | None = None) -> list[Instance]:
        with self._lock:
            return sorted((r.inst for r in self._records.values()
                           if r.inst.process == "run" and (app is None or r.inst.app == app)),
                          key=lambda i: (i.app, i.index))

    def run_attached(self, app: str, release: Release, command: str, image: str,
                     read_stdin: Callable[[float], bytes | None | bool], on_output: Callable[[int, bytes], None],
                     on_started: Callable[[str], None], timeout: float,
                     env: dict[str, str] | None = None, index: int | None = None,
                     terminal: tuple[int, int] | None = None) -> int:
        raise SchedulerError("The in-memory scheduler does not attach one-offs.")

    def run_detached(self, app: str, release: Release, command: str, image: str,
                     env: dict[str, str] | None = None) -> Instance:
        with self._lock:
            index = 1 + max((i.index for i in self.oneoffs(app)), default=0)
            cid = f"mem{next(self._ids):012d}"
            inst = Instance(cid, f"{app}.run.{index}", app, release.version, "run", index, "exited", 0, None, image,
                            started_at=_now_iso(), detached=True)
            self._records[cid] = _Record(inst)
            self.calls.append(("run_detached", app, command))
            return inst

    # ---- backing services -----------------------------------------------------------------
    def start_service(self, name: str, kind: str, image: str, memory_mb: int,
                      env: dict[str, str] | None = None, new: bool = False) -> ServiceStatus:
        with self._lock:
            if name not in self._services and not new:
                raise SchedulerError(f"The volume of add-on {name} is gone.")
            self._services[name] = ServiceStatus("running", f"svc-{name}", started_at=_now_iso())
            return self._services[name]

    def service_status(self, name: str) -> ServiceStatus:
        return self._services.get(name, ServiceStatus("missing"))

    def services(self) -> dict[str, ServiceStatus]:
        return dict(self._services)

    def service_memory(self, name: str) -> int | None:
        return 0 if name in self._services else None

    def set_service_memory(self, name: str, memory_mb: int) -> None:
        pass

    def service_logs(self, name: str, tail: int = 20) -> list[LogLine]:
        return []

    def restart_service(self, name: str) -> None:
        self.start_service(name, "", "", 0)

    def remove_service(self, name: str, keep_data: bool = False) -> None:
        self._services.pop(name, None)

    def connect_service(self, name: str, app: str) -> None:
        pass

    def disconnect_service(self, name: str, app: str) -> None:
        pass

    def service_exec(self, name: str, command: list[str], stdin: BinaryIO | bytes | None = None,
                     stdout: BinaryIO | None = None, timeout: float = 3600) -> tuple[int, bytes]:
        raise SchedulerError("The in-memory scheduler runs no commands in add-ons.")

    def service_exec_attached(self, name: str, command: list[str], read_stdin: Callable[[float], bytes | None | bool],
                              on_output: Callable[[int, bytes], None], timeout: float,
                              env: dict[str, str] | None = None) -> int:
        raise SchedulerError("The in-memory scheduler runs no commands in add-ons.")

    def close(self) -> None:
        """Stop every instance's HTTP server (a test's teardown)."""
        with self._lock:
            for rec in self._records.values():
                self._stop_server(rec)
