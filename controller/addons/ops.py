"""The add-on primitives the use cases share: talking to a service (SQL on stdin to psql,
commands to redis-cli), waiting for it, provisioning one with its owner's credentials, and
what it reports about itself. No config change or release happens here (controller/addons/lifecycle.py
makes those); credentials go to the service on stdin and are never echoed in an error."""
from __future__ import annotations

import time
from datetime import datetime

from core.errors import BadRequest, Conflict, DockyardError, NotFound, SchedulerError
from core.models import Addon, App, Attachment, ServiceStatus, User

from controller.accounts import access
from controller.accounts import users as accounts
from controller.addons import kinds
from controller.runtime.locks import addon_lock
from controller.services import Out, Services
from controller.store.addons import addon_not_found


class AddonError(DockyardError):
    """A service did not do what the platform asked of it (its output is not echoed: it may
    hold a credential)."""
    status = 502
    code = "addon_failed"


def image_for(svc: Services, kind: kinds.Kind) -> str:
    image = svc.settings.postgres_image if kind.name == "postgres" else svc.settings.redis_image
    if not svc.scheduler.image_exists(image):
        raise NotFound(f"The {kind.name} service image {image} is not in the engine: build it with "
                       "`bash scripts/build-service-images.sh` (scripts/install.sh does on setup).",
                       fix="ask the operator to run `bash scripts/build-service-images.sh` on the platform's machine")
    return image


def url(svc: Services, addon: Addon, att: Attachment) -> str:
    kind = kinds.kind_of(addon.service)
    db = addon.credentials.get("database", "0")
    return kind.url(addon.name, att.user, att.password, db)


def run_sql(svc: Services, addon: Addon, sql: str, database: str = "postgres") -> str:
    code, out = svc.scheduler.service_exec(addon.name, kinds.psql(database), stdin=sql.encode(), timeout=120)
    if code != 0:
        first = out.decode("utf-8", "replace").strip().splitlines()[:1]
        hint = first[0] if first and "PASSWORD" not in first[0] else "see the add-on's logs"
        raise AddonError(f"{addon.name} refused a command (exit {code}): {hint[:200]}")
    return out.decode("utf-8", "replace")


def run_redis(svc: Services, addon: Addon, commands: str) -> str:
    code, out = svc.scheduler.service_exec(addon.name, kinds.REDIS_CLI, stdin=commands.encode(), timeout=60)
    text = out.decode("utf-8", "replace")
    if code != 0 or "ERR" in text:
        raise AddonError(f"{addon.name} refused a command (exit {code}); see `dockyard addons:info {addon.name}`.")
    return text


def wait_ready(svc: Services, addon: Addon, timeout: float = 60) -> None:
    probe = kinds.PG_READY if addon.service == "postgres" else kinds.REDIS_PING
    deadline = time.monotonic() + timeout
    while True:
        try:
            code, out = svc.scheduler.service_exec(addon.name, probe, timeout=10)
            if code == 0 and (addon.service == "postgres" or b"PONG" in out):
                return
        except SchedulerError:
            pass
        if time.monotonic() > deadline:
            tail = " | ".join(line.text for line in svc.scheduler.service_logs(addon.name, 5))
            raise AddonError(f"{addon.name} did not become ready within {timeout:.0f} s; last output: {tail[:400]}")
        time.sleep(0.3)


def start(svc: Services, addon: Addon, new: bool = False) -> None:
    """Run the add-on on its volume (`new`: a first start, which makes the volume)."""
    kind = kinds.kind_of(addon.service)
    svc.scheduler.start_service(addon.name, kind.name, image_for(svc, kind), addon.memory_mb, new=new)


def make_owner(svc: Services, addon: Addon, user: str, password: str) -> None:
    if addon.service == "postgres":
        first, second = kinds.pg_create_owner(user, password, addon.credentials["database"])
        run_sql(svc, addon, first)
        run_sql(svc, addon, second, addon.credentials["database"])
    else:
        run_redis(svc, addon, kinds.redis_create_user(user, password))


