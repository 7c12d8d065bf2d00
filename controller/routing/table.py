"""The route table, from the store and live container state (never from cached IPs):
every app gets `<app>.<domain>`; its upstreams are its running `web` instances that
passed their health check; its custom domains, router settings and certificate come from
the store. The one computation both the API (a deploy applies routes itself, at once) and
the router process use."""
from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import replace

from router import render
from router.table import Route, Upstream, Wake, build_table

from core.errors import DockyardError

from controller.routing.certs import CertBundle, StoredCerts, cert_files, prune_cert_files
from controller.routing.platform_tls import default_hosts, serving_bundle
from controller.routing.options import apply_extras
from controller.services import Services
from controller.settings import Settings
from controller.store import Store

log = logging.getLogger("dockyard.routing")


def compute_routes(app_names, instances, healthy_ids, domain: str, deployed=None,
                   scaled=frozenset()) -> tuple[Route, ...]:
    """Pure: app names + live instances + ids that passed health checks -> route table.
    `deployed`: the apps that ever had code released (None: all of them); `scaled`: the apps
    whose formation runs web instances (one with none up is starting or restarting).
    Instances on a node the cluster does not vouch for (state "unknown", or "lost" when no node
    can take their new task) get traffic only when the app has no running one, and those on a
    node this host does not reach ("unreachable") only when it has nothing else: a dead one then
    costs a connect timeout and a retry, where no upstream at all would fail every request (a new
    leader can report live nodes down, and a probe can miss a live node)."""
    tiers: dict[str, dict[str, list[Upstream]]] = {"running": defaultdict(list), "unknown": defaultdict(list),
                                                   "unreachable": defaultdict(list)}
    names = set(app_names)
    for inst in instances:
        if (inst.app in names and inst.process == "web" and inst.state in ("running", "unknown", "lost", "unreachable")
                and inst.host_port and inst.container_id in healthy_ids):
            tier = "unknown" if inst.state == "lost" else inst.state
            tiers[tier][inst.app].append(Upstream(inst.address, inst.host_port))
    ups = {app: next((t[app] for t in tiers.values() if t.get(app)), []) for app in names}
    table = build_table(((name, tuple(ups.get(name, ()))) for name in sorted(names)), domain)
    return tuple(replace(r, deployed=deployed is None or r.app in deployed, scaled=r.app in scaled)
                 for r in table)


def with_wake(routes, sleeping: set[str], wake: Wake) -> tuple[Route, ...]:
    """Pure: a sleeping app with no instance left is routed to the wake listener (one created
    asleep and never deployed keeps the page that says how to deploy it)."""
    return tuple(replace(r, wake=wake) if r.app in sleeping and not r.upstreams and r.deployed else r
                 for r in routes)


def with_extras(routes, domains: dict, settings_by_app: dict, tls_by_app: dict,
                platform: tuple | None = None) -> tuple[Route, ...]:
    """Pure: add each app's custom domains, router settings and certificate to its route, and the
    platform's certificate (`platform`: its Tls, its names and each app's own certificate's names)
    for the hostnames it covers and the app's own does not."""
    routes = tuple(apply_extras(r, settings_by_app.get(r.app, {}), tls_by_app.get(r.app), domains.get(r.app, []))
                   for r in routes)
    if platform is None:
        return routes
    tls, names, own_names = platform
    out = []
    for r in routes:
        hosts = default_hosts(r.hostnames, names, own_names.get(r.app))
        out.append(replace(r, platform_tls=tls if hosts else None, platform_hosts=hosts))
    return tuple(out)


