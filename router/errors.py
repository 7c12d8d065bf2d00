"""Errors raised by the router package.

Every error carries a user-facing message that says what went wrong and how
to fix it, plus an HTTP-ish ``status`` the API layer can pass straight on.
"""
from __future__ import annotations


class RouterError(Exception):
    """Base class: something in the router failed. ``str(err)`` is user-facing."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RenderError(RouterError):
    """The routing table holds a value that cannot be put into nginx config
    safely (bad app name, hostname, or upstream address)."""

    status = 400


class ConfigRejected(RouterError):
    """``nginx -t`` refused the generated config. The live config is untouched.

    ``output`` is nginx's own stderr, verbatim.
    """

    status = 500

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.output = output