def make_member(svc: Services, addon: Addon, user: str, password: str) -> None:
    owner = owner_attachment(svc, addon)
    if addon.service == "postgres":
        run_sql(svc, addon, kinds.pg_create_member(user, password, owner.user))
    else:
        run_redis(svc, addon, kinds.redis_create_user(user, password))


def drop_member(svc: Services, addon: Addon, user: str) -> None:
    if addon.service == "postgres":
        run_sql(svc, addon, kinds.pg_drop_member(user, owner_attachment(svc, addon).user),
                addon.credentials["database"])
    else:
        run_redis(svc, addon, kinds.redis_drop_user(user))


def owner_attachment(svc: Services, addon: Addon) -> Attachment:
    for att in svc.store.attachments(addon=addon):
        if att.owner:
            return att
    raise Conflict(f"{addon.name} has lost its owner's credentials; restore a backup into a new add-on.")


def provision(svc: Services, app: App, kind_name: str, as_name: str | None, user: str, out: Out,
              memory_mb: int | None = None, replaces: bool = False) -> Addon:
    """A new add-on for the app, running and attached as DATABASE_URL / REDIS_URL / NAME_URL
    without a release yet (create and restore make it). `replaces`: the var may be in the
    config already (a restore points it at the new add-on)."""
    kind = kinds.kind_of(kind_name)
    var = kinds.var_for(kind, as_name)
    memory = memory_mb or svc.settings.addon_memory_mb
    if not 32 <= memory <= 65536:
        raise BadRequest("An add-on's memory must be from 32 to 65536 MB (e.g. --memory 256).")
    image_for(svc, kind)
    current = svc.store.current_release(app)
    taken = {a.var for a in svc.store.attachments(app=app)}
    if var in taken or (not replaces and current is not None and var in current.config):
        raise Conflict(f"{app.name} already has {var} set: attach with another name (`--as NAME` sets NAME_URL) "
                       f"or unset it first (`dockyard config:unset {var} -a {app.name}`).")
    for _ in range(5):
        name = kinds.new_name(kind)
        if svc.store.find_addon(name) is None:
            break
    creds = {"database": kinds.new_user("d") if kind.name == "postgres" else "0"}
    with addon_lock(svc.settings, name, "provisioning"):
        addon = svc.store.create_addon(app, name, kind.name, memory, creds)
        try:
            out(f"-----> Creating {addon.name} ({kind.name}, {memory} MB) for {app.name}")
            start(svc, addon, new=True)
            wait_ready(svc, addon)
            owner_user, owner_password = kinds.new_user(), kinds.new_password()
            make_owner(svc, addon, owner_user, owner_password)
            svc.store.attach(addon, app, var, owner_user, owner_password, owner=True)
            svc.scheduler.connect_service(addon.name, app.name)
        except BaseException:
            svc.scheduler.remove_service(addon.name)
            svc.store.delete_addon(addon)
            raise
    svc.store.add_event(app, "dockyard", "api", f"Add-on {addon.name} ({kind.name}) created by {user} as {var}")
    return addon


SETTLE = 10.0   # seconds an add-on the engine restarted stays up before it counts as available


def state(svc: Services, addon: Addon) -> tuple[str, list[str]]:
    """(available | starting | crashed | missing, the last output lines when crashed)."""
    st = svc.scheduler.service_status(addon.name)
    if st.state == "running" and not just_restarted(st, time.time()):
        return "available", []
    if st.state == "missing":
        return "missing", []
    lines = [line.text for line in svc.scheduler.service_logs(addon.name, 20)]
    if st.state in ("running", "restarting", "exited", "dead"):
        return "crashed", lines
    return st.state, lines


def just_restarted(st: ServiceStatus, now: float) -> bool:
    """Pure: restarted by the engine less than SETTLE seconds ago. Between two exits of a crash
    loop the engine shows the add-on running for a moment: that is not available."""
    if not st.restart_count or not st.started_at:
        return False
    try:
        started = datetime.fromisoformat(st.started_at).timestamp()
    except ValueError:
        return False
    return now - started < SETTLE


