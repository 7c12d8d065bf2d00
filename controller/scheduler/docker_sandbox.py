"""Single-host backend: build sandboxes. A tenant's Dockerfile runs in an engine of its own, never
in the host's.

Each building user has one sandbox, kept between builds: a container of the sandbox image
(Docker-in-Docker, scripts/sandbox/init.sh) on a bridge network of its own, whose engine keeps
its images and build cache on a volume of its own. It holds only what that user may build on:
the images the platform loads into it (the stack, the user's apps' images, the images an admin
allowed, each checked by controller/accounts/tenancy.py before it is loaded) and what the user built
there. Its network rules (sandbox_policy.py) refuse the host, loopback, link-local and private
ranges to the engine (`ADD http://...`) and to every build step; package registries stay
reachable. Its engine listens only on a unix socket in a host directory: no container, of any
tenant, can reach it.

A finished image leaves through the sandbox's own registry: the sandbox's engine pushes it on
127.0.0.1 inside the sandbox, and the host's engine pulls it from the port that registry is
published on (127.0.0.1 of the host), so only the layers the host lacks cross (a redeploy's new
layer, not the stack). On the way, the platform's labels are stamped on the image's config in that
registry (image_stamp.py): no build step of the tenant's Dockerfile is the platform's. An image of
at most 16 MB (image_archive.py) leaves instead as one archive, the sandbox's `docker save` into
the host's `docker load`, its labels stamped on the way: cheaper than the registry's round trips."""
from __future__ import annotations

import contextlib
import fcntl
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import docker
import docker.errors
import requests

from core.errors import ImageBuildFailed, SchedulerError

from controller.scheduler.docker_ahead import AHEAD_MIN_BYTES, Ahead, dockerfile_stages, quietly
from controller.scheduler.image_archive import DIRECT_MAX_BYTES
from controller.scheduler.sandbox_transfer import building, carry_out, stamp_labels, stream_ok, tidy_unless_building
from controller.scheduler import sandbox_policy as policy
from controller.scheduler.docker_build import DockerBuild, EngineBuild
from controller.scheduler.labels import LABEL_BUILD, LABEL_INSTANCE

LABEL_SANDBOX = "dockyard.sandbox"
_START_TIMEOUT = 60.0
_RECHECK = 60.0    # seconds a sandbox found ready is trusted with one ping (then checked in full)
_REPING = 2.0      # seconds a ping is trusted: one build's base images and build share one
_AHEAD_WAIT = 10.0  # seconds a build waits for a move ahead that is still pulling when the final image is in
_TIDY_AFTER = 2.0   # seconds after a build its sandbox is tidied: once the release's instances have started


@dataclass(frozen=True)
class _Sandbox:
    base_url: str       # its engine's socket
    registry: int       # the host port its registry is published on (127.0.0.1)
    version: str        # its engine's API version (asked once, not by every client)
    checked: float      # time.monotonic() of its last full check

    def api(self, timeout: int = 300) -> docker.APIClient:
        return docker.APIClient(base_url=self.base_url, version=self.version, timeout=timeout)

    @property
    def builds_lock(self) -> Path:
        """The sandbox's builds lock (sandbox_transfer.building), beside its socket's folder."""
        sock_dir = Path(self.base_url.removeprefix("unix://")).parent
        return sock_dir.parent / f"{sock_dir.name}.builds.lock"


