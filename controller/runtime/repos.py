"""The apps' git repositories under DOCKYARD_HOME/repos: their paths, their creation, the
backend that opens only `/<app>.git` for a valid app name, and the bookkeeping of one pack
upload at a time."""
from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
from pathlib import Path

from dulwich.errors import NotGitRepository
from dulwich.repo import Repo
from dulwich.server import Backend

from core.names import APP_NAME_RE, DEPLOY_BRANCHES

from controller.settings import Settings

GIT_PATH = re.compile(r"/([^/]+)\.git(/.*)?", re.DOTALL)
ZERO = b"0" * 40


MAX_PACKS = 10   # more pack files than this and the next compaction repacks them into one


class AppReposBackend(Backend):
    """Opens only `/<app>.git` for a valid app name, inside the platform's repos dir. One
    backend serves one request: `close()` closes every repository it opened (their pack and
    index files stay open, and mapped, until then)."""

    def __init__(self, root):
        super().__init__()
        self.root = root
        self.opened: list[Repo] = []

    def open_repository(self, path):
        path = path.decode() if isinstance(path, bytes) else path
        m = GIT_PATH.fullmatch(path if path.startswith("/") else "/" + path)
        if not m or not APP_NAME_RE.fullmatch(m.group(1)) or m.group(2):
            raise NotGitRepository(f"No app repository at {path[:60]!r}")
        repo = Repo(str(self.root / f"{m.group(1)}.git"))
        self.opened.append(repo)
        return repo

    def close(self) -> None:
        while self.opened:
            self.opened.pop().close()


class ClosingResponse:
    """A WSGI response that runs `on_close` once the server is done with it (WSGI calls
    close() after the last chunk, or when the client went away)."""

    def __init__(self, body, on_close):
        self.body = body
        self.on_close = on_close

    def __iter__(self):
        return iter(self.body)

    def close(self) -> None:
        try:
            if hasattr(self.body, "close"):
                self.body.close()
        finally:
            self.on_close()


def repo_path(settings: Settings, app: str) -> Path:
    return settings.repos_dir / f"{app}.git"


def init_repo(settings: Settings, app: str) -> None:
    path = repo_path(settings, app)
    if not path.exists():
        with Repo.init_bare(str(path), mkdir=True) as repo:
            repo.refs.set_symbolic_ref(b"HEAD", b"refs/heads/main")


def compact(settings: Settings, app: str, max_packs: int = MAX_PACKS) -> int | None:
    """Repack the app's repository into one pack once it has more than `max_packs` (each push
    adds one; every open of the repository opens them all). Skipped while a push uploads.
    Returns the number of objects repacked, or None when nothing was done."""
    path = repo_path(settings, app)
    pack_dir = path / "objects" / "pack"
    if not pack_dir.is_dir() or len(list(pack_dir.glob("pack-*.pack"))) <= max_packs:
        return None
    fd = os.open(_receive_lock(settings, app), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None   # a push is uploading: the next pass compacts
        with Repo(str(path)) as repo:
            return repo.object_store.repack()
    finally:
        os.close(fd)


def sweep_uploads(settings: Settings, app: str) -> int:
    """Remove temporary pack files an upload left when its process was killed (no upload
    runs: the receive lock is free). Returns how many were removed."""
    objects = repo_path(settings, app) / "objects"
    if not objects.is_dir():
        return 0
    fd = os.open(_receive_lock(settings, app), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0
        strays = list(objects.glob("tmp_pack_*")) + list((objects / "pack").glob("tmp_pack_*"))
        for stray in strays:
            stray.unlink(missing_ok=True)
        return len(strays)
    finally:
        os.close(fd)


def fast_forward(settings: Settings, app: str, commit: str, depth: int = 1000) -> str | None:
    """Move the deploy branch to `commit` when it points at an ancestor of it: the state a kill
    leaves between a push's release going live and its ref moving. By compare-and-swap, so a
    push that moved the ref meanwhile wins. Returns the branch moved, or None."""
    path = repo_path(settings, app)
    if not path.is_dir():
        return None
    new = commit.encode()
    with Repo(str(path)) as repo:
        if new not in repo.object_store:
            return None
        for ref in DEPLOY_BRANCHES:
            old = repo.refs.as_dict().get(ref)
            if old is None or old == new or not _is_ancestor(repo, old, new, depth):
                continue
            if repo.refs.set_if_equals(ref, old, new):
                return ref.decode().rsplit("/", 1)[-1]
    return None


def _is_ancestor(repo, old: bytes, new: bytes, depth: int) -> bool:
    seen, todo = set(), [new]
    while todo and len(seen) < depth:
        sha = todo.pop()
        if sha == old:
            return True
        if sha in seen or sha not in repo.object_store:
            continue
        seen.add(sha)
        todo.extend(repo[sha].parents)
    return False


def copy_repo(settings: Settings, app: str, dest: Path) -> None:
    """A consistent copy of the app's repository (for a backup): taken while no push uploads
    into it; a push that starts meanwhile waits the few seconds the copy takes."""
    fd = os.open(_receive_lock(settings, app), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        shutil.copytree(repo_path(settings, app), dest, symlinks=True)
    finally:
        os.close(fd)


def _receive_lock(settings: Settings, app: str) -> Path:
    settings.locks_dir.mkdir(parents=True, exist_ok=True)
    return settings.locks_dir / f"{app}.receive.lock"


@contextlib.contextmanager
def receiving(settings: Settings, app: str, repo):
    """One pack upload per app at a time (a flock beside the deploy lock), so the temporary
    pack files dulwich leaves behind when an upload fails (malformed, truncated, too large)
    are known to be this upload's and are removed."""
    objects = Path(repo.object_store.path)
    fd = os.open(_receive_lock(settings, app), os.O_RDWR | os.O_CREAT, 0o600)
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


def commits_between(settings: Settings, app: str, new: str, old: str | None, limit: int = 100) -> list[dict] | None:
    """The commits in the app's repository reachable from `new` and not from `old`, newest
    first (sha, author, date as epoch seconds, first line of the message); None when `new`
    is not in it (a commit pushed elsewhere)."""
    path = repo_path(settings, app)
    if not path.is_dir():
        return None
    with Repo(str(path)) as repo:
        if new.encode() not in repo.object_store:
            return None
        exclude = [old.encode()] if old and old.encode() in repo.object_store else []
        rows = []
        for entry in repo.get_walker(include=[new.encode()], exclude=exclude, max_entries=limit):
            c = entry.commit
            rows.append({"sha": c.id.decode(), "author": c.author.decode("utf-8", "replace"),
                         "date": c.author_time,
                         "message": c.message.decode("utf-8", "replace").strip().split("\n", 1)[0][:200]})
        return rows
