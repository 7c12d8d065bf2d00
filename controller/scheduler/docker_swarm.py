"""Cluster backend: each app instance is a Swarm service of one replica on the cluster's nodes.

Why one service per instance (not one per process type): the platform's rollout starts,
health-checks, routes and retires instances one by one, and the reconciler repairs them by
(process, index). A service of one task keeps that unit while Swarm still does the placing
(its scheduler puts a new task on the node with the fewest tasks, so instances spread over
nodes), the restarting, and the rescheduling when a node is lost. Web tasks publish $PORT in
host mode (a dynamic port on their node); the router reaches them at the node's address.
Each app's tasks share an overlay network of their own, so apps cannot reach each other.

Images are built on the platform's host (docker_build), pushed to the platform's registry and
run by the nodes from there. Dockerfile builds run on the nodes and push from there (swarm_build.py)."""
from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import replace
from typing import Callable

import docker
import docker.errors
import docker.types
import requests

from core.errors import Conflict, NotFound, SchedulerError
from core.models import Crash, Instance, Limits, LogLine, Release

from controller.scheduler.registry_gc import await_registry
from controller.scheduler.config import SchedulerConfig
from controller.scheduler.docker_engine import DockerEngine
from controller.scheduler.docker_host import WATCH_WINDOW
from controller.scheduler.docker_parse import parse_logs
from controller.scheduler.labels import LABEL_APP, LABEL_INDEX, LABEL_INSTANCE, LABEL_PROCESS, LABEL_RELEASE
from controller.scheduler.swarm_ports import LABEL_TASK, TaskPorts
from controller.scheduler.swarm_reach import FRESH_LIMIT, LOST_NOW, STALE_LIMIT, NodeProbe
from controller.scheduler.swarm_parse import (LABEL_DURABLE, LABEL_IMAGE, PREFIX, ReportedExits, parse_nodes, parse_services,
                          node_address, parse_task_exits, service_id, spread_constraints)

NANO = 1_000_000_000
MANAGER_RECHECK = 2.0   # seconds a manager that answered is used before it is asked again
PLACED_WAIT = 3.0       # seconds a start waits for Swarm to put its task on a node
ROUTER_READ = 3.0       # seconds the router's listing waits for a manager before it routes by the last one


