"""The router's per-app state as the API uses it: custom domains, router settings and
certificates, on top of the store's rows (the rules and the errors that say what to do).
`defaults` and `parse_settings` are the pure router-settings parsing of router_options."""
from __future__ import annotations

from core.errors import NotFound
from core.models import App

from controller.routing.certs import CertBundle, store_bundle, stored_bundle
from controller.routing.options import defaults, merge_settings, parse_settings
from controller.store import Store

__all__ = ["add_domain", "all_domains", "all_settings", "defaults", "domain_owner", "domains", "get_cert",
           "get_settings", "parse_settings", "put_cert", "remove_cert", "remove_domain", "update_settings"]


# ---- router settings ------------------------------------------------------------------
def get_settings(store: Store, app: App) -> dict:
    """Only what the owner set (not the defaults)."""
    return store.router_settings(app)


def update_settings(store: Store, app: App, parsed: dict) -> dict:
    """Apply parsed changes (None = back to default) in one transaction; returns the new settings."""
    return store.change_router_settings(app, lambda current: merge_settings(current, parsed))


def all_settings(store: Store) -> dict[str, dict]:
    return store.all_router_settings()


# ---- domains --------------------------------------------------------------------------
def domains(store: Store, app: App) -> list[dict]:
    return store.domains(app)


def domain_owner(store: Store, hostname: str) -> App | None:
    name = store.domain_owner_name(hostname)
    return store.find_app(name) if name else None


def add_domain(store: Store, app: App, hostname: str) -> None:
    """Raises Conflict if the hostname is taken (the caller words who owns it)."""
    store.add_domain(app, hostname)


def remove_domain(store: Store, app: App, hostname: str) -> None:
    if not store.remove_domain(app, hostname):
        raise NotFound(f"{hostname} is not a domain of {app.name}: see `dockyard domains -a {app.name}`.")


def all_domains(store: Store) -> dict[str, list[str]]:
    return store.all_domains()


# ---- certificates ---------------------------------------------------------------------
def put_cert(store: Store, app: App, bundle: CertBundle) -> None:
    store_bundle(store, app, bundle)


def get_cert(store: Store, app_name: str) -> CertBundle | None:
    return stored_bundle(store, app_name)


def remove_cert(store: Store, app: App) -> None:
    if not store.remove_cert(app):
        raise NotFound(f"{app.name} has no certificate: add one with `dockyard certs:add CERT KEY -a {app.name}`.")
