"""Use cases for an app's routing: custom domains, its certificate and its router settings.
Each change is applied to the router at once and undone when the router refuses it, so a bad
setting never reaches another app's traffic (the last good config keeps serving)."""
from __future__ import annotations

from collections.abc import Callable

from core.errors import BadRequest, Conflict, DomainTaken, RouterError
from core.models import App, User

from controller.accounts import access
from controller.routing import platform_tls
from controller.routing import state as router_state
from controller.routing.certs import CertBundle, inspect_bundle
from controller.routing.domains import claimed_by, default_owner, normalize_hostname, platform_label
from controller.routing.table import apply_routes
from controller.services import Services


def _apply_or_revert(svc: Services, app_name: str, change: Callable[[], None], revert: Callable[[], None],
                     what: str) -> None:
    """Make `change` in the store and apply the routes; undo it if the router refuses it. The
    routes are applied first without it too, so a refusal that was already there (say, a
    certificate nginx cannot load) is not blamed on this change."""
    apply_routes(svc)
    before = svc.router.refused().get(app_name)
    change()
    try:
        apply_routes(svc)
    except RouterError:
        revert()
        apply_routes(svc)
        raise
    reason = svc.router.refused().get(app_name)
    if reason and reason != before:
        revert()
        apply_routes(svc)
        raise BadRequest(f"The router refused {what} for {app_name}, so it was not changed: {reason}")


def hosts(svc: Services, app: App) -> list[str]:
    """Every name the app answers at: its default hostname, then its custom domains."""
    return [svc.settings.app_host(app.name)] + [d["hostname"] for d in router_state.domains(svc.store, app)]


def add_domain(svc: Services, app: App, hostname: object, user: User) -> str:
    host = normalize_hostname(hostname, svc.settings.domain)
    default_app = default_owner(host, svc.settings.domain)
    label = platform_label(host, svc.settings.domain)
    if label is not None and label != app.name and default_app is None:
        raise DomainTaken(f"{host} is under the platform domain {svc.settings.domain}, whose names belong to its "
                          f"apps: only names under {app.name}.{svc.settings.domain} may be added to {app.name}.")
    _refuse_overlap(svc, app, host, user)
    if default_app is not None:
        raise DomainTaken(f"{host} is the default hostname of app {default_app!r} (every app answers at "
                          f"<app>.{svc.settings.domain}); it cannot be added to another app.")
    owner = router_state.domain_owner(svc.store, host)
    if owner is not None:
        if owner.id == app.id:
            raise Conflict(f"{host} is already a domain of {app.name}.", fix="nothing to do: the app answers there")
        if access.can_read(user, owner):
            raise DomainTaken(f"{host} is already used by app {owner.name}: remove it there first with "
                              f"`dockyard domains:remove {host} -a {owner.name}`.")
        raise DomainTaken(f"{host} is already used by another app. If it is yours, ask that app's owner "
                          "to remove it, or an admin.")
    _apply_or_revert(svc, app.name, lambda: router_state.add_domain(svc.store, app, host),
                     lambda: router_state.remove_domain(svc.store, app, host), f"domain {host}")
    svc.store.add_event(app, "dockyard", "api", f"Domain {host} added by {user.name}")
    return host


def _refuse_overlap(svc: Services, app: App, host: str, user: User) -> None:
    """A name, a name under it, or a name under a wildcard, that another app holds belongs to
    that app: only a user with access to it may add one (an exact duplicate is refused after)."""
    for other_name, hosts in router_state.all_domains(svc.store).items():
        taken = next((h for h in hosts if h != host and claimed_by(h, host)), None) if other_name != app.name else None
        if taken is None:
            continue
        other = svc.store.find_app(other_name)
        if other is not None and not access.can_read(user, other, svc.store.collaborator_ids(other)):
            raise DomainTaken(f"{host} overlaps {taken}, a domain of another app: the names under a domain or a "
                              "wildcard belong to its owner.")


def remove_domain(svc: Services, app: App, hostname: str, user: User) -> str:
    host = normalize_hostname(hostname, svc.settings.domain)
    router_state.remove_domain(svc.store, app, host)
    apply_routes(svc)
    svc.store.add_event(app, "dockyard", "api", f"Domain {host} removed by {user.name}")
    return host


def add_cert(svc: Services, app: App, chain: object, key: object, user: User) -> CertBundle:
    """Replace the app's certificate (chain + key, PEM)."""
    if not isinstance(chain, str) or not isinstance(key, str):
        raise BadRequest("Send certificate_chain and private_key as PEM strings: `dockyard certs:add CERT KEY`.")
    info = inspect_bundle(chain, key, hosts(svc, app))
    bundle = CertBundle(cert_pem=chain, key_pem=key, info=info)
    previous = router_state.get_cert(svc.store, app.name)

    def revert():
        if previous is None:
            router_state.remove_cert(svc.store, app)
        else:
            router_state.put_cert(svc.store, app, previous)

    _apply_or_revert(svc, app.name, lambda: router_state.put_cert(svc.store, app, bundle), revert, "the certificate")
    svc.store.add_event(app, "dockyard", "api", f"Certificate for {', '.join(info.names)} (expires "
                        f"{info.not_after[:10]}) added by {user.name}")
    return bundle


def _platform_https(svc: Services) -> bool:
    return platform_tls.available(svc.settings.tls_dir, svc.settings.tls_cert)


def remove_cert(svc: Services, app: App, user: User) -> None:
    # force-https stays while the platform's certificate serves the app's default hostname
    if router_state.get_settings(svc.store, app).get("force-https") and not _platform_https(svc):
        router_state.update_settings(svc.store, app, {"force-https": None})
    router_state.remove_cert(svc.store, app)
    apply_routes(svc)
    svc.store.add_event(app, "dockyard", "api", f"Certificate removed by {user.name}")


def set_router_settings(svc: Services, app: App, changes: object, user: User) -> None:
    """router:set: {NAME: VALUE or None (= the default)}."""
    if not isinstance(changes, dict) or not changes:
        raise BadRequest("Send {\"settings\": {NAME: VALUE}}, e.g. `dockyard router:set read-timeout=120`.")
    parsed = router_state.parse_settings(app.name, changes)
    if parsed.get("force-https") and router_state.get_cert(svc.store, app.name) is None \
            and not _platform_https(svc):
        raise BadRequest(f"force-https needs a certificate (the platform has none: `make up` makes one): add one first with "
                         f"`dockyard certs:add CERT KEY -a {app.name}`.")
    before = router_state.get_settings(svc.store, app)
    undo = {k: before.get(k) for k in parsed}
    _apply_or_revert(svc, app.name, lambda: router_state.update_settings(svc.store, app, parsed),
                     lambda: router_state.update_settings(svc.store, app, undo), ", ".join(sorted(parsed)))
    desc = ", ".join(f"{k}={'default' if v is None else v}" for k, v in sorted(parsed.items()))
    svc.store.add_event(app, "dockyard", "api", f"Router settings {desc} set by {user.name}")