class SwarmScheduler(DockerEngine):
    """App instances on the swarm; images from the host's engine through the registry."""

    def __init__(self, config: SchedulerConfig, cluster: dict):
        super().__init__(config)
        self.cluster = cluster
        self._manager = None
        self._manager_url = ""
        self._manager_checked = 0.0
        self._manager_lock = threading.Lock()
        self._place_locks: dict[str, threading.Lock] = {}
        self._pushed: set[str] = set()
        self._push_lock = threading.Lock()
        self._nodes_cache: tuple[float, list] | None = None
        self._exits = ReportedExits()
        self._exits_lock = threading.Lock()
        self._probe = NodeProbe()
        self._ports = TaskPorts(config.app_port, self._task_containers)
        self._router_reader: tuple[str, docker.APIClient] | None = None
        self._listing: tuple[float, list[Instance]] | None = None   # the last full listing (router)
        self._lost_seen = 0.0                                       # the probe's last loss routed by it
        self._addresses: set[str] = set()                           # every node's, as last listed

    def managers(self) -> list[str]:
        """Every manager's engine address the cluster file names (`make cluster MANAGERS=3`
        writes them all; an older file names one)."""
        return list(self.cluster.get("managers") or [self.cluster["manager"]])

    @property
    def manager(self):
        """A client of a manager that answers now: the one used last while it keeps answering
        (looked at again at most every MANAGER_RECHECK s), else the first of the others that
        still holds the swarm's control plane. With three managers, losing one keeps the
        swarm's Raft quorum, and the platform moves to another within seconds."""
        with self._manager_lock:
            now = time.monotonic()
            lost = {f"tcp://{a}:2375" for a in self._probe.unreachable}
            if (self._manager is not None and now - self._manager_checked < MANAGER_RECHECK
                    and self._manager_url not in lost):
                return self._manager
            # a manager this host no longer reaches is asked last (each call would wait for it)
            order = sorted(self.managers(), key=lambda url: (url in lost, url != self._manager_url))
            failures = []
            for url in order:
                try:
                    with docker.APIClient(base_url=url, timeout=3) as probe:
                        if not (probe.info().get("Swarm") or {}).get("ControlAvailable"):
                            failures.append(f"{url}: not a manager of a swarm with a quorum")
                            continue
                except (docker.errors.DockerException, requests.RequestException) as e:
                    failures.append(f"{url}: {e.__class__.__name__}")
                    continue
                if url != self._manager_url or self._manager is None:
                    self._manager, self._manager_url = docker.DockerClient(base_url=url, timeout=60), url
                self._manager_checked = now
                return self._manager
            self._manager = None
            raise SchedulerError(
                f"No swarm manager answers ({'; '.join(failures)}): check the cluster's nodes "
                "(`docker ps` on the platform host for simulated ones, `make cluster`).")

    def ping(self) -> bool:
        try:
            return bool(self.manager.ping())
        except (docker.errors.DockerException, SchedulerError):
            return False

    # ---- images: pushed to the registry once, run by reference from the nodes -------------
    def node_image(self, image: str) -> str:
        """Push `image` (a tag in the host's engine) to the registry; the reference nodes pull."""
        push_repo, _, tag = f"127.0.0.1:{self.config.registry_port}/{image}".rpartition(":")
        node_ref = f"{self.cluster['registry']}/{image}"
        with self._push_lock:
            if node_ref in self._pushed:
                return node_ref
            try:
                await_registry(self.config.registry_port)
                self.client.api.tag(image, push_repo, tag)
                for line in self.client.api.push(push_repo, tag, stream=True, decode=True):
                    if line.get("error"):
                        raise SchedulerError(f"Could not push {image} to the registry: {line['error']}: "
                                             "is the platform's `registry` process running (`make status`)?")
            except docker.errors.APIError as e:
                raise SchedulerError(f"Could not push {image} to the registry: {e.explanation}") from None
            self._pushed.add(node_ref)
        return node_ref

    def mark_pushed(self, node_ref: str) -> None:
        """`node_ref` reached the registry another way (a build on a node pushed it there)."""
        with self._push_lock:
            self._pushed.add(node_ref)

    def _app_network(self, app: str) -> str:
        """The app's own overlay network: its tasks reach each other, other apps' do not.
        Attachable, so a one-off on a node's engine joins it to reach the app's add-ons'
        forwarders (swarm_addons.py)."""
        name = f"{self.config.name}-app-{app}"
        try:
            self.manager.api.inspect_network(name)
        except docker.errors.NotFound:
            try:
                self.manager.api.create_network(name, driver="overlay", check_duplicate=True, attachable=True,
                                                labels={LABEL_INSTANCE: self.config.name, LABEL_APP: app})
            except docker.errors.APIError as e:
                if "already exists" not in str(e.explanation):
                    raise SchedulerError(f"Could not create the network of {app}: {e.explanation}") from None
        return name

    # ---- app instances ----------------------------------------------------------------
    def start(self, app: str, release: Release, process: str, index: int, command: str | None,
              image: str, limits: Limits | None = None) -> Instance:
        s = self.config
        limits = limits or Limits()
        ref = self.node_image(image)
        env = self._env(app, release, f"{process}.{index}", PORT=str(s.app_port))
        name = f"{s.name}-{app}-{process}-{index}-v{release.version}-{secrets.token_hex(2)}"
        labels = self._labels(app, **{LABEL_RELEASE: str(release.version), LABEL_PROCESS: process,
                                      LABEL_INDEX: str(index), LABEL_IMAGE: image, LABEL_DURABLE: "0"})
        iso = s.isolation
        cpus = limits.cpus if limits.cpus is not None else iso.cpus
        # `args` is the image's CMD, as on one host: its ENTRYPOINT (a slug's .profile.d launcher)
        # stays; a swarm `command` would replace it
        spec = docker.types.ContainerSpec(
            ref, args=["/bin/sh", "-c", command] if command else None,
            env=[f"{k}={v}" for k, v in env.items()], user=self._user(image), labels=labels,
            stop_grace_period=s.stop_grace * NANO, cap_drop=["ALL"], cap_add=list(iso.caps) or None,
            mounts=[docker.types.Mount("/tmp", None, type="tmpfs", tmpfs_size=iso.tmp_mb << 20,
                                       tmpfs_mode=0o1777)])
        mem = (limits.memory_mb or s.app_memory_mb) << 20
        template = docker.types.TaskTemplate(
            spec, resources=docker.types.Resources(cpu_limit=int(cpus * NANO) if cpus > 0 else None,
                                                   mem_limit=mem),
            restart_policy=docker.types.RestartPolicy(condition="any", delay=NANO // 2),
            placement=None,
            log_driver=docker.types.DriverConfig("json-file", {"max-size": "10m", "max-file": "3"}))
        ports = {"Ports": [{"Protocol": "tcp", "TargetPort": s.app_port, "PublishMode": "host"}]} \
            if process == "web" else None
        # one placement at a time per app: each sees where the previous one went
        with self._place_locks.setdefault(f"{app}/{process}", threading.Lock()):
            template["Placement"] = docker.types.Placement(
                constraints=self._spread(app, process, release.version) or None)
            try:
                created = self.manager.api.create_service(
                    template, name=name, labels=labels, networks=[self._app_network(app)],
                    endpoint_spec=ports, mode=docker.types.ServiceMode("replicated", 1))
            except docker.errors.APIError as e:
                raise SchedulerError(f"Could not start {process}.{index} of {app} on the swarm: {e.explanation}") from None
            inst = self.get(PREFIX + created["ID"])
            deadline = time.monotonic() + PLACED_WAIT
            while inst is not None and not inst.node and time.monotonic() < deadline:
                time.sleep(0.1)
                inst = self.get(PREFIX + created["ID"])
        if inst is None:
            raise SchedulerError(f"{process}.{index} of {app} vanished right after it started.")
        return inst

    def _spread(self, app: str, process: str, version: int) -> list[str]:
        """Constraints keeping the app's instances of `process` on different nodes (swarm_parse)."""
        try:
            return spread_constraints(self.manager.api.nodes(), self.instances(app), app, process, version)
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not list the swarm's nodes: {e.explanation}") from None

    def make_durable(self, container_id: str) -> None:
        """Swarm restarts a task from the start (changing the restart policy would replace the
        task); until now a crash counts as final, as the service's label says."""
        self._update_labels(service_id(container_id), {LABEL_DURABLE: "1"})

    def _update_spec(self, sid: str, change) -> None:
        """Post the service's own spec back with `change(spec)` applied and nothing else: the
        SDK's update rebuilds the task template, and any change to it replaces the task."""
        api = self.manager.api
        try:
            svc = api.inspect_service(sid)
            spec = svc["Spec"]
            change(spec)
            api._result(api._post_json(api._url("/services/{0}/update", sid), data=spec,
                                       params={"version": svc["Version"]["Index"]}), json=True)
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not update instance {sid[:12]}: {e.explanation}") from None

    def _update_labels(self, sid: str, extra: dict) -> None:
        self._update_spec(sid, lambda spec: spec.__setitem__("Labels", {**(spec.get("Labels") or {}), **extra}))

    def _reader(self) -> docker.APIClient:
        """The manager's API for listings. In the router's process (its probe runs) reads wait at
        most ROUTER_READ s: a manager that lost its leader holds a read until an election ends
        (10-20 s), and meanwhile the router must drop the instances of a node its probe lost, by
        the last listing (`instances`), not send requests into connect timeouts."""
        client = self.manager
        if not self._probe.running:
            return client.api
        url, reader = self._router_reader or ("", None)
        if reader is None or url != self._manager_url:
            if reader is not None:
                reader.close()      # the manager changed: its connections are of no more use
            reader = docker.APIClient(base_url=self._manager_url, timeout=ROUTER_READ)
            self._router_reader = (self._manager_url, reader)
        return reader

    def _snapshot(self, filters: dict, task_filters: dict | None = None) -> tuple[list, list, list]:
        api = self._reader()
        try:
            services = api.services(filters=filters)
            if not services:
                return [], [], []
            nodes = self._nodes()
            tasks = self._ports.fill(services, api.tasks(filters=task_filters),
                                     {n["ID"]: node_address(n) for n in nodes})
            return services, tasks, nodes
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not list the swarm's services: {e.explanation}") from None

    def _task_containers(self, address: str) -> list:
        """The swarm tasks' containers on one node's engine, [] when it does not answer (its
        tasks then stay without a published port: swarm_ports)."""
        try:
            with docker.APIClient(base_url=f"tcp://{address}:2375", timeout=3) as node:
                return node.containers(filters={"label": [LABEL_TASK, LABEL_PROCESS]})
        except (docker.errors.DockerException, requests.RequestException):
            return []

    def _nodes(self) -> list:
        """The swarm's nodes, looked up at most once a second (a deploy's health checks ask
        about each new instance twice a second; node addresses and states change rarely)."""
        now = time.monotonic()
        if self._nodes_cache is None or now - self._nodes_cache[0] > 1.0:
            self._nodes_cache = (now, self._reader().nodes())
            self._addresses = {node_address(n) for n in self._nodes_cache[1]} - {""}
        return self._nodes_cache[1]

    def get(self, container_id: str) -> Instance | None:
        sid = service_id(container_id)
        found = parse_services(*self._snapshot({"id": sid}, {"service": sid}), self.config.app_port)
        return next((i for i in found if service_id(i.container_id) == sid), None)

    def instances(self, app: str | None = None) -> list[Instance]:
        """The app's instances; a node this host does not reach makes its instances
        "unreachable" (swarm_reach). In the router's process, while no manager answers (an
        election), the last listing stands, so routes still follow the probe's view; and a node
        the probe just lost is dropped from the last listing at once, before any manager is asked
        (the lost node can be the manager asked, or the leader whose loss holds every read)."""
        listing, now, lost_at = self._listing, time.monotonic(), self._probe.lost_at
        if (app is None and listing is not None and listing[0] < lost_at and now - listing[0] < FRESH_LIMIT
                and (now - lost_at < LOST_NOW or lost_at > self._lost_seen)):
            self._lost_seen = lost_at     # the first computation after the loss, however late, and any within LOST_NOW
            return sorted(self._probe.doubted(listing[1]), key=lambda i: (i.app, i.process, i.index, i.version))
        try:
            found = parse_services(*self._snapshot(self._filters(app, LABEL_PROCESS)), self.config.app_port)
            if app is None:
                self._listing = (time.monotonic(), found)
        except (SchedulerError, docker.errors.DockerException, requests.RequestException) as e:
            listing = self._listing
            if not self._probe.running or listing is None or time.monotonic() - listing[0] > STALE_LIMIT:
                if isinstance(e, SchedulerError):
                    raise
                raise SchedulerError(f"No swarm manager answers ({e.__class__.__name__}): check the cluster's "
                                     "nodes (`make cluster`).") from None
            found = [i for i in listing[1] if app is None or i.app == app]
        return sorted(self._probe.doubted(found), key=lambda i: (i.app, i.process, i.index, i.version))

    def crashes(self, since: float, until: float) -> list[Crash]:
        """Tasks that exited on their own, each once, also when its node reported it late
        (ReportedExits); whether the kernel killed one for memory is asked of its node's engine
        (its container stays there in the task history)."""
        with self._exits_lock:
            services, tasks, nodes = self._snapshot(self._filters(None, LABEL_PROCESS))
            found = self._exits.new(parse_task_exits(services, tasks, self._exits.start(since), until), since)
        addresses = {n["ID"]: node_address(n) for n in nodes}
        return [replace(crash, oom_killed=self._oom_killed(addresses.get(task.get("NodeID", ""), ""), task))
                for crash, task in found]

    def _oom_killed(self, address: str, task: dict) -> bool:
        cid = (((task.get("Status") or {}).get("ContainerStatus")) or {}).get("ContainerID")
        if not address or not cid:
            return False
        try:
            with docker.APIClient(base_url=f"tcp://{address}:2375", timeout=5) as node:
                return bool(node.inspect_container(cid)["State"].get("OOMKilled"))
        except (docker.errors.DockerException, requests.RequestException, KeyError):
            return False      # the node or the container is gone: an exit code is all there is

    def watch(self, on_change: Callable[[str], None], stopped: Callable[[], bool]) -> None:
        """Call `on_change` at once when a node changes state (the manager reports it down or
        back) or when an app instance's container starts or exits on any node (Swarm restarted
        a task, whose published port changed): the router then drops or follows it without
        waiting for its next pass. One event stream per node's engine and one from the manager
        for the nodes, each in bounded windows; nodes that join are watched from the next window.
        A task's container names no instance id of this backend (a service's): "" each time."""
        changed = lambda: on_change("")   # noqa: E731
        threading.Thread(target=self._probe.watch, args=(lambda: set(self._addresses), changed, stopped),
                         name="swarm-node-probe", daemon=True).start()
        watched: set[str] = set()
        containers = {"type": "container", "event": ["start", "die"], **self._filters(None, LABEL_PROCESS)}
        threading.Thread(target=self._watch_engine, args=(lambda: self._manager_url, {"type": "node"},
                                                           changed, stopped),
                         name="swarm-node-events", daemon=True).start()
        while not stopped():
            try:
                addresses = {f"tcp://{node_address(n)}:2375" for n in self._nodes()}
            except (SchedulerError, docker.errors.DockerException, requests.RequestException):
                addresses = set(watched)
            for url in addresses - watched:
                threading.Thread(target=self._watch_engine,
                                 args=(lambda url=url: url, containers, changed,
                                       lambda url=url: stopped() or url not in watched),
                                 name=f"swarm-events-{url}", daemon=True).start()
            watched.clear()
            watched.update(addresses)
            time.sleep(WATCH_WINDOW)

    def _watch_engine(self, url: Callable[[], str], filters: dict, on_change: Callable[[], None],
                      stopped: Callable[[], bool]) -> None:
        since = time.time()
        while not stopped():
            until = since + WATCH_WINDOW
            try:
                if not url():
                    self.manager   # noqa: B018 - picks the manager that answers
                with docker.APIClient(base_url=url(), timeout=WATCH_WINDOW + 5) as engine:
                    for _event in engine.events(since=since, until=until, filters=filters, decode=True):
                        on_change()
            except (docker.errors.DockerException, requests.RequestException, SchedulerError):
                pass   # a node that is down is asked again at the next window
            time.sleep(max(0.0, until - time.time()))
            since = until

    def stop(self, container_id: str, grace: int | None = None, remove: bool = True) -> None:
        """Swarm stops the task with the service's grace period (DOCKYARD_STOP_GRACE)."""
        sid = service_id(container_id)
        if remove:
            return self.remove(container_id)
        try:
            self._update_spec(sid, lambda spec: spec.__setitem__("Mode", {"Replicated": {"Replicas": 0}}))
        except SchedulerError:
            pass   # being removed by another process: removal settles it

    def remove(self, container_id: str) -> None:
        try:
            self.manager.api.remove_service(service_id(container_id))
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not remove instance {container_id[:18]}: {e.explanation}") from None

    def logs(self, container_id: str, tail: int | str = 100, since: int | None = None) -> list[LogLine]:
        """The service's output from every node its task ran on, oldest first."""
        try:
            raw = self.manager.api.service_logs(service_id(container_id), stdout=True, stderr=True, timestamps=True,
                                                tail=tail, since=since or 0, is_tty=False)
            data = b"".join(raw)
        except docker.errors.NotFound:
            return []
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not read logs: {e.explanation}") from None
        return sorted(parse_logs(data), key=lambda line: line.at)

    def exec(self, container_id: str, command: str, timeout: float) -> tuple[int, str]:
        """Run `command` in the instance's running task, through the engine of its node."""
        inst = self.get(container_id)
        task_container = self._task_container(service_id(container_id))
        if inst is None or not task_container:
            raise SchedulerError("The instance has no running task to run the command in.")
        node = docker.APIClient(base_url=f"tcp://{inst.address}:2375", timeout=timeout)
        try:
            ex = node.exec_create(task_container, ["/bin/sh", "-c", command])
            out = node.exec_start(ex["Id"])
            return int(node.exec_inspect(ex["Id"]).get("ExitCode") or 0), out.decode("utf-8", "replace")
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not run the command: {e.explanation}") from None
        finally:
            node.close()

    def _task_container(self, sid: str) -> str | None:
        for task in self.manager.api.tasks(filters={"service": sid, "desired-state": "running"}):
            cid = ((task.get("Status") or {}).get("ContainerStatus") or {}).get("ContainerID")
            if cid:
                return cid
        return None

    # ---- the cluster's nodes ------------------------------------------------------------
    def _node(self, name: str) -> dict:
        for n in self.manager.api.nodes():
            if name in (n["ID"], (n.get("Description") or {}).get("Hostname")):
                return n
        raise NotFound(f"No node {name!r} in the cluster: `dockyard nodes` lists them.")

    def nodes(self) -> list[dict]:
        """The swarm's nodes as plain records (swarm_parse.parse_nodes)."""
        try:
            return parse_nodes(self.manager.api.nodes(), self.instances())
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not list the swarm's nodes: {e.explanation}") from None

    def set_availability(self, name: str, availability: str) -> dict:
        """active: takes new instances; pause: keeps its instances, takes no new ones; drain:
        Swarm moves everything off it."""
        node = self._node(name)
        spec = dict(node["Spec"], Availability=availability)
        try:
            self.manager.api.update_node(node["ID"], node["Version"]["Index"], spec)
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not set node {name} to {availability}: {e.explanation}") from None
        return self._node(name)

    def remove_node(self, name: str) -> None:
        """Remove a node that is drained or down from the cluster."""
        node = self._node(name)
        down = (node.get("Status") or {}).get("State") == "down"
        if not down and (node.get("Spec") or {}).get("Availability") != "drain":
            raise Conflict(f"Node {name} is up and may run instances.",
                           fix=f"drain it first: `dockyard nodes:drain {name}`")
        if (node.get("Spec") or {}).get("Role") == "manager":
            raise Conflict(f"Node {name} is the swarm's manager; the cluster needs it.")
        try:
            self.manager.api.remove_node(node["ID"], force=True)
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not remove node {name}: {e.explanation}") from None

    def join_command(self) -> list[str]:
        """What a new host runs to join: its wall (the node's containers reach neither its engine
        nor the nodes' network, but the add-on gateway), trust the registry, restart its engine,
        join the swarm. The wall script is scripts/node-firewall.sh, copied there first
        (docs/cluster.md, "Joining a real machine")."""
        try:
            token = self.manager.api.inspect_swarm()["JoinTokens"]["Worker"]
        except (docker.errors.APIError, KeyError) as e:
            raise SchedulerError(f"Could not read the swarm's join token: {e}") from None
        manager = self._manager_url.removeprefix("tcp://").rpartition(":")[0]
        registry = self.cluster["registry"]
        subnet = self.cluster.get("subnet") or "NODES-NETWORK-CIDR"
        gateway = f"{registry.rpartition(':')[0]}:{self.config.addon_gateway_port}"
        return [f"/usr/local/sbin/dockyard-node-firewall {subnet} {gateway}",
                f"echo '{{\"insecure-registries\": [\"{registry}\"]}}' > /etc/docker/daemon.json",
                "systemctl restart docker",
                f"docker swarm join --token {token} {manager}:2377"]


def load_cluster(path) -> dict | None:
    """The cluster file `make cluster` writes, or None when there is none."""
    try:
        data = json.loads(path.read_text())
        return data if data.get("manager") and data.get("registry") else None
    except (OSError, ValueError, AttributeError):
        return None
