"""Cluster backend: builds run on the swarm's nodes, one at a time per node (swarm_slots.py).

A build takes a build slot on a node (the one its app built on last when free, else the least
loaded) and holds it until the build ends. On the node it runs in the tenant's build sandbox,
as on one host (docker_sandbox.py): the sandbox image nested in the node's engine
(Docker-in-Docker inside the Docker-in-Docker node works with the same flags), holding only the
images the platform loaded into it, with the same network rules. A tenant's Dockerfile builds
in the sandbox's engine; a buildpack build's steps run there too (swarm_buildpack.py). What
differs is how the platform reaches it: the node is another machine, so the sandbox's engine
listens on TCP, published on the node's address on the cluster network (as the node's own
engine is), not on a unix socket of the platform's host.

Images: a base image (the stack, the build image) reaches each node once, through the
platform's registry (pushed once, pulled by each node once), and is loaded from the node's
engine into each sandbox there once. The finished image goes the other way: the sandbox pushes
it to its own registry, the platform stamps its labels on it there (image_stamp.py, as on one
host), the node's engine pulls it and pushes it to the platform's registry, and the platform's
engine pulls it from the registry (its release records and checks read it there); instances on
the build's node find it already pulled."""
from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import docker
import docker.errors
import requests

from core.errors import ImageBuildFailed, SchedulerError

from controller.scheduler.registry_gc import await_registry
from controller.scheduler import sandbox_policy as policy
from controller.scheduler.base import TenantBuilds
from controller.scheduler.docker_build import EngineBuild
from controller.scheduler.docker_sandbox import LABEL_SANDBOX, create_sandbox_container, inspect_or_none
from controller.scheduler.sandbox_transfer import building, stamp_labels, stream_ok, tidy_unless_building
from controller.scheduler.labels import LABEL_BUILD, LABEL_INSTANCE
from controller.scheduler.swarm_buildpack import SandboxEngine
from controller.scheduler.swarm_slots import BuildSlots, Slot

ENGINE_PORT = 2375       # the sandbox's engine inside it (published on the node's address)
# On a node the sandbox image's own first process starts, as on the host, but its engine must
# also listen on TCP (the platform is another machine) and has no host directory for its unix
# socket: a `dockerd` first on PATH adds the listener, so the image stays the one of the host.
NODE_ENTRYPOINT = ["/bin/sh", "-c",
                   "mkdir -p /sandbox && printf '#!/bin/sh\\nexec /usr/sbin/dockerd \"$@\" -H tcp://0.0.0.0:%s\\n' "
                   f"{ENGINE_PORT} > /usr/local/sbin/dockerd && chmod 755 /usr/local/sbin/dockerd "
                   "&& exec /usr/local/bin/dockyard-sandbox-init"]
_START_TIMEOUT = 180.0
ATTEMPTS = 2             # a build whose node is lost runs once more, on another node


