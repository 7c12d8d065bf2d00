"""Single-host backend: a Dockerfile build's finished steps leave the build sandbox while its later
steps run (build_ahead.py says which images; docker_sandbox.py moves them the way the final image
goes: push to the sandbox's registry, the platform's labels stamped, pulled by the host).

Only time is at stake: the final image still takes the whole way out and is checked, and the
host's engine fetches a layer a move ahead is still pulling once (it joins the running download).
So a move ahead that fails is dropped, and what it left (a name in the sandbox, manifests in its
registry, the host's copy) is removed once the build has ended, as for the final image."""
from __future__ import annotations

import contextlib
import os
import stat
import threading
from typing import Callable

import docker.errors
import requests

from core.errors import DockyardError

from controller.scheduler.build_ahead import StepWatch, count_stages

MAX_AHEAD = 3          # images one build moves ahead at most (its output names them: it is the tenant's)
# A move ahead costs the build's later steps some of the sandbox's time: it pays only for layers
# big enough that the final image's trip would spend longer compressing and carrying them.
AHEAD_MIN_BYTES = 4 << 20
_MAX_DOCKERFILE = 1 << 20

# (name the image goes under, image, list the move appends the registry's manifest digests to,
# the image whose layers are out already or None) -> False when it chose not to move the image
Move = Callable[[str, str, list, "str | None"], "bool | None"]


class Ahead:
    """The moves ahead of one build: one at a time, the newest image named while one runs next."""

    def __init__(self, name: str, stages: int, move: Move):
        self.name = name              # the final image's tag name; a move ahead goes under `<name>-aheadN`
        self.watch = StepWatch(stages)
        self.move = move
        self.lock = threading.Lock()
        self.wanted: str | None = None
        self.worker: threading.Thread | None = None
        self.moved: list[tuple[str, list[str]]] = []
        self.since: str | None = None  # the last image moved: its layers are out
        self.closed = False           # the build has ended: no move starts any more

    def watching(self, on_line: Callable[[str], None]) -> Callable[[str], None]:
        """`on_line`, with each line read for an image to move ahead first."""
        def feed(line: str) -> None:
            image = self.watch.feed(line)
            if image is not None:
                self._offer(image)
            on_line(line)
        return feed

    def _offer(self, image: str) -> None:
        with self.lock:
            if self.closed or len(self.moved) >= MAX_AHEAD :
                return
            self.wanted = image
            if self.worker is None:
                self.worker = threading.Thread(target=self._work, name=f"ahead-{self.name}", daemon=True)
                self.worker.start()

    def _work(self) -> None:
        while True:
            with self.lock:
                image, self.wanted = self.wanted, None
                if image is None or self.closed or len(self.moved) >= MAX_AHEAD:
                    self.worker = None
                    return
                entry = (f"{self.name}-ahead{len(self.moved) + 1}", [])
                self.moved.append(entry)
                since = self.since or self.watch.base
            try:
                moved = self.move(entry[0], image, entry[1], since)
            except (DockyardError, docker.errors.DockerException, requests.RequestException):
                continue   # only time is lost: the final image takes the whole way out and is checked there
            with self.lock:
                if moved is False:         # too little to be worth it: nothing to tidy, no move spent
                    self.moved.remove(entry)
                else:
                    self.since = image

    def stop(self) -> None:
        """The final image starts its way out: no move starts any more, and one under way goes
        on only with what the final image's way finds done already (`stopped` says so)."""
        with self.lock:
            self.closed, self.wanted = True, None

    def stopped(self) -> bool:
        with self.lock:
            return self.closed

    def close(self, timeout: float | None = None) -> None:
        """Once the build has ended (or failed): no move starts any more; returns once the one
        under way has ended (or after `timeout` s). `moved` then says what the moves left:
        (name, manifest digests)."""
        with self.lock:
            self.closed, self.wanted, worker = True, None, self.worker
        if worker is not None:
            worker.join(timeout)


def dockerfile_stages(context_dir: str, dockerfile: str) -> int:
    """The Dockerfile's stage count, read without following a link and only inside the context
    the platform wrote; 0 (nothing moves ahead) when it cannot be read so."""
    root = os.path.realpath(context_dir)
    path = os.path.join(root, dockerfile)
    if os.path.isabs(dockerfile) or os.path.commonpath([root, os.path.realpath(os.path.dirname(path))]) != root:
        return 0
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return 0
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return 0
        return count_stages(f.read(_MAX_DOCKERFILE).decode("utf-8", "replace"))


def quietly(remove: Callable[[], object]) -> None:
    """One removal of a tidy: what is gone already, or cannot go now, stays for the next."""
    with contextlib.suppress(docker.errors.DockerException, requests.RequestException):
        remove()
