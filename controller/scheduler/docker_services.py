"""Single-host backend: backing services (add-ons). Each add-on is one container of its
service image with its data in a named volume, and one internal network per attached app:
the add-on's container and that app's containers join it, so an app reaches only the add-ons
attached to it (under the add-on's name) and two apps sharing an add-on still do not reach
each other. The volume outlives the container: recreating it (after a crash the reconciler
repairs, an engine restart, `make down && make up`) finds the data where it was."""
from __future__ import annotations

import select
import threading
import time
from typing import BinaryIO, Callable

import docker.errors

from core.errors import SchedulerError
from core.models import LogLine, ServiceStatus

from controller.scheduler.docker_engine import DockerEngine
from controller.scheduler.docker_oneoff import feed_stdin
from controller.scheduler.docker_parse import parse_logs, split_frames
from controller.scheduler.labels import LABEL_APP, LABEL_INSTANCE, LABEL_SERVICE, LABEL_SERVICE_KIND, SERVICE_PORTS

_CHUNK = 1 << 16


class DockerServices(DockerEngine):
    # ---- names ---------------------------------------------------------------------------
    def _service_container(self, name: str) -> str:
        return f"{self.config.name}.addon.{name}"

    def _service_volume(self, name: str) -> str:
        return f"{self.config.name}-addon-{name}"

    def _service_network(self, name: str, app: str) -> str:
        return f"{self.config.name}-addon-{name}-{app}"

    def _home_network(self, name: str) -> str:
        return f"{self.config.name}-addon-{name}"

    def _network(self, net: str, labels: dict) -> str:
        """An internal bridge (no route out): created once, labelled."""
        try:
            self.client.api.inspect_network(net)
        except docker.errors.NotFound:
            try:
                self.client.api.create_network(net, driver="bridge", internal=True, check_duplicate=True,
                                               labels={LABEL_INSTANCE: self.config.name, **labels})
            except docker.errors.APIError as e:
                if "already exists" not in str(e.explanation):
                    raise SchedulerError(f"Could not create the network {net}: {e.explanation}") from None
        return net

    # ---- life cycle ----------------------------------------------------------------------
    def start_service(self, name: str, kind: str, image: str, memory_mb: int,
                      env: dict[str, str] | None = None, new: bool = False) -> ServiceStatus:
        api = self.client.api
        cname = self._service_container(name)
        status = self.service_status(name)
        if status.state == "missing":
            labels = {LABEL_INSTANCE: self.config.name, LABEL_SERVICE: name, LABEL_SERVICE_KIND: kind}
            lost = SchedulerError(f"The data volume of {name} is gone (a lost node or engine state?): it is not "
                                  "started empty. Restore its newest backup into a new add-on with "
                                  "`dockyard pg:backups:restore`.")
            try:
                try:
                    found = api.inspect_volume(self._service_volume(name))
                except docker.errors.NotFound:
                    if not new:   # an empty service in place of a lost one would look healthy
                        raise lost from None
                    found = api.create_volume(self._service_volume(name), labels=labels)
                home = self._network(self._home_network(name), {LABEL_SERVICE: name})
                mem = f"{memory_mb}m"
                host_config = api.create_host_config(
                    restart_policy={"Name": "unless-stopped"}, security_opt=["no-new-privileges"],
                    cap_drop=["ALL"], mem_limit=mem, memswap_limit=mem, pids_limit=512,
                    network_mode=home, binds={self._service_volume(name): {"bind": "/data", "mode": "rw"}},
                    shm_size=64 << 20, log_config={"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}})
                api.create_container(image=image, name=cname, labels=labels, environment=env or {},
                                     host_config=host_config, detach=True,
                                     networking_config=api.create_networking_config(
                                         {home: api.create_endpoint_config(aliases=[name])}))
                # The engine makes a named volume that is missing when a container names it: one
                # lost since the look above is an empty new one now, without the labels the
                # platform gives its volumes (a volume in use cannot go, so this look is the last
                # needed; its CreatedAt is its folder's mtime, which the image's files copied in change)
                now = api.inspect_volume(self._service_volume(name))
                if found.get("Labels") and now.get("Labels") != found.get("Labels"):
                    api.remove_container(cname, force=True)
                    api.remove_volume(self._service_volume(name), force=True)
                    raise lost
            except docker.errors.APIError as e:
                raise SchedulerError(f"Could not create the add-on {name}: {e.explanation}") from None
            for net in self._networks(service=name):
                self._join(net, cname, [name])
        elif status.state == "running":
            return status
        try:
            api.start(cname)
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not start the add-on {name}: {e.explanation}") from None
        return self.service_status(name)

    def service_status(self, name: str) -> ServiceStatus:
        try:
            data = self.client.api.inspect_container(self._service_container(name))
        except docker.errors.NotFound:
            return ServiceStatus(state="missing")
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not inspect the add-on {name}: {e.explanation}") from None
        state = data.get("State") or {}
        status = state.get("Status", "unknown")
        ended = status in ("exited", "dead", "restarting")
        return ServiceStatus(state=status, container_id=data["Id"],
                             exit_code=int(state.get("ExitCode", -1)) if ended else None,
                             oom_killed=bool(state.get("OOMKilled")) if ended else False,
                             restart_count=int(data.get("RestartCount") or 0), started_at=state.get("StartedAt"))

    def service_memory(self, name: str) -> int | None:
        """Bytes the add-on uses now (the engine's figure less the page cache), None if it is down."""
        try:
            stats = self.client.api.stats(self._service_container(name), stream=False)
        except docker.errors.APIError:
            return None
        mem = stats.get("memory_stats") or {}
        if "usage" not in mem:
            return None
        cache = (mem.get("stats") or {}).get("total_inactive_file", (mem.get("stats") or {}).get("cache", 0))
        return int(mem["usage"]) - int(cache or 0)

    def set_service_memory(self, name: str, memory_mb: int) -> None:
        mem = memory_mb << 20
        try:
            self.client.api.update_container(self._service_container(name), mem_limit=mem, memswap_limit=mem)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not change the memory limit of {name}: {e.explanation}") from None

    def service_logs(self, name: str, tail: int = 20) -> list[LogLine]:
        try:
            raw = self.client.api.logs(self._service_container(name), stdout=True, stderr=True,
                                       timestamps=True, tail=tail)
        except docker.errors.NotFound:
            return []
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not read the logs of {name}: {e.explanation}") from None
        return parse_logs(raw)

    def restart_service(self, name: str) -> None:
        try:
            self.client.api.restart(self._service_container(name), timeout=self.config.stop_grace)
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not restart the add-on {name}: {e.explanation}") from None

    def remove_service(self, name: str, keep_data: bool = False) -> None:
        """Remove the add-on's container and networks, and its volume unless `keep_data`."""
        api = self.client.api
        try:
            api.stop(self._service_container(name), timeout=self.config.stop_grace)
        except docker.errors.APIError:
            pass
        self.remove(self._service_container(name))
        for net in self._networks(service=name) + [self._home_network(name)]:
            self._remove_network(net)
        if not keep_data:
            try:
                api.remove_volume(self._service_volume(name), force=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as e:
                raise SchedulerError(f"Could not remove the data of {name}: {e.explanation}") from None

    def services(self) -> dict[str, ServiceStatus]:
        """Every add-on container of this platform, by add-on name."""
        found = {}
        try:
            rows = self.client.api.containers(all=True, filters={"label": [
                f"{LABEL_INSTANCE}={self.config.name}", LABEL_SERVICE]})
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not list add-ons: {e.explanation}") from None
        for row in rows:
            labels = row.get("Labels") or {}
            if LABEL_APP in labels:   # an app's container: it may inherit an add-on's label from its image
                continue
            name = labels.get(LABEL_SERVICE, "")
            found[name] = ServiceStatus(state=row.get("State") or "unknown", container_id=row["Id"])
        return found

    # ---- reachability --------------------------------------------------------------------
    def _remove_network(self, net: str) -> None:
        api = self.client.api
        try:
            for cid in (api.inspect_network(net).get("Containers") or {}):
                try:
                    api.disconnect_container_from_network(cid, net, force=True)
                except docker.errors.APIError:
                    pass
            api.remove_network(net)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not remove the network {net}: {e.explanation}") from None

    def connect_service(self, name: str, app: str) -> None:
        """Let `app` reach the add-on: its network with the add-on, joined by the add-on and by
        every container of the app now (new ones join it as they start)."""
        net = self._network(self._service_network(name, app), {LABEL_SERVICE: name, LABEL_APP: app})
        self._join(net, self._service_container(name), [name])
        for cid in self._app_containers(app):
            self._join(net, cid, leaving_ok=True)

    def disconnect_service(self, name: str, app: str) -> None:
        self._remove_network(self._service_network(name, app))

    def attached_ports(self, app: str) -> dict[str, int]:
        """The add-ons attached to `app` now (their network with it exists), by name, with the
        port of their kind: what its forwarders on a cluster relay (swarm_addons.py)."""
        try:
            nets = self.client.api.networks(filters={"label": [f"{LABEL_INSTANCE}={self.config.name}",
                                                               LABEL_SERVICE, f"{LABEL_APP}={app}"]})
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not list networks: {e.explanation}") from None
        found = {}
        for net in nets:
            name = (net.get("Labels") or {}).get(LABEL_SERVICE, "")
            port = self._service_port(name)
            if name and port:
                found[name] = port
        return found

    def _service_port(self, name: str) -> int | None:
        try:
            labels = self.client.api.inspect_container(self._service_container(name))["Config"]["Labels"] or {}
        except (docker.errors.APIError, KeyError):
            return None
        return SERVICE_PORTS.get(labels.get(LABEL_SERVICE_KIND, ""))

    def service_address(self, name: str, app: str) -> tuple[str, int] | None:
        """Where this host reaches the add-on `name` for `app` (its address on its own network,
        its kind's port), or None unless it is attached to `app` and running: the add-on
        gateway admits a forwarder's connection only then."""
        try:
            self.client.api.inspect_network(self._service_network(name, app))
            data = self.client.api.inspect_container(self._service_container(name))
        except docker.errors.APIError:
            return None
        if not (data.get("State") or {}).get("Running"):
            return None
        home = ((data.get("NetworkSettings") or {}).get("Networks") or {}).get(self._home_network(name)) or {}
        port = SERVICE_PORTS.get(((data.get("Config") or {}).get("Labels") or {}).get(LABEL_SERVICE_KIND, ""))
        return (home["IPAddress"], port) if home.get("IPAddress") and port else None

    def _app_containers(self, app: str) -> list[str]:
        try:
            rows = self.client.api.containers(all=True, filters=self._filters(app))
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not list containers: {e.explanation}") from None
        return [r["Id"] for r in rows if LABEL_SERVICE not in (r.get("Labels") or {})]

    # ---- commands inside the service -----------------------------------------------------
    def service_exec(self, name: str, command: list[str], stdin: BinaryIO | bytes | None = None,
                     stdout: BinaryIO | None = None, timeout: float = 3600) -> tuple[int, bytes]:
        """Run `command` in the add-on's container: `stdin` (bytes or a file) is its input,
        `stdout` (a file) gets its output as it comes. Returns (exit code, the output not
        written to `stdout`: stderr, and stdout too when no file was given)."""
        source = stdin.read if hasattr(stdin, "read") else _reader(stdin)
        kept: list[bytes] = []

        def read_stdin(_wait: float):
            data = source(_CHUNK)
            return data if data else None

        def on_output(stream: int, data: bytes) -> None:
            if stream == 1 and stdout is not None:
                stdout.write(data)
            elif sum(map(len, kept)) < 1 << 20:
                kept.append(data)

        code = self.service_exec_attached(name, command, read_stdin, on_output, timeout)
        return code, b"".join(kept)

    def service_exec_attached(self, name: str, command: list[str], read_stdin: Callable[[float], bytes | None | bool],
                              on_output: Callable[[int, bytes], None], timeout: float,
                              env: dict[str, str] | None = None) -> int:
        api = self.client.api
        try:
            ex = api.exec_create(self._service_container(name), command, stdin=True, stdout=True, stderr=True,
                                 environment=env)
            sock = api.exec_start(ex["Id"], socket=True)
        except docker.errors.NotFound:
            raise SchedulerError(f"The add-on {name} is not running: see `dockyard addons:info {name}`.") from None
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not run a command in {name}: {e.explanation}") from None
        raw = getattr(sock, "_sock", sock)
        stop = threading.Event()
        feeder = threading.Thread(target=feed_stdin, args=(raw, read_stdin, stop), name=f"exec-stdin-{name}", daemon=True)
        feeder.start()
        deadline = time.monotonic() + timeout
        buf = b""
        try:
            while not stop.is_set():
                if time.monotonic() > deadline:
                    raise SchedulerError(f"The command in {name} ran longer than {timeout:.0f} s and was stopped.")
                if not select.select([raw], [], [], 1.0)[0]:
                    continue
                chunk = raw.recv(_CHUNK)
                if not chunk:
                    break
                frames, buf = split_frames(buf + chunk)
                for stream, data in frames:
                    on_output(stream, data)
        except OSError:
            pass
        finally:
            stop.set()
            raw.close()
        for _ in range(50):    # the exit code is set a moment after the stream ends
            info = api.exec_inspect(ex["Id"])
            if not info.get("Running"):
                return int(info.get("ExitCode") if info.get("ExitCode") is not None else -1)
            time.sleep(0.1)
        return -1


def _reader(data: bytes | None):
    view = memoryview(data or b"")
    pos = 0

    def read(n: int) -> bytes:
        nonlocal pos
        chunk = bytes(view[pos:pos + n])
        pos += len(chunk)
        return chunk
    return read

