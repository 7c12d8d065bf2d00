"""Use cases for an app's routing: custom domains, its certificate and its router settings,
read and changed. Each change is applied to the router at once and undone when the router
refuses it, so a bad setting never reaches another app's traffic (the last good config keeps
serving)."""
from __future__ import annotations

from collections.abc import Callable

from core.errors import BadRequest, Conflict, DomainTaken, NotFound, RouterError
from core.models import App, User

from controller.accounts import access
from controller.routing.certs import CertBundle, inspect_bundle, store_bundle, stored_bundle
from controller.routing.domains import claimed_by, default_owner, normalize_hostname, platform_label
from controller.routing.options import defaults, merge_settings, parse_settings
from controller.routing.table import apply_routes
from controller.services import Services


# ---- what the app's routing is now ------------------------------------------------------
def domains(svc: Services, app: App) -> list[dict]:
    """The app's custom domains, each {hostname, created_at}."""
    return svc.store.domains(app)


def router_settings(svc: Services, app: App) -> dict:
    """Only what the owner set (not the defaults)."""
    return svc.store.router_settings(app)


def certificate(svc: Services, app: App) -> CertBundle | None:
    return stored_bundle(svc.store, app.name)


def certificate_summary(svc: Services, app: App) -> dict | None:
    """The certificate's names, expiry and source, never its key; None without one."""
    cert = svc.store.cert_record(app.name)
    if cert is None:
        return None
    info = dict(cert.get("info") or {})
    return {"names": info.get("names") or info.get("hostnames") or [],
            "expires": info.get("not_after") or info.get("expires") or "", "source": cert.get("source", "")}


def router_report(svc: Services, app: App) -> dict:
    """`dockyard router`: the settings in effect, which the owner set, the defaults, what the
    router refused, and whether the app has HTTPS."""
    own = router_settings(svc, app)
    return {"app": app.name, "settings": {**defaults(), **own}, "customized": sorted(own),
            "defaults": defaults(), "refused": svc.router.refused().get(app.name),
            "https": certificate(svc, app) is not None, "tls_port": svc.settings.router_tls_port}


# ---- the store's rows, with the errors that say what to do --------------------------------
def _update_settings(svc: Services, app: App, parsed: dict) -> dict:
    """Apply parsed changes (None = back to default) in one transaction; returns the new settings."""
    return svc.store.change_router_settings(app, lambda current: merge_settings(current, parsed))


def _remove_domain(svc: Services, app: App, hostname: str) -> None:
    if not svc.store.remove_domain(app, hostname):
        raise NotFound(f"{hostname} is not a domain of {app.name}: see `dockyard domains -a {app.name}`.")


def _remove_cert(svc: Services, app: App) -> None:
    if not svc.store.remove_cert(app):
        raise NotFound(f"{app.name} has no certificate: add one with `dockyard certs:add CERT KEY -a {app.name}`.")


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
    return [svc.settings.app_host(app.name)] + [d["hostname"] for d in domains(svc, app)]


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
    owner_name = svc.store.domain_owner_name(host)
    owner = svc.store.find_app(owner_name) if owner_name else None
    if owner is not None:
        if owner.id == app.id:
            raise Conflict(f"{host} is already a domain of {app.name}.", fix="nothing to do: the app answers there")
        if access.can_read(user, owner):
            raise DomainTaken(f"{host} is already used by app {owner.name}: remove it there first with "
                              f"`dockyard domains:remove {host} -a {owner.name}`.")
        raise DomainTaken(f"{host} is already used by another app. If it is yours, ask that app's owner "
                          "to remove it, or an admin.")
    _apply_or_revert(svc, app.name, lambda: svc.store.add_domain(app, host),
                     lambda: _remove_domain(svc, app, host), f"domain {host}")
    svc.store.add_event(app, "dockyard", "api", f"Domain {host} added by {user.name}")
    return host


def _refuse_overlap(svc: Services, app: App, host: str, user: User) -> None:
    """A name, a name under it, or a name under a wildcard, that another app holds belongs to
    that app: only a user with access to it may add one (an exact duplicate is refused after)."""
    for other_name, hosts in svc.store.all_domains().items():
        taken = next((h for h in hosts if h != host and claimed_by(h, host)), None) if other_name != app.name else None
        if taken is None:
            continue
        other = svc.store.find_app(other_name)
        if other is not None and not access.can_read(user, other, svc.store.collaborator_ids(other)):
            raise DomainTaken(f"{host} overlaps {taken}, a domain of another app: the names under a domain or a "
                              "wildcard belong to its owner.")


def remove_domain(svc: Services, app: App, hostname: str, user: User) -> str:
    host = normalize_hostname(hostname, svc.settings.domain)
    _remove_domain(svc, app, host)
    apply_routes(svc)
    svc.store.add_event(app, "dockyard", "api", f"Domain {host} removed by {user.name}")
    return host


def add_cert(svc: Services, app: App, chain: object, key: object, user: User) -> CertBundle:
    """Replace the app's certificate (chain + key, PEM)."""
    if not isinstance(chain, str) or not isinstance(key, str):
        raise BadRequest("Send certificate_chain and private_key as PEM strings: `dockyard certs:add CERT KEY`.")
    info = inspect_bundle(chain, key, hosts(svc, app))
    bundle = CertBundle(cert_pem=chain, key_pem=key, info=info)
    previous = certificate(svc, app)

    def revert():
        if previous is None:
            _remove_cert(svc, app)
        else:
            store_bundle(svc.store, app, previous)

    _apply_or_revert(svc, app.name, lambda: store_bundle(svc.store, app, bundle), revert, "the certificate")
    svc.store.add_event(app, "dockyard", "api", f"Certificate for {', '.join(info.names)} (expires "
                        f"{info.not_after[:10]}) added by {user.name}")
    return bundle


def remove_cert(svc: Services, app: App, user: User) -> None:
    if router_settings(svc, app).get("force-https"):
        _update_settings(svc, app, {"force-https": None})
    _remove_cert(svc, app)
    apply_routes(svc)
    svc.store.add_event(app, "dockyard", "api", f"Certificate removed by {user.name}")


def set_router_settings(svc: Services, app: App, changes: object, user: User) -> None:
    """router:set: {NAME: VALUE or None (= the default)}."""
    if not isinstance(changes, dict) or not changes:
        raise BadRequest("Send {\"settings\": {NAME: VALUE}}, e.g. `dockyard router:set read-timeout=120`.")
    parsed = parse_settings(app.name, changes)
    if parsed.get("force-https") and certificate(svc, app) is None:
        raise BadRequest(f"force-https needs a certificate: add one first with "
                         f"`dockyard certs:add CERT KEY -a {app.name}`.")
    before = router_settings(svc, app)
    undo = {k: before.get(k) for k in parsed}
    _apply_or_revert(svc, app.name, lambda: _update_settings(svc, app, parsed),
                     lambda: _update_settings(svc, app, undo), ", ".join(sorted(parsed)))
    desc = ", ".join(f"{k}={'default' if v is None else v}" for k, v in sorted(parsed.items()))
    svc.store.add_event(app, "dockyard", "api", f"Router settings {desc} set by {user.name}")
