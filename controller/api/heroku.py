"""The Heroku Platform API v3 beside Dockyard's own, on the same paths. A request whose Accept
names Heroku's media type (every request of the official `heroku` CLI) and whose method and
path match a rule registered here with `route` is answered by that Heroku view; any other
request falls through to Dockyard's API, whose shapes already are Heroku's where the CLI reads
them (config-vars, sni-endpoints). Views here parse, call the same use cases as Dockyard's
views, and render with controller/heroku's pure shape functions."""
from __future__ import annotations

from typing import Callable

from flask import jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule

from core.models import App, User

from controller.accounts import users as accounts
from controller.apps import queries
from controller.web.heroku import shapes
from controller.web.common import load_app, svc

_rules = Map(strict_slashes=False)
_views: dict[str, Callable] = {}


def route(rule: str, *methods: str):
    """Register a Heroku view for METHOD(s) on RULE (werkzeug's rule syntax, like Flask's)."""
    def register(view: Callable) -> Callable:
        endpoint = f"{view.__module__}.{view.__name__}"
        _rules.add(Rule(rule, methods=list(methods), endpoint=endpoint))
        _views[endpoint] = view
        return view
    return register


def dispatch():
    """before_request, after authentication: the Heroku view's response, or None (Dockyard's)."""
    if not shapes.wants_heroku(request.headers.get("Accept")):
        return None
    try:
        endpoint, args = _rules.bind_to_environ(request.environ).match()
    except HTTPException:       # no Heroku rule for this path and method: Dockyard's view answers
        return None
    return _views[endpoint](**args)


def listing(rows: list[dict]):
    """A list as Heroku answers it: ordered and cut by the request's Range header."""
    return jsonify(shapes.apply_range(rows, shapes.parse_range(request.headers.get("Range"))))


def find_app(ident: str, admin: bool = False) -> App:
    """An app by name, or by id (Heroku's tools use both), with Dockyard's access check."""
    if queries.find_app(svc(), ident) is None:
        by_id = next((a for a in queries.all_apps(svc()) if a.id == ident), None)
        if by_id is not None:
            ident = by_id.name
    return load_app(ident, admin=admin)


class Users:
    """Every user by id and by name, read once per request: Heroku's shapes name users by email."""

    def __init__(self):
        everyone = accounts.all_users(svc())
        self.by_id = {u.id: u for u in everyone}
        self.by_name = {u.name: u for u in everyone}

    def ref(self, user_id: int | None = None, name: str | None = None) -> tuple[int | None, str | None]:
        user: User | None = self.by_id.get(user_id) if user_id is not None else self.by_name.get(name or "")
        if user is None:
            return user_id, name
        return user.id, user.login
