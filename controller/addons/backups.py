"""Add-on backups: a consistent snapshot (pg_dump in custom format, a Redis RDB), streamed out
of the service and written atomically (a temporary file, fsync, rename) under
DOCKYARD_HOME/backups/<app>/, so a backup is either whole or absent. Listed with size and
time; restored into a fresh add-on; a daily schedule per add-on keeps the newest
DOCKYARD_BACKUP_RETENTION scheduled backups (manual and final ones stay until deleted)."""
from __future__ import annotations

import os
import re
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from core.errors import BadRequest, NotFound
from core.models import Addon

from controller.addons import kinds
from controller.addons.ops import AddonError, owner_attachment, run_redis, start
from controller.services import Out, Services

_NAME = re.compile(r"^(?P<addon>[a-z]+-[a-z]+-\d{4})-(?P<stamp>\d{8}T\d{6}\d{0,3}Z)-(?P<kind>manual|scheduled|final)"
                   r"\.(?P<ext>dump|rdb)$")
_AT = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True)
class Backup:
    name: str          # the file name: <addon>-<UTC stamp>-<kind>.<dump|rdb>
    addon: str
    service: str
    kind: str          # manual | scheduled | final
    size: int
    created_at: str
    path: Path


def backups_dir(svc: Services, app_name: str) -> Path:
    return svc.settings.home / "backups" / app_name


def _parse(path: Path) -> Backup | None:
    m = _NAME.match(path.name)
    if not m:
        return None
    stamp = datetime.strptime(m["stamp"][:15], "%Y%m%dT%H%M%S").replace(tzinfo=timezone.utc)
    return Backup(name=path.name, addon=m["addon"], service="postgres" if m["ext"] == "dump" else "redis",
                  kind=m["kind"], size=path.stat().st_size, created_at=stamp.isoformat(), path=path)


def list_backups(svc: Services, app_name: str) -> list[Backup]:
    found = [b for b in (_parse(p) for p in sorted(backups_dir(svc, app_name).glob("*"))) if b]
    return sorted(found, key=lambda b: (b.created_at, b.name))


def get_backup(svc: Services, app_name: str, name: str) -> Backup:
    for b in list_backups(svc, app_name):
        if b.name == name or b.name.rsplit(".", 1)[0] == name:
            return b
    raise NotFound(f"Backup {name[:80]!r} not found for {app_name}: list them with `dockyard pg:backups -a {app_name}`.")


def capture(svc: Services, addon: Addon, user: str, out: Out, kind: str = "manual") -> Backup:
    """Stream a consistent snapshot of the add-on into a new backup file, atomically."""
    service = kinds.kind_of(addon.service)
    target_dir = backups_dir(svc, addon.app)
    target_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")[:18] + "Z"
    final = target_dir / f"{addon.name}-{stamp}-{kind}.{service.backup_ext}"
    command = kinds.pg_dump(addon.credentials["database"]) if service.name == "postgres" else kinds.REDIS_DUMP
    started = time.monotonic()
    fd, tmp = tempfile.mkstemp(dir=target_dir, prefix=f".{final.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            code, rest = svc.scheduler.service_exec(addon.name, command, stdout=f, timeout=svc.settings.run_timeout)
            f.flush()
            os.fsync(f.fileno())
        if code != 0:
            raise AddonError(f"Backing up {addon.name} failed (exit {code}): "
                             f"{rest.decode('utf-8', 'replace').strip()[-300:] or 'see its logs'}")
        os.replace(tmp, final)
        dir_fd = os.open(target_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    backup = _parse(final)
    out(f"-----> Backed up {addon.name} to {backup.name} ({backup.size} bytes in {time.monotonic() - started:.1f} s)")
    svc.store.add_event(svc.store.get_app(addon.app), "dockyard", "api", f"Backup {backup.name} captured ({kind}) by {user}")
    return backup


def load(svc: Services, addon: Addon, backup: Backup) -> None:
    load_file(svc, addon, backup.path, backup.name)


def load_file(svc: Services, addon: Addon, path: Path, label: str) -> None:
    """Load a dump (pg_dump custom format, or a Redis RDB) into the running add-on."""
    with open(path, "rb") as f:
        if addon.service == "postgres":
            owner = owner_attachment(svc, addon).user
            code, rest = svc.scheduler.service_exec(addon.name, kinds.pg_restore(addon.credentials["database"], owner),
                                                    stdin=f, timeout=svc.settings.run_timeout)
            if code != 0:
                raise AddonError(f"Restoring {label} failed (exit {code}): "
                                 f"{rest.decode('utf-8', 'replace').strip()[-300:]}")
            return
        code, _ = svc.scheduler.service_exec(addon.name, ["sh", "-c", "cat > /data/.restore.rdb && "
                                                          "mv /data/.restore.rdb /data/dump.rdb"], stdin=f)
    if code != 0:
        raise AddonError(f"Copying {label} into {addon.name} failed (exit {code}).")
    try:   # it loads dump.rdb as it starts again: stop it without a save over the file
        run_redis(svc, addon, "SHUTDOWN NOSAVE\n")
    except AddonError:
        pass
    for _ in range(100):
        if svc.scheduler.service_status(addon.name).state != "running":
            break
        time.sleep(0.1)
    start(svc, addon)


def set_schedule(svc: Services, addon: Addon, at: str | None, user: str) -> Addon:
    """Daily automatic backups at HH:MM UTC (None: no schedule)."""
    if at is not None and not _AT.fullmatch(at):
        raise BadRequest(f"Invalid time {at[:20]!r}: give HH:MM in UTC, e.g. --at 02:00.")
    addon = svc.store.set_addon_fields(addon, backup_at=at)
    svc.store.add_event(svc.store.get_app(addon.app), "dockyard", "api",
                        f"Backups of {addon.name} scheduled {'daily at ' + at + ' UTC' if at else 'off'} by {user}")
    return addon


def due(at: str | None, now: datetime, last: str | None) -> bool:
    """Pure: a scheduled backup is due once today's HH:MM has passed and none was made since."""
    if not at:
        return False
    hour, minute = map(int, at.split(":"))
    slot = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if now < slot:
        return False
    return last is None or last < slot.isoformat()


def run_schedule(svc: Services, addon: Addon, log) -> Backup | None:
    """Called by the reconciler: the day's backup when due, then retention."""
    mine = [b for b in list_backups(svc, addon.app) if b.addon == addon.name and b.kind == "scheduled"]
    if not due(addon.backup_at, datetime.now(timezone.utc), mine[-1].created_at if mine else None):
        return None
    backup = capture(svc, addon, "scheduler", lambda line: log.info("%s", line.strip()), kind="scheduled")
    mine.append(backup)
    for old in mine[:-svc.settings.backup_retention]:
        old.path.unlink(missing_ok=True)
    return backup
