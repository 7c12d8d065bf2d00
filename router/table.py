"""The routing table: which hostnames go to which upstream addresses.

Pure data and pure functions, no I/O. Validation of the values happens in
``router.render`` (the only place where they become nginx syntax).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace


@dataclass(frozen=True, order=True)
class Upstream:
    """One running web instance, reachable at ``host:port``."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class RouteOptions:
    """Per-app proxy settings (``dockyard router:set``). The defaults are what an
    app gets when its owner set nothing: larger than nginx's own (1 MB bodies)."""

    client_max_body_size: str = "100m"   # nginx size: 0 (unlimited), N, Nk or Nm
    read_timeout: int = 60               # seconds waiting for the app's response (and WebSocket idle)
    send_timeout: int = 60               # seconds sending the request to the app
    connect_timeout: int = 5             # seconds to connect to an instance


@dataclass(frozen=True)
class Wake:
    """Where a sleeping app's requests wait while it wakes, and for how long at most (seconds):
    the router's read timeout for them is this plus the app's own."""

    upstream: Upstream
    wait: int = 30


@dataclass(frozen=True)
class Tls:
    """Where the app's certificate chain and private key are on disk (PEM)."""

    cert_path: str
    key_path: str


@dataclass(frozen=True)
class Route:
    """An app, the hostnames it answers on and its running web instances.

    ``upstreams`` may be empty: the app then answers 503 with a hint on how to
    scale it up. ``hostnames`` may hold wildcards (``*.example.com``).
    ``options``/``tls``/``force_https`` are the app's "extras": if nginx refuses
    them, the router serves the app without them (``plain()``) and says why.
    ``maintenance`` answers 503 with a maintenance page without touching the app.
    ``platform_tls`` is the platform's certificate (a wildcard for ``*.<domain>``), served on the
    HTTPS port for ``platform_hosts`` (the app's names it covers and its own certificate does not).
    ``deployed`` is false for an app that exists but never had code released: it answers
    with how to deploy it. ``scaled`` is true when the app should run web instances: with none
    running it is starting or restarting after a crash, and scaling up is not the fix.
    ``wake``: the app sleeps; with no upstream its requests go to this address (a wake
    listener that starts the app and passes them on), told which app by ``X-Dockyard-Wake``.
    """

    app: str
    hostnames: tuple[str, ...]
    upstreams: tuple[Upstream, ...] = ()
    options: RouteOptions = field(default_factory=RouteOptions)
    tls: Tls | None = None
    force_https: bool = False
    maintenance: bool = False
    deployed: bool = True
    scaled: bool = False
    platform_tls: Tls | None = None
    platform_hosts: tuple[str, ...] = ()
    wake: "Wake | None" = None

    def has_extras(self) -> bool:
        return (self.options != RouteOptions() or self.tls is not None or self.force_https
                or self.platform_tls is not None)

    def plain(self) -> "Route":
        """The same route with the defaults instead of the app's own settings and certificates."""
        return replace(self, options=RouteOptions(), tls=None, force_https=False, platform_tls=None,
                       platform_hosts=())

    def __post_init__(self) -> None:
        # Accept any iterable (lists from JSON, generators) but store tuples so
        # a Route stays hashable and cannot be mutated behind the renderer.
        object.__setattr__(self, "hostnames", tuple(self.hostnames))
        object.__setattr__(self, "platform_hosts", tuple(self.platform_hosts))
        object.__setattr__(
            self, "upstreams", tuple(u if isinstance(u, Upstream) else Upstream(*u) for u in self.upstreams)
        )


def build_table(entries: Iterable[tuple[str, Iterable[Upstream]]], domain: str) -> tuple[Route, ...]:
    """Build the routing table from ``(app_name, upstreams)`` pairs.

    Each app answers on ``<app>.<domain>``. Upstreams may be ``Upstream``s or
    ``(host, port)`` pairs. Several entries for the same app are merged;
    duplicate upstreams are dropped. The result is sorted by app and each
    app's upstreams are sorted, so the same input always gives the same table.
    """
    merged: dict[str, set[Upstream]] = {}
    for app, upstreams in entries:
        merged.setdefault(app, set()).update(u if isinstance(u, Upstream) else Upstream(*u) for u in upstreams)
    return tuple(
        Route(app=app, hostnames=(f"{app}.{domain}",), upstreams=tuple(sorted(merged[app])))
        for app in sorted(merged)
    )
