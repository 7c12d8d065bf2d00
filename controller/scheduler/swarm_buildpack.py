"""Cluster backend: the engine verbs of a buildpack build, run by a tenant's build sandbox on a
node (swarm_build.py chooses the node and starts the sandbox).

On one host a buildpack's build steps run in containers that mount the host's directories: the
checkout and the build's metadata (written back), the buildpacks, the runner and the config
vars (read-only), the app's build cache. A node is another machine, so here each mount becomes
a copy: what a step reads is put into its container before it starts, what it writes (the
slug, the metadata) is taken out of it after it ended and written under the host directory it
would have mounted. The app's build cache is not copied: it is a volume of the sandbox on that
node, kept between builds, so a push that builds on the same node as the app's previous one
is warm, and one on another node starts from an empty cache (a cold build).

The images those steps make (the dependency image, the slug's) are built by the sandbox's
engine too and stay there: the dependency images are the next build's warm start on that node;
the slug's image leaves through the platform's registry like a Dockerfile build's."""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tarfile
import tempfile
import threading

import docker
import docker.errors
import requests

from core.errors import ImageBuildFailed, SchedulerError

from controller.scheduler.docker_build import DockerBuild
from controller.scheduler.docker_images import DockerImages

CACHE_PATH = "/cache"     # the build step's mount of the app's build cache (a volume on the node)
APP_UID = 1000            # the build user: owns the cache volume, as it owns the host's cache directory
_COPY_BACK_WAIT = 300.0
_FROM = re.compile(r"^\s*FROM\s+(\S+)", re.I | re.M)


class SandboxEngine(DockerImages, DockerBuild):
    """The host backend's image and build-container verbs, pointed at a node's build sandbox
    engine, with host mounts turned into copies (module docstring)."""

    def __init__(self, config, api: docker.APIClient):
        super().__init__(config)
        self._client = docker.DockerClient(base_url=api.base_url, version=api.api_version, timeout=300)
        self._back: dict[str, list[tuple[str, str]]] = {}   # container -> [(its path, host dir)] to take out
        self._taken = threading.Event()
        self._take_error: Exception | None = None

    def close(self) -> None:
        self._client.close()

    def _engine_target(self) -> dict:
        return {"base_url": self._client.api.base_url, "version": self._client.api.api_version}

    def from_images(self, dockerfile: str) -> list[str]:
        """The images a Dockerfile the platform wrote builds on (`scratch` is none)."""
        with open(dockerfile, errors="replace") as f:
            return [ref for ref in _FROM.findall(f.read()) if ref != "scratch"]

    # ---- build containers: mounts become copies --------------------------------------
    def run_build_container(self, *args, **kw):
        self._taken.clear()
        self._take_error = None
        run = super().run_build_container(*args, **kw)
        if not self._taken.wait(_COPY_BACK_WAIT):
            raise SchedulerError("Taking the build's output out of the build sandbox took longer than "
                                 f"{_COPY_BACK_WAIT:.0f} s: push again.")
        if self._take_error is not None:
            raise self._take_error
        return run

    def _create_build_container(self, app, build_id, image, command, binds, env, user, network) -> str:
        volume = {}
        if CACHE_PATH in binds:
            volume[CACHE_PATH] = (self._cache_volume(binds[CACHE_PATH][0]), False)
        cid = super()._create_build_container(app, build_id, image, command, volume, env, user, network)
        copies = {path: bind for path, bind in binds.items() if path != CACHE_PATH}
        try:
            with tempfile.TemporaryFile() as tar:
                pack(tar, copies, cache=CACHE_PATH in binds)
                tar.seek(0)
                if not self.client.api.put_archive(cid, "/", tar):
                    raise SchedulerError("The build sandbox refused the build's files: push again.")
        except (docker.errors.APIError, OSError) as e:
            self._remove_quietly(cid)
            raise SchedulerError(f"Could not copy the build's files into the build sandbox: {e}") from None
        self._back[cid] = [(path, host) for path, (host, ro) in copies.items() if not ro and os.path.isdir(host)]
        return cid

    def _remove_quietly(self, cid: str | None, network: str | None = None) -> None:
        back = self._back.pop(cid, None) if cid else None
        if back is not None:
            try:
                for path, host in back:
                    self._take_out(cid, path, host)
            except Exception as e:  # noqa: BLE001 - handed to the build's thread, which raises it
                self._take_error = e
            finally:
                self._taken.set()
        with contextlib.suppress(requests.RequestException):   # a node lost: nothing is left to remove
            super()._remove_quietly(cid, network)

    def _take_out(self, cid: str, path: str, host: str) -> None:
        try:
            stream, _ = self.client.api.get_archive(cid, path)
            with tempfile.TemporaryFile() as tar:
                for chunk in stream:
                    tar.write(chunk)
                tar.seek(0)
                unpack(tar, host)
        except (docker.errors.APIError, requests.RequestException) as e:
            raise SchedulerError(f"Could not take {path} out of the build sandbox: {e}") from None

    def _cache_volume(self, host_cache: str) -> str:
        """The sandbox's volume for the app's build cache (named after the host's cache
        directory, which names the app), kept between builds on this node."""
        return f"{self.config.name}-cache-{hashlib.sha256(host_cache.encode()).hexdigest()[:16]}"


def pack(out, copies: dict[str, tuple[str, bool]], cache: bool) -> None:
    """A tar of the host paths `copies` names (container path -> (host path, read-only)) at
    their container paths; with `cache`, the cache mount's root owned by the build user (an
    empty volume is root's)."""
    with tarfile.open(fileobj=out, mode="w") as tar:
        if cache:
            root = tarfile.TarInfo(CACHE_PATH.lstrip("/"))
            root.type, root.mode, root.uid, root.gid = tarfile.DIRTYPE, 0o755, APP_UID, APP_UID
            tar.addfile(root)
        for path, (host, _ro) in copies.items():
            if os.path.isdir(host):   # links inside are kept as links (the build wrote them)
                tar.add(host, arcname=path.lstrip("/"), recursive=True)
            else:   # a file the platform names (the runner, the CA bundle): its content
                tar.add(os.path.realpath(host), arcname=path.lstrip("/"))


def unpack(tar_file, dest: str) -> None:
    """Replace what is below the host directory `dest` with the tar of a container's directory
    (its entries under one top directory). A build step wrote it: only directories, regular
    files and symlinks are taken, none outside `dest` nor through a link (tarfile's `tar`
    filter), set-id bits cleared."""
    for name in os.listdir(dest):
        path = os.path.join(dest, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)

    def only_plain(member: tarfile.TarInfo, where: str) -> tarfile.TarInfo | None:
        _top, _, rel = member.name.partition("/")
        if not rel or not (member.isreg() or member.isdir() or member.issym()):
            return None
        return tarfile.tar_filter(member.replace(name=rel, deep=False), where)

    try:
        with tarfile.open(fileobj=tar_file, mode="r") as tar:
            tar.extractall(dest, filter=only_plain)
    except (tarfile.TarError, OSError) as e:
        raise ImageBuildFailed(f"The build left files that cannot be taken out of its sandbox ({e}): "
                               "remove links that lead out of the app's directory and push again.") from None