class NodeSandbox:
    """A tenant's build sandbox on one node: created, started and reached through the node's
    engine (tcp://ADDRESS:2375)."""

    def __init__(self, config, swarm, host_api, node: dict, tenant: str):
        self.config, self.swarm, self.host_api, self.tenant = config, swarm, host_api, tenant
        self.hostname, self.address = node["hostname"], node["address"]
        self.node_api = docker.APIClient(base_url=f"tcp://{self.address}:2375", timeout=300)
        self.name = policy.sandbox_name(config.name, tenant)
        self.api: docker.APIClient | None = None
        self.registry = 0        # the sandbox's registry on the node's loopback (the node's engine pulls there)
        self.registry_out = 0    # ... and on the node's address (the platform stamps its labels there)

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
        if info is not None and (info.get("Image") != image_id or not _published(
                (info.get("HostConfig") or {}).get("PortBindings") or {}, policy.REGISTRY_PORT, self.address, True)):
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
        # The engine listens on TCP too (NODE_ENTRYPOINT), published only on the node's address;
        # the registry on the node's loopback and its address (the platform stamps its labels on
        # the image there: no more than the engine's port already gives whoever reaches it).
        create_sandbox_container(self.node_api, image, self.name, {LABEL_INSTANCE: self.config.name,
                                 LABEL_SANDBOX: self.tenant}, self.config.build_memory_mb, binds={},
                                 published={ENGINE_PORT: (self.address,),
                                            policy.REGISTRY_PORT: [("127.0.0.1",), (self.address,)]},
                                 entrypoint=NODE_ENTRYPOINT)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            ports = ((inspect_or_none(self.node_api, self.name) or {}).get("NetworkSettings") or {}).get("Ports") or {}
            engine = _published(ports, ENGINE_PORT)
            self.registry = _published(ports, policy.REGISTRY_PORT, "127.0.0.1")
            self.registry_out = _published(ports, policy.REGISTRY_PORT, self.address)
            if engine and self.registry and self.registry_out:
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
    def move_out(self, tag: str, image_id: str, labels: dict[str, str]) -> tuple[str, str]:
        """Push the image from the sandbox to its registry, stamp the platform's `labels` on it
        there (image_stamp.py, as on the host), hand it over to the platform's registry through
        the node's engine, pull it into the host's engine as `tag`. Returns the reference nodes
        run it by and the host's image id."""
        repo, _, name = tag.rpartition(":")
        inside = f"127.0.0.1:{policy.REGISTRY_PORT}/{repo}"
        on_node = f"127.0.0.1:{self.registry}/{repo}"
        self.api.tag(image_id, inside, name)
        try:
            pushed = stream_ok(self.api.push(inside, tag=name, stream=True, decode=True), "push", "Digest")
        finally:
            with contextlib.suppress(docker.errors.APIError):
                self.api.remove_image(f"{inside}:{name}", noprune=True)
        if not pushed:
            raise ImageBuildFailed("The build sandbox's engine named no digest for the image it pushed: push again.")
        image_id, stamped = stamp_labels(f"{self._registry_url()}/v2/{repo}", name, pushed, image_id, labels)
        node_ref = f"{self.swarm.cluster['registry']}/{tag}"
        stream_ok(self.node_api.pull(on_node, tag=name, stream=True, decode=True), "pull on the node")
        node_repo = node_ref.rpartition(":")[0]
        self.node_api.tag(f"{on_node}:{name}", node_repo, name)
        self.node_api.remove_image(f"{on_node}:{name}", noprune=True)
        await_registry(self.config.registry_port)
        stream_ok(self.node_api.push(node_repo, tag=name, stream=True, decode=True), "push to the platform's registry")
        self._tidy(tag, [pushed, stamped])
        local = f"127.0.0.1:{self.config.registry_port}/{repo}"
        stream_ok(self.host_api.pull(local, tag=name, stream=True, decode=True), "pull from the platform's registry")
        self.host_api.tag(f"{local}:{name}", repo, name)
        if self.host_api.inspect_image(tag)["Id"] != image_id:
            raise ImageBuildFailed("The image that reached the platform's registry is not the one built: push again.")
        return node_ref, image_id

    def _registry_url(self) -> str:
        return f"http://{self.address}:{self.registry_out}"

    @property
    def builds_lock(self) -> Path:
        """The sandbox's builds lock (sandbox_transfer.building), on the platform's host: every
        build on a node starts from here."""
        return Path(self.config.home) / "sandboxes" / f"{self.hostname}-{self.name}.builds.lock"

    def _tidy(self, tag: str, digests: list[str]) -> None:
        def delete(repo: str, digest: str) -> None:
            requests.delete(f"{self._registry_url()}/v2/{repo}/manifests/{digest}", timeout=10)

        tidy_unless_building(self.builds_lock, delete, self.api, tag, digests)


class NodeLost(SchedulerError):
    """The node a build ran on stopped answering during the build."""

    def __init__(self, hostname: str):
        super().__init__(f"Node {hostname} was lost during the build: see `dockyard nodes`, then push again.")
        self.hostname = hostname


