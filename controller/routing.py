"""The route table, from the store and live container state (never from cached IPs):
every app gets `<app>.<domain>`; its upstreams are its running `web` instances that
passed their health check."""
from __future__ import annotations

from collections import defaultdict

from router.table import Route, Upstream, build_table

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


def load_routes(settings: Settings, store=None, scheduler=None) -> tuple[Route, ...]:
    from .scheduler import Scheduler
    from .store import Store
    store = store or Store(settings.db_path)
    scheduler = scheduler or Scheduler(settings)
    apps = [a.name for a in store.list_apps()]
    # Healthy ids first, live containers second: a deploy marks its new instances healthy only
    # once they run, and stops old ones only after its own (later) apply, so this order never
    # yields an app with no upstream in the middle of a deploy.
    healthy = store.healthy_ids()
    return compute_routes(apps, scheduler.instances(), healthy, settings.domain)