def usage(svc: Services, addon: Addon) -> dict:
    """What the service reports about itself: version, data size, connections (best effort:
    a service that is down reports nothing)."""
    found: dict = {"memory_bytes": svc.scheduler.service_memory(addon.name)}
    try:
        if addon.service == "postgres":
            code, out = svc.scheduler.service_exec(
                addon.name, kinds.psql(addon.credentials["database"]) + ["-At", "-F", "|"],
                stdin=kinds.PG_INFO_SQL.encode(), timeout=30)
            if code == 0:
                version, size, conns, tables = out.decode().strip().split("|")
                found.update(version=f"PostgreSQL {version}", size_bytes=int(size), connections=int(conns),
                             tables=int(tables))
        else:
            info = kinds.parse_redis_info(run_redis(svc, addon, "INFO\n"))
            keys = sum(int(part.split("=")[1]) for k, v in info.items() if k.startswith("db")
                       for part in v.split(",") if part.startswith("keys="))
            found.update(version=f"Redis {info.get('redis_version', '?')}", size_bytes=int(info.get("used_memory", 0)),
                         connections=int(info.get("connected_clients", 0)), keys=keys)
    except (DockyardError, ValueError):
        pass
    return found


def package_version(svc: Services, addon: Addon) -> str:
    """The Debian package version the add-on's image was built from."""
    image = image_for(svc, kinds.kind_of(addon.service))
    labels = svc.scheduler.image_config(image).get("Labels") or {}
    return labels.get("dockyard.service.version", "?")


def shell_command(svc: Services, addon: Addon, app: App) -> tuple[list[str], dict[str, str]]:
    """The interactive client (psql, redis-cli) as the app's own user: (command, environment)."""
    att = svc.store.get_attachment(addon, app)
    if addon.service == "postgres":   # the container's socket; the role is the app's, not a superuser
        return ["psql", "-h", "/tmp", "-U", att.user, "-d", addon.credentials["database"]], {}
    return ["redis-cli", "--no-auth-warning", "--user", att.user], {"REDISCLI_AUTH": att.password}


def visible(svc: Services, user: User, name: str) -> Addon:
    """The add-on `name` if the user may see the app that owns it; otherwise the very answer a
    name that does not exist gets, so that a name tells nobody whose it is."""
    addon = svc.store.find_addon(name)
    owner = svc.store.find_app(addon.app) if addon is not None else None
    if owner is None or not access.can_read(user, owner, accounts.collaborator_ids(svc, owner)):
        raise addon_not_found(name)
    return addon


def for_app(svc: Services, app: App, name: str | None, service: str | None = None) -> Addon:
    """The add-on `name` attached to the app, or its only one of `service` when no name is
    given (pg:psql -a APP)."""
    attached = svc.store.list_addons(app)
    if name:
        for addon in attached:
            if addon.name == name or svc.store.get_attachment(addon, app).var == name:
                return addon
        raise NotFound(f"{app.name} has no add-on {name[:60]!r}: see `dockyard addons -a {app.name}`.")
    mine = [a for a in attached if service is None or a.service == service]
    if not mine:
        what = service or "add-on"
        raise NotFound(f"{app.name} has no {what}: create one with `dockyard addons:create {service or 'postgres'} "
                       f"-a {app.name}`.")
    if len(mine) > 1:
        owned = [a for a in mine if svc.store.get_attachment(a, app).var == kinds.kind_of(a.service).var]
        if len(owned) == 1:
            return owned[0]
        raise BadRequest(f"{app.name} has several: name one ({', '.join(a.name for a in mine)}).")
    return mine[0]


def run_shell(svc: Services, app: App, addon: Addon, user: User, command: list[str], env: dict[str, str],
              read_stdin, on_output) -> int:
    """pg:psql / redis:cli (`shell_command`) in the add-on's container, stdin and output attached
    (see Scheduler.service_exec_attached); the session goes into the app's events."""
    code = svc.scheduler.service_exec_attached(addon.name, command, read_stdin, on_output, svc.settings.run_timeout,
                                               env=env)
    svc.store.add_event(app, "dockyard", "api", f"{command[0]} session in {addon.name} by {user.name} "
                        f"exited with code {code}")
    return code
