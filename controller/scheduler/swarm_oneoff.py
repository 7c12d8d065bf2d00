"""Cluster backend: one-offs that run to completion while the caller waits (`dockyard run`
attached, the release phase, app.json's postdeploy script) on a node of the swarm instead of
the platform host. A node is picked as instances are placed (the ready, active node with the
fewest instances and one-offs running), its engine pulls the release's image from the
platform's registry, and the one-off runs there with the same isolation, limits and user as
on one host, attached through that engine's API so input, output and the exit code pass as
before. Add-ons run on the platform host: a one-off of an app with add-ons joins the app's
overlay network, where the add-ons' forwarders answer under the add-ons' names
(swarm_addons.py), as the app's instances reach them."""
from __future__ import annotations

import threading
from typing import Callable

import docker
import docker.errors
import requests

from core.errors import SchedulerError

from controller.scheduler.docker_oneoff import DockerOneoffs


def pick_node(nodes: list[dict], running: dict[str, int]) -> dict | None:
    """Pure: the node (a parse_nodes row) a one-off goes to: ready and active, fewest instances
    plus one-offs running there, then by name; None when no node can take one."""
    usable = [n for n in nodes if n["state"] == "ready" and n["availability"] == "active" and n["address"]]
    if not usable:
        return None
    return min(usable, key=lambda n: (n["instances"] + running.get(n["hostname"], 0), n["hostname"]))


class NodeOneoffs(DockerOneoffs):
    """DockerOneoffs on one node's engine (tcp://ADDRESS:2375); the image's user is decided
    from the platform host's copy of the image (`user_of`), as it is for every app container."""

    def __init__(self, config, hostname: str, address: str, user_of: Callable[[str], str | None],
                 network: str | None = None):
        super().__init__(config)
        self.hostname, self.address, self._user_of, self.network = hostname, address, user_of, network

    @property
    def client(self):
        with self._lock:
            if self._client is None:
                self._client = docker.DockerClient(base_url=f"tcp://{self.address}:2375", timeout=300)
            return self._client

    def _user(self, image: str) -> str | None:
        return self._user_of(image)

    def _join_services(self, container_id: str, app: str) -> None:
        """The app's overlay network, when the app has add-ons: their forwarders answer there."""
        if self.network:
            self._join(self.network, container_id)

    def pull(self, ref: str) -> None:
        """The node's engine pulls `ref` from the platform's registry (kept for the next one-off)."""
        repo, _, tag = ref.rpartition(":")
        try:
            self.client.api.inspect_image(ref)
            return
        except docker.errors.ImageNotFound:
            pass
        except (docker.errors.APIError, requests.RequestException) as e:
            raise SchedulerError(f"Node {self.hostname} does not answer ({e.__class__.__name__}): "
                                 "see `dockyard nodes`.") from None
        try:
            for line in self.client.api.pull(repo, tag, stream=True, decode=True):
                if line.get("error"):
                    raise SchedulerError(f"Node {self.hostname} could not pull {ref}: {line['error']}: is the "
                                         "platform's `registry` process running (`make status`)?")
        except (docker.errors.APIError, requests.RequestException) as e:
            raise SchedulerError(f"Node {self.hostname} could not pull {ref}: {e}") from None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


class OneoffPlaces:
    """How many one-offs the platform runs on each node now (pick_node counts them)."""

    def __init__(self) -> None:
        self.running: dict[str, int] = {}
        self.lock = threading.Lock()

    def take(self, nodes: list[dict]) -> dict:
        with self.lock:
            node = pick_node(nodes, self.running)
            if node is None:
                raise SchedulerError("No node of the cluster can take a one-off (none is ready and active): "
                                     "see `dockyard nodes`.")
            self.running[node["hostname"]] = self.running.get(node["hostname"], 0) + 1
            return node

    def give_back(self, hostname: str) -> None:
        with self.lock:
            self.running[hostname] = max(0, self.running.get(hostname, 0) - 1)
