"""Cluster backend: a tenant's Dockerfile builds run on the swarm's nodes, one at a time per node.

A build takes a build slot on the least loaded node (ready, active, fewest instances, no build
running); when every node is building it waits its turn (first come, first served), and says
so in the push's output. On the node it runs in the tenant's build sandbox, as on one host
(docker_sandbox.py): the sandbox image nested in the node's engine (Docker-in-Docker inside the
Docker-in-Docker node works with the same flags), holding only the images the platform loaded
into it, with the same network rules. What differs is how the platform reaches it: the node is
another machine, so the sandbox's engine listens on TCP, published on the node's address on the
cluster network (as the node's own engine is), not on a unix socket of the platform's host.

Images: a base image reaches each node once, through the platform's registry (pushed once,
pulled by each node once), and is loaded from the node's engine into each sandbox there once.
The finished image goes the other way: the sandbox pushes it to its own registry (the node's
loopback), the node's engine pulls it from there and pushes it to the platform's registry, and
the platform's engine pulls it from the registry (its release records and checks read it
there); instances on the build's node find it already pulled."""
from __future__ import annotations

import contextlib
import fcntl
import threading
import time
from pathlib import Path
from typing import Callable, IO

import docker
import docker.errors
import requests

from core.errors import ImageBuildFailed, SchedulerError

from controller.scheduler import sandbox_policy as policy
from controller.scheduler.base import TenantBuilds
from controller.scheduler.docker_build import EngineBuild, append_labels
from controller.scheduler.docker_sandbox import (LABEL_SANDBOX, create_sandbox_container, inspect_or_none,
                                                  stream_ok)
from controller.scheduler.labels import LABEL_BUILD, LABEL_INSTANCE

ENGINE_PORT = 2375       # the sandbox's engine inside it (published on the node's address)
# On a node the sandbox image's own first process starts, as on the host, but its engine must
# also listen on TCP (the platform is another machine) and has no host directory for its unix
# socket: a `dockerd` first on PATH adds the listener, so the image stays the one of the host.
NODE_ENTRYPOINT = ["/bin/sh", "-c",
                   "mkdir -p /sandbox && printf '#!/bin/sh\\nexec /usr/sbin/dockerd \"$@\" -H tcp://0.0.0.0:%s\\n' "
                   f"{ENGINE_PORT} > /usr/local/sbin/dockerd && chmod 755 /usr/local/sbin/dockerd "
                   "&& exec /usr/local/bin/dockyard-sandbox-init"]
SLOTS_PER_NODE = 1       # builds a node runs at once: one build's steps already use its cores
_START_TIMEOUT = 180.0
MANAGERLESS_WAIT = 60.0  # seconds a build waits for a manager to answer (a Raft election takes 10-20 s)
ATTEMPTS = 2             # a build whose node is lost runs once more, on another node


def build_order(nodes: list[dict]) -> list[dict]:
    """Pure: the nodes (parse_nodes rows) a build may go to, least loaded first: ready and
    active, fewest instances, then by name."""
    usable = [n for n in nodes if n["state"] == "ready" and n["availability"] == "active" and n["address"]]
    return sorted(usable, key=lambda n: (n["instances"], n["hostname"]))


class Slot:
    """A build slot held on a node: a lock file of the platform's home, so every process of
    the platform (API workers, the git and SSH front doors) counts the same slots."""

    def __init__(self, node: dict, handle: IO):
        self.node, self._handle = node, handle

    @property
    def hostname(self) -> str:
        return self.node["hostname"]

    def release(self) -> None:
        self._handle.close()   # closing drops the lock


