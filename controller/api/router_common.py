"""Shared by the router blueprints (domains, certs, router settings): apply the routes after
a change and, if the router refused the app's new setting or certificate, undo the change."""
from __future__ import annotations

from collections.abc import Callable

from router.errors import RouterError

from core.errors import BadRequest
from .common import svc


def apply_or_revert(app_name: str, change: Callable[[], None], revert: Callable[[], None], what: str) -> None:
    """Make ``change`` in the store and apply the routes; undo it if the router refuses it.
    The routes are applied first without it too, so a refusal that was already there (say, a
    certificate nginx cannot load) is not blamed on this change."""
    s = svc()
    s.apply_routes()
    before = s.router.refused().get(app_name)
    change()
    try:
        s.apply_routes()
    except RouterError:
        revert()
        s.apply_routes()
        raise
    reason = s.router.refused().get(app_name)
    if reason and reason != before:
        revert()
        s.apply_routes()
        raise BadRequest(f"The router refused {what} for {app_name}, so it was not changed: {reason}")