class NodeTenantBuilds(TenantBuilds):
    """A tenant's builds while a cluster exists: every step runs on one node, in the tenant's
    sandbox there. A Dockerfile builds in the sandbox's engine (the images `provide_image`
    names are loaded into it once the node is chosen); a buildpack build's steps run there
    (swarm_buildpack.py), its dependency images stay there, its image leaves like a
    Dockerfile's. The node is taken at the build's first step on a node and held until the
    build ends; a build whose node is lost runs again, from the start, on another."""

    def __init__(self, scheduler, tenant: str, swarm, slots: BuildSlots):
        super().__init__(scheduler, tenant)
        self.swarm, self.slots = swarm, slots
        self._provide: list[str] = []
        self._lost: set[str] = set()
        self._held: tuple[Slot, NodeSandbox, SandboxEngine] | None = None
        self._say: Callable[[str], None] = lambda line: None
        self._cancelled: Callable[[], bool] = lambda: False
        self._app = ""

    def building(self, build, out, cancelled=lambda: False, app: str = ""):
        self._say, self._cancelled, self._app = out, cancelled, app
        while True:
            self._provide = []
            try:
                return build()
            except NodeLost as e:
                self._lost.add(e.hostname)
                if len(self._lost) >= ATTEMPTS:
                    raise ImageBuildFailed(f"Node {e.hostname} was lost during the build, as was the node tried "
                                           "before it: see `dockyard nodes`, then push again (the app's current "
                                           "release keeps serving).") from None
                out(f"-----> Node {e.hostname} was lost during the build: building again on another node")
            finally:
                self._let_go()

    # ---- the build's node ---------------------------------------------------------------
    def _on_node(self) -> tuple[NodeSandbox, SandboxEngine]:
        if self._held is None:
            slot = self.slots.take(self.swarm.nodes, self._say, self._cancelled, frozenset(self._lost), self._app)
            self.node = slot.hostname
            why = ("the app's previous build node: its build cache is there" if slot.hostname == self.slots.last_node(
                self._app) else "the least busy node with a free build slot")
            self._say(f"-----> Building on {slot.hostname} ({why})")
            sandbox = NodeSandbox(self.scheduler.config, self.swarm, self.scheduler.client.api, slot.node, self.tenant)
            try:
                with self._watched(sandbox):
                    sandbox.ensure()
            except BaseException:
                sandbox.close()
                self.slots.give_back(slot)
                raise
            self._held = (slot, sandbox, SandboxEngine(self.scheduler.config, sandbox.api))
        return self._held[1], self._held[2]

    def _let_go(self) -> None:
        if self._held is not None:
            slot, sandbox, engine = self._held
            self._held = None
            engine.close()
            sandbox.close()
            self.slots.give_back(slot)

    @contextlib.contextmanager
    def _watched(self, sandbox: NodeSandbox) -> Iterator[threading.Event]:
        """While the body runs, the node is pinged every 2 s (a node that loses power closes
        no connection: a step would wait for its socket's timeout); the event is set once it
        stopped answering. A failure on a node that no longer answers is NodeLost."""
        lost, done = threading.Event(), threading.Event()
        threading.Thread(target=_watch_node, args=(sandbox.node_api.base_url, lost, done), daemon=True,
                         name=f"watch-{sandbox.hostname}").start()
        try:
            yield lost
        except NodeLost:
            raise
        except (docker.errors.DockerException, requests.RequestException, ImageBuildFailed, SchedulerError) as e:
            if (lost.is_set() or not _answers(sandbox.node_api)) and not self._cancelled():
                raise NodeLost(sandbox.hostname) from None
            if isinstance(e, (ImageBuildFailed, SchedulerError)):
                raise
            raise SchedulerError(f"The build on {sandbox.hostname} failed: {e}") from None
        finally:
            done.set()

    # ---- a tenant's Dockerfile -------------------------------------------------------------
    def provide_image(self, ref: str) -> bool:
        if not self.scheduler.image_exists(ref):
            return False
        self._provide.append(ref)
        return True

    def build_sandboxed(self, context_dir: str, tag: str, on_line: Callable[[str], None], *, app: str,
                        build_id: str | None = None, dockerfile: str | None = None,
                        cancelled: Callable[[], bool] = lambda: False) -> str:
        sandbox, _engine = self._on_node()
        with self._watched(sandbox) as lost:
            for ref in self._provide:
                sandbox.provide(ref)
            run = EngineBuild(context_dir, dockerfile or "Dockerfile", tag,
                              self.scheduler.config.build_memory_mb * 1024 * 1024,
                              base_url=sandbox.api.base_url, version=sandbox.api.api_version)
            try:
                with building(sandbox.builds_lock):
                    image_id = self.scheduler._read_build(run, on_line, lambda: cancelled() or lost.is_set())
            finally:
                run.close()
            if image_id is None:
                image_id = sandbox.api.inspect_image(tag)["Id"]
            return self._move_out(sandbox, tag, image_id, app, build_id)

    def _move_out(self, sandbox: NodeSandbox, tag: str, image_id: str, app: str, build_id: str | None) -> str:
        labels = self.scheduler._labels(app, **({LABEL_BUILD: build_id} if build_id else {}))
        node_ref, image_id = sandbox.move_out(tag, image_id, labels)
        self.swarm.mark_pushed(node_ref)
        self.slots.built_on(app, sandbox.hostname)
        return image_id

    # ---- a buildpack build's steps and images ---------------------------------------------
    def run_build_container(self, app, build_id, image, command, binds, env, on_line, timeout,
                            cancelled=lambda: False, **kw):
        sandbox, engine = self._on_node()
        with self._watched(sandbox) as lost:
            sandbox.provide(image)
            return engine.run_build_container(app, build_id, image, command, binds, env, on_line, timeout,
                                              lambda: cancelled() or lost.is_set(), **kw)

    def build(self, context_dir: str, tag: str, on_line: Callable[[str], None], *, app: str,
              build_id: str | None = None, dockerfile: str | None = None,
              cancelled: Callable[[], bool] = lambda: False) -> str:
        """A Dockerfile the platform wrote, built in the sandbox on the node. The build's own
        image (`build_id` given) leaves for the platform's registry; another (the dependency
        image) stays there for the app's next build on this node."""
        sandbox, engine = self._on_node()
        with self._watched(sandbox) as lost:
            for ref in engine.from_images(os.path.join(context_dir, dockerfile or "Dockerfile")):
                if not engine.image_exists(ref) and self.scheduler.image_exists(ref):
                    sandbox.provide(ref)
            with building(sandbox.builds_lock):
                image_id = engine.build(context_dir, tag, on_line, app=app, build_id=build_id, dockerfile=dockerfile,
                                        cancelled=lambda: cancelled() or lost.is_set())
            return self._move_out(sandbox, tag, image_id, app, build_id) if build_id else image_id

    def image_exists(self, ref: str) -> bool:
        # the builder's dependency images (`<repo>:deps-*`) live in the sandbox of the node
        if ref.rpartition(":")[2].startswith("deps-"):
            sandbox, engine = self._on_node()
            with self._watched(sandbox):
                return engine.image_exists(ref)
        return self.scheduler.image_exists(ref)

    def image_tags(self, repo: str, prefix: str) -> list[str]:
        sandbox, engine = self._on_node()
        with self._watched(sandbox):
            return engine.image_tags(repo, prefix)

    def untag_images(self, repo: str, prefix: str, keep: str) -> int:
        sandbox, engine = self._on_node()
        with self._watched(sandbox):
            return engine.untag_images(repo, prefix, keep)


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


def _published(ports: dict, port: int, address: str | None = None, asked: bool = False) -> int:
    """The host port `port` is published on (on `address` when given); with `asked`, a
    container's wanted bindings (a dynamic port is "" there: 1 stands for it)."""
    for binding in ports.get(f"{port}/tcp") or []:
        if address is not None and binding.get("HostIp") != address:
            continue
        if binding.get("HostPort"):
            return int(binding["HostPort"])
        if asked:
            return 1
    return 0

