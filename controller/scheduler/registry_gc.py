"""The registry's side of the rollback-aware image GC: delete the manifests of an app's tags
that no release may still need. The registry frees their layers at its next start (the
`registry` process runs `docker-registry garbage-collect` before it serves)."""
from __future__ import annotations

import json
import socket
import time
import urllib.request
from typing import Iterable

from core.errors import SchedulerError

MANIFEST_TYPES = ", ".join(("application/vnd.docker.distribution.manifest.v2+json",
                            "application/vnd.oci.image.manifest.v1+json",
                            "application/vnd.docker.distribution.manifest.list.v2+json"))


def stale_tags(repo: str, tags: Iterable[str], keep: Iterable[str]) -> list[str]:
    """Pure: the registry tags of `repo` whose `repo:tag` is not in `keep` (release tags only:
    `v<N>`; build tags are pushed under their release's name only)."""
    keep = set(keep)
    return sorted(t for t in tags if t.startswith("v") and f"{repo}:{t}" not in keep)


def _call(method: str, url: str, headers: dict | None = None):
    req = urllib.request.Request(url, method=method, headers=headers or {})
    return urllib.request.urlopen(req, timeout=10)


def delete_stale(registry: str, repo: str, keep: Iterable[str]) -> int:
    """Delete `repo`'s stale tags from the registry at `registry` (host:port); how many went.
    A registry that is down or lacks the repository is not an error (nothing to delete)."""
    base = f"http://{registry}/v2/{repo}"
    try:
        with _call("GET", f"{base}/tags/list") as r:
            tags = json.loads(r.read()).get("tags") or []
    except (OSError, ValueError):
        return 0
    stale = set(stale_tags(repo, tags, keep))
    digests = {tag: _digest(base, tag) for tag in tags}
    # one manifest may carry several tags (a config change reuses the image): keep it for any kept tag
    needed = {d for t, d in digests.items() if t not in stale}
    removed = 0
    for digest in {digests[t] for t in stale} - needed - {None}:
        try:
            _call("DELETE", f"{base}/manifests/{digest}").close()
            removed += 1
        except OSError:
            continue
    return removed


def _digest(base: str, tag: str) -> str | None:
    try:
        with _call("HEAD", f"{base}/manifests/{tag}", {"Accept": MANIFEST_TYPES}) as r:
            return r.headers.get("Docker-Content-Digest")
    except OSError:
        return None


def await_registry(port: int, timeout: float = 30.0) -> None:
    """Wait until the platform's registry on 127.0.0.1:`port` accepts connections: it starts
    once a cluster exists (controller/daemons/registry.py), a second or two after `make cluster`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise SchedulerError(f"The platform's image registry (127.0.0.1:{port}) is not answering: "
                                     "`make status` shows its process; `make up` starts it.") from None
            time.sleep(0.2)
