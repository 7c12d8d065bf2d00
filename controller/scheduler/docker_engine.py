"""The single-host backend's plumbing: the one Docker engine client, and what every container
it makes shares (labels, environment, limits and hardening, the apps network, the user).

The backend's verbs live beside it, one area per module (docker_host: app instances;
docker_images and docker_build: images; docker_oneoff: one-offs, exec, the release phase);
docker_backend puts them together."""
from __future__ import annotations

import threading
from dataclasses import replace
from typing import Callable

import docker
import docker.errors
import requests

from core.errors import SchedulerError
from core.models import Instance, Limits, Release

from core import isolation
from controller.scheduler.config import SchedulerConfig
from controller.scheduler.docker_parse import Lines, parse_instance
from controller.scheduler.labels import LABEL_APP, LABEL_INSTANCE, LABEL_SERVICE


class DockerEngine:
    """One engine client (made on first use) and the helpers the verb modules share."""

    def __init__(self, config: SchedulerConfig):
        self.config = config
        self._client = None
        self._lock = threading.Lock()

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
        return {LABEL_INSTANCE: self.config.name, LABEL_APP: app, **extra}

    def _filters(self, app: str | None, *labels: str) -> dict:
        """A listing filter: this platform's objects, of one app if given, with extra `k=v` labels."""
        found = [f"{LABEL_INSTANCE}={self.config.name}"]
        if app:
            found.append(f"{LABEL_APP}={app}")
        return {"label": found + list(labels)}

    def _inspect_image(self, ref: str) -> dict | None:
        """The engine's description of an image; None when it has no such image."""
        try:
            return self.client.api.inspect_image(ref)
        except docker.errors.ImageNotFound:
            return None
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not inspect image {ref!r}: {e.explanation}") from None

    def _image_config(self, ref: str) -> dict:
        info = self._inspect_image(ref)
        if info is None:
            raise SchedulerError(f"Could not inspect image {ref!r}: the engine has no such image.")
        return info.get("Config") or {}

    def _list(self, filters: dict) -> list[Instance]:
        """Containers matching a listing filter, in any state, in one call."""
        try:
            rows = self.client.api.containers(all=True, filters=filters)
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not list containers: {e.explanation}") from None
        return [parse_instance(r, self.config.app_port) for r in rows]

    def remove(self, container_id: str) -> None:
        try:
            self.client.api.remove_container(container_id, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as e:
            if "already in progress" in str(e.explanation):
                return   # another process (a deploy, the reconciler) is removing it right now
            raise SchedulerError(f"Could not remove container {container_id[:12]}: {e.explanation}") from None

    # ---- what every app container (instance or one-off) shares ---------------------------
    def _env(self, app: str, release: Release, dyno: str, **extra: str) -> dict[str, str]:
        """The release's config plus what the platform sets for every process."""
        env = dict(release.config)
        env.update(DYNO=dyno, DOCKYARD_APP=app, DOCKYARD_RELEASE=f"v{release.version}", **extra)
        return env

    def _host_config(self, limits: Limits | None = None, **extra) -> dict:
        """Limits and hardening shared by every app container (instances and one-offs): every
        capability dropped (low ports bind by a sysctl of the container's own network
        namespace), a CPU limit, a private /tmp, and the apps network where containers cannot
        reach each other (the router reaches them through their 127.0.0.1 port). No volume is
        ever mounted, so the Docker socket never is. `limits` (ps:limits) override the defaults."""
        limits = limits or Limits()
        mem = f"{limits.memory_mb or self.config.app_memory_mb}m"
        iso = self.config.isolation
        hardening = isolation.host_config_options(iso if limits.cpus is None else replace(iso, cpus=limits.cpus))
        return self.client.api.create_host_config(
            restart_policy={"Name": "no"}, security_opt=["no-new-privileges"], mem_limit=mem,
            memswap_limit=mem, pids_limit=1024, network_mode=self._apps_network(), **hardening,
            log_config={"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}}, **extra)

    def _apps_network(self) -> str:
        """The bridge network for app containers, with inter-container traffic (ICC) off: app
        A cannot reach app B (core/isolation.py): the engine's default bridge when its ICC is
        off, else the instance's own, created once, labelled, shared by all apps. The engine
        does not refuse a second network of the same name created at the same moment
        (several apps starting at once, from several processes), and then refuses the name
        as ambiguous: every process keeps the oldest and removes the others."""
        iso = self.config.isolation
        bridge = self._default_bridge_options() if iso.network == "auto" else None
        name = isolation.apps_network(iso, self.config.name, bridge)
        if name == isolation.DEFAULT_BRIDGE:
            return name
        try:
            found = self._named_networks(name)
            if not found:
                try:
                    self.client.api.create_network(name, driver="bridge", check_duplicate=True,
                                                   options=isolation.NETWORK_OPTIONS,
                                                   labels={LABEL_INSTANCE: self.config.name})
                except docker.errors.APIError as e:
                    if "already exists" not in str(e.explanation):
                        raise SchedulerError(f"Could not create the apps network {name}: {e.explanation}") from None
                found = self._named_networks(name)
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not list the apps network {name}: {e.explanation}") from None
        for net in found[1:]:
            try:
                self.client.api.remove_network(net["Id"])
            except docker.errors.APIError:
                pass   # removed by another process meanwhile
        return name

    def _default_bridge_options(self) -> dict | None:
        """The options of the engine's default bridge (read at every container's creation:
        an engine restarted with other settings is followed), None when it has none. Listed,
        not inspected: an inspection names every container on the bridge (all the apps')."""
        try:
            found = [n for n in self.client.api.networks(names=[isolation.DEFAULT_BRIDGE])
                     if n.get("Name") == isolation.DEFAULT_BRIDGE]
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not list the engine's default bridge: {e.explanation}") from None
        return (found[0].get("Options") or {}) if found else None

    def _named_networks(self, name: str) -> list[dict]:
        """The engine's networks called exactly `name`, oldest first (ties by id)."""
        rows = [n for n in self.client.api.networks(names=[name]) if n.get("Name") == name]
        return sorted(rows, key=lambda n: (n.get("Created", ""), n["Id"]))

    def _user(self, image: str) -> str | None:
        """The image's USER if it declares one, else `app` (uid 1000) for stack-based images."""
        def layers(info: dict | None) -> list[str]:
            return ((info or {}).get("RootFS") or {}).get("Layers") or []

        info = self._inspect_image(image)    # once: its layers and its config
        if info is None:
            raise SchedulerError(f"Could not inspect image {image!r}: the engine has no such image.")
        from_stack = isolation.built_from(layers(info), layers(self._inspect_image(self.config.stack_image)))
        return isolation.container_user((info.get("Config") or {}).get("User") or "", self.config.isolation,
                                        from_stack=from_stack)

    def _follow_output(self, cid: str, on_line: Callable[[str], None], name: str) -> threading.Thread:
        """Stream a started container's output, line by line, to `on_line` in a thread of its own
        (joined by the caller once the container has exited)."""
        def stream_output() -> None:
            lines = Lines(on_line)
            try:
                for chunk in self.client.api.logs(cid, stream=True, follow=True):
                    lines.feed(chunk.decode("utf-8", "replace"))
            except (docker.errors.DockerException, requests.exceptions.RequestException):
                pass   # the container was killed or removed: its exit status says what happened
            lines.flush()

        reader = threading.Thread(target=stream_output, name=name, daemon=True)
        reader.start()
        return reader

    # ---- add-on networks (docker_services.py makes them) ---------------------------------
    def _networks(self, service: str | None = None, app: str | None = None) -> list[str]:
        labels = [f"{LABEL_INSTANCE}={self.config.name}", LABEL_SERVICE if service is None
                  else f"{LABEL_SERVICE}={service}", LABEL_APP if app is None else f"{LABEL_APP}={app}"]
        try:
            return sorted(n["Name"] for n in self.client.api.networks(filters={"label": labels}))
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not list networks: {e.explanation}") from None

    def _join(self, net: str, container: str, aliases: list[str] | None = None, leaving_ok: bool = False) -> None:
        """`container` joins `net`; with `leaving_ok`, one the engine is removing is let be (an
        app's instance retired by a deploy or replaced after a crash: it serves no more)."""
        try:
            self.client.api.connect_container_to_network(container, net, aliases=aliases)
        except docker.errors.NotFound:
            pass     # the container went away meanwhile
        except docker.errors.APIError as e:
            said = str(e.explanation)
            if leaving_ok and "marked for removal" in said:
                return
            if "already exists" not in said and "already attached" not in said:
                raise SchedulerError(f"Could not connect {container[:24]} to {net}: {e.explanation}") from None

    def _join_services(self, container_id: str, app: str) -> None:
        """A new app container joins the networks of the add-ons attached to its app."""
        for net in self._networks(app=app):
            self._join(net, container_id)
