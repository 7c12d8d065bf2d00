"""How an image crosses a build sandbox's edge, for the host's sandboxes (docker_sandbox.py) and
the nodes' (swarm_build.py): the platform's labels stamped in the sandbox's registry on the
way (image_stamp.py), or a small image carried as one archive (image_archive.py); a push's,
pull's or load's stream read to its end; the sandbox tidied after the image left, unless a build
runs in it."""
from __future__ import annotations

import contextlib
import fcntl
import os
import tarfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator

import docker
import docker.errors
import requests

from core.errors import ImageBuildFailed

from controller.scheduler import image_archive, image_stamp


def carry_out(api: docker.APIClient, host: docker.APIClient, tag: str, image_id: str, size: int,
              labels: dict[str, str]) -> str:
    """A small image from a sandbox's engine (`api`) to the host's (`host`) as `tag`, in one
    archive (image_archive.py): the sandbox's `docker save`, relabelled as it streams, into the
    host's `docker load` (the load unpacks what has arrived while the rest comes). Returns the
    host's image id."""
    outcome: dict = {}
    try:
        resp = api.get(api._url("/images/get"), params={"names": image_id}, stream=True)
        api._raise_for_status(resp)
        with contextlib.closing(resp):
            read_fd, write_fd = os.pipe()

            def write() -> None:
                try:
                    with open(write_fd, "wb") as dst:
                        outcome["id"] = image_archive.relabel(resp.raw, dst, image_id, labels, tag, size)
                except BaseException as e:  # noqa: BLE001 - raised in the load's thread below
                    outcome["error"] = e

            def chunks() -> Iterator[bytes]:
                while data := src.read(1 << 16):
                    yield data
                writer.join()
                if "error" in outcome:   # the load's request ends unfinished: the engine loads nothing
                    raise outcome["error"]

            src = open(read_fd, "rb")
            writer = threading.Thread(target=write, name=f"carry-{tag}", daemon=True)
            writer.start()
            try:
                stream_ok(host.load_image(chunks(), quiet=True), "load")
            finally:
                src.close()             # a load refused early: the writer's pipe breaks, it ends
                writer.join()
    except (docker.errors.APIError, requests.RequestException, tarfile.TarError, OSError) as e:
        raise ImageBuildFailed(f"Could not take the image out of the build sandbox: {e}") from None
    except image_stamp.NotAnImage as e:
        raise ImageBuildFailed(f"The build sandbox's image archive was refused ({e}): push again.") from None
    try:
        loaded = host.inspect_image(tag)["Id"]
    except docker.errors.APIError:
        loaded = None
    if "error" in outcome or loaded != outcome.get("id"):
        raise ImageBuildFailed("The image taken out of the build sandbox is not the one built: push again.")
    return outcome["id"]


def stamp_labels(base: str, name: str, pushed: str, built: str, labels: dict[str, str]) -> tuple[str, str]:
    """Put the image `pushed` (a manifest digest in the registry at `base`, whose config is the
    image `built`) back under the tag `name` with `labels` in its config. Returns the new image
    id and manifest digest. The three reads that need nothing from each other (the manifest, the
    config, opening the upload) go out at once: each is a round trip through the sandbox's proxy."""
    def fail(what: str) -> ImageBuildFailed:
        return ImageBuildFailed(f"Could not label the image in the build sandbox's registry ({what}): push again.")

    try:
        with requests.Session() as http, requests.Session() as blobs, requests.Session() as uploads, \
                ThreadPoolExecutor(max_workers=2, thread_name_prefix="stamp") as pool:
            config_read = pool.submit(_fetch, blobs, f"{base}/blobs/{built}")
            upload_opened = pool.submit(uploads.post, f"{base}/blobs/uploads/", timeout=30)
            manifest = _fetch(http, f"{base}/manifests/{pushed}", image_stamp.MANIFEST_V2)
            config, upload = config_read.result(), upload_opened.result()
            if image_stamp.digest(manifest) != pushed:
                raise fail("the manifest is not the one pushed")
            if image_stamp.config_digest(manifest) != built or image_stamp.digest(config) != built:
                raise fail("the config is not the one built")
            config = image_stamp.labelled_config(config, labels)
            if upload.status_code != 202 or not upload.headers.get("Location"):
                raise fail(f"upload answered {upload.status_code}")
            where = requests.compat.urljoin(f"{base}/", upload.headers["Location"])
            stored = http.put(where, params={"digest": image_stamp.digest(config)}, data=config, timeout=30,
                              headers={"Content-Type": "application/octet-stream"})
            if stored.status_code != 201:
                raise fail(f"config answered {stored.status_code}")
            manifest = image_stamp.with_config(manifest, config)
            tagged = http.put(f"{base}/manifests/{name}", data=manifest, timeout=30,
                              headers={"Content-Type": image_stamp.MANIFEST_V2})
            if tagged.status_code != 201:
                raise fail(f"manifest answered {tagged.status_code}")
    except requests.RequestException as e:
        raise fail(e.__class__.__name__) from None
    except image_stamp.NotAnImage as e:
        raise fail(str(e)) from None
    return image_stamp.digest(config), image_stamp.digest(manifest)


