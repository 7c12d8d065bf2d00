from flask import Blueprint, g, jsonify

from .. import access, router_state
from ..domains import default_owner, normalize_hostname, overlaps, platform_label
from core.errors import Conflict
from .common import body, load_app, svc
from .router_common import apply_or_revert

bp = Blueprint("domains", __name__)


def _domain_json(app_name: str, hostname: str, kind: str, created_at: str | None = None) -> dict:
    s = svc().settings
    return {"hostname": hostname, "kind": kind, "app": app_name, "created_at": created_at,
            "url": f"http://{hostname}:{s.router_port}/" if not hostname.startswith("*.") else None}


@bp.get("/apps/<name>/domains")
def list_domains(name):
    app = load_app(name)
    rows = [_domain_json(app.name, svc().settings.app_host(app.name), "default")]
    rows += [_domain_json(app.name, d["hostname"], "custom", d["created_at"])
             for d in router_state.domains(svc().store, app)]
    return jsonify(rows)


@bp.post("/apps/<name>/domains")
def add_domain(name):
    s = svc()
    app = load_app(name, admin=True)
    host = normalize_hostname(body().get("hostname"), s.settings.domain)
    default_app = default_owner(host, s.settings.domain)
    label = platform_label(host, s.settings.domain)
    if label is not None and label != app.name and default_app is None:
        raise Conflict(f"{host} is under the platform domain {s.settings.domain}, whose names belong to its apps: "
                       f"only names under {app.name}.{s.settings.domain} may be added to {app.name}.")
    _refuse_overlap(s, app, host)
    if default_app is not None:
        raise Conflict(f"{host} is the default hostname of app {default_app!r} (every app answers at "
                       f"<app>.{s.settings.domain}); it cannot be added to another app.")
    owner = router_state.domain_owner(s.store, host)
    if owner is not None:
        if owner.id == app.id:
            raise Conflict(f"{host} is already a domain of {app.name}.")
        if access.can_read(g.user, owner):
            raise Conflict(f"{host} is already used by app {owner.name}: remove it there first with "
                           f"`dockyard domains:remove {host} -a {owner.name}`.")
        raise Conflict(f"{host} is already used by another app. If it is yours, ask that app's owner "
                       "to remove it, or an admin.")
    apply_or_revert(app.name, lambda: router_state.add_domain(s.store, app, host),
                    lambda: router_state.remove_domain(s.store, app, host), f"domain {host}")
    s.store.add_event(app, "dockyard", "api", f"Domain {host} added by {g.user.name}")
    return jsonify(_domain_json(app.name, host, "custom")), 201


def _refuse_overlap(s, app, host: str) -> None:
    """A name, or a name under a wildcard, that another app holds belongs to that app: only a
    user with access to it may add an overlapping one (an exact duplicate is refused below)."""
    for other_name, hosts in router_state.all_domains(s.store).items():
        if other_name == app.name:
            continue
        taken = next((h for h in hosts if h != host and overlaps(h, host)), None)
        if taken is None:
            continue
        other = s.store.find_app(other_name)
        if other is not None and not access.can_read(g.user, other, s.store.collaborator_ids(other)):
            raise Conflict(f"{host} overlaps {taken}, a domain of another app: names under a wildcard belong to "
                           "its owner. Ask that app's owner or an admin.")


@bp.delete("/apps/<name>/domains/<hostname>")
def remove_domain(name, hostname):
    s = svc()
    app = load_app(name, admin=True)
    host = normalize_hostname(hostname, s.settings.domain)
    router_state.remove_domain(s.store, app, host)
    s.apply_routes()
    s.store.add_event(app, "dockyard", "api", f"Domain {host} removed by {g.user.name}")
    return jsonify(_domain_json(app.name, host, "custom"))
