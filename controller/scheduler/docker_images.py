"""Single-host backend: the images in the one engine (look up, tag, remove)."""
from __future__ import annotations

from typing import BinaryIO, Iterable

import docker.errors

from core.errors import SchedulerError

from controller.scheduler.docker_engine import DockerEngine
from controller.scheduler.docker_parse import image_removal
from controller.scheduler.labels import LABEL_APP, LABEL_INSTANCE


class DockerImages(DockerEngine):
    def image_exists(self, ref: str) -> bool:
        return self._inspect_image(ref) is not None

    def image_identity(self, ref: str) -> tuple[str, str | None] | None:
        info = self._inspect_image(ref)
        if info is None:
            return None
        labels = (info.get("Config") or {}).get("Labels") or {}
        ours = labels.get(LABEL_INSTANCE) == self.config.name
        return info["Id"], (labels.get(LABEL_APP) if ours else None)

    def host_memory_mb(self) -> int:
        try:
            return int(self.client.info().get("MemTotal", 0)) >> 20
        except docker.errors.DockerException as e:
            raise SchedulerError(f"Could not ask the engine for its memory: {e}") from None

    def tag(self, image: str, repo: str, tag: str) -> str:
        if not self.client.api.tag(image, repo, tag):
            raise SchedulerError(f"Could not tag {image} as {repo}:{tag}.")
        return f"{repo}:{tag}"

    def image_config(self, ref: str) -> dict:
        """The image's Cmd/Entrypoint/ExposedPorts/User (what `docker inspect` shows as Config)."""
        return self._image_config(ref)

    def image_size(self, ref: str) -> int | None:
        return (self._inspect_image(ref) or {}).get("Size")

    def remove_images(self, app: str, keep: Iterable[str] = (), builds_only: bool = False) -> int:
        """Remove the app's images (only those Dockyard labelled, or tagged in the app's repo by a
        promotion), except images with one of the `keep` tags. With `builds_only`, the dependency
        images buildpack builds share (tagged `deps-*`) stay: an untagged one goes with the last
        image built on it. An image another app also runs (a promotion tagged it in both repos)
        only loses this app's tags."""
        keep = set(keep)
        removed = 0
        repo = self.config.image_repo(app)
        for _ in range(5):   # a parent (e.g. a buildpack dependency image) goes once its children have
            failed = 0
            for img in self._app_images(app, repo):
                action, refs = image_removal(img.get("RepoTags") or [], repo, keep, builds_only)
                try:
                    if action == "remove":
                        self.client.api.remove_image(img["Id"], force=True)
                        removed += 1
                    for ref in refs if action == "untag" else ():
                        self.client.api.remove_image(ref)
                except docker.errors.APIError:
                    failed += 1  # in use by a container being stopped, or has children; retried
            if not failed:
                break
        return removed

    def _app_images(self, app: str, repo: str) -> list[dict]:
        """The images labelled as the app's, and those a promotion tagged in its repo."""
        found = {img["Id"]: img for img in self.client.api.images(filters=self._filters(app))}
        for img in self.client.api.images(name=repo, filters=self._filters(None)):
            found.setdefault(img["Id"], img)
        return list(found.values())

    def save_images(self, refs: list[str], out: BinaryIO) -> None:
        try:
            # One archive for all: layers the images share (the stack) are written once.
            resp = self.client.api.get(self.client.api._url("/images/get"), params=[("names", r) for r in refs],
                                       stream=True)
            self.client.api._raise_for_status(resp)
            for chunk in resp.iter_content(1 << 20):
                out.write(chunk)
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not save the images {', '.join(refs)}: {e.explanation}") from None

    def load_images(self, src: BinaryIO) -> None:
        try:
            for _ in self.client.api.load_image(src):
                pass
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not load the images: {e.explanation}") from None

    def image_tags(self, repo: str, prefix: str) -> list[str]:
        """The tags `repo:<prefix>*` the engine has (the tags only)."""
        try:
            images = self.client.api.images(name=repo)
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not list images of {repo}: {e.explanation}") from None
        return sorted({t.rpartition(":")[2] for img in images for t in img.get("RepoTags") or []
                       if t.rpartition(":")[0] == repo and t.rpartition(":")[2].startswith(prefix)})

    def untag_images(self, repo: str, prefix: str, keep: str) -> int:
        """Remove the tags `repo:<prefix>*` other than `repo:<keep>` (no force: an image that others
        build on only loses its tag). Returns how many tags went."""
        removed = 0
        try:
            images = self.client.api.images(name=repo)
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not list images of {repo}: {e.explanation}") from None
        for img in images:
            for t in img.get("RepoTags") or []:
                name, _, tag = t.rpartition(":")
                if name == repo and tag.startswith(prefix) and tag != keep:
                    try:
                        self.client.api.remove_image(t)
                        removed += 1
                    except docker.errors.APIError:
                        pass   # in use by a container: the next build tries again
        return removed
