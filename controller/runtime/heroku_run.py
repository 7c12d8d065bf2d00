"""Use cases behind the Heroku CLI's `heroku run` and `run:detached`: `POST /apps/X/dynos` in the
Platform API's shape. A detached one-off starts at once (output to the logs). An attached one
gets a rendezvous ticket instead: the answer's `attach_url` (rendezvous://HOST:PORT/SECRET)
names the platform's rendezvous listener (rendezvousd.py), which starts the one-off when the
CLI presents the secret, once, within RUN_TICKET_TTL seconds, and only while the user who asked
still may read the app."""
from __future__ import annotations

import re
import secrets
from datetime import datetime, timezone

from core.errors import BadRequest, DockyardError
from core.models import App, User

from controller.accounts import access
from controller.accounts import users as accounts
from controller.runtime import oneoffs
from controller.services import Services
from controller.accounts.tickets import Tickets

RUN_TICKET_TTL = 60.0         # seconds between `POST /apps/X/dynos` and the CLI's attach
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_PLATFORM_VARS = ("DYNO", "PORT")     # and DOCKYARD_*: the platform sets them for every process
MAX_ENV = 64


class RendezvousUnavailable(DockyardError):
    """The rendezvous listener is not ready (its certificate is not made yet)."""
    status = 503
    code = "rendezvous_unavailable"
    fix = "check that the rendezvous process runs (`make status`), then try again"


def run_tickets(svc: Services) -> Tickets:
    return Tickets(svc.settings.home, "rendezvous")


def one_off_env(raw: object) -> dict[str, str]:
    """Pure: the `env` of a dyno request (`heroku run -e 'A=1;B=2'`, and the CLI's TERM, COLUMNS,
    LINES) as variables for this one-off only; the platform's own variables are not the
    caller's to set, empty values are dropped."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or len(raw) > MAX_ENV:
        raise BadRequest(f"env must be an object of at most {MAX_ENV} NAME: value pairs.")
    env = {}
    for name, value in raw.items():
        if value is None or value == "":
            continue
        if not _ENV_NAME.fullmatch(str(name)) or name in _PLATFORM_VARS or str(name).startswith("DOCKYARD_"):
            raise BadRequest(f"env name {str(name)[:40]!r} cannot be set for a one-off: use letters, digits and "
                             "_ (DYNO, PORT and DOCKYARD_* are the platform's).")
        if not isinstance(value, (str, int, float)) or "\x00" in str(value) or len(str(value)) > 32768:
            raise BadRequest(f"env {name} must be a text value (no NUL byte, at most 32 KB).")
        env[name] = str(value)
    return env


def terminal_for(body: dict, env: dict[str, str]) -> tuple[int, int] | None:
    """Pure: a pseudo-terminal (columns, lines) when the CLI's output is a terminal (it sends
    COLUMNS and LINES only then) and `--no-tty` was not given; else None."""
    if body.get("force_no_tty"):
        return None
    try:
        columns, lines = int(env["COLUMNS"]), int(env["LINES"])
    except (KeyError, ValueError):
        return None
    return max(1, min(columns, 1000)), max(1, min(lines, 1000))


def dyno_json(app: App, name: str, command: str, state: str, version: int | None, size: str,
              attach_url: str | None = None, container: str = "") -> dict:
    """Pure: a one-off in the Platform API's dyno shape."""
    at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"id": container or None, "name": name, "type": "run", "command": command, "state": state,
            "attach_url": attach_url, "size": size, "created_at": at, "updated_at": at,
            "app": {"id": app.id, "name": app.name}, "release": {"id": None, "version": version}}


def _free_index(svc: Services, app: App) -> int:
    """A Heroku-looking number (run.NNNN) that no one-off of the app has: unlike the lowest
    free index, two attaches that race do not pick the same one."""
    used = {o.index for o in svc.scheduler.oneoffs(app.name)}
    while True:
        index = 1000 + secrets.randbelow(9000)
        if index not in used:
            return index


def create_dyno(svc: Services, app: App, user: User, body: dict) -> dict:
    """`heroku run` (attach: true) or `run:detached` / `dockyard run --detach` (no attach)."""
    command = body.get("command")
    env = one_off_env(body.get("env"))
    release, _image = oneoffs.release_for(svc, app, command)
    size = f"{svc.settings.app_memory_mb}MB"
    if not body.get("attach"):
        inst = oneoffs.run_detached(svc, app, command, user.name, env)
        return dyno_json(app, inst.label, command, "starting", release.version, size, container=inst.container_id)
    index = _free_index(svc, app)
    secret, _ticket = run_tickets(svc).issue(
        {"app": app.name, "app_id": app.id, "user": user.name, "user_id": user.id, "command": command,
         "env": env, "index": index, "terminal": terminal_for(body, env)}, RUN_TICKET_TTL)
    url = f"rendezvous://{svc.settings.rendezvous_address}/{secret}"
    return dyno_json(app, f"run.{index}", command, "starting", release.version, size, attach_url=url)


def holder(svc: Services, ticket: dict) -> tuple[User, App] | None:
    """The user and app a ticket was issued for, while that user still may read that app (the
    same user and app, not later ones that took their names); None otherwise."""
    user = svc.store.get_user(str(ticket.get("user")))
    app = svc.store.find_app(str(ticket.get("app")))
    if user is None or app is None or user.id != ticket.get("user_id") or app.id != ticket.get("app_id"):
        return None
    if not access.can_read(user, app, accounts.collaborator_ids(svc, app)):
        return None
    return user, app
