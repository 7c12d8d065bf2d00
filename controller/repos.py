"""The apps' git repositories under DOCKYARD_HOME/repos: their paths, their creation, the
backend that opens only `/<app>.git` for a valid app name, and the bookkeeping of one pack
upload at a time."""
from __future__ import annotations

import contextlib
import fcntl
import os
import re
from pathlib import Path

from dulwich.errors import NotGitRepository
from dulwich.repo import Repo
from dulwich.server import Backend

from core.names import APP_NAME_RE

from .settings import Settings

GIT_PATH = re.compile(r"/([^/]+)\.git(/.*)?", re.DOTALL)
ZERO = b"0" * 40


class AppReposBackend(Backend):
    """Opens only `/<app>.git` for a valid app name, inside the platform's repos dir."""

    def __init__(self, root):
        super().__init__()
        self.root = root

    def open_repository(self, path):
        path = path.decode() if isinstance(path, bytes) else path
        m = GIT_PATH.fullmatch(path if path.startswith("/") else "/" + path)
        if not m or not APP_NAME_RE.fullmatch(m.group(1)) or m.group(2):
            raise NotGitRepository(f"No app repository at {path[:60]!r}")
        return Repo(str(self.root / f"{m.group(1)}.git"))


def repo_path(settings: Settings, app: str) -> Path:
    return settings.repos_dir / f"{app}.git"


def init_repo(settings: Settings, app: str) -> None:
    path = repo_path(settings, app)
    if not path.exists():
        with Repo.init_bare(str(path), mkdir=True) as repo:
            repo.refs.set_symbolic_ref(b"HEAD", b"refs/heads/main")


@contextlib.contextmanager
def receiving(settings: Settings, app: str, repo):
    """One pack upload per app at a time (a flock beside the deploy lock), so the temporary
    pack files dulwich leaves behind when an upload fails (malformed, truncated, too large)
    are known to be this upload's and are removed."""
    objects = Path(repo.object_store.path)
    settings.locks_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(settings.locks_dir / f"{app}.receive.lock", os.O_RDWR | os.O_CREAT, 0o600)
    failed: list[bool] = []
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        before = set(objects.glob("tmp_pack_*"))
        yield failed
    finally:
        try:
            if failed:
                for stray in set(objects.glob("tmp_pack_*")) - before:
                    stray.unlink(missing_ok=True)
        finally:
            os.close(fd)
