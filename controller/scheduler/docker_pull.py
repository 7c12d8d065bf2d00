"""Single-host backend: base images a Dockerfile names, pulled from their registry (or the
operator's mirror for Docker Hub's), and collected again once no image builds on them.

A pulled image is shared: every app building FROM it uses the one copy. The platform keeps the
list of what it pulled (DOCKYARD_HOME/pulled-images.json); an image it pulled that no other image
in the engine builds on (its layers are no other image's first layers) and no container uses is
removed by `collect_pulled_images`, which runs after each deploy's image collection (an image
pulled less than DOCKYARD_BUILD_TIMEOUT ago stays: a build may be about to use it)."""
from __future__ import annotations

import fcntl
import json
import time
from typing import Callable

import docker.errors

from core.errors import SchedulerError
from core.fsutil import atomic_write
from core.imagerefs import parse_ref, pull_source

from controller.scheduler.docker_engine import DockerEngine
from controller.scheduler.labels import LABEL_APP

_PROGRESS_EVERY = 2.0   # seconds between progress lines of one layer


class DockerPulls(DockerEngine):
    def image_is_app_build(self, ref: str) -> bool:
        """Whether the engine's image `ref` was built for an app (of this or another platform):
        such an image is never pulled over, nor admitted by a pull pattern."""
        info = self._inspect_image(ref)
        return bool(info and ((info.get("Config") or {}).get("Labels") or {}).get(LABEL_APP))

    def pull_image(self, ref: str, on_line: Callable[[str], None], cancelled: Callable[[], bool]) -> str:
        """Pull `ref` (from the mirror when it is Docker Hub's and one is set), tag it `ref`,
        and return its id. Each layer's progress is reported every few seconds."""
        parsed = parse_ref(ref)
        if parsed is None:
            raise SchedulerError(f"{ref[:80]} is not an image reference: write e.g. python:3.12.")
        source = pull_source(parsed, self.config.registry_mirror)
        if source != str(parsed) and parsed.digest:
            raise SchedulerError(f"{ref[:80]} names a digest: through the mirror, images are pulled by tag. "
                                 "Write the tag (e.g. python:3.12) or unset DOCKYARD_REGISTRY_MIRROR.")
        repo, _, suffix = source.rpartition("@") if parsed.digest else source.rpartition(":")
        on_line(f"Pulling {ref} from {source.split('/')[0]}")
        last: dict[str, float] = {}
        try:
            for event in self.client.api.pull(repo, tag=suffix, stream=True, decode=True):
                if cancelled():
                    raise SchedulerError(f"The pull of {ref[:80]} was cancelled.")
                if "error" in event:
                    raise SchedulerError(f"Pulling {ref[:80]} from {source[:120]} failed: {event['error']}")
                line = _progress(event, last)
                if line:
                    on_line(line)
        except docker.errors.APIError as e:
            raise SchedulerError(f"Pulling {ref[:80]} from {source[:120]} failed: {e.explanation}") from None
        except docker.errors.DockerException as e:
            raise SchedulerError(f"Pulling {ref[:80]} failed: {e}") from None
        info = self._inspect_image(source)
        if info is None:
            raise SchedulerError(f"Pulling {ref[:80]} from {source[:120]} left no image in the engine.")
        if source != str(parsed):      # from the mirror: the engine must know it by the name the build uses
            name, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "latest")
            self.client.api.tag(info["Id"], name, tag)
            self._untag(source)
        self._remember_pull(ref, info["Id"])
        on_line(f"Pulled {ref} ({info.get('Size', 0) / 1e6:.0f} MB)")
        return info["Id"]

    def _untag(self, ref: str) -> None:
        try:
            self.client.api.remove_image(ref, noprune=True)
        except docker.errors.APIError:
            pass   # the mirror's name for the image is only cosmetic

    # ---- the list of what this platform pulled -------------------------------------------
    def _pulled_file(self):
        return self.config.home / "pulled-images.json"

    def _pulled(self) -> dict[str, dict]:
        try:
            data = json.loads(self._pulled_file().read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {k: v for k, v in data.items() if isinstance(v, dict) and isinstance(v.get("id"), str)}

    def _remember_pull(self, ref: str, image_id: str) -> None:
        with open(self.config.home / ".pulled-images.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = self._pulled()
            data[ref] = {"id": image_id, "pulled_at": time.time()}
            atomic_write(self._pulled_file(), json.dumps(data, indent=1, sort_keys=True))

    def pulled_images(self) -> dict[str, str]:
        """{reference: image id} of the images this platform pulled and still lists."""
        return {ref: v["id"] for ref, v in self._pulled().items()}

    def collect_pulled_images(self) -> int:
        """Remove the pulled images that no other image builds on and no container uses.
        Returns how many went."""
        with open(self.config.home / ".pulled-images.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = self._pulled()
            if not data:
                return 0
            try:
                images = self.client.api.images(all=True)
                in_use = {c.get("ImageID") for c in self.client.api.containers(all=True)}
            except docker.errors.DockerException as e:
                raise SchedulerError(f"Could not list the engine's images: {e}") from None
            layers = {i["Id"]: self._layers(i["Id"]) for i in images}
            removed = 0
            for ref, entry in sorted(data.items()):
                image_id = entry["id"]
                if time.time() - float(entry.get("pulled_at") or 0) < self.config.build_timeout:
                    continue              # a build may be about to use it
                mine = layers.get(image_id)
                if mine is None:          # gone already (removed by hand)
                    del data[ref]
                    continue
                built_on = any(other != image_id and lay[:len(mine)] == mine
                                              for other, lay in layers.items())
                if built_on or image_id in in_use:
                    continue
                try:
                    self.client.api.remove_image(ref)
                except docker.errors.APIError:
                    continue   # in use after all: kept for the next collection
                del data[ref]
                removed += 1
            atomic_write(self._pulled_file(), json.dumps(data, indent=1, sort_keys=True))
            return removed

    def _layers(self, image_id: str) -> tuple[str, ...]:
        info = self._inspect_image(image_id) or {}
        return tuple((info.get("RootFS") or {}).get("Layers") or ())


def _progress(event: dict, last: dict[str, float]) -> str:
    """A pull event as a line of push output: status changes always, byte progress of a layer at
    most every _PROGRESS_EVERY seconds."""
    status, layer = event.get("status", ""), event.get("id", "")
    if status == "Downloading" or status == "Extracting":
        now = time.monotonic()
        if now - last.get(layer, 0.0) < _PROGRESS_EVERY:
            return ""
        last[layer] = now
        detail = event.get("progressDetail") or {}
        if detail.get("total"):
            return f"{layer}: {status} {detail.get('current', 0) / 1e6:.1f}/{detail['total'] / 1e6:.1f} MB"
    return f"{layer}: {status}" if layer else status
