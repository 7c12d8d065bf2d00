"""The scheduler: the one module that talks to the container engine (Docker SDK).

It speaks domain verbs (build an image, start/stop an instance of a release's process,
list instances by label, read their logs) and returns Dockyard dataclasses, never SDK
objects. Every container and image it makes carries `dockyard.instance=<name>` so two
platform instances on one engine never touch each other's objects."""
from __future__ import annotations

import os
import queue
import re
import secrets
import socket
import threading
import time
from dataclasses import dataclass, replace
from typing import Callable, Iterable

import docker
import docker.errors
import requests

from . import isolation
from core.errors import BuildTimeout, ImageBuildFailed, SchedulerError
from core.models import Instance, Limits, Release
from .settings import Settings

LABEL_INSTANCE = "dockyard.instance"
LABEL_APP = "dockyard.app"
LABEL_RELEASE = "dockyard.release"
LABEL_PROCESS = "dockyard.process"
LABEL_INDEX = "dockyard.index"
LABEL_BUILD = "dockyard.build"

_EXITED = re.compile(r"Exited \((-?\d+)\)")


@dataclass(frozen=True)
class LogLine:
    at: str
    text: str


def _iso(stamp: str) -> str:
    """Docker's RFC 3339 nanosecond stamp -> the store's isoformat (microseconds, +00:00)."""
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z$", stamp)
    if not m:
        return stamp
    return f"{m.group(1)}.{(m.group(2) or '0')[:6].ljust(6, '0')}+00:00"


