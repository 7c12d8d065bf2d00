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
from dataclasses import replace
from typing import Callable

import docker
import docker.errors
import requests

from core.errors import SchedulerError
from core.models import Instance, LogLine

from controller.scheduler.docker_oneoff import DockerOneoffs
from controller.scheduler.docker_parse import parse_instance, parse_logs
from controller.scheduler.labels import LABEL_APP, LABEL_INSTANCE, LABEL_ONEOFF
from controller.scheduler.swarm_parse import node_address

NODE_PREFIX = "node:"    # ids of one-offs on a node's engine: node:ADDRESS/CONTAINER
LIST_TIMEOUT = 3         # seconds a node's engine has to list its one-offs


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


# ---- the attached one-offs running on the nodes: listed (`ps`), stopped, read -------------------
def node_container_id(address: str, cid: str) -> str:
    return f"{NODE_PREFIX}{address}/{cid}"


def split_node_container(container_id: str) -> tuple[str, str] | None:
    """Pure: (node address, container id) of a node one-off's id, else None."""
    if not container_id.startswith(NODE_PREFIX):
        return None
    address, sep, cid = container_id[len(NODE_PREFIX):].partition("/")
    return (address, cid) if sep and address and cid else None


def on_node(row: dict, hostname: str, address: str, app_port: int) -> Instance:
    """Pure: a node engine's listing row of a one-off -> an Instance of that node."""
    inst = parse_instance(row, app_port)
    return replace(inst, container_id=node_container_id(address, inst.container_id), node=hostname, address=address)


def list_node_oneoffs(config, nodes: list, app: str | None, skip: set[str]) -> list[Instance]:
    """The `run` one-offs this platform runs on the nodes' engines now (attached ones: detached
    ones are Swarm services, swarm_jobs.py), asking each ready node not in `skip` (unreachable);
    a node that does not answer in time shows none until it does."""
    labels = [f"{LABEL_INSTANCE}={config.name}", f"{LABEL_ONEOFF}=run"] + ([f"{LABEL_APP}={app}"] if app else [])
    found = []
    for node in nodes:
        address = node_address(node)
        hostname = (node.get("Description") or {}).get("Hostname", "")
        if not address or address in skip or (node.get("Status") or {}).get("State") != "ready":
            continue
        try:
            with docker.APIClient(base_url=f"tcp://{address}:2375", timeout=LIST_TIMEOUT) as api:
                rows = api.containers(all=True, filters={"label": labels})
        except (docker.errors.DockerException, requests.RequestException):
            continue
        # a detached one-off's task container carries the same labels: swarm_jobs lists it
        found += [on_node(r, hostname, address, config.app_port) for r in rows
                  if "com.docker.swarm.task.id" not in (r.get("Labels") or {})]
    return found


class NodeContainers:
    """Stop, remove and read a one-off on a node's engine by its node id (the scheduler's verbs
    for an instance id, routed by selector.py)."""

    def __init__(self, config):
        self.config = config

    def _engine(self, container_id: str) -> tuple[docker.APIClient, str]:
        found = split_node_container(container_id)
        if found is None:
            raise SchedulerError(f"{container_id[:40]!r} is not a one-off on a node.")
        return docker.APIClient(base_url=f"tcp://{found[0]}:2375", timeout=self.config.stop_grace + 30), found[1]

    def stop(self, container_id: str, grace: int | None = None, remove: bool = True) -> None:
        api, cid = self._engine(container_id)
        with api:
            try:
                api.stop(cid, timeout=self.config.stop_grace if grace is None else grace)
                if remove:
                    api.remove_container(cid, force=True)
            except docker.errors.NotFound:
                pass
            except (docker.errors.APIError, requests.RequestException) as e:
                raise SchedulerError(f"Could not stop the one-off on node {container_id[len(NODE_PREFIX):].split('/')[0]}: "
                                     f"{e}: see `dockyard nodes`.") from None

    def remove(self, container_id: str) -> None:
        self.stop(container_id, 0, remove=True)

    def get(self, container_id: str) -> Instance | None:
        api, cid = self._engine(container_id)
        with api:
            try:
                data = api.inspect_container(cid)
            except (docker.errors.DockerException, requests.RequestException):
                return None
        inst = parse_instance(data, self.config.app_port)
        address = split_node_container(container_id)[0]
        return replace(inst, container_id=container_id, address=address)

    def logs(self, container_id: str, tail: int | str = 100, since: int | None = None) -> list[LogLine]:
        api, cid = self._engine(container_id)
        with api:
            try:
                return parse_logs(api.logs(cid, stdout=True, stderr=True, timestamps=True, tail=tail, since=since))
            except (docker.errors.DockerException, requests.RequestException):
                return []
