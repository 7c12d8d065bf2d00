"""Use cases for one named instance (`web.1`, `run.3`): restart it or stop it. As on Heroku, an
instance of a scaled process type that is stopped is replaced at once (its type still wants
that many); a one-off that is stopped is gone. A whole type is `releases.restart` and
`releases.stop_or_start`."""
from __future__ import annotations

from core.errors import BadRequest, NotFound
from core.models import App, Instance
from core.names import validate_process_type

from controller.runtime.locks import app_lock, formation_lock
from controller.runtime.reconcile import converge
from controller.services import Out, Services


def split_dyno_name(name: str) -> tuple[str, int | None]:
    """Pure: "web.1" -> ("web", 1); "web" -> ("web", None) (a whole process type)."""
    ptype, dot, index = name.partition(".")
    if not dot:
        return validate_process_type(ptype), None
    if not index.isdigit() or not 0 < int(index) < 10_000:
        raise BadRequest(f"{name[:40]!r} is not a process name like web.1 or a process type like web.")
    return validate_process_type(ptype), int(index)


def _find(svc: Services, app: App, label: str) -> Instance:
    for inst in svc.scheduler.instances(app.name) + svc.scheduler.oneoffs(app.name):
        if inst.label == label:
            return inst
    raise NotFound(f"{app.name} has no process {label}: see `dockyard ps -a {app.name}`.")


def replace(svc: Services, app: App, label: str, user: str, verb: str, out: Out) -> Instance:
    """Stop the instance named `label`; a process of the formation is started again (on the
    release the app runs, through its checks) before this returns, a one-off is not. `verb`
    (restart or stop) is what the app's log says. Returns the stopped instance."""
    with app_lock(svc.settings, app.name, f"ps:{verb}"):
        app = svc.store.get_app(app.name)
        inst = _find(svc, app, label)
        with formation_lock(svc.settings, app.name, f"ps:{verb}"):
            svc.store.forget_instance(inst.container_id)
            svc.scheduler.stop(inst.container_id)
            svc.store.add_event(app, "dockyard", "api", f"{'Restarted' if verb == 'restart' else 'Stopped'} "
                                f"{label} by {user}")
            if inst.process != "run":
                converge(svc, app, out, background=False)
    return inst
