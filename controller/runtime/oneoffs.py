"""Use cases for one-off processes (`dockyard run`): a command in a new container of the app's
current release, attached (stdin, output and exit code over the caller's channel) or detached
(output to `logs`). Each is recorded in the app's platform log."""
from __future__ import annotations

from typing import Callable

from core.errors import BadRequest
from core.models import App, Instance, Release

from controller.services import Services


def _release_for(svc: Services, app: App, command: object) -> tuple[Release, str]:
    """The current release and its image for a one-off, with the command checked."""
    if not isinstance(command, str) or not command.strip() or "\x00" in command:
        raise BadRequest('Give the command to run, e.g. `dockyard run -a APP -- python manage.py migrate`.')
    release = svc.store.current_release(svc.store.get_app(app.name))
    if release is None or release.build_id is None:
        raise BadRequest(f"{app.name} has no release to run a command in yet: deploy it with `git push dockyard main`.")
    return release, f"{svc.settings.image_repo(app.name)}:v{release.version}"


def run_detached(svc: Services, app: App, command: object, user: str) -> Instance:
    release, image = _release_for(svc, app, command)
    inst = svc.scheduler.run_detached(app.name, release, command, image)
    svc.store.add_event(app, "dockyard", "api", f"One-off {inst.label} started by {user} (detached)")
    return inst


def run_attached(svc: Services, app: App, command: object, user: str, read_stdin: Callable,
                 write: Callable[[int, bytes], None], started: Callable[[str, int], None]) -> int:
    """Run to its end; `started(label, release version)` once it runs. Returns its exit code."""
    release, image = _release_for(svc, app, command)
    code = svc.scheduler.run_attached(app.name, release, command, image, read_stdin, write,
                                      lambda label: started(label, release.version), svc.settings.run_timeout)
    svc.store.add_event(app, "dockyard", "api", f"One-off run by {user} exited with code {code}")
    return code
