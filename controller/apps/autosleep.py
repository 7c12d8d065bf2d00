"""`ps:autosleep`: a process type sleeps after a window without a request, and wakes on the
next one (the mechanism is controller/runtime/sleep.py)."""
from __future__ import annotations

from core.durations import parse_duration
from core.errors import BadRequest
from core.models import App, User
from core.names import validate_process_type

from controller.apps.releases import process_types, require_process_type
from controller.runtime import sleep
from controller.runtime.locks import formation_lock
from controller.runtime.reconcile import converge
from controller.routing.table import apply_routes
from controller.services import Out, Services

MIN_AFTER = 1     # seconds; a window shorter than the router's log harvest would sleep busy apps


def parse_after(raw: object) -> int:
    """Seconds from `30m`, `90s`, `2h`, a number of seconds; BadRequest naming the forms."""
    try:
        seconds = parse_duration(raw)
    except ValueError as e:
        raise BadRequest(str(e)) from None
    if seconds < MIN_AFTER:
        raise BadRequest(f"Autosleep after {seconds} s is too short: use at least {MIN_AFTER} s, or `--off`.")
    return seconds


def show(svc: Services, app: App) -> dict[str, dict]:
    """Type -> {"after", "after_seconds", "sleeping_since"} for the types with autosleep."""
    return sleep.describe(svc.store.sleep_rows(app))


def set_autosleep(svc: Services, app: App, ptype: str, after: object, user: User, out: Out) -> dict[str, dict]:
    """Turn autosleep on for a type (`after`: a duration) or off (`after` None: a sleeping type
    starts again now). The window counts from now."""
    validate_process_type(ptype)
    app = svc.store.get_app(app.name)
    types = process_types(svc.store.current_release(app)) or svc.store.formation(app)
    require_process_type(app.name, types, ptype)
    seconds = None if after is None else parse_after(after)
    with formation_lock(svc.settings, app.name, "ps:autosleep"):
        was_sleeping = ptype in svc.store.sleeping_types(app)
        svc.store.set_autosleep(app, ptype, seconds)
        if seconds is None:
            svc.store.add_event(app, "dockyard", "api", f"Autosleep of {ptype} turned off by {user.name}")
            if was_sleeping:
                out(f"Starting {ptype} (it was sleeping)")
                converge(svc, app, out, background=True)
                apply_routes(svc)
        else:
            svc.store.add_event(app, "dockyard", "api", f"Autosleep of {ptype} after {seconds} s set by {user.name}")
    return show(svc, app)


def require_known(after: object) -> None:
    if after is not None and not isinstance(after, (str, int)):
        raise BadRequest('Send {"after": "30m"} (or {"after": null} to turn autosleep off).')
