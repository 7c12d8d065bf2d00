"""Host-side handling of what a build left behind (the slug, the release YAML). The build ran
tenant code, so every path in its output may be a symlink planted to make the platform, root on
the host, write or read elsewhere: nothing here follows one (lstat checks, O_NOFOLLOW opens)."""
from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import BuildError

_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
MAX_META_BYTES = 1 << 20


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def safe_dockyard_dir(slug: Path, launcher: str) -> bool:
    """Make slug/.dockyard (a real directory) with the process launcher in it. Returns whether
    slug/.dockyard/rootfs is a real directory (files for /). A symlink or special file where
    either must be refuses the build."""
    d = slug / ".dockyard"
    st = _lstat(d)
    if st is None:
        os.mkdir(d, 0o755)
    elif not stat.S_ISDIR(st.st_mode):
        raise BuildError(".dockyard in the app is a symlink or not a directory: the platform never follows "
                         "links out of a build. Remove it (Dockyard makes .dockyard itself) and push again.")
    launch = d / "launch"
    if _lstat(launch) is not None:
        os.unlink(launch)    # unlinks a link itself, never its target
    fd = os.open(launch, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o755)
    with os.fdopen(fd, "w") as f:
        f.write(launcher)
    rootfs = _lstat(d / "rootfs")
    if rootfs is not None and not stat.S_ISDIR(rootfs.st_mode):
        raise BuildError(".dockyard/rootfs left by the build is a symlink or not a directory: make it a directory "
                         "of files for / (the platform never follows links out of a build).")
    return rootfs is not None


def read_no_follow(path: Path, limit: int = MAX_META_BYTES) -> str:
    """The text of a regular file the build wrote ("" when there is none); a symlink or special
    file reads as nothing rather than as whatever it points at."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    except OSError:
        return ""
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return ""
        return f.read(limit).decode("utf-8", "replace")
