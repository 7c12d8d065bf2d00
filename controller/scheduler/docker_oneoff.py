"""Single-host backend: one-off containers (`dockyard run`, attached or detached), the release
phase, and commands run inside an instance (health checks)."""
from __future__ import annotations

import secrets
import socket
import threading
import time
from typing import Callable

import docker.errors
import requests

from core.errors import SchedulerError
from core.models import Instance, Release

from controller.scheduler.docker_engine import DockerEngine
from controller.scheduler.docker_parse import split_frames
from controller.scheduler.labels import LABEL_DETACHED, LABEL_INDEX, LABEL_ONEOFF, LABEL_RELEASE

ReadStdin = Callable[[float], bytes | None | bool]


def feed_stdin(raw: socket.socket, read_stdin: ReadStdin, stop: threading.Event) -> None:
    """The client's input to a process's stdin (a one-off's, or a command run in an add-on)
    until its end (then stdin is closed)."""
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


class DockerOneoffs(DockerEngine):
    def run_once(self, app: str, release: Release, process: str, command: str, image: str,
                 on_line: Callable[[str], None], timeout: float) -> int:
        """Run a command to completion in a one-off container of the release (with its config),
        streaming its output; returns the exit code. A command still running after `timeout`
        seconds (silent or not) is killed. The container is always removed."""
        s = self.config
        labels = self._labels(app, **{LABEL_RELEASE: str(release.version), LABEL_ONEOFF: process})
        try:
            cid = self.client.api.create_container(
                image=image, command=["/bin/sh", "-c", command], user=self._user(image),
                environment=self._env(app, release, f"{process}.1"), labels=labels,
                name=f"{s.name}.{app}.{process}.v{release.version}.{secrets.token_hex(2)}",
                host_config=self._host_config(), detach=True)["Id"]
            self._join_services(cid, app)   # the release phase may migrate an attached database
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

    # ---- `dockyard run` ---------------------------------------------------------------------
    def oneoffs(self, app: str | None = None) -> list[Instance]:
        """`dockyard run` containers (attached and detached), as instances of type `run`."""
        found = self._list(self._filters(app, f"{LABEL_ONEOFF}=run"))
        return sorted(found, key=lambda i: (i.app, i.index))

    def next_oneoff_index(self, app: str) -> int:
        used = {o.index for o in self.oneoffs(app)}
        return next(i for i in range(1, len(used) + 2) if i not in used)

    def _oneoff_container(self, app: str, release: Release, command: str, image: str, index: int,
                          attach: bool, env: dict[str, str] | None = None, tty: bool = False) -> str:
        s = self.config
        labels = self._labels(app, **{LABEL_RELEASE: str(release.version), LABEL_ONEOFF: "run",
                                      LABEL_INDEX: str(index), LABEL_DETACHED: "0" if attach else "1"})
        name = f"{s.name}.{app}.run.{index}.v{release.version}.{secrets.token_hex(2)}"
        try:
            cid = self.client.api.create_container(
                image=image, command=["/bin/sh", "-c", command],
                environment={**self._env(app, release, f"run.{index}", PORT=str(release.port or s.app_port)), **(env or {})},
                labels=labels,
                name=name, stdin_open=attach, tty=tty, user=self._user(image),   # detach=False + stdin_open: StdinOnce, so
                host_config=self._host_config(), detach=not attach)["Id"]   # closing our side ends stdin
            self._join_services(cid, app)
            return cid
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not create the one-off container: {e.explanation}") from None

    def run_attached(self, app: str, release: Release, command: str, image: str,
                     read_stdin: ReadStdin, on_output: Callable[[int, bytes], None],
                     on_started: Callable[[str], None], timeout: float,
                     env: dict[str, str] | None = None, index: int | None = None,
                     terminal: tuple[int, int] | None = None) -> int:
        """Run a one-off with stdin/stdout/stderr attached: `read_stdin(wait)` returns bytes,
        None at end of input, or False when nothing arrived within `wait`; `on_output(stream,
        data)` gets stdout (1) and stderr (2) as they come (with a `terminal`, a pseudo-terminal
        of (columns, lines), both as stream 1). Returns the exit code; the container is removed
        afterwards and killed if the caller goes away or `timeout` passes."""
        index = index or self.next_oneoff_index(app)
        cid = self._oneoff_container(app, release, command, image, index, attach=True, env=env, tty=bool(terminal))
        stop = threading.Event()
        try:
            try:
                sock = self.client.api.attach_socket(cid, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
                raw = getattr(sock, "_sock", sock)
                self.client.api.start(cid)
            except docker.errors.APIError as e:
                raise SchedulerError(f"Could not start the one-off: {e.explanation}") from None
            if terminal:
                self._resize(cid, terminal)
            on_started(f"run.{index}")
            threading.Thread(target=feed_stdin, args=(raw, read_stdin, stop), name=f"run-stdin-{app}",
                             daemon=True).start()
            timed_out = self._relay_output(cid, raw, on_output, stop, timeout, bool(terminal))
            code = int(self.client.api.wait(cid, timeout=30).get("StatusCode", -1))
            if timed_out:
                raise SchedulerError(f"The one-off ran longer than {timeout:.0f} s and was stopped: raise "
                                     "DOCKYARD_RUN_TIMEOUT or use `dockyard run --detach`.")
            return code
        finally:
            stop.set()
            self.remove(cid)

    def _resize(self, cid: str, terminal: tuple[int, int]) -> None:
        """Size the one-off's terminal (the engine's API 1.41 cannot before the start, so a
        command that asks at once may still see 0x0); one that already ended needs none."""
        try:
            self.client.api.resize(cid, height=terminal[1], width=terminal[0])
        except docker.errors.APIError:
            pass

    def _relay_output(self, cid: str, raw: socket.socket, on_output: Callable[[int, bytes], None],
                      stop: threading.Event, timeout: float, tty: bool = False) -> bool:
        """The one-off's stdout and stderr frames (with a `tty`, its terminal's bytes) to
        `on_output` until it ends; killed when the client went away (`stop`) or after `timeout`
        s. True when it was killed for the time."""
        raw.settimeout(1.0)
        deadline = time.monotonic() + timeout
        buf = b""
        try:
            while True:
                if stop.is_set() or time.monotonic() > deadline:
                    self.client.api.kill(cid)
                    return not stop.is_set()
                try:
                    chunk = raw.recv(65536)
                except socket.timeout:
                    continue
                except OSError:
                    return False
                if not chunk:
                    return False
                frames, buf = ([(1, chunk)], b"") if tty else split_frames(buf + chunk)
                for stream, data in frames:
                    try:
                        on_output(stream, data)
                    except Exception:  # noqa: BLE001 - the client went away
                        stop.set()
        finally:
            raw.close()

    def run_detached(self, app: str, release: Release, command: str, image: str,
                     env: dict[str, str] | None = None) -> Instance:
        """Start a one-off in the background; its output goes to the app's logs."""
        index = self.next_oneoff_index(app)
        cid = self._oneoff_container(app, release, command, image, index, attach=False, env=env)
        try:
            self.client.api.start(cid)
        except docker.errors.APIError as e:
            self.remove(cid)
            raise SchedulerError(f"Could not start the one-off: {e.explanation}") from None
        return next(o for o in self.oneoffs(app) if o.container_id == cid)