@contextlib.contextmanager
def building(lock: Path) -> Iterator[None]:
    """Held around each build in a sandbox, shared (builds from any process run together); a
    tidy takes it exclusively while it removes older builds' images, which the builder may be
    about to use from its cache ("unable to find image" would end the build)."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_SH)
        yield


def tidy_unless_building(lock: Path, delete_manifest: Callable[[str, str], None], api: docker.APIClient,
                         tag: str, digests: list[str]) -> None:
    """tidy_sandbox, its engine's images left to a later tidy while a build holds `lock`."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            prune = True
        except BlockingIOError:
            prune = False
        tidy_sandbox(delete_manifest, api, tag, digests, prune=prune)


def tidy_sandbox(delete_manifest: Callable[[str, str], None], api: docker.APIClient, tag: str,
                 digests: list[str], prune: bool = True) -> None:
    """After an image left a sandbox: its registry forgets the manifests handed over
    (`delete_manifest(repo, digest)`; their layers are freed at the sandbox's next start), and
    its engine keeps the app's newest build (the next build's cache), not older ones, and every
    dependency image (`deps-*`, which a buildpack build names for reuse). One recipe for the
    host's sandboxes and the nodes'. `prune` false: the engine's images stay (a build runs)."""
    repo, _, keep = tag.rpartition(":")
    for digest in digests:
        with contextlib.suppress(requests.RequestException, docker.errors.DockerException):
            delete_manifest(repo, digest)
    if not prune:
        return
    with contextlib.suppress(docker.errors.DockerException, requests.RequestException):
        for img in api.images(name=repo):
            for t in img.get("RepoTags") or []:
                name, _, version = t.rpartition(":")
                if name == repo and version != keep and not version.startswith("deps-") \
                        and not newer_build(version, keep):
                    with contextlib.suppress(docker.errors.APIError):
                        api.remove_image(t)


def newer_build(version: str, than: str) -> bool:
    """Whether the build tag `version` (`build-<commit>-<epoch seconds>`, as releases.py names
    them) is of a build started no earlier than `than`: a later push's build, still under way
    while an earlier one is tidied, keeps its image."""
    def started(v: str) -> int | None:
        stamp = v.rpartition("-")[2]
        return int(stamp) if v.startswith("build-") and stamp.isdigit() else None
    mine, other = started(version), started(than)
    return mine is not None and other is not None and mine >= other


def _fetch(http: requests.Session, url: str, accept: str = "*/*") -> bytes:
    with contextlib.closing(http.get(url, headers={"Accept": accept}, timeout=30, stream=True)) as resp:
        if resp.status_code != 200:
            raise ImageBuildFailed(f"Could not read {url.rpartition('/v2/')[2][:120]} from the build sandbox's "
                                   f"registry ({resp.status_code}): push again.")
        data = resp.raw.read(image_stamp.MAX_DOCUMENT + 1, decode_content=True)
    if len(data) > image_stamp.MAX_DOCUMENT:
        raise ImageBuildFailed("The image's manifest or config is over 8 MB: make its labels and environment smaller.")
    return data


def stream_ok(chunks, what: str, aux_key: str | None = None) -> str | None:
    """Read a push or pull to its end; its `aux_key` value when it says one; an error raises."""
    found = None
    for chunk in chunks:
        if chunk.get("error"):
            raise ImageBuildFailed(f"Could not take the image out of the build sandbox ({what}): "
                                   f"{str(chunk['error'])[:300]}")
        aux = chunk.get("aux")
        if aux_key and isinstance(aux, dict) and aux.get(aux_key):
            found = aux[aux_key]
    return found