class BuildSlots:
    """SLOTS_PER_NODE slots per node; builds that find every slot taken wait in arrival order."""

    def __init__(self, root: Path, slots: int = SLOTS_PER_NODE):
        self.root, self.slots = root, slots
        self._queue: list[object] = []
        self._cond = threading.Condition()

    def _try(self, node: dict) -> Slot | None:
        self.root.mkdir(parents=True, exist_ok=True)
        for k in range(self.slots):
            handle = open(self.root / f"{node['hostname']}.{k}.lock", "w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return Slot(node, handle)
            except BlockingIOError:
                handle.close()
        return None

    def take(self, nodes: Callable[[], list[dict]], on_wait: Callable[[str], None],
             cancelled: Callable[[], bool], avoid: frozenset[str] = frozenset()) -> Slot:
        """A slot on the least loaded node with one free (not one of `avoid`), waiting in
        arrival order. While no manager answers (an election, MANAGERLESS_WAIT s at most) it waits."""
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
        told, since = False, time.monotonic()
        try:
            while True:
                try:
                    order = [n for n in build_order(nodes()) if n["hostname"] not in avoid]
                    since = time.monotonic()
                except SchedulerError:
                    if time.monotonic() - since > MANAGERLESS_WAIT:
                        raise
                    order = None
                if order == []:
                    raise SchedulerError("No node of the cluster can take a build (none is ready and active): see "
                                         "`dockyard nodes`.")
                with self._cond:
                    if self._queue[0] is ticket:
                        for node in order or []:
                            slot = self._try(node)
                            if slot is not None:
                                return slot
                    if not told and order:
                        ahead = self._queue.index(ticket)
                        on_wait(f"-----> Every node is building ({len(order)} ready): waiting for a build slot"
                                + (f" ({ahead} build(s) ahead)" if ahead else ""))
                        told = True
                    self._cond.wait(0.5)
                if cancelled():
                    raise ImageBuildFailed("The build was cancelled while it waited for a build slot: the client "
                                           "went away.")
        finally:
            with self._cond:
                self._queue.remove(ticket)
                self._cond.notify_all()

    def give_back(self, slot: Slot) -> None:
        slot.release()
        with self._cond:
            self._cond.notify_all()


class NodeSandbox:
    """A tenant's build sandbox on one node: created, started and reached through the node's
    engine (tcp://ADDRESS:2375)."""

    def __init__(self, config, swarm, host_api, node: dict, tenant: str):
        self.config, self.swarm, self.host_api, self.tenant = config, swarm, host_api, tenant
        self.hostname, self.address = node["hostname"], node["address"]
        self.node_api = docker.APIClient(base_url=f"tcp://{self.address}:2375", timeout=300)
        self.name = policy.sandbox_name(config.name, tenant)
        self.api: docker.APIClient | None = None
        self.registry = 0

    def close(self) -> None:
        for api in (self.api, self.node_api):
            if api is not None:
                api.close()

    # ---- images onto the node, then into the sandbox -----------------------------------
    def node_pull(self, image: str) -> str:
        """The node's engine holds the host's `image` (pulled from the platform's registry once,
        kept); returns the node's reference to it."""
        host = self.host_api.inspect_image(image)
        ref = self.swarm.node_image(image)
        with contextlib.suppress(docker.errors.ImageNotFound):
            if self.node_api.inspect_image(ref)["Id"] == host["Id"]:
                return ref
        repo, _, tag = ref.rpartition(":")
        for line in self.node_api.pull(repo, tag, stream=True, decode=True):
            if line.get("error"):
                raise SchedulerError(f"Node {self.hostname} could not pull {image}: {line['error']}: is the "
                                     "platform's `registry` process running (`make status`)?")
        return ref

    def provide(self, image: str) -> None:
        """Load the host's `image` into the sandbox (once: an image of the same id stays)."""
        host_id = self.host_api.inspect_image(image)["Id"]
        with contextlib.suppress(docker.errors.ImageNotFound):
            if self.api.inspect_image(image)["Id"] == host_id:
                return
        ref = self.node_pull(image)
        resp = self.node_api.get(self.node_api._url("/images/get"), params={"names": ref}, stream=True)
        self.node_api._raise_for_status(resp)
        with contextlib.closing(resp):
            for chunk in self.api.load_image(resp.iter_content(1 << 20)):
                if isinstance(chunk, dict) and chunk.get("error"):
                    raise SchedulerError(f"Could not load {image} into the build sandbox on {self.hostname}: "
                                         f"{chunk['error']}")
        repo, _, tag = image.rpartition(":")
        self.api.tag(ref, repo, tag)
        with contextlib.suppress(docker.errors.APIError):
            self.api.remove_image(ref, noprune=True)

    # ---- the sandbox itself -----------------------------------------------------------
    def ensure(self) -> None:
        """The sandbox runs on the node (created on the tenant's first build there, replaced
        when the sandbox image changed); its engine answers."""
        image = self.node_pull(self.config.sandbox_image)
        image_id = self.node_api.inspect_image(image)["Id"]
        info = inspect_or_none(self.node_api, self.name)
        if info is not None and info.get("Image") != image_id:
            self.node_api.remove_container(self.name, force=True)
            info = None
        if info is None:
            try:
                self._create(image)
            except docker.errors.APIError as e:
                if e.status_code != 409:   # another build of this tenant created it meanwhile
                    raise SchedulerError(f"Could not create the build sandbox on {self.hostname}: "
                                         f"{e.explanation}") from None
        if not ((info or {}).get("State") or {}).get("Running"):
            try:
                self.node_api.start(self.name)
            except docker.errors.APIError as e:
                raise SchedulerError(f"Could not start the build sandbox on {self.hostname}: {e.explanation}") from None
        self._wait_ready()

    def _create(self, image: str) -> None:
        # The engine listens on TCP too (NODE_ENTRYPOINT), published only on the node's address.
        create_sandbox_container(self.node_api, image, self.name, {LABEL_INSTANCE: self.config.name,
                                 LABEL_SANDBOX: self.tenant}, self.config.build_memory_mb, binds={},
                                 published={ENGINE_PORT: (self.address,)}, entrypoint=NODE_ENTRYPOINT)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            ports = ((inspect_or_none(self.node_api, self.name) or {}).get("NetworkSettings") or {}).get("Ports") or {}
            engine = _published(ports, ENGINE_PORT)
            self.registry = _published(ports, policy.REGISTRY_PORT)
            if engine and self.registry:
                try:
                    api = docker.APIClient(base_url=f"tcp://{self.address}:{engine}", timeout=300)
                    api.ping()
                    self.api = api
                    return
                except (docker.errors.DockerException, requests.RequestException):
                    pass
            if time.monotonic() >= deadline:
                tail = b""
                with contextlib.suppress(docker.errors.APIError, requests.RequestException):
                    tail = self.node_api.logs(self.name, tail=3)
                raise SchedulerError(f"The build sandbox {self.name} on {self.hostname} did not start within "
                                     f"{_START_TIMEOUT:.0f} s ({tail.decode(errors='replace').strip()[-300:]}): "
                                     f"see `docker logs {self.name}` on that node.")
            time.sleep(0.3)

    # ---- the finished image: sandbox -> node -> the platform's registry -> host ---------
    def move_out(self, tag: str, image_id: str) -> str:
        """Returns the reference nodes run the image by (already pushed to the registry)."""
        repo, _, name = tag.rpartition(":")
        inside = f"127.0.0.1:{policy.REGISTRY_PORT}/{repo}"
        on_node = f"127.0.0.1:{self.registry}/{repo}"
        self.api.tag(image_id, inside, name)
        try:
            digest = stream_ok(self.api.push(inside, tag=name, stream=True, decode=True), "push", "Digest")
        finally:
            with contextlib.suppress(docker.errors.APIError):
                self.api.remove_image(f"{inside}:{name}", noprune=True)
        node_ref = f"{self.swarm.cluster['registry']}/{tag}"
        stream_ok(self.node_api.pull(on_node, tag=name, stream=True, decode=True), "pull on the node")
        node_repo = node_ref.rpartition(":")[0]
        self.node_api.tag(f"{on_node}:{name}", node_repo, name)
        self.node_api.remove_image(f"{on_node}:{name}", noprune=True)
        stream_ok(self.node_api.push(node_repo, tag=name, stream=True, decode=True), "push to the platform's registry")
        self._forget(repo, digest)
        self._keep_newest(repo, name)
        local = f"127.0.0.1:{self.config.registry_port}/{repo}"
        stream_ok(self.host_api.pull(local, tag=name, stream=True, decode=True), "pull from the platform's registry")
        self.host_api.tag(f"{local}:{name}", repo, name)
        if self.host_api.inspect_image(tag)["Id"] != image_id:
            raise ImageBuildFailed("The image that reached the platform's registry is not the one built: push again.")
        return node_ref

    def _keep_newest(self, repo: str, keep: str) -> None:
        """The sandbox keeps the app's newest build (the next build's cache), not older ones."""
        with contextlib.suppress(docker.errors.APIError, requests.RequestException):
            for img in self.api.images(name=repo):
                for t in img.get("RepoTags") or []:
                    if t.rpartition(":")[0] == repo and t.rpartition(":")[2] != keep:
                        with contextlib.suppress(docker.errors.APIError):
                            self.api.remove_image(t)

    def _forget(self, repo: str, digest: str | None) -> None:
        """The sandbox's registry forgets the image handed over (its layers are freed at the
        sandbox's next start): asked from inside the sandbox, whose registry listens on the
        node's loopback only."""
        if not digest:
            return
        code = ("import urllib.request;urllib.request.urlopen(urllib.request.Request("
                f"'http://127.0.0.1:{policy.REGISTRY_PORT}/v2/{repo}/manifests/{digest}',method='DELETE'),timeout=10)")
        with contextlib.suppress(docker.errors.APIError, requests.RequestException):
            ex = self.node_api.exec_create(self.name, ["python3", "-c", code])
            self.node_api.exec_start(ex["Id"])


class NodeTenantBuilds(TenantBuilds):
    """A tenant's builds while a cluster exists: its Dockerfiles build on a node (the images
    `provide_image` names are loaded into the sandbox there once the node is chosen); the
    builds the platform writes (buildpack steps and slugs) stay on the platform's host."""

    def __init__(self, scheduler, tenant: str, swarm, slots: BuildSlots):
        super().__init__(scheduler, tenant)
        self.swarm, self.slots = swarm, slots
        self._provide: list[str] = []

    def provide_image(self, ref: str) -> bool:
        if not self.scheduler.image_exists(ref):
            return False
        self._provide.append(ref)
        return True

    def build_sandboxed(self, context_dir: str, tag: str, on_line: Callable[[str], None], *, app: str,
                        build_id: str | None = None, dockerfile: str | None = None,
                        cancelled: Callable[[], bool] = lambda: False) -> str:
        dockerfile = dockerfile or "Dockerfile"
        append_labels(context_dir, dockerfile,
                      self.scheduler._labels(app, **({LABEL_BUILD: build_id} if build_id else {})))
        lost: set[str] = set()
        while True:
            slot = self.slots.take(self.swarm.nodes, on_line, cancelled, frozenset(lost))
            self.node = slot.hostname
            on_line(f"-----> Building on {slot.hostname} (the least busy node with a free build slot)")
            sandbox = NodeSandbox(self.scheduler.config, self.swarm, self.scheduler.client.api, slot.node, self.tenant)
            try:
                return self._build_on(sandbox, context_dir, dockerfile, tag, on_line, cancelled)
            except (docker.errors.DockerException, requests.RequestException, ImageBuildFailed, SchedulerError) as e:
                if _answers(sandbox.node_api) or cancelled():
                    if isinstance(e, (ImageBuildFailed, SchedulerError)):
                        raise
                    raise SchedulerError(f"The build on {slot.hostname} failed: {e}") from None
                lost.add(slot.hostname)
                if len(lost) >= ATTEMPTS:
                    raise ImageBuildFailed(f"Node {slot.hostname} was lost during the build, as was the node tried "
                                           "before it: see `dockyard nodes`, then push again (the app's current "
                                           "release keeps serving).") from None
                on_line(f"-----> Node {slot.hostname} was lost during the build: building again on another node")
            finally:
                sandbox.close()
                self.slots.give_back(slot)

    def _build_on(self, sandbox: NodeSandbox, context_dir: str, dockerfile: str, tag: str,
                  on_line: Callable[[str], None], cancelled: Callable[[], bool]) -> str:
        sandbox.ensure()
        for ref in self._provide:
            sandbox.provide(ref)
        run = EngineBuild(context_dir, dockerfile, tag, self.scheduler.config.build_memory_mb * 1024 * 1024,
                          base_url=sandbox.api.base_url, version=sandbox.api.api_version)
        # a node that loses power closes no connection: the build's stream would wait for its
        # socket's timeout; a node that stops answering its pings ends the build at once
        lost, done = threading.Event(), threading.Event()
        threading.Thread(target=_watch_node, args=(sandbox.node_api.base_url, lost, done), daemon=True,
                         name=f"watch-{sandbox.hostname}").start()
        try:
            image_id = self.scheduler._read_build(run, on_line, lambda: cancelled() or lost.is_set())
        finally:
            done.set()
            run.close()
        if image_id is None:
            image_id = sandbox.api.inspect_image(tag)["Id"]
        self.swarm.mark_pushed(sandbox.move_out(tag, image_id))
        return image_id


def _answers(api: docker.APIClient) -> bool:
    return _pings(api.base_url)


def _pings(base_url: str) -> bool:
    try:
        with docker.APIClient(base_url=base_url, version="auto", timeout=3) as probe:
            return bool(probe.ping())
    except (docker.errors.DockerException, requests.RequestException):
        return False


def _watch_node(base_url: str, lost: threading.Event, done: threading.Event) -> None:
    """Set `lost` once the node's engine missed two pings in a row (every 2 s) before `done`."""
    missed = 0
    while not done.wait(2.0):
        missed = 0 if _pings(base_url) else missed + 1
        if missed >= 2:
            lost.set()
            return


def _published(ports: dict, port: int) -> int:
    for binding in ports.get(f"{port}/tcp") or []:
        if binding.get("HostPort"):
            return int(binding["HostPort"])
    return 0

