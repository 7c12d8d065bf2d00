"""Single-host backend: image builds by the engine, and build containers (buildpack steps)."""
from __future__ import annotations

import errno
import os
import queue
import secrets
import socket
import stat
import threading
import time
from typing import Callable

import docker
import docker.errors
import requests

from core.errors import BuildTimeout, ImageBuildFailed, SchedulerError
from core.models import BuildRun

from controller.scheduler.docker_engine import DockerEngine
from controller.scheduler.docker_parse import Lines
from controller.scheduler.labels import LABEL_BUILD


def label_line(labels: dict[str, str]) -> str:
    """One Dockerfile LABEL instruction carrying every label (values are names and ids)."""
    return "LABEL " + " ".join(f'{k}="{v}"' for k, v in labels.items())


def append_labels(context_dir: str, dockerfile: str, labels: dict[str, str]) -> None:
    """Append one LABEL line to the build's Dockerfile: one build step, where the engine's
    `labels` option adds a container-creating step per label. The Dockerfile is the build's own
    copy in a directory the platform made (`dockerfile` relative to it, or absolute), written
    before any of the build's code runs. The platform is root on the host, so it never writes
    through a symlink a tenant committed, nor outside the context: both are refused."""
    path = os.path.join(context_dir, dockerfile)
    if not os.path.isabs(dockerfile):
        root = os.path.realpath(context_dir)
        if os.path.commonpath([root, os.path.realpath(os.path.dirname(path))]) != root:
            raise ImageBuildFailed(f"{dockerfile[:80]} is outside the build context: commit the Dockerfile "
                                   "itself (not a symlink) and push again.")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ImageBuildFailed(f"{dockerfile[:80]} is a symlink: commit the Dockerfile itself and push "
                                   "again.") from None
        raise ImageBuildFailed(f"Could not open {dockerfile[:80]} ({e.strerror}): commit a Dockerfile and "
                               "push again.") from None
    with os.fdopen(fd, "w") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise ImageBuildFailed(f"{dockerfile[:80]} is not a regular file: commit the Dockerfile itself "
                                   "and push again.")
        f.write("\n" + label_line(labels) + "\n")


class EngineBuild:
    """One build running in the engine over a connection of its own, read by a pump thread:
    closing that connection (on a timeout, or when the pusher went away) makes the engine
    cancel the build and kill its running step. The host's engine runs it for Dockerfiles the
    platform wrote; a build sandbox's engine (docker_sandbox.py) for a tenant's."""

    def __init__(self, context_dir: str, dockerfile: str, tag: str, memory: int, base_url: str | None = None,
                 version: str | None = None):
        # base_url: a build sandbox's engine (its API version known); None: the host's engine
        # (Dockerfiles the platform wrote)
        self.api = (docker.APIClient(base_url=base_url, version=version, timeout=300) if base_url
                    else docker.from_env(timeout=300).api)
        self.events: queue.Queue = queue.Queue()
        self._responses: list = []
        self.api.hooks["response"].append(lambda resp, *args, **kwargs: self._responses.append(resp))
        self._args = dict(path=context_dir, dockerfile=dockerfile, tag=tag, rm=True, forcerm=True, pull=False,
                          decode=True, container_limits={"memory": memory, "memswap": memory})
        threading.Thread(target=self._pump, name=f"build-{tag}", daemon=True).start()

    def _pump(self) -> None:
        try:
            for chunk in self.api.build(**self._args):
                self.events.put(("chunk", chunk))
            self.events.put(("end", None))
        except docker.errors.DockerException as e:
            self.events.put(("error", str(e)))
        except Exception as e:  # noqa: BLE001 - reported to the push, never swallowed
            self.events.put(("error", f"{e.__class__.__name__}: {e}"))

    def abort(self) -> None:
        # shutdown() (not close(), which waits on the reader's buffer lock) wakes the pump
        # thread's blocked read and tells the engine the client is gone
        for resp in self._responses:
            sock = getattr(getattr(resp.raw, "_connection", None), "sock", None)
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass   # already closed

    def close(self) -> None:
        self.api.close()