class Scheduler:
    """Single-host Docker backend."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._client = None
        self._lock = threading.Lock()

    # ---- plumbing -------------------------------------------------------
    @property
    def client(self):
        with self._lock:
            if self._client is None:
                try:
                    self._client = docker.from_env(timeout=300)
                    self._client.ping()
                except docker.errors.DockerException as e:
                    self._client = None
                    raise SchedulerError(
                        f"The Docker engine is not reachable ({e.__class__.__name__}): start it with "
                        "`make up` (it starts dockerd) or check `docker info`.") from None
            return self._client

    def _labels(self, app: str, **extra: str) -> dict[str, str]:
        return {LABEL_INSTANCE: self.settings.name, LABEL_APP: app, **extra}

    def _filters(self, app: str | None) -> dict:
        labels = [f"{LABEL_INSTANCE}={self.settings.name}"]
        if app:
            labels.append(f"{LABEL_APP}={app}")
        return {"label": labels}

    # ---- images ---------------------------------------------------------
    def image_exists(self, ref: str) -> bool:
        try:
            self.client.api.inspect_image(ref)
            return True
        except docker.errors.ImageNotFound:
            return False
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not inspect image {ref!r}: {e.explanation}") from None

    def tag(self, image: str, repo: str, tag: str) -> str:
        if not self.client.api.tag(image, repo, tag):
            raise SchedulerError(f"Could not tag {image} as {repo}:{tag}.")
        return f"{repo}:{tag}"

    def build(self, context_dir: str, tag: str, on_line: Callable[[str], None], *, app: str,
              build_id: str | None = None, dockerfile: str | None = None,
              cancelled: Callable[[], bool] = lambda: False) -> str:
        """Build an image from a directory with the engine, streaming each output line to
        `on_line` as it arrives. Returns the image id; raises ImageBuildFailed."""
        dockerfile = dockerfile or "Dockerfile"
        labels = {LABEL_INSTANCE: self.settings.name, LABEL_APP: app, **({LABEL_BUILD: build_id} if build_id else {})}
        path = dockerfile if os.path.isabs(dockerfile) else os.path.join(context_dir, dockerfile)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)
        with os.fdopen(fd, "a") as f:   # one LABEL line: the engine's `labels` option adds a step per label
            f.write("\nLABEL " + " ".join(f'{k}="{v}"' for k, v in labels.items()) + "\n")
        labels = {}
        mem = self.settings.build_memory_mb * 1024 * 1024
        events: queue.Queue = queue.Queue()
        # A client of its own, so that a timeout or a vanished pusher can close the build's
        # connection: the engine then cancels the build and kills its running step.
        self.client  # noqa: B018 - the engine is reachable (or a clear error) before we start
        api = docker.from_env(timeout=300).api
        responses: list = []
        api.hooks["response"].append(lambda resp, *args, **kwargs: responses.append(resp))

        def abort() -> None:
            # shutdown() (not close(), which waits on the reader's buffer lock) wakes the pump
            # thread's blocked read and tells the engine the client is gone
            for resp in responses:
                sock = getattr(getattr(resp.raw, "_connection", None), "sock", None)
                if sock is not None:
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass   # already closed

        def pump() -> None:
            try:
                for chunk in api.build(
                        path=context_dir, dockerfile=dockerfile, tag=tag, labels=labels or None, rm=True,
                        forcerm=True, pull=False, decode=True,
                        container_limits={"memory": mem, "memswap": mem}):
                    events.put(("chunk", chunk))
                events.put(("end", None))
            except docker.errors.DockerException as e:
                events.put(("error", str(e)))
            except Exception as e:  # noqa: BLE001 - reported to the push, never swallowed
                events.put(("error", f"{e.__class__.__name__}: {e}"))

        threading.Thread(target=pump, name=f"build-{tag}", daemon=True).start()
        try:
            deadline = time.monotonic() + self.settings.build_timeout
            image_id = None
            pending = ""
            while True:
                if cancelled():
                    abort()
                    raise ImageBuildFailed("The build was cancelled: the client went away.")
                try:
                    kind, payload = events.get(timeout=min(1.0, max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    if time.monotonic() >= deadline:
                        abort()
                        raise BuildTimeout(
                            f"The build ran longer than {self.settings.build_timeout} s and was stopped: "
                            "make it faster or raise DOCKYARD_BUILD_TIMEOUT.") from None
                    continue
                if kind == "end":
                    break
                if kind == "error":
                    raise ImageBuildFailed(f"The engine failed the build: {payload}")
                chunk = payload
                if "stream" in chunk:
                    pending += chunk["stream"]
                    *lines, pending = pending.split("\n")
                    for line in lines:
                        on_line(line.rstrip("\r"))
                if "aux" in chunk and isinstance(chunk["aux"], dict) and "ID" in chunk["aux"]:
                    image_id = chunk["aux"]["ID"]
                if "error" in chunk:
                    if pending:
                        on_line(pending)
                    raise ImageBuildFailed(str(chunk.get("error", "")).strip())
            if pending:
                on_line(pending)
        finally:
            api.close()
        if image_id is None:
            try:
                image_id = self.client.api.inspect_image(tag)["Id"]
            except docker.errors.APIError:
                raise ImageBuildFailed("The engine reported no image at the end of the build.") from None
        return image_id

    def image_config(self, ref: str) -> dict:
        """The image's Cmd/Entrypoint/ExposedPorts/User (what `docker inspect` shows as Config)."""
        try:
            return self.client.api.inspect_image(ref).get("Config") or {}
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not inspect image {ref!r}: {e.explanation}") from None

    def remove_images(self, app: str, keep: Iterable[str] = (), builds_only: bool = False) -> int:
        """Remove the app's images (only those Dockyard labelled), except images with one of the
        `keep` tags. With `builds_only`, the dependency images buildpack builds share (tagged
        `deps-*`) stay: an untagged one goes with the last image built on it."""
        keep = set(keep)
        removed = 0
        filters = self._filters(app)
        for _ in range(5):   # a parent (e.g. a buildpack dependency image) goes once its children have
            failed = 0
            for img in self.client.api.images(filters=filters):
                tags = img.get("RepoTags") or []
                if keep.intersection(tags):
                    continue
                if builds_only and any(t.rpartition(":")[2].startswith("deps-") for t in tags):
                    continue
                try:
                    self.client.api.remove_image(img["Id"], force=True)
                    removed += 1
                except docker.errors.APIError:
                    failed += 1  # in use by a container being stopped, or has children; retried
            if not failed:
                break
        return removed

    # ---- instances ------------------------------------------------------
    def _env(self, app: str, release: Release, dyno: str, **extra: str) -> dict[str, str]:
        """The release's config plus what the platform sets for every process."""
        env = dict(release.config)
        env.update(DYNO=dyno, DOCKYARD_APP=app, DOCKYARD_RELEASE=f"v{release.version}", **extra)
        return env

    def _host_config(self, limits: Limits | None = None, **extra) -> dict:
        """Limits and hardening shared by every app container (instances and one-offs).
        Issue 6: every capability dropped (apps listen on $PORT >= 1024 and need none), a CPU
        limit, a private /tmp, and the platform's apps network where containers cannot reach
        each other (the router reaches them through their 127.0.0.1 port). No volume is ever
        mounted, so the Docker socket never is. `limits` (ps:limits) override the defaults."""
        limits = limits or Limits()
        mem = f"{limits.memory_mb or self.settings.app_memory_mb}m"
        iso = self.settings.isolation
        hardening = isolation.host_config_options(iso if limits.cpus is None else replace(iso, cpus=limits.cpus))
        return self.client.api.create_host_config(
            restart_policy={"Name": "no"}, security_opt=["no-new-privileges"], mem_limit=mem,
            memswap_limit=mem, pids_limit=1024, network_mode=self._apps_network(), **hardening,
            log_config={"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}}, **extra)

    def _apps_network(self) -> str:
        """The instance's bridge network for app containers, with inter-container traffic
        (ICC) off: app A cannot reach app B. Created once, labelled, shared by all apps."""
        name = isolation.network_name(self.settings.name)
        try:
            self.client.api.inspect_network(name)
        except docker.errors.NotFound:
            try:
                self.client.api.create_network(name, driver="bridge", check_duplicate=True,
                                               options=isolation.NETWORK_OPTIONS,
                                               labels={LABEL_INSTANCE: self.settings.name})
            except docker.errors.APIError as e:
                if "already exists" not in str(e.explanation):
                    raise SchedulerError(f"Could not create the apps network {name}: {e.explanation}") from None
        return name

    def _user(self, image: str) -> str | None:
        """The image's USER if it declares one, else `app` (uid 1000) for stack-based images."""
        def layers(ref: str) -> list[str]:
            try:
                return (self.client.api.inspect_image(ref).get("RootFS") or {}).get("Layers") or []
            except docker.errors.ImageNotFound:
                return []
            except docker.errors.APIError as e:
                raise SchedulerError(f"Could not inspect image {ref!r}: {e.explanation}") from None

        from_stack = isolation.built_from(layers(image), layers(self.settings.stack_image))
        return isolation.container_user(self.image_config(image).get("User") or "", self.settings.isolation,
                                        from_stack=from_stack)

    def start(self, app: str, release: Release, process: str, index: int, command: str | None,
              image: str, limits: Limits | None = None) -> Instance:
        """Create and start one instance. It starts with restart policy `no`, so a crash
        during its health check is final; `make_durable` switches it to `unless-stopped`."""
        s = self.settings
        env = self._env(app, release, f"{process}.{index}", PORT=str(s.app_port))
        name = f"{s.name}.{app}.{process}.{index}.v{release.version}.{secrets.token_hex(2)}"
        labels = self._labels(app, **{LABEL_RELEASE: str(release.version), LABEL_PROCESS: process,
                                      LABEL_INDEX: str(index)})
        web = process == "web"
        try:
            host_config = self._host_config(
                limits, port_bindings={f"{s.app_port}/tcp": ("127.0.0.1", None)} if web else None)
            created = self.client.api.create_container(
                image=image, user=self._user(image),
                command=["/bin/sh", "-c", command] if command else None,
                name=name, environment=env, labels=labels,
                ports=[s.app_port] if web else None,
                host_config=host_config, detach=True,
            )
            self.client.api.start(created["Id"])
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not start {process}.{index} of {app}: {e.explanation}") from None
        inst = self.get(created["Id"])
        if inst is None:
            raise SchedulerError(f"{process}.{index} of {app} vanished right after it started.")
        return inst

    def _follow_output(self, cid: str, on_line: Callable[[str], None], name: str) -> threading.Thread:
        """Stream a started container's output, line by line, to `on_line` in a thread of its own
        (joined by the caller once the container has exited)."""
        def stream_output() -> None:
            pending = ""
            try:
                for chunk in self.client.api.logs(cid, stream=True, follow=True):
                    pending += chunk.decode("utf-8", "replace")
                    *lines, pending = pending.split("\n")
                    for line in lines:
                        on_line(line)
            except (docker.errors.DockerException, requests.exceptions.RequestException):
                pass   # the container was killed or removed: its exit status says what happened
            if pending:
                on_line(pending)

        reader = threading.Thread(target=stream_output, name=name, daemon=True)
        reader.start()
        return reader

    def run_once(self, app: str, release: Release, process: str, command: str, image: str,
                 on_line: Callable[[str], None], timeout: float) -> int:
        """Run a command to completion in a one-off container of the release (with its config),
        streaming its output; returns the exit code. A command still running after `timeout`
        seconds (silent or not) is killed. The container is always removed."""
        s = self.settings
        labels = self._labels(app, **{LABEL_RELEASE: str(release.version), "dockyard.oneoff": process})
        try:
            cid = self.client.api.create_container(
                image=image, command=["/bin/sh", "-c", command], user=self._user(image),
                environment=self._env(app, release, f"{process}.1"), labels=labels,
                name=f"{s.name}.{app}.{process}.v{release.version}.{secrets.token_hex(2)}",
                host_config=self._host_config(), detach=True)["Id"]
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not create the {process} container: {e.explanation}") from None

        try:
            self.client.api.start(cid)
            reader = self._follow_output(cid, on_line, f"{process}-output")
            try:
                result = self.client.api.wait(cid, timeout=max(1, int(timeout)))
            except requests.exceptions.RequestException:   # the engine's read timeout: it overran
                self.client.api.kill(cid)
                raise SchedulerError(f"The {process} command ran longer than {timeout:.0f} s and was stopped.") from None
            reader.join(timeout=5)
            return int(result.get("StatusCode", -1))
        except docker.errors.APIError as e:
            raise SchedulerError(f"The {process} container failed: {e.explanation}") from None
        finally:
            self.remove(cid)

    def exec(self, container_id: str, command: str, timeout: float) -> tuple[int, str]:
        """Run a command inside a running instance (a health check); returns (exit code, output).
        Raises TimeoutError when it has not finished after `timeout` seconds."""
        result: dict = {}

        def go() -> None:
            try:
                ex = self.client.api.exec_create(container_id, ["/bin/sh", "-c", command])
                out = self.client.api.exec_start(ex["Id"])
                result["code"] = self.client.api.exec_inspect(ex["Id"]).get("ExitCode")
                result["out"] = out.decode("utf-8", "replace")
            except docker.errors.APIError as e:
                result["error"] = e.explanation

        t = threading.Thread(target=go, name="exec", daemon=True)
        t.start()
        t.join(timeout)
        if t.is_alive():
            raise TimeoutError(f"no result within {timeout:g} s")
        if "error" in result:
            raise SchedulerError(f"Could not run the command in the container: {result['error']}")
        return int(result["code"] if result["code"] is not None else -1), result["out"]

    # ---- one-off processes (`dockyard run`) -----------------------------
    def _oneoff_container(self, app: str, release: Release, command: str, image: str, index: int,
                          attach: bool) -> tuple[str, str]:
        s = self.settings
        labels = self._labels(app, **{LABEL_RELEASE: str(release.version), "dockyard.oneoff": "run",
                                      LABEL_INDEX: str(index), "dockyard.detached": "0" if attach else "1"})
        name = f"{s.name}.{app}.run.{index}.v{release.version}.{secrets.token_hex(2)}"
        try:
            cid = self.client.api.create_container(
                image=image, command=["/bin/sh", "-c", command],
                environment=self._env(app, release, f"run.{index}", PORT=str(s.app_port)), labels=labels,
                name=name, stdin_open=attach, tty=False, user=self._user(image),   # detach=False + stdin_open: StdinOnce, so
                host_config=self._host_config(), detach=not attach)["Id"]   # closing our side ends stdin
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not create the one-off container: {e.explanation}") from None
        return cid, name

    def next_oneoff_index(self, app: str) -> int:
        used = {o.index for o in self.oneoffs(app)}
        return next(i for i in range(1, len(used) + 2) if i not in used)

    def run_attached(self, app: str, release: Release, command: str, image: str,
                     read_stdin: Callable[[float], bytes | None | bool], on_output: Callable[[int, bytes], None],
                     on_started: Callable[[str], None], timeout: float) -> int:
        """Run a one-off with stdin/stdout/stderr attached: `read_stdin(wait)` returns bytes,
        None at end of input, or False when nothing arrived within `wait`; `on_output(stream,
        data)` gets stdout (1) and stderr (2) as they come. Returns the exit code; the container
        is removed afterwards and killed if the caller goes away or `timeout` passes."""
        import struct
        index = self.next_oneoff_index(app)
        cid, _ = self._oneoff_container(app, release, command, image, index, attach=True)
        stop = threading.Event()
        try:
            try:
                sock = self.client.api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
                raw = getattr(sock, "_sock", sock)
                self.client.api.start(cid)
            except docker.errors.APIError as e:
                raise SchedulerError(f"Could not start the one-off: {e.explanation}") from None
            on_started(f"run.{index}")

            def feed() -> None:
                try:
                    while not stop.is_set():
                        data = read_stdin(0.5)
                        if data is False:
                            continue
                        if data is None:
                            raw.shutdown(socket.SHUT_WR)
                            return
                        raw.sendall(data)
                except OSError:
                    pass
                except Exception:  # noqa: BLE001 - the client went away: stop the one-off
                    stop.set()

            threading.Thread(target=feed, name=f"run-stdin-{app}", daemon=True).start()
            raw.settimeout(1.0)
            deadline = time.monotonic() + timeout
            buf = b""
            timed_out = False
            while True:
                if stop.is_set() or time.monotonic() > deadline:
                    timed_out = not stop.is_set()
                    self.client.api.kill(cid)
                    break
                try:
                    chunk = raw.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    break
                if not chunk:
                    break
                buf += chunk
                while len(buf) >= 8:
                    stream, size = buf[0], struct.unpack(">I", buf[4:8])[0]
                    if len(buf) < 8 + size:
                        break
                    try:
                        on_output(stream, buf[8:8 + size])
                    except Exception:  # noqa: BLE001 - the client went away
                        stop.set()
                    buf = buf[8 + size:]
            raw.close()
            code = int(self.client.api.wait(cid, timeout=30).get("StatusCode", -1))
            if timed_out:
                raise SchedulerError(f"The one-off ran longer than {timeout:.0f} s and was stopped: raise "
                                     "DOCKYARD_RUN_TIMEOUT or use `dockyard run --detach`.")
            return code
        finally:
            stop.set()
            self.remove(cid)

    def run_detached(self, app: str, release: Release, command: str, image: str) -> Instance:
        """Start a one-off in the background; its output goes to the app's logs."""
        index = self.next_oneoff_index(app)
        cid, _ = self._oneoff_container(app, release, command, image, index, attach=False)
        try:
            self.client.api.start(cid)
        except docker.errors.APIError as e:
            self.remove(cid)
            raise SchedulerError(f"Could not start the one-off: {e.explanation}") from None
        return next(o for o in self.oneoffs(app) if o.container_id == cid)

    def oneoffs(self, app: str | None = None) -> list[Instance]:
        """`dockyard run` containers (attached and detached), as instances of type `run`."""
        try:
            rows = self.client.api.containers(all=True, filters={"label": self._filters(app)["label"] + ["dockyard.oneoff=run"]})
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not list containers: {e.explanation}") from None
        out = []
        for r in rows:
            labels = r.get("Labels") or {}
            m = _EXITED.search(r.get("Status", ""))
            out.append(Instance(
                container_id=r["Id"], name=(r.get("Names") or ["?"])[0].lstrip("/"), app=labels.get(LABEL_APP, ""),
                version=int(labels.get(LABEL_RELEASE, "0")), process="run", index=int(labels.get(LABEL_INDEX, "0")),
                state=r.get("State", "unknown"), exit_code=int(m.group(1)) if m else None, host_port=None,
                image=r.get("Image", ""), started_at=str(r.get("Created", "")),
                detached=labels.get("dockyard.detached") == "1"))
        return sorted(out, key=lambda i: (i.app, i.index))

    def make_durable(self, container_id: str) -> None:
        """Restart the instance if it crashes and after a daemon or host restart."""
        try:
            self.client.api.update_container(container_id, restart_policy={"Name": "unless-stopped"})
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not set the restart policy: {e.explanation}") from None

    def get(self, container_id: str) -> Instance | None:
        try:
            attrs = self.client.api.inspect_container(container_id)
        except docker.errors.NotFound:
            return None
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not inspect container: {e.explanation}") from None
        labels = attrs["Config"].get("Labels") or {}
        state = attrs.get("State") or {}
        port = None
        bindings = (attrs.get("NetworkSettings") or {}).get("Ports") or {}
        for b in bindings.get(f"{self.settings.app_port}/tcp") or []:
            if b.get("HostIp") in ("127.0.0.1", "") and b.get("HostPort"):
                port = int(b["HostPort"])
        status = state.get("Status", "unknown")
        return Instance(
            container_id=attrs["Id"], name=attrs["Name"].lstrip("/"), app=labels.get(LABEL_APP, ""),
            version=int(labels.get(LABEL_RELEASE, "0")), process=labels.get(LABEL_PROCESS, ""),
            index=int(labels.get(LABEL_INDEX, "0")), state=status,
            exit_code=state.get("ExitCode") if status in ("exited", "dead") else None,
            host_port=port if status == "running" else None, image=attrs["Config"].get("Image", ""),
            started_at=state.get("StartedAt", ""), restart_count=attrs.get("RestartCount", 0))

    def instances(self, app: str | None = None) -> list[Instance]:
        """All of this platform's app containers (optionally one app's), found by label, in one call."""
        try:
            rows = self.client.api.containers(all=True, filters=self._filters(app))
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not list containers: {e.explanation}") from None
        out = []
        for r in rows:
            labels = r.get("Labels") or {}
            if LABEL_PROCESS not in labels:
                continue  # not an app instance (e.g. a build or one-off container)
            port = None
            for p in r.get("Ports") or []:
                if p.get("PrivatePort") == self.settings.app_port and p.get("PublicPort") and p.get("IP") in ("127.0.0.1",):
                    port = int(p["PublicPort"])
            m = _EXITED.search(r.get("Status", ""))
            state = r.get("State", "unknown")
            out.append(Instance(
                container_id=r["Id"], name=(r.get("Names") or ["?"])[0].lstrip("/"),
                app=labels.get(LABEL_APP, ""), version=int(labels.get(LABEL_RELEASE, "0")),
                process=labels[LABEL_PROCESS], index=int(labels.get(LABEL_INDEX, "0")), state=state,
                exit_code=int(m.group(1)) if m else None, host_port=port if state == "running" else None,
                image=r.get("Image", ""), started_at=str(r.get("Created", ""))))
        return sorted(out, key=lambda i: (i.app, i.process, i.index, i.version))

    def stop(self, container_id: str, grace: int | None = None, remove: bool = True) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds; then remove the container."""
        grace = self.settings.stop_grace if grace is None else grace
        try:
            self.client.api.update_container(container_id, restart_policy={"Name": "no"})
            self.client.api.stop(container_id, timeout=grace)
        except docker.errors.NotFound:
            return
        except docker.errors.APIError:
            pass  # already stopping/dead: removal below settles it
        if remove:
            self.remove(container_id)

    def remove(self, container_id: str) -> None:
        try:
            self.client.api.remove_container(container_id, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as e:
            if "already in progress" in str(e.explanation):
                return   # another process (a deploy, the reconciler) is removing it right now
            raise SchedulerError(f"Could not remove container {container_id[:12]}: {e.explanation}") from None

    def logs(self, container_id: str, tail: int | str = 100, since: int | None = None) -> list[LogLine]:
        try:
            raw = self.client.api.logs(container_id, stdout=True, stderr=True, timestamps=True,
                                       tail=tail, since=since)
        except docker.errors.NotFound:
            return []
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not read logs: {e.explanation}") from None
        out = []
        for line in raw.decode("utf-8", "replace").splitlines():
            at, _, text = line.partition(" ")
            out.append(LogLine(at=_iso(at), text=text))
        return out

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except (docker.errors.DockerException, SchedulerError):
            return False

    # ---- build containers (buildpacks, issue 3) --------------------------
    def run_build_container(self, app: str, build_id: str, image: str, command: list[str],
                            binds: dict[str, tuple[str, bool]], env: dict[str, str],
                            on_line: Callable[[str], None], timeout: float,
                            cancelled: Callable[[], bool] = lambda: False,
                            user: str = "1000:1000", finished: threading.Event | None = None) -> "BuildRun":
        """Run a build step (buildpacks) to completion in a limited container of `image`, streaming
        each output line to `on_line` as it is printed. binds: container path -> (host path,
        read_only). A container still running after `timeout` seconds, or whose client went away,
        is killed. The container is always removed. `finished`, set (by `on_line`) when the
        command has printed that its last step succeeded, ends the wait without waiting for the
        container to exit (exit code 0)."""
        s = self.settings
        mem = f"{s.build_memory_mb}m"
        labels = self._labels(app, **{LABEL_BUILD: build_id})
        try:
            host_config = self.client.api.create_host_config(
                binds={host: {"bind": path, "mode": "ro" if ro else "rw"} for path, (host, ro) in binds.items()},
                mem_limit=mem, memswap_limit=mem, pids_limit=1024, security_opt=["no-new-privileges"],
                restart_policy={"Name": "no"},
                log_config={"Type": "json-file", "Config": {"max-size": "20m", "max-file": "2"}})
            cid = self.client.api.create_container(
                image=image, command=command, environment=env, labels=labels, user=user,
                name=f"{s.name}.{app}.build.{build_id}.{secrets.token_hex(2)}", working_dir="/app",
                host_config=host_config, detach=True)["Id"]
        except docker.errors.ImageNotFound:
            raise SchedulerError(f"The build image {image} is not in the engine: build it with "
                                 "`bash scripts/install.sh` (scripts/build-build-stack.sh).") from None
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not create the build container: {e.explanation}") from None

        timed_out = False
        try:
            self.client.api.start(cid)
            reader = self._follow_output(cid, on_line, f"build-{build_id}")
            exited = threading.Event()

            def wait_exit() -> None:
                while not exited.is_set():
                    try:
                        self.client.api.wait(cid, timeout=30)
                        break
                    except requests.exceptions.ReadTimeout:
                        continue   # still running
                    except requests.exceptions.RequestException:
                        time.sleep(0.5)   # the engine is not answering: ask again, without spinning
                    except docker.errors.DockerException:
                        break      # removed: it has ended either way
                exited.set()

            threading.Thread(target=wait_exit, name=f"wait-build-{build_id}", daemon=True).start()
            deadline = time.monotonic() + timeout
            try:
                while not exited.wait(0.05):
                    if finished is not None and finished.is_set():
                        return BuildRun(exit_code=0, oom_killed=False, timed_out=False)
                    if cancelled():
                        self.client.api.kill(cid)
                        raise ImageBuildFailed("The build was cancelled: the client went away.")
                    if time.monotonic() >= deadline:
                        timed_out = True
                        self.client.api.kill(cid)
                        self.client.api.wait(cid, timeout=30)
                        break
            finally:
                exited.set()   # the waiter thread stops at its next turn
            reader.join(timeout=10)
            state = self.client.api.inspect_container(cid).get("State") or {}
            return BuildRun(exit_code=int(state.get("ExitCode", -1)), oom_killed=bool(state.get("OOMKilled")),
                            timed_out=timed_out)
        except docker.errors.APIError as e:
            raise SchedulerError(f"The build container failed: {e.explanation}") from None
        finally:
            def remove() -> None:
                try:
                    self.client.api.remove_container(cid, force=True)
                except docker.errors.APIError:
                    pass
            # it has exited (or was killed): removing it need not hold up the build
            threading.Thread(target=remove, name=f"rm-build-{build_id}", daemon=True).start()

    def untag_images(self, repo: str, prefix: str, keep: str) -> int:
        """Remove the tags `repo:<prefix>*` other than `repo:<keep>` (no force: an image that others
        build on only loses its tag). Returns how many tags went."""
        removed = 0
        try:
            images = self.client.api.images(name=repo)
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not list images of {repo}: {e.explanation}") from None
        for img in images:
            for t in img.get("RepoTags") or []:
                name, _, tag = t.rpartition(":")
                if name == repo and tag.startswith(prefix) and tag != keep:
                    try:
                        self.client.api.remove_image(t)
                        removed += 1
                    except docker.errors.APIError:
                        pass   # in use by a container: the next build tries again
        return removed


@dataclass(frozen=True)
class BuildRun:
    """How a build container ended."""
    exit_code: int
    oom_killed: bool
    timed_out: bool
