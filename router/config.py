"""What the router needs to know, and nothing else: where its nginx lives, the ports it
serves, and how often its loop runs. Whoever embeds the router builds one (the platform
builds it from its settings)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RouterConfig:
    prefix: Path                      # the nginx prefix: conf/, logs/, tmp/, the apply lock
    port: int = 8080                  # HTTP port apps answer on
    tls_port: int | None = None       # HTTPS port for apps with a certificate (None: no HTTPS)
    nginx_bin: str = "/usr/sbin/nginx"
    domain: str = "localhost"         # apps answer at <app>.<domain>
    interval: float = 5.0             # seconds between passes of the router loop
    stop_grace: float = 10.0          # seconds nginx gets to finish open requests when stopping
    start_command: str = ""           # how an operator starts the router process (named in errors)
    log_max_bytes: int = 10 << 20     # nginx's error log is capped at this size (its tail kept in .1)

    @property
    def apps_url(self) -> str:
        return f"http://<app>.{self.domain}:{self.port}/"
