"""The backend the scheduler's config and the cluster file pick, switched while it runs.

DOCKYARD_SCHEDULER=docker: the single host only; swarm: the cluster only; auto (the default):
the cluster while DOCKYARD_HOME/cluster.json exists (`make cluster` writes it, `make
cluster-down` removes it), else the single host. App instances start on the backend in force;
instances on the other one are `misplaced`, so the reconciler starts their replacements there,
health-checked, before retiring them: a switch drops no request. Images and builds always use
the host's engine, except a tenant's Dockerfile builds, which run on a node while a cluster
exists (swarm_build.py) and push their image to the cluster's registry from there; one-offs the
caller waits for (`run`, the release phase, postdeploy) run on a node while a cluster exists
(swarm_oneoff.py), detached ones and cron as one-task services on the swarm (swarm_jobs.py).
Add-ons stay on the host; an app's tasks and one-offs on the nodes reach them through a
forwarder per attachment on the app's overlay network (swarm_addons.py)."""
from __future__ import annotations

import threading
import time
from typing import Callable, Iterable

from core.errors import BadRequest, SchedulerError
from core.models import Crash, Instance

from controller.scheduler import registry_gc
from controller.scheduler.base import Scheduler
from controller.scheduler.config import SchedulerConfig
from controller.scheduler.docker_backend import DockerScheduler
from controller.scheduler.docker_swarm import SwarmScheduler, load_cluster
from controller.scheduler import swarm_addons, swarm_images, swarm_jobs
from controller.scheduler.swarm_build import NodeTenantBuilds
from controller.scheduler.swarm_slots import BuildSlots
from controller.scheduler.swarm_oneoff import NODE_PREFIX, NodeContainers, NodeOneoffs, OneoffPlaces, list_node_oneoffs
from controller.scheduler.swarm_parse import PREFIX

_RECHECK = 1.0   # seconds between looks at the cluster file


