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


def validate_app_name(name: object) -> str:
    if not isinstance(name, str) or not APP_NAME_RE.fullmatch(name) or "--" in name:
        shown = _shown(name) if isinstance(name, str) else "(missing)"
        raise InvalidName(
            f"Invalid app name {shown}: use 3 to 30 characters, lower-case letters, digits and "
            "dashes, starting with a letter and ending with a letter or digit (e.g. 'myapp')."
        )
    return name


def validate_process_type(name: object) -> str:
    if not isinstance(name, str) or not PROCESS_TYPE_RE.fullmatch(name):
        shown = _shown(name) if isinstance(name, str) else "(missing)"
        raise InvalidName(
            f"Invalid process type {shown}: use 1 to 30 characters from a-z, 0-9, '_' and '-' "
            "(e.g. 'web' or 'worker')."
        )
    return name


def validate_config_key(key: object) -> str:
    if not isinstance(key, str) or not CONFIG_KEY_RE.fullmatch(key):
        shown = _shown(key) if isinstance(key, str) else "(missing)"
        raise InvalidName(
            f"Invalid config var name {shown}: use letters, digits and '_', not starting with a "
            "digit (e.g. DATABASE_URL)."
        )
    return key
