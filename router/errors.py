"""Errors raised by the router package.

Every error carries a user-facing ``message`` that says what went wrong and
how to fix it, an HTTP ``status`` and a machine-readable ``code``, which the
API's error handler (controller/daemons/webapp.py) passes straight on.
"""
from __future__ import annotations

from core.errors import RouterError


__all__ = ["RouterError", "RenderError", "ConfigRejected"]


class RenderError(RouterError):
    """The routing table holds a value that cannot be put into nginx config
    safely (bad app name, hostname, or upstream address)."""

    status = 400
    code = "invalid_route"

    def __init__(self, message: str, app: str | None = None) -> None:
        super().__init__(message)
        # Set when the bad value is one of an app's own extras (settings, certificate):
        # the router can then serve that app without them instead of refusing everything.
        self.app = app


class ConfigRejected(RouterError):
    """nginx refused the generated config (``nginx -t``, or the running master at a reload).
    The live config is untouched.

    ``output`` is nginx's own stderr, verbatim.
    """

    status = 500
    code = "config_rejected"

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.output = output
