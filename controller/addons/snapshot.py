"""Every add-on's data in the platform backup (`admin:backup`), and back (`admin:restore`).

A platform backup dumps each add-on at backup time, consistently (pg_dump in custom format, a
Redis RDB), into the archive beside the store that holds its credentials. A restore onto a
machine where an add-on's volume is gone makes a new volume, recreates the owner's and the
attached apps' credentials from the store, and loads the dump; an add-on whose volume is still
there keeps its data (it is at least as new as the backup). An add-on that is down when the
backup is taken refuses the backup, saying which and how: a platform backup never silently
lacks a database."""
from __future__ import annotations

import time
from pathlib import Path

from core.errors import SchedulerError

from controller.addons import kinds
from controller.addons.backups import load_file
from controller.addons.ops import AddonError, make_member, make_owner, owner_attachment, start, state, wait_ready
from controller.services import Out, Services


def dump_all(svc: Services, into: Path) -> list[dict]:
    """Dump every add-on into `into`; returns the manifest's entries."""
    addons = svc.store.list_addons()
    down = [(a, st) for a in addons if (st := state(svc, a)[0]) != "available"]
    if down:
        names = ", ".join(f"{a.name} of {a.app} ({st})" for a, st in down)
        raise AddonError(f"Add-on {names} is not available, so the backup could not hold its data. Bring it back "
                         "(`dockyard addons:info NAME -a APP` shows why it is down; `pg:backups:restore` restores "
                         "its newest backup) or destroy it, then back up again.")
    into.mkdir(parents=True, exist_ok=True)
    entries = []
    for addon in addons:
        service = kinds.kind_of(addon.service)
        path = into / f"{addon.name}.{service.backup_ext}"
        command = kinds.pg_dump(addon.credentials["database"]) if service.name == "postgres" else kinds.REDIS_DUMP
        with open(path, "wb") as f:
            code, rest = svc.scheduler.service_exec(addon.name, command, stdout=f, timeout=svc.settings.run_timeout)
        if code != 0:
            raise AddonError(f"Dumping {addon.name} for the platform backup failed (exit {code}): "
                             f"{rest.decode('utf-8', 'replace').strip()[-300:] or 'see its logs'}")
        entries.append({"name": addon.name, "service": addon.service, "app": addon.app, "file": path.name,
                        "size": path.stat().st_size})
    return entries


def restore_all(svc: Services, dumps: Path, entries: list[dict], out: Out) -> list[str]:
    """Bring every add-on of the restored store back with its data; returns what was done."""
    done = []
    for entry in entries:
        addon = svc.store.find_addon(entry["name"])
        if addon is None:
            continue
        started = time.monotonic()
        try:
            start(svc, addon)               # its volume is still here: it keeps its own, newer, data
            wait_ready(svc, addon)
            done.append(f"{addon.name}: its volume was still here; kept its data")
            continue
        except SchedulerError:
            pass                            # the volume is gone (a new machine): load the dump
        start(svc, addon, new=True)
        wait_ready(svc, addon)
        owner = owner_attachment(svc, addon)
        if addon.service == "postgres":    # pg_restore runs as the owner's role: it comes first
            make_owner(svc, addon, owner.user, owner.password)
            load_file(svc, addon, dumps / entry["file"], entry["file"])
        else:                              # Redis restarts on its RDB: its users are made after
            load_file(svc, addon, dumps / entry["file"], entry["file"])
            wait_ready(svc, addon)
            make_owner(svc, addon, owner.user, owner.password)
        wait_ready(svc, addon)
        for att in svc.store.attachments(addon=addon):
            if not att.owner:
                make_member(svc, addon, att.user, att.password)
            svc.scheduler.connect_service(addon.name, att.app)
        done.append(f"{addon.name}: restored {entry['size']} bytes of data in {time.monotonic() - started:.1f} s")
        out(f"add-on {done[-1]}")
    return done
