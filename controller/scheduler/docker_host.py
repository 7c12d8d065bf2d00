"""Single-host backend: app instances as containers of the one engine, found by label."""
from __future__ import annotations

import secrets
import time
from typing import Callable

import docker
import docker.errors
import requests

from core.errors import SchedulerError
from core.models import Crash, Instance, Limits, LogLine, Release

from controller.scheduler.docker_engine import DockerEngine
from controller.scheduler.docker_parse import (DEPLOY_PHASES, OOM_PAIRING, is_leftover, parse_crashes, parse_instance,
                                               parse_logs)
from controller.scheduler.labels import (LABEL_APP, LABEL_BUILD, LABEL_INDEX, LABEL_ONEOFF, LABEL_PORT, LABEL_PROCESS,
                                           LABEL_RELEASE, LABEL_STANDBY)


WATCH_WINDOW = 2.0   # seconds each engine events request covers


class DockerHost(DockerEngine):
    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except (docker.errors.DockerException, SchedulerError):
            return False

    def network_subnets(self) -> list[str]:
        try:
            nets = self.client.api.networks()
        except (docker.errors.DockerException, requests.exceptions.RequestException) as e:
            raise SchedulerError(f"Could not list the engine's networks: {e}") from None
        return sorted({c["Subnet"] for n in nets for c in ((n.get("IPAM") or {}).get("Config") or [])
                       if c.get("Subnet")})

    def start(self, app: str, release: Release, process: str, index: int, command: str | None,
              image: str, limits: Limits | None = None) -> Instance:
        """Create and start one instance. It starts with restart policy `no`, so a crash
        during its health check is final; `make_durable` switches it to `unless-stopped`."""
        return self.start_prepared(self._create(app, release, process, index, command, image, limits))

    def prepare(self, app: str, release: Release, process: str, index: int, command: str | None,
                image: str, limits: Limits | None, spec: str) -> Instance | None:
        """Create the instance as `start` does (user, limits, networks, add-ons joined), not started."""
        cid = self._create(app, release, process, index, command, image, limits, {LABEL_STANDBY: spec})
        return self.get(cid)

    def standbys(self, app: str | None = None) -> list[Instance]:
        # a standby keeps its label once started; only the never started ones are standbys
        return [i for i in self._list(self._filters(app, LABEL_STANDBY)) if i.standby]

    def start_prepared(self, container_id: str) -> Instance:
        try:
            self.client.api.start(container_id)
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not start container {container_id[:12]}: {e.explanation}") from None
        inst = self.get(container_id)
        if inst is None:
            raise SchedulerError(f"Container {container_id[:12]} vanished right after it started.")
        return inst

    def _create(self, app: str, release: Release, process: str, index: int, command: str | None,
                image: str, limits: Limits | None, extra_labels: dict[str, str] | None = None) -> str:
        s = self.config
        port = release.port or s.app_port      # the port the image EXPOSEs, else $PORT's default
        env = self._env(app, release, f"{process}.{index}", PORT=str(port))
        name = f"{s.name}.{app}.{process}.{index}.v{release.version}.{secrets.token_hex(2)}"
        labels = self._labels(app, **{LABEL_RELEASE: str(release.version), LABEL_PROCESS: process,
                                      LABEL_INDEX: str(index), LABEL_PORT: str(port)}, **(extra_labels or {}))
        web = process == "web"
        try:
            host_config = self._host_config(
                limits, port_bindings={f"{port}/tcp": ("127.0.0.1", None)} if web else None)
            created = self.client.api.create_container(
                image=image, user=self._user(image),
                command=["/bin/sh", "-c", command] if command else None,
                name=name, environment=env, labels=labels,
                ports=[port] if web else None,
                host_config=host_config, detach=True,
            )
            self._join_services(created["Id"], app)
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not start {process}.{index} of {app}: {e.explanation}") from None
        return created["Id"]

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
        return parse_instance(attrs, self.config.app_port)

    def remove_leftovers(self, app: str) -> int:
        try:
            rows = [c for label in (LABEL_BUILD, *(f"{LABEL_ONEOFF}={p}" for p in DEPLOY_PHASES))
                    for c in self.client.api.containers(all=True, filters=self._filters(app, label))]
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not list containers: {e.explanation}") from None
        found = {c["Id"] for c in rows if is_leftover(c.get("Labels") or {})}
        for cid in found:
            self.remove(cid)
        for net in self._networks_of_builds(app):   # each build step had one, empty once it is gone
            try:
                self.client.api.remove_network(net)
            except docker.errors.APIError:
                pass   # still in use or already gone: the next sweep tries again
        return len(found)

    def apps_with_leftovers(self) -> set[str]:
        try:
            rows = self.client.api.containers(all=True, filters=self._filters(None))
            nets = self.client.api.networks(filters=self._filters(None, LABEL_BUILD))
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not list containers: {e.explanation}") from None
        labels = [c.get("Labels") or {} for c in rows if is_leftover(c.get("Labels") or {})]
        labels += [n.get("Labels") or {} for n in nets]
        return {found for found in (lb.get(LABEL_APP) for lb in labels) if found}

    def _networks_of_builds(self, app: str) -> list[str]:
        try:
            return [n["Name"] for n in self.client.api.networks(filters=self._filters(app, LABEL_BUILD))]
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not list networks: {e.explanation}") from None

    def crashes(self, since: float, until: float) -> list[Crash]:
        filters = {"type": "container", "event": ["die", "oom"], **self._filters(None, LABEL_PROCESS)}
        try:    # the OOM reports on either side of the window's exits too (parse_crashes)
            events = list(self.client.api.events(since=since - OOM_PAIRING, until=min(until + OOM_PAIRING, time.time()),
                                                 filters=filters, decode=True))
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not read the engine's events: {e.explanation}") from None
        return [c for c in parse_crashes(events, since) if c.at < until]

    def watch(self, on_change: Callable[[str], None], stopped: Callable[[], bool]) -> None:
        filters = {"type": "container", "event": ["start", "die"], **self._filters(None, LABEL_PROCESS)}
        since = time.time()
        while not stopped():
            # bounded windows, back to back: `stopped` is checked at least every window, and
            # an engine that went away is asked again at the next one
            until = since + WATCH_WINDOW
            try:
                for event in self.client.api.events(since=since, until=until, filters=filters, decode=True):
                    on_change(str(event.get("id") or ""))
            except (docker.errors.DockerException, requests.RequestException, SchedulerError):
                pass
            time.sleep(max(0.0, until - time.time()))
            since = until

    def instances(self, app: str | None = None) -> list[Instance]:
        """All of this platform's app containers (optionally one app's), found by label, in one call."""
        # only app instances carry a process label (build and one-off containers do not)
        found = [i for i in self._list(self._filters(app, LABEL_PROCESS)) if not i.standby]
        return sorted(found, key=lambda i: (i.app, i.process, i.index, i.version))

    def stop(self, container_id: str, grace: int | None = None, remove: bool = True) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds; then remove the container."""
        grace = self.config.stop_grace if grace is None else grace
        try:
            self.client.api.update_container(container_id, restart_policy={"Name": "no"})
            self.client.api.stop(container_id, timeout=grace)
        except docker.errors.NotFound:
            return
        except docker.errors.APIError:
            pass  # already stopping/dead: removal below settles it
        if remove:
            self.remove(container_id)

    def logs(self, container_id: str, tail: int | str = 100, since: int | None = None) -> list[LogLine]:
        try:
            raw = self.client.api.logs(container_id, stdout=True, stderr=True, timestamps=True,
                                       tail=tail, since=since)
        except docker.errors.NotFound:
            return []
        except docker.errors.APIError as e:
            if e.status_code == 409:    # being removed (its lines were kept first): as good as gone
                return []
            raise SchedulerError(f"Could not read logs: {e.explanation}") from None
        return parse_logs(raw)