class DockerSandboxes(DockerBuild):
    _locks_guard = threading.Lock()
    _locks: dict[str, threading.Lock] = {}
    _ready: dict[tuple[str, str], _Sandbox] = {}   # (instance, tenant) -> last found ready
    _pinged: dict[tuple[str, str], float] = {}     # (instance, tenant) -> time.monotonic() of its last ping

    # ---- the verbs ------------------------------------------------------------------
    def sandbox_provide(self, tenant: str, ref: str) -> bool:
        """Make the host's image `ref` available in the tenant's sandbox (loaded when the sandbox
        lacks it or holds another image under that name). False when the host has no such image.
        The caller has checked that the tenant may use it."""
        host = self._inspect_image(ref)
        if host is None:
            return False
        sandbox = self._sandbox(tenant)
        with contextlib.closing(sandbox.api()) as api:
            try:
                if api.inspect_image(ref)["Id"] == host["Id"]:
                    return True
            except docker.errors.ImageNotFound:
                pass
            self._copy_in(api, ref)
        return True

    def sandbox_build(self, tenant: str, context_dir: str, tag: str, on_line: Callable[[str], None], *, app: str,
                      build_id: str | None = None, dockerfile: str | None = None,
                      cancelled: Callable[[], bool] = lambda: False) -> str:
        """Build a tenant's Dockerfile in the tenant's sandbox, then move the image to the host's
        engine as `tag`, carrying the platform's labels. Returns the host's image id."""
        dockerfile = dockerfile or "Dockerfile"
        sandbox = self._sandbox(tenant)
        labels = self._labels(app, **({LABEL_BUILD: build_id} if build_id else {}))
        repo, _, name = tag.rpartition(":")
        ahead = Ahead(name, dockerfile_stages(context_dir, dockerfile),
                      lambda under, image, moved, since: self._move_ahead(sandbox, repo, under, image, labels, moved,
                                                                          since, ahead.stopped))
        digests: list[str] = []
        out: list[str] = []   # the host's image id, once the image is out

        def tidy() -> None:
            ahead.close()
            for under, moved in ahead.moved:
                self._forget_ahead(sandbox, repo, under, moved)
            if out:
                self._tidy(sandbox, tag, digests)

        try:
            run = EngineBuild(context_dir, dockerfile, tag, self.config.build_memory_mb * 1024 * 1024,
                              base_url=sandbox.base_url, version=sandbox.version)
            try:
                with building(sandbox.builds_lock):
                    image_id = self._read_build(run, ahead.watching(on_line), cancelled)
            finally:
                run.close()
            ahead.stop()
            with contextlib.closing(sandbox.api()) as api:
                try:
                    built = api.inspect_image(image_id or tag)
                except docker.errors.APIError:
                    raise ImageBuildFailed("The engine reported no image at the end of the build.") from None
                if built.get("Size", DIRECT_MAX_BYTES + 1) <= DIRECT_MAX_BYTES:
                    image_id = carry_out(api, self.client.api, tag, built["Id"], built["Size"], labels)
                else:
                    image_id, digests[:] = self._move_out(api, sandbox, tag, built["Id"], labels)
                out.append(image_id)
            # a move ahead still pulling ends with the final image's pull (the engine fetches a layer
            # once): then its copy is named in the app's repo, where an image collection finds it
            # should the tidy below not run
            ahead.close(timeout=_AHEAD_WAIT)
        finally:
            # tidying the sandbox (and what moved ahead) need not hold up the release, nor share
            # the machine with the start of its instances
            timer = threading.Timer(_TIDY_AFTER, tidy)
            timer.name, timer.daemon = f"tidy-{tag}", True
            timer.start()
        return image_id

    def _move_ahead(self, sandbox: _Sandbox, repo: str, name: str, image: str, labels: dict[str, str],
                    digests: list[str], since: str | None, stopped: Callable[[], bool]) -> bool:
        """A finished step's `image` out of the sandbox as the final image goes (docker_ahead.py),
        under `name`: its layers are on the host when the final image follows. Once `stopped()`,
        the final image is on its way and what is not begun yet is left to it. False (nothing
        moved) for an image small enough to leave as an archive, or whose layers above `since`
        (the image whose layers are out) are too small to be worth a move."""
        inside = f"127.0.0.1:{policy.REGISTRY_PORT}/{repo}"
        with contextlib.closing(sandbox.api()) as api:
            info = api.inspect_image(image)
            size = info.get("Size", 0)
            if size <= DIRECT_MAX_BYTES or (since and size - api.inspect_image(since).get("Size", 0) < AHEAD_MIN_BYTES):
                return False
            built = info["Id"]
            api.tag(built, inside, name)
            if stopped():
                return True
            pushed = stream_ok(api.push(inside, tag=name, stream=True, decode=True), "push", "Digest")
        if not pushed or stopped():
            return True
        digests.append(pushed)
        digests.append(stamp_labels(f"http://127.0.0.1:{sandbox.registry}/v2/{repo}", name, pushed, built, labels)[1])
        if stopped():
            return True
        outside, host = f"127.0.0.1:{sandbox.registry}/{repo}", self.client.api
        stream_ok(host.pull(outside, tag=name, stream=True, decode=True), "pull")
        # in the app's repo, as the app's image: an image collection finds it should the tidy not run
        host.tag(f"{outside}:{name}", repo, name)
        host.remove_image(f"{outside}:{name}", noprune=True)
        return True

    def _forget_ahead(self, sandbox: _Sandbox, repo: str, name: str, digests: list[str]) -> None:
        """What a move ahead left: the host's copy (its layers stay with the final image), its
        manifests in the sandbox's registry, its name in the sandbox."""
        quietly(lambda: self.client.api.remove_image(f"127.0.0.1:{sandbox.registry}/{repo}:{name}", noprune=True))
        quietly(lambda: self.client.api.remove_image(f"{repo}:{name}"))
        for digest in digests:
            quietly(lambda: requests.delete(f"http://127.0.0.1:{sandbox.registry}/v2/{repo}/manifests/{digest}",
                                            timeout=10))
        with contextlib.closing(sandbox.api()) as api:
            quietly(lambda: api.remove_image(f"127.0.0.1:{policy.REGISTRY_PORT}/{repo}:{name}", noprune=True))

    def remove_sandbox(self, tenant: str) -> None:
        """Remove a tenant's sandbox: its container, volume (images, cache) and network."""
        name = policy.sandbox_name(self.config.name, tenant)
        self._ready.pop((self.config.name, tenant), None)
        self._pinged.pop((self.config.name, tenant), None)
        api = self.client.api
        for remove in (lambda: api.remove_container(name, force=True, v=True), lambda: api.remove_volume(name, force=True),
                       lambda: api.remove_network(name)):
            try:
                remove()
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as e:
                raise SchedulerError(f"Could not remove the build sandbox {name}: {e.explanation}") from None

    # ---- moving images in and out ----------------------------------------------------
    def _copy_in(self, api: docker.APIClient, ref: str) -> None:
        """`docker save` on the host straight into `docker load` in the sandbox."""
        try:
            resp = self.client.api.get(self.client.api._url("/images/get"), params={"names": ref}, stream=True)
            self.client.api._raise_for_status(resp)
            with contextlib.closing(resp):
                for chunk in api.load_image(resp.iter_content(1 << 20)):
                    if isinstance(chunk, dict) and chunk.get("error"):
                        raise SchedulerError(f"Could not load {ref} into the build sandbox: {chunk['error']}")
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not load {ref} into the build sandbox: {e.explanation}") from None

    def _move_out(self, api: docker.APIClient, sandbox: _Sandbox, tag: str, image_id: str,
                  labels: dict[str, str]) -> tuple[str, list[str]]:
        """Push from the sandbox to its registry, stamp `labels` on it there, pull it into the
        host's engine, tag it `tag`. Returns the host's image id and the manifests' digests in
        the sandbox's registry. The name the image was pushed under stays for `_tidy` to remove."""
        repo, _, name = tag.rpartition(":")
        inside = f"127.0.0.1:{policy.REGISTRY_PORT}/{repo}"
        outside = f"127.0.0.1:{sandbox.registry}/{repo}"
        api.tag(image_id, inside, name)
        try:
            pushed = stream_ok(api.push(inside, tag=name, stream=True, decode=True), "push", "Digest")
        except BaseException:
            with contextlib.suppress(docker.errors.APIError):
                api.remove_image(f"{inside}:{name}", noprune=True)
            raise
        if not pushed:
            raise ImageBuildFailed("The build sandbox's engine named no digest for the image it pushed: push again.")
        image_id, stamped = stamp_labels(f"http://127.0.0.1:{sandbox.registry}/v2/{repo}", name, pushed, image_id, labels)
        host = self.client.api
        try:
            stream_ok(host.pull(outside, tag=name, stream=True, decode=True), "pull")
            host.tag(f"{outside}:{name}", repo, name)
            host.remove_image(f"{outside}:{name}", noprune=True)
        except docker.errors.APIError as e:
            raise ImageBuildFailed(f"Could not take the image out of the build sandbox: {e.explanation}") from None
        if (self._inspect_image(tag) or {}).get("Id") != image_id:
            raise ImageBuildFailed("The image taken out of the build sandbox is not the one built: push again.")
        return image_id, [pushed, stamped]

    @staticmethod
    def _tidy(sandbox: _Sandbox, tag: str, digests: list[str]) -> None:
        """The sandbox's registry forgets the image handed over, its engine keeps the app's
        newest build and dependency images (tidy_sandbox), and not the name it pushed the image
        under."""
        def delete(repo: str, digest: str) -> None:
            requests.delete(f"http://127.0.0.1:{sandbox.registry}/v2/{repo}/manifests/{digest}", timeout=10)

        repo, _, keep = tag.rpartition(":")
        with contextlib.suppress(docker.errors.DockerException, requests.RequestException, OSError), \
                contextlib.closing(sandbox.api()) as api:
            with contextlib.suppress(docker.errors.APIError):
                api.remove_image(f"127.0.0.1:{policy.REGISTRY_PORT}/{repo}:{keep}", noprune=True)
            tidy_unless_building(sandbox.builds_lock, delete, api, tag, digests)

    # ---- the sandbox itself ----------------------------------------------------------
    def _sandbox(self, tenant: str) -> _Sandbox:
        """The tenant's sandbox, running: created on first use, started when stopped, replaced
        (keeping its volume) when the sandbox image changed. One found ready in the last
        _RECHECK seconds is trusted once its engine answers a ping."""
        key = (self.config.name, tenant)
        known = self._ready.get(key)
        if known is not None and time.monotonic() - known.checked < _RECHECK:
            if time.monotonic() - self._pinged.get(key, 0.0) < _REPING:
                return known
            try:
                with contextlib.closing(known.api(timeout=5)) as api:
                    api.ping()
                self._pinged[key] = time.monotonic()
                return known
            except (docker.errors.DockerException, requests.RequestException):
                self._ready.pop(key, None)
        sandbox = self._ensure_sandbox(tenant)
        self._ready[key] = sandbox
        self._pinged[key] = sandbox.checked
        return sandbox

    def _ensure_sandbox(self, tenant: str) -> _Sandbox:
        name = policy.sandbox_name(self.config.name, tenant)
        sock_dir = Path(policy.socket_dir(self.config.name, tenant))
        with self._tenant_lock(tenant, sock_dir):
            image = self._inspect_image(self.config.sandbox_image)
            if image is None:
                raise SchedulerError(f"The build sandbox image {self.config.sandbox_image} is missing: build it "
                                     "with `bash scripts/install.sh` (scripts/build-sandbox-image.sh).")
            api = self.client.api
            info = inspect_or_none(api, name)
            if info is not None and info.get("Image") != image["Id"]:
                api.remove_container(name, force=True)
                info = None
            if info is None:
                self._create_sandbox(tenant, name, sock_dir)
            if not ((info or {}).get("State") or {}).get("Running"):
                api.start(name)
            return self._wait_ready(f"unix://{sock_dir}/docker.sock",
                                    policy.registry_host_port(inspect_or_none(api, name) or {}) or 0, name)

    @contextlib.contextmanager
    def _tenant_lock(self, tenant: str, sock_dir: Path) -> Iterator[None]:
        """One creator of a sandbox at a time, across threads and the API's processes."""
        with self._locks_guard:
            lock = self._locks.setdefault(tenant, threading.Lock())
        sock_dir.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        sock_dir.mkdir(parents=True, exist_ok=True)
        sock_dir.chmod(0o700)
        with lock, open(sock_dir.parent / f"{tenant}.lock", "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield

    def _create_sandbox(self, tenant: str, name: str, sock_dir: Path) -> None:
        api = self.client.api
        try:
            create_sandbox_container(api, self.config.sandbox_image, name, {LABEL_INSTANCE: self.config.name,
                                     LABEL_SANDBOX: tenant}, self.config.build_memory_mb,
                                     binds={str(sock_dir): {"bind": policy.SOCKET_DIR, "mode": "rw"}})
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not create the build sandbox {name}: {e.explanation}") from None

    def _wait_ready(self, base_url: str, registry: int, name: str) -> _Sandbox:
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            try:
                with contextlib.closing(docker.APIClient(base_url=base_url, timeout=5)) as api:
                    api.ping()
                    if registry:
                        return _Sandbox(base_url, registry, api.api_version, time.monotonic())
            except (docker.errors.DockerException, requests.RequestException):
                pass
            if time.monotonic() >= deadline:
                raise SchedulerError(f"The build sandbox {name} did not start within {_START_TIMEOUT:.0f} s: see "
                                     f"`docker logs {name}`.")
            time.sleep(0.2)


def create_sandbox_container(api: docker.APIClient, image: str, name: str, labels: dict[str, str], build_memory_mb: int,
                             *, binds: dict, published: dict | None = None, entrypoint: list[str] | None = None) -> None:
    """Create (not start) one tenant's sandbox engine `name` on `api`'s engine: its own bridge
    network and volume, the capabilities a nested engine needs but no SYS_RESOURCE, the build's
    memory plus the engine's own, its registry published on loopback only (and `published`
    ports where the caller says), the networks of the platform host refused from inside. One
    recipe for the platform host and the cluster's nodes, so their isolation cannot drift."""
    if _inspect_network(api, name) is None:
        api.create_network(name, driver="bridge", labels=labels)
    api.create_volume(name, labels=labels)
    ports = {policy.REGISTRY_PORT: ("127.0.0.1",), **(published or {})}
    host_config = api.create_host_config(
        cap_add=["ALL"], cap_drop=["SYS_RESOURCE"], security_opt=["seccomp=unconfined", "apparmor=unconfined"],
        binds={"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"}, **binds,
               name: {"bind": "/var/lib/docker", "mode": "rw"}},
        tmpfs={"/run": ""}, port_bindings=ports,
        network_mode=name, mem_limit=f"{build_memory_mb + 1024}m",
        restart_policy={"Name": "unless-stopped"},
        log_config={"Type": "json-file", "Config": {"max-size": "5m", "max-file": "2"}})
    host_nets, dns = sandbox_host_networks(), policy.nameservers(read_or_empty("/etc/resolv.conf"))
    try:
        pool, bridge = policy.engine_networks(host_nets + dns)
    except ValueError as e:
        raise SchedulerError(str(e)) from None
    api.create_container(
        image, name=name, hostname="sandbox", labels=labels,
        environment={"SANDBOX_BLOCK": " ".join(policy.blocked_networks(host_nets)), "SANDBOX_DNS": " ".join(dns),
                     "SANDBOX_POOL": pool, "SANDBOX_BRIDGE": bridge},
        ports=list(ports), host_config=host_config, detach=True, **({"entrypoint": entrypoint} if entrypoint else {}))


def inspect_or_none(api, name: str) -> dict | None:
    try:
        return api.inspect_container(name)
    except docker.errors.NotFound:
        return None


def _inspect_network(api, name: str) -> dict | None:
    try:
        return api.inspect_network(name)
    except docker.errors.NotFound:
        return None


def sandbox_host_networks() -> list[str]:
    """The networks of the platform host's own addresses, refused to every sandbox (on the host
    and on the cluster's nodes)."""
    proc = subprocess.run(["ip", "-j", "-4", "addr"], capture_output=True, text=True, timeout=10)
    if proc.returncode != 0:
        raise SchedulerError(f"Could not list the host's addresses (`ip -j -4 addr` exited {proc.returncode}): "
                             "install iproute2.")
    return policy.host_networks(proc.stdout)


def read_or_empty(path: str) -> str:
    """A host file's text (the resolvers a sandbox may ask); "" when it cannot be read."""
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""