def load_routes(settings: Settings, store: Store, scheduler, app: str | None = None) -> tuple[Route, ...]:
    """The route table now (`app`: that app's route alone, none if it is gone). `scheduler` is
    anything with `instances(app=None)` (live containers)."""
    apps = [a.name for a in store.list_apps() if app in (None, a.name)]
    # Healthy ids first, live containers second: a deploy marks its new instances healthy only
    # once they run, and stops old ones only after its own (later) apply, so this order never
    # yields an app with no upstream in the middle of a deploy.
    healthy = store.healthy_ids()
    routes = compute_routes(apps, scheduler.instances(app) if apps else [], healthy, settings.domain,
                            store.deployed_apps(), store.web_scaled_apps())
    routes = with_wake(routes, store.sleeping_web_apps(), Wake(Upstream("127.0.0.1", settings.wake_port),
                                                                 settings.wake_timeout + 1))
    return with_extras(routes, *load_extras(settings, store, [r.app for r in routes], prune=app is None))


def load_extras(settings: Settings, store: Store, apps, prune: bool = True) -> tuple[dict, dict, dict, tuple | None]:
    """Custom domains, router settings, certificate files (written here, 0600, under
    DOCKYARD_HOME/certs: called under the router lock, so files and config move together) and
    the platform's certificate. `prune`: remove the files of certificates no app in `apps` uses
    (the whole table's apps only)."""
    sources = (StoredCerts(store),)   # an ACME CertSource would go here, after the manual one
    domains = store.all_domains()
    ids = {a.name: a.id for a in store.list_apps()}
    tls_by_app, own_names, keep = {}, {}, set()
    for app in apps:
        for source in sources:
            bundle = source.bundle_for(app, tuple(domains.get(app, ())))
            if bundle is not None and app in ids:   # files by the app's id: a name is reused
                tls = cert_files(settings.certs_dir, ids[app], bundle)
                tls_by_app[app], own_names[app] = tls, bundle.info.names
                keep.update((tls.cert_path, tls.key_path))
                break
    platform = None
    # every app's host, whichever `apps` are asked for: a local CA's leaf names them all (a
    # leaf for fewer would be issued anew and serve the others without their names)
    bundle = _platform_bundle(settings, tuple(settings.app_host(a) for a in sorted(ids)))
    if bundle is not None:
        tls = cert_files(settings.certs_dir, "platform", bundle)
        keep.update((tls.cert_path, tls.key_path))
        platform = (tls, bundle.info.names, own_names)
    # Files the live config still names stay too (a refused render keeps the live config serving).
    if prune:
        prune_cert_files(settings.certs_dir, keep, _live_config(settings))
    return domains, store.all_router_settings(), tls_by_app, platform


def _platform_bundle(settings: Settings, hosts: tuple[str, ...]) -> CertBundle | None:
    """The platform's certificate, or None (apps' default hostnames then stay on HTTP) when there is
    none yet or it cannot be used: logged with the reason at every pass until it is fixed."""
    try:
        return serving_bundle(settings.tls_dir, settings.tls_cert, settings.tls_key, settings.domain, hosts)
    except DockyardError as e:
        log.error("the platform's certificate is not served: %s", e.message)
        return None


def forget_cert_files(settings: Settings, app_id: str) -> None:
    """A destroyed app's certificate and key files, once the live config no longer names them
    (called after the routes without the app were applied; a router pass would prune them
    later, but a destroy deletes what it promises at once)."""
    prune_cert_files(settings.certs_dir, set(), _live_config(settings), prefix=f"{app_id}-")


def _live_config(settings: Settings) -> str:
    try:
        return (settings.router_dir / render.ROUTES_CONF).read_text()
    except OSError:
        return ""
def apply_routes(svc: Services, app: str | None = None) -> bool:
    """Compute the route table and apply it as one step under the router's lock, which
    every process shares, so an older computation (say, the reconciler's) is never
    applied after a newer one (a deploy's). Concurrent calls in one process share a computation
    begun after they asked (parallel deploys and creations reload nginx once, not once each).
    `app`: only that app's instances changed (a deploy's switch): when the live routes are the
    ones this process applied last, only its route is computed (with many apps, listing every
    container and reading every app's records is most of a deploy's switch)."""
    def load(only: str | None = None) -> tuple[Route, ...]:
        return load_routes(svc.settings, svc.store, svc.scheduler, only)

    if app is None:
        return svc.router.apply_current(load)
    return svc.router.apply_patch(app, lambda: next(iter(load(app)), None), load)