class SelectingScheduler(DockerScheduler):
    """The host's engine for images, builds and one-offs; instances where the mode says."""

    def __init__(self, config: SchedulerConfig):
        super().__init__(config)
        self._swarm: SwarmScheduler | None = None
        self._checked = -_RECHECK
        self._active = False
        self._mode_lock = threading.Lock()
        self._oneoff_places = OneoffPlaces()
        self._build_slots = BuildSlots(config.home / "build-slots")
        self._node_containers = NodeContainers(config)

    # ---- which backend --------------------------------------------------------------
    def _refresh(self) -> None:
        with self._mode_lock:
            now = time.monotonic()
            if now - self._checked < _RECHECK:
                return
            self._checked = now
            cluster = None if self.config.backend == "docker" else load_cluster(self.config.cluster_file)
            if cluster is not None and (self._swarm is None or self._swarm.cluster != cluster):
                self._swarm = SwarmScheduler(self.config, cluster)
            # without the file, the last cluster known stays reachable: its instances move back
            self._active = cluster is not None

    def cluster_active(self) -> bool:
        self._refresh()
        if self.config.backend == "swarm" and not self._active:
            raise SchedulerError("DOCKYARD_SCHEDULER=swarm but there is no cluster: run `make cluster` "
                                 f"(it writes {self.config.cluster_file}).")
        return self._active

    def swarm(self) -> SwarmScheduler:
        self._refresh()
        if self._swarm is None:
            raise SchedulerError("There is no cluster: run `make cluster NODES=3` first.")
        return self._swarm

    def _for(self, container_id: str):
        if container_id.startswith(NODE_PREFIX):    # an attached one-off on a node's engine
            return self._node_containers
        return self.swarm() if container_id.startswith(PREFIX) else super()

    def misplaced(self, inst: Instance) -> bool:
        return inst.container_id.startswith(PREFIX) != self.cluster_active()

    # ---- app instances ---------------------------------------------------------------
    def ping(self) -> bool:
        return self.swarm().ping() if self.cluster_active() else super().ping()

    def start(self, app, release, process, index, command, image, limits=None) -> Instance:
        if self.cluster_active():
            self._forwarders(app)
            return self.swarm().start(app, release, process, index, command, image, limits)
        return super().start(app, release, process, index, command, image, limits)

    def prepare(self, app, release, process, index, command, image, limits, spec) -> Instance | None:
        if self.cluster_active():
            return None     # a cluster's instances are placed when they start: none is made ahead
        return super().prepare(app, release, process, index, command, image, limits, spec)

    def make_durable(self, container_id: str) -> None:
        self._for(container_id).make_durable(container_id)

    def get(self, container_id: str) -> Instance | None:
        found = self._for(container_id).get(container_id)
        if found is not None and container_id.startswith(PREFIX) and not found.process:
            # a detached one-off's service (it has no process label): read as a one-off
            return next((j for j in swarm_jobs.list_jobs(self.swarm(), found.app) if j.container_id == container_id),
                        None)
        return found

    def instances(self, app: str | None = None) -> list[Instance]:
        found = super().instances(app)
        active = self.cluster_active()
        if self._swarm is not None:
            try:
                on_swarm = self._swarm.instances(app)
                found += on_swarm
                if not active and app is None and not on_swarm:
                    # every instance is back on this host: the add-ons' forwarders go too, so
                    # `make cluster-down` (waiting for the swarm to empty) can remove the nodes
                    swarm_addons.remove_forwarders_of(self._swarm, None)
            except SchedulerError:
                if active:
                    raise
                # the cluster is gone: nothing of it is left to move
        return sorted(found, key=lambda i: (i.app, i.process, i.index, i.version))

    def watch(self, on_change: Callable[[str], None], stopped: Callable[[], bool]) -> None:
        """The host engine's events and, while a cluster exists, the swarm's (its nodes' state
        and the containers on every node)."""
        threading.Thread(target=super().watch, args=(on_change, stopped), name="host-events", daemon=True).start()
        while not stopped():
            try:
                swarm = self._swarm if self.cluster_active() else None
            except SchedulerError:
                swarm = None
            if swarm is None:
                time.sleep(_RECHECK)
                continue
            swarm.watch(on_change, lambda swarm=swarm: stopped() or self._swarm is not swarm or not self._active)

    def crashes(self, since: float, until: float) -> list[Crash]:
        found = super().crashes(since, until)
        if self._swarm is not None:
            try:
                found += self._swarm.crashes(since, until)
            except SchedulerError:
                if self.cluster_active():
                    raise
        return sorted(found, key=lambda c: c.at)

    def stop(self, container_id: str, grace: int | None = None, remove: bool = True) -> None:
        self._for(container_id).stop(container_id, grace, remove)

    def remove(self, container_id: str) -> None:
        self._for(container_id).remove(container_id)

    def logs(self, container_id: str, tail: int | str = 100, since: int | None = None):
        return self._for(container_id).logs(container_id, tail, since)

    def stats(self, container_ids):
        """Resource readings of the instances on this host (the nodes' cgroups are not read)."""
        return super().stats(c for c in container_ids if not c.startswith(PREFIX))

    def exec(self, container_id: str, command: str, timeout: float) -> tuple[int, str]:
        return self._for(container_id).exec(container_id, command, timeout)

    def remove_images(self, app: str, keep: Iterable[str] = (), builds_only: bool = False) -> int:
        """The host's images, the registry's copies of release images no release needs, and the
        nodes' copies of them (swarm_images.py)."""
        keep = set(keep)
        pushed = registry_gc.delete_stale(f"127.0.0.1:{self.config.registry_port}",
                                          self.config.image_repo(app), keep)
        on_nodes = swarm_images.collect_on_nodes(self.swarm(), self.config.image_repo(app), keep) \
            if self.cluster_active() else 0
        return super().remove_images(app, keep, builds_only) + pushed + on_nodes

    # ---- detached one-offs and cron: services on the swarm while a cluster exists -------
    def oneoffs(self, app: str | None = None) -> list[Instance]:
        found = super().oneoffs(app)
        if self._swarm is not None:
            try:
                found += swarm_jobs.list_jobs(self._swarm, app)
                if self.cluster_active():   # attached ones, each on a node's engine
                    found += list_node_oneoffs(self.config, self._swarm._nodes(), app, self._swarm._probe.unreachable)
            except SchedulerError:
                if self.cluster_active():
                    raise
        return sorted(found, key=lambda i: (i.app, i.index))

    def run_detached(self, app, release, command, image, env=None) -> Instance:
        if not self.cluster_active():
            return super().run_detached(app, release, command, image, env)
        self._forwarders(app)
        return swarm_jobs.start_job(self.swarm(), app, release, command, image, self.next_oneoff_index(app), env)

    # ---- builds: a tenant's Dockerfile on a node while a cluster exists ----------------
    def build_engine(self, tenant: str):
        if self.cluster_active():
            return NodeTenantBuilds(self, tenant, self.swarm(), self._build_slots)
        return super().build_engine(tenant)

    # ---- one-offs the caller waits for: on a node while a cluster exists ---------------
    def _node_for_oneoff(self, app: str, image: str):
        """(a node's one-off engine, the image's reference there), or None when the one-off
        stays on this host (there is no cluster). A one-off of an app with add-ons joins the
        app's overlay network, where their forwarders answer."""
        if not self.cluster_active():
            return None
        swarm = self.swarm()
        ref = swarm.node_image(image)
        network = swarm._app_network(app) if self._forwarders(app) else None
        node = self._oneoff_places.take(swarm.nodes())
        engine = NodeOneoffs(self.config, node["hostname"], node["address"], lambda _ref: self._user(image), network)
        try:
            engine.pull(ref)
        except BaseException:
            self._oneoff_places.give_back(node["hostname"])
            engine.close()
            raise
        return engine, ref

    def _done_on(self, engine) -> None:
        self._oneoff_places.give_back(engine.hostname)
        engine.close()

    def run_once(self, app, release, process, command, image, on_line, timeout) -> int:
        placed = self._node_for_oneoff(app, image)
        if placed is None:
            return super().run_once(app, release, process, command, image, on_line, timeout)
        engine, ref = placed
        try:
            return engine.run_once(app, release, process, command, ref, on_line, timeout)
        finally:
            self._done_on(engine)

    def run_attached(self, app, release, command, image, read_stdin, on_output, on_started, timeout,
                     env=None, index=None, terminal=None) -> int:
        placed = self._node_for_oneoff(app, image)
        if placed is None:
            return super().run_attached(app, release, command, image, read_stdin, on_output, on_started, timeout,
                                        env, index, terminal)
        engine, ref = placed
        try:
            return engine.run_attached(app, release, command, ref, read_stdin, on_output, on_started, timeout,
                                       env, index or self.next_oneoff_index(app), terminal)
        finally:
            self._done_on(engine)

    # ---- add-ons: on this host, reached from the nodes through forwarders ---------------
    def _forwarders(self, app: str) -> dict[str, int]:
        """The app's add-on forwarders on the swarm made to match its attachments (a no-op for an
        app without add-ons and none left over); returns the attachments (name -> port)."""
        wanted = self.attached_ports(app)
        swarm = self.swarm()
        gateway = f"{swarm.cluster['registry'].rpartition(':')[0]}:{self.config.addon_gateway_port}"
        swarm_addons.sync_forwarders(swarm, app, wanted, gateway, swarm_addons.gateway_key(self.config.home))
        return wanted

    def connect_service(self, name: str, app: str) -> None:
        super().connect_service(name, app)
        if self.cluster_active():
            self._forwarders(app)

    def disconnect_service(self, name: str, app: str) -> None:
        super().disconnect_service(name, app)
        if self.cluster_active():
            self._forwarders(app)

    def remove_service(self, name: str, keep_data: bool = False) -> None:
        super().remove_service(name, keep_data)
        if not keep_data and self.cluster_active():   # destroyed (a recreated one keeps its forwarders)
            swarm_addons.remove_forwarders_of(self.swarm(), name)

    # ---- the cluster's nodes (cluster mode only) ---------------------------------------
    def nodes(self) -> list[dict]:
        """The cluster's nodes (`dockyard nodes`); [] on a single host."""
        return self.swarm().nodes() if self.cluster_active() else []

    def set_availability(self, name: str, availability: str) -> dict:
        return self._cluster().set_availability(name, availability)

    def remove_node(self, name: str) -> None:
        self._cluster().remove_node(name)

    def join_command(self) -> list[str]:
        return self._cluster().join_command()

    def _cluster(self) -> SwarmScheduler:
        if not self.cluster_active():
            raise BadRequest("The platform runs on a single host: there are no nodes.",
                             fix="start a cluster with `make cluster NODES=3` (README: cluster mode)")
        return self.swarm()


__all__ = ["SelectingScheduler", "Scheduler"]
