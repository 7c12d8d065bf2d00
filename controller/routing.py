"""The route table, from the store and live container state (never from cached IPs):
every app gets `<app>.<domain>`; its upstreams are its running `web` instances that
passed their health check."""
from __future__ import annotations

from collections import defaultdict

from router.table import Route, Upstream, build_table

from .scheduler import make_scheduler
from .settings import Settings


def compute_routes(app_names, instances, healthy_ids, domain: str) -> tuple[Route, ...]:
    """Pure: app names + live instances + ids that passed health checks -> route table."""
    ups: dict[str, list[Upstream]] = defaultdict(list)
    names = set(app_names)
    for inst in instances:
        if (inst.app in names and inst.process == "web" and inst.state == "running"
                and inst.host_port and inst.container_id in healthy_ids):
            ups[inst.app].append(Upstream("127.0.0.1", inst.host_port))
    return build_table(((name, tuple(ups.get(name, ()))) for name in sorted(names)), domain)


def with_extras(routes, domains: dict, settings_by_app: dict, tls_by_app: dict) -> tuple[Route, ...]:
    """Pure: add each app's custom domains, router settings and certificate to its route."""
    from . import router_state
    return tuple(router_state.apply_extras(r, settings_by_app.get(r.app, {}), tls_by_app.get(r.app),
                                           domains.get(r.app, [])) for r in routes)


def load_routes(settings: Settings, store=None, scheduler=None) -> tuple[Route, ...]:
    from .store import Store
    store = store or Store(settings.db_path)
    scheduler = scheduler or make_scheduler(settings)
    apps = [a.name for a in store.list_apps()]
    # Healthy ids first, live containers second: a deploy marks its new instances healthy only
    # once they run, and stops old ones only after its own (later) apply, so this order never
    # yields an app with no upstream in the middle of a deploy.
    healthy = store.healthy_ids()
    routes = compute_routes(apps, scheduler.instances(), healthy, settings.domain)
    return with_extras(routes, *load_extras(settings, store, [r.app for r in routes]))


def load_extras(settings: Settings, store, apps) -> tuple[dict, dict, dict]:
    """Custom domains, router settings and certificate files (written here, 0600, under
    DOCKYARD_HOME/certs: called under the router lock, so files and config move together)."""
    from . import router_state
    from .certs import StoredCerts
    sources = (StoredCerts(store),)   # an ACME CertSource would go here, after the manual one
    domains = router_state.all_domains(store)
    tls_by_app, keep = {}, set()
    for app in apps:
        for source in sources:
            bundle = source.bundle_for(app, tuple(domains.get(app, ())))
            if bundle is not None:
                tls = router_state.cert_files(settings.certs_dir, app, bundle)
                tls_by_app[app] = tls
                keep.update((tls.cert_path, tls.key_path))
                break
    # Files the live config still names stay too (a refused render keeps the live config serving).
    try:
        live = (settings.router_dir / "conf" / "routes.conf").read_text()
    except OSError:
        live = ""
    router_state.prune_cert_files(settings.certs_dir, keep, live)
    return domains, router_state.all_settings(store), tls_by_app
