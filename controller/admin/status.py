"""The platform's own health, as `/healthz` and `make status` report it: what stops it from
working fully (a full filesystem under DOCKYARD_HOME, a store it cannot read), each with the fix."""
from __future__ import annotations

from controller.services import Services

LOW_SPACE = 64 << 20     # bytes free under DOCKYARD_HOME below which the platform says it is degraded


def problems(svc: Services) -> list[str]:
    found = []
    try:
        free = svc.store.free_bytes()
    except OSError as e:
        return [f"DOCKYARD_HOME ({svc.settings.home}) cannot be read: {e.strerror}"]
    if free < LOW_SPACE:
        found.append(f"the filesystem holding DOCKYARD_HOME ({svc.settings.home}) has {free >> 20} MB free: the "
                     "platform cannot record changes; free space there (backups/, logs/, build caches with "
                     "`dockyard repo:purge-cache -a APP`)")
    try:
        svc.store.list_apps()
    except Exception as e:  # noqa: BLE001 - whatever the store raises (sqlite, StorageFull) is the reason
        found.append(f"the store ({svc.settings.db_path}) cannot be read: {e}")
    return found
