"""Add-on backups: a consistent snapshot (pg_dump in custom format, a Redis RDB), streamed out
of the service and written atomically (a temporary file, fsync, rename) under
DOCKYARD_HOME/backups/<app id>/, so a backup is either whole or absent. Listed with size and
time; restored into a fresh add-on; a daily schedule per add-on keeps the newest
DOCKYARD_BACKUP_RETENTION scheduled backups (manual and final ones stay until deleted).

Backups are keyed by the app's id, never by its name: a name is free again once the app is
destroyed, and the next app of that name must not find the last one's data. A destroyed app's
backups stay where they are, reachable by its owner and admins only (`GET /backups/destroyed`),
for DOCKYARD_DESTROYED_BACKUP_DAYS; then the reconciler deletes them."""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from core.errors import BadRequest, NotFound
from core.models import Addon, App, User

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


def backups_dir(svc: Services, app_id: str) -> Path:
    return svc.settings.backups_dir(app_id)


def parse_backup(path: Path) -> Backup | None:
    m = _NAME.match(path.name)
    if not m:
        return None
    stamp = datetime.strptime(m["stamp"][:15], "%Y%m%dT%H%M%S").replace(tzinfo=timezone.utc)
    return Backup(name=path.name, addon=m["addon"], service="postgres" if m["ext"] == "dump" else "redis",
                  kind=m["kind"], size=path.stat().st_size, created_at=stamp.isoformat(), path=path)


def _listed(directory: Path) -> list[Backup]:
    found = [b for b in (parse_backup(p) for p in sorted(directory.glob("*"))) if b]
    return sorted(found, key=lambda b: (b.created_at, b.name))


def list_backups(svc: Services, app: App) -> list[Backup]:
    return _listed(backups_dir(svc, app.id))


def _find(backups: list[Backup], name: str) -> Backup | None:
    return next((b for b in backups if b.name == name or b.name.rsplit(".", 1)[0] == name), None)


def get_backup(svc: Services, app: App, name: str) -> Backup:
    found = _find(list_backups(svc, app), name)
    if found is None:
        raise NotFound(f"Backup {name[:80]!r} not found for {app.name}: list them with "
                       f"`dockyard pg:backups -a {app.name}`.")
    return found


# ---- a destroyed app's backups: its owner's and admins' only -----------------------------
def destroyed(svc: Services, user: User) -> list[dict]:
    """The destroyed apps whose backups `user` may reach (their owner; admins: all), each with
    its backups and when they are deleted."""
    days = svc.settings.destroyed_backup_days
    rows = svc.store.destroyed_apps(None if user.is_admin else user.id)
    out = []
    for r in rows:
        kept = _listed(backups_dir(svc, r["id"]))
        if kept:
            until = datetime.fromisoformat(r["destroyed_at"]) + timedelta(days=days)
            out.append({"id": r["id"], "app": r["name"], "owner": r["owner"], "destroyed_at": r["destroyed_at"],
                        "deleted_after": until.isoformat(timespec="seconds"), "backups": kept})
    return out


def destroyed_backup(svc: Services, user: User, app_id: str, name: str) -> Backup:
    """One backup of a destroyed app `user` may reach; NotFound alike for any other."""
    for entry in destroyed(svc, user):
        if entry["id"] == app_id:
            found = _find(entry["backups"], name)
            if found is not None:
                return found
    raise NotFound(f"No backup {name[:80]!r} of a destroyed app {app_id[:40]!r} of yours: list them with "
                   "`GET /backups/destroyed`.", fix="list your destroyed apps' backups with GET /backups/destroyed")


def prune_destroyed(svc: Services, now: datetime | None = None) -> list[str]:
    """Delete destroyed apps' backups kept longer than DOCKYARD_DESTROYED_BACKUP_DAYS; returns
    the apps' names."""
    now = now or datetime.now(timezone.utc)
    gone = []
    for r in svc.store.destroyed_apps():
        if datetime.fromisoformat(r["destroyed_at"]) + timedelta(days=svc.settings.destroyed_backup_days) <= now:
            shutil.rmtree(backups_dir(svc, r["id"]), ignore_errors=True)
            svc.store.forget_destroyed(r["id"])
            gone.append(r["name"])
    return gone


def capture(svc: Services, addon: Addon, user: str, out: Out, kind: str = "manual") -> Backup:
    """Stream a consistent snapshot of the add-on into a new backup file, atomically."""
    service = kinds.kind_of(addon.service)
    target_dir = backups_dir(svc, addon.app_id)
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
    backup = parse_backup(final)
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
    mine = [b for b in _listed(backups_dir(svc, addon.app_id)) if b.addon == addon.name and b.kind == "scheduled"]
    if not due(addon.backup_at, datetime.now(timezone.utc), mine[-1].created_at if mine else None):
        return None
    backup = capture(svc, addon, "scheduler", lambda line: log.info("%s", line.strip()), kind="scheduled")
    mine.append(backup)
    for old in mine[:-svc.settings.backup_retention]:
        old.path.unlink(missing_ok=True)
    return backup
