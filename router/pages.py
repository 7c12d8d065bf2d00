"""What the router answers for an app it cannot send a request to (pure text): the owner
reads why and the command that fixes it."""
from __future__ import annotations

from router.table import Route


def no_upstream(route: Route) -> tuple[str, str]:
    """(what, message) for an app with no instance to route to."""
    app = route.app
    if not route.deployed:
        return ("nothing deployed yet", f"App {app} exists but has no release yet: nothing has been "
                f"deployed to it. Deploy it with: dockyard git:remote -a {app} && git push dockyard main")
    if route.scaled:
        return ("web instances not running", f"App {app} has no web instance up right now: it is starting, "
                f"or it crashed and is restarting. See why with: dockyard ps -a {app} and dockyard logs -a {app}")
    return ("no running web process", f"App {app} has no running web process. Scale it with: "
            f"dockyard ps:scale web=1 -a {app}")