class DockerBuild(DockerEngine):
    def build(self, context_dir: str, tag: str, on_line: Callable[[str], None], *, app: str,
              build_id: str | None = None, dockerfile: str | None = None,
              cancelled: Callable[[], bool] = lambda: False) -> str:
        """Build an image from a directory with the engine, streaming each output line to
        `on_line` as it arrives. Returns the image id; raises ImageBuildFailed."""
        dockerfile = dockerfile or "Dockerfile"
        append_labels(context_dir, dockerfile, self._labels(app, **({LABEL_BUILD: build_id} if build_id else {})))
        self.client  # noqa: B018 - the engine is reachable (or a clear error) before we start
        run = EngineBuild(context_dir, dockerfile, tag, self.config.build_memory_mb * 1024 * 1024,
                          **self._engine_target())
        try:
            image_id = self._read_build(run, on_line, cancelled)
        finally:
            run.close()
        if image_id is None:
            try:
                image_id = self.client.api.inspect_image(tag)["Id"]
            except docker.errors.APIError:
                raise ImageBuildFailed("The engine reported no image at the end of the build.") from None
        return image_id

    def _engine_target(self) -> dict:
        """Which engine `build` runs in: the host's (a node's build sandbox names its own)."""
        return {}

    def _read_build(self, run: EngineBuild, on_line: Callable[[str], None],
                    cancelled: Callable[[], bool]) -> str | None:
        """The build's output to `on_line` until it ends; the image id when the engine says it."""
        deadline = time.monotonic() + self.config.build_timeout
        image_id = None
        lines = Lines(lambda line: on_line(line.rstrip("\r")))
        while True:
            if cancelled():
                run.abort()
                raise ImageBuildFailed("The build was cancelled: the client went away.")
            try:
                kind, chunk = run.events.get(timeout=min(1.0, max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                if time.monotonic() >= deadline:
                    run.abort()
                    raise BuildTimeout(
                        f"The build ran longer than {self.config.build_timeout} s and was stopped: "
                        "make it faster or raise DOCKYARD_BUILD_TIMEOUT.") from None
                continue
            if kind == "end":
                lines.flush()
                return image_id
            if kind == "error":
                raise ImageBuildFailed(f"The engine failed the build: {chunk}")
            if "stream" in chunk:
                lines.feed(chunk["stream"])
            if "aux" in chunk and isinstance(chunk["aux"], dict) and "ID" in chunk["aux"]:
                image_id = chunk["aux"]["ID"]
            if "error" in chunk:
                lines.flush()
                raise ImageBuildFailed(str(chunk.get("error", "")).strip())

    # ---- build containers (buildpacks) ----------------------------------------------------
    def run_build_container(self, app: str, build_id: str, image: str, command: list[str],
                            binds: dict[str, tuple[str, bool]], env: dict[str, str],
                            on_line: Callable[[str], None], timeout: float,
                            cancelled: Callable[[], bool] = lambda: False,
                            user: str = "1000:1000", finished: threading.Event | None = None) -> BuildRun:
        """Run a build step (buildpacks) to completion in a limited container of `image`, streaming
        each output line to `on_line` as it is printed. binds: container path -> (host path,
        read_only). A container still running after `timeout` seconds, or whose client went away,
        is killed. The container is always removed. `finished`, set (by `on_line`) when the
        command has printed that its last step succeeded, ends the wait without waiting for the
        container to exit (exit code 0)."""
        net = self._build_network(app, build_id)
        try:
            cid = self._create_build_container(app, build_id, image, command, binds, env, user, net)
        except BaseException:
            self._remove_quietly(None, net)
            raise
        try:
            self.client.api.start(cid)
            reader = self._follow_output(cid, on_line, f"build-{build_id}")
            outcome = self._wait_build(cid, build_id, timeout, cancelled, finished)
            if outcome == "finished":
                # Killed before the platform touches its output: nothing the build left running
                # (e.g. a background process swapping files for symlinks) outlives this call.
                self._kill_quietly(cid)
                return BuildRun(exit_code=0, oom_killed=False, timed_out=False)
            reader.join(timeout=10)
            state = self.client.api.inspect_container(cid).get("State") or {}
            return BuildRun(exit_code=int(state.get("ExitCode", -1)), oom_killed=bool(state.get("OOMKilled")),
                            timed_out=outcome == "timed out")
        except docker.errors.APIError as e:
            raise SchedulerError(f"The build container failed: {e.explanation}") from None
        finally:
            # it has exited (or was killed): removing it need not hold up the build
            threading.Thread(target=self._remove_quietly, args=(cid, net), name=f"rm-build-{build_id}",
                             daemon=True).start()

    def _build_network(self, app: str, build_id: str) -> str:
        """A bridge network of the step's own: no other tenant's build or app shares its segment
        (the engine's default bridge holds every container started without a network)."""
        name = f"{self.config.name}-build-{build_id}-{secrets.token_hex(3)}"
        try:
            self.client.api.create_network(name, driver="bridge", labels=self._labels(app, **{LABEL_BUILD: build_id}))
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not create the build's network: {e.explanation}") from None
        return name

    def _create_build_container(self, app: str, build_id: str, image: str, command: list[str],
                                binds: dict[str, tuple[str, bool]], env: dict[str, str], user: str,
                                network: str) -> str:
        """Every capability dropped (NET_RAW included: no raw socket, even through a setcap
        binary), on its own network."""
        s = self.config
        mem = f"{s.build_memory_mb}m"
        try:
            host_config = self.client.api.create_host_config(
                binds={host: {"bind": path, "mode": "ro" if ro else "rw"} for path, (host, ro) in binds.items()},
                mem_limit=mem, memswap_limit=mem, pids_limit=1024, security_opt=["no-new-privileges"],
                restart_policy={"Name": "no"}, cap_drop=["ALL"], network_mode=network,
                log_config={"Type": "json-file", "Config": {"max-size": "20m", "max-file": "2"}})
            return self.client.api.create_container(
                image=image, command=command, environment=env, labels=self._labels(app, **{LABEL_BUILD: build_id}),
                user=user, name=f"{s.name}.{app}.build.{build_id}.{secrets.token_hex(2)}", working_dir="/app",
                host_config=host_config, detach=True)["Id"]
        except docker.errors.ImageNotFound:
            raise SchedulerError(f"The build image {image} is not in the engine: build it with "
                                 "`bash scripts/install.sh` (scripts/build-build-stack.sh).") from None
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not create the build container: {e.explanation}") from None

    def _wait_build(self, cid: str, build_id: str, timeout: float, cancelled: Callable[[], bool],
                    finished: threading.Event | None) -> str:
        """Wait until the build container has "exited", or has "finished" (`finished` is set), or
        has "timed out" (killed after `timeout` s). Killed too once `cancelled()`: ImageBuildFailed."""
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
                    return "finished"
                if cancelled():
                    self.client.api.kill(cid)
                    raise ImageBuildFailed("The build was cancelled: the client went away.")
                if time.monotonic() >= deadline:
                    self.client.api.kill(cid)
                    self.client.api.wait(cid, timeout=30)
                    return "timed out"
        finally:
            exited.set()   # the waiter thread stops at its next turn
        return "exited"

    def _kill_quietly(self, cid: str) -> None:
        try:
            self.client.api.kill(cid)
            self.client.api.wait(cid, timeout=30)
        except (docker.errors.APIError, requests.exceptions.RequestException):
            pass   # already exited

    def _remove_quietly(self, cid: str | None, network: str | None = None) -> None:
        try:
            if cid:
                self.client.api.remove_container(cid, force=True)
            if network:
                self.client.api.remove_network(network)
        except docker.errors.APIError:
            pass

