"""Dockerfile inspection (pure): which base images a build needs from the engine."""
from __future__ import annotations

import re

_FROM = re.compile(r"^FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?\s*$", re.IGNORECASE)


def logical_lines(text: str) -> list[str]:
    """Join backslash continuations, drop comments and blank lines."""
    out: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        if current.strip():
            out.append(current.strip())
        current = ""
    if current.strip():
        out.append(current.strip())
    return out


def base_images(text: str) -> list[str]:
    """External images named by FROM lines: not `scratch`, not an earlier stage, not
    built from a build ARG (those can't be known before the build)."""
    stages: set[str] = set()
    images: list[str] = []
    for line in logical_lines(text):
        m = _FROM.match(line)
        if not m:
            continue
        image, alias = m.group(1), m.group(2)
        if image.lower() != "scratch" and image.lower() not in stages and "$" not in image:
            if image not in images:
                images.append(image)
        if alias:
            stages.add(alias.lower())
    return images


_COPY_FROM = re.compile(r"^(?:COPY|ADD)\s+(?:--\S+\s+)*?--from=(\S+)", re.IGNORECASE)


def referenced_images(text: str) -> list[str]:
    """Every image the build would read: FROM lines and `COPY --from=IMAGE`, other than
    `scratch`, earlier stages (by name or number); names built from a build ARG are returned as
    written (with their `$`), so that a caller can refuse what it cannot check."""
    stages: set[str] = set()
    images: list[str] = []
    for line in logical_lines(text):
        m = _FROM.match(line)
        ref, alias = (m.group(1), m.group(2)) if m else (None, None)
        if m is None:
            c = _COPY_FROM.match(line)
            ref = c.group(1).strip("'\"") if c else None
            if ref is not None and (ref.isdigit() or ref.lower() in stages):
                ref = None
        if ref and ref.lower() != "scratch" and ref.lower() not in stages and ref not in images:
            images.append(ref)
        if alias:
            stages.add(alias.lower())
    return images
