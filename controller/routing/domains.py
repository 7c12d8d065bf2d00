"""Custom hostnames (pure validation; no I/O)."""
from __future__ import annotations

import re

from core.errors import BadRequest

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST_RE = re.compile(rf"(?:\*\.)?{_LABEL}(?:\.{_LABEL})+")


def _shown(value: str) -> str:
    text = "".join(ch if ch.isprintable() else "?" for ch in value)
    return repr(text[:60] + ("..." if len(text) > 60 else ""))


def normalize_hostname(value: object, platform_domain: str) -> str:
    """Lowercase, one trailing dot dropped; must be a DNS name (optionally ``*.`` + at least two
    labels). Nothing else gets near nginx: no spaces, quotes, ';', '$', CR/LF, ports or paths."""
    if not isinstance(value, str) or not value:
        raise BadRequest("Give a hostname, e.g. `dockyard domains:add www.example.com`.")
    host = value.strip().lower()
    if host.endswith(".") and not host.endswith(".."):
        host = host[:-1]
    if len(host) > 253 or not _HOST_RE.fullmatch(host) or (value.strip() != value):
        raise BadRequest(
            f"Invalid hostname {_shown(value)}: use a DNS name such as www.example.com or a wildcard such as "
            "*.example.com (letters, digits, inner hyphens and dots; no scheme, port or path).")
    if host.startswith("*.") and host[2:].count(".") < 1:
        raise BadRequest(f"Wildcard {host!r} is too broad: use '*.' followed by a domain with at least two "
                         "labels, e.g. *.example.com.")
    if host.rsplit(".", 1)[-1].isdigit():
        raise BadRequest(f"{host!r} looks like an IP address: domains must be DNS names (an address would "
                         "capture requests made to the router by IP).")
    domain = platform_domain.lower()
    if host in (domain, f"*.{domain}") or (host.startswith("*.") and domain.endswith("." + host[2:])):
        raise BadRequest(f"{host!r} would take over the platform domain {domain}: every app already answers "
                         f"at <app>.{domain}. Use a domain of your own.")
    return host


def default_owner(host: str, platform_domain: str) -> str | None:
    """If ``host`` is some app's default name (<app>.<domain>), that app name."""
    suffix = "." + platform_domain.lower()
    if host.endswith(suffix):
        label = host[: -len(suffix)]
        if label and "." not in label and not label.startswith("*"):
            return label
    return None


def platform_label(host: str, platform_domain: str) -> str | None:
    """For a name under the platform domain, the app label it is under (`a.b.<app>.<domain>` ->
    `<app>`; `*.<app>.<domain>` -> `<app>`; `*.<domain>` -> ""); None for a name outside it."""
    suffix = "." + platform_domain.lower()
    if not host.endswith(suffix):
        return None
    return host[: -len(suffix)].rsplit(".", 1)[-1].lstrip("*")


def overlaps(a: str, b: str) -> bool:
    """Would one name answer for the other? Equal, or one is a wildcard covering the other
    (`*.corp.example` covers `api.corp.example`, `x.y.corp.example` and `*.y.corp.example`)."""
    return a == b or (a.startswith("*.") and b.endswith(a[1:])) or (b.startswith("*.") and a.endswith(b[1:]))


def claimed_by(held: str, host: str) -> bool:
    """Does a name someone holds make `host` theirs? As under the platform domain, where the names
    under `<app>.<domain>` are the app's: the names under a custom domain belong to its holder
    (`a.shop.example` and `*.shop.example` under `shop.example`), and a wildcard that would answer
    for a held name, or that a held one covers, overlaps it."""
    base = held[2:] if held.startswith("*.") else held
    return overlaps(held, host) or host.endswith("." + base)
