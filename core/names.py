"""Validation of user-supplied names (pure; no I/O)."""
from __future__ import annotations

import re

from .errors import InvalidName

APP_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{1,28}[a-z0-9]$")
PROCESS_TYPE_RE = re.compile(r"^[a-z0-9_-]{1,30}$")
CONFIG_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,199}$")
DEPLOY_BRANCHES = (b"refs/heads/main", b"refs/heads/master")


def _shown(value: str, limit: int = 40) -> str:
    """A value safe to echo back: printable, bounded."""
    text = "".join(ch if ch.isprintable() else "?" for ch in value)
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _check(value: object, pattern: re.Pattern, what: str, rule: str, extra_ok: bool = True) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value) or not extra_ok:
        shown = _shown(value) if isinstance(value, str) else "(missing)"
        raise InvalidName(f"Invalid {what} {shown}: {rule}")
    return value


def validate_app_name(name: object) -> str:
    return _check(name, APP_NAME_RE, "app name",
                  "use 3 to 30 characters, lower-case letters, digits and dashes, starting with a "
                  "letter and ending with a letter or digit (e.g. 'myapp').",
                  extra_ok=not (isinstance(name, str) and "--" in name))


def validate_process_type(name: object) -> str:
    return _check(name, PROCESS_TYPE_RE, "process type",
                  "use 1 to 30 characters from a-z, 0-9, '_' and '-' (e.g. 'web' or 'worker').")


def validate_config_key(key: object) -> str:
    return _check(key, CONFIG_KEY_RE, "config var name",
                  "use letters, digits and '_', not starting with a digit (e.g. DATABASE_URL).")


# An image reference a user may name (`deploy --image`, `images:allow`): IMAGE[:TAG] or an image id
# (sha256:...), what `docker images` shows.
IMAGE_REF = re.compile(r"^(sha256:[0-9a-f]{12,64}|[a-z0-9][a-z0-9._/-]{0,200}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?)$")
_IMAGE_ID = re.compile(r"[0-9a-f]{12,64}")


def image_ref(value: str) -> str:
    """IMAGE (as `docker` takes it) -> IMAGE:latest; a tag, a digest and an image id (bare, as
    `docker images` shows it, or sha256:...) stay as they are: the engine resolves a bare id."""
    if ":" in value.split("/")[-1] or value.startswith("sha256:") or _IMAGE_ID.fullmatch(value):
        return value
    return value + ":latest"
