"""Image references as registries see them, and the admin's allow-list of images a Dockerfile
may pull. Pure: no I/O.

`python:3.12` is `docker.io/library/python:3.12`, `myorg/app` is `docker.io/myorg/app:latest`,
`ghcr.io/org/x@sha256:...` names its registry. Patterns are shell-style (`docker.io/library/*`,
`ghcr.io/myorg/*`, `docker.io/library/python:3.*`) and match the full name, with or without its
tag; `*` stops at `/`, so `docker.io/library/*` admits no image under a deeper path."""
from __future__ import annotations

import re
from dataclasses import dataclass

DOCKER_HUB = "docker.io"
DEFAULT_PULL_ALLOW = ("docker.io/library/*",)   # Docker's official images
_NAME = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_REGISTRY = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::\d{1,5})?$")


@dataclass(frozen=True)
class ImageRef:
    registry: str      # docker.io, ghcr.io, 127.0.0.1:5000
    path: str          # library/python, myorg/app
    tag: str = ""      # "latest" when neither tag nor digest was given
    digest: str = ""

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.path}"

    @property
    def suffix(self) -> str:
        return f"@{self.digest}" if self.digest else f":{self.tag}"

    def __str__(self) -> str:
        return self.name + self.suffix


def parse_ref(ref: str) -> ImageRef | None:
    """The registry, path, tag and digest of a reference; None when it is not one."""
    rest, _, digest = ref.partition("@")
    if digest and not _DIGEST.match(digest):
        return None
    first, sep, remainder = rest.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        registry, rest = first, remainder
    else:
        registry = DOCKER_HUB
    has_tag = ":" in rest.rsplit("/", 1)[-1]
    path, _, tag = rest.rpartition(":") if has_tag else (rest, "", "")
    if not _REGISTRY.match(registry) or not _NAME.match(path) or (has_tag and not _TAG.match(tag)):
        return None
    if registry in (DOCKER_HUB, "index.docker.io", "registry-1.docker.io"):
        registry = DOCKER_HUB
        if "/" not in path:
            path = f"library/{path}"
    return ImageRef(registry, path, tag or ("" if digest else "latest"), digest)


def admitted(ref: str, patterns: tuple[str, ...]) -> bool:
    """Whether an admin's pattern admits pulling `ref`."""
    parsed = parse_ref(ref)
    if parsed is None:
        return False
    return any(_match(p.strip(), parsed.name) or _match(p.strip(), str(parsed)) for p in patterns if p.strip())


def _match(pattern: str, text: str) -> bool:
    regex = "".join("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text) is not None


def pull_source(ref: ImageRef, mirror: str) -> str:
    """Where to pull `ref` from: Docker Hub's images from the operator's mirror (a pull-through
    cache, `host:port` or `host:port/prefix`) when one is set, like the engine's own
    registry-mirrors; other registries' images from their registry."""
    if ref.registry == DOCKER_HUB and mirror:
        host = re.sub(r"^https?://", "", mirror).rstrip("/")
        return f"{host}/{ref.path}{ref.suffix}"
    return str(ref)
