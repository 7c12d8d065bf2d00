"""The add-on use cases: provision a backing service for an app, attach it to other apps,
detach, destroy, and keep it running. Attaching sets the app's config var (DATABASE_URL,
REDIS_URL or NAME_URL) through releases.set_config: one new release, so the app restarts with
it. Credentials are per attachment and secret: they go to the service on stdin, to the app
in its config, and nowhere else (never into events, the audit log or error messages).

Backups live beside, in controller/backups.py."""
from __future__ import annotations

import time

from core.errors import BadRequest, Conflict, DockyardError, NotFound, SchedulerError
from core.models import Addon, App, Attachment

from . import addon_kinds as kinds
from .locks import app_lock
from .services import Out, Services


class AddonError(DockyardError):
    """A service did not do what the platform asked of it (its output is not echoed: it may
    hold a credential)."""
    status = 502
    code = "addon_failed"


def image_for(svc: Services, kind: kinds.Kind) -> str:
    image = svc.settings.postgres_image if kind.name == "postgres" else svc.settings.redis_image
    if not svc.scheduler.image_exists(image):
        raise NotFound(f"The {kind.name} service image {image} is not in the engine: build it with "
                       "`bash scripts/build-service-images.sh` (scripts/install.sh does on setup).")
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


def start(svc: Services, addon: Addon) -> None:
    kind = kinds.kind_of(addon.service)
    svc.scheduler.start_service(addon.name, kind.name, image_for(svc, kind), addon.memory_mb)


# ---- provisioning ----------------------------------------------------------------------
def _make_owner(svc: Services, addon: Addon, user: str, password: str) -> None:
    if addon.service == "postgres":
        first, second = kinds.pg_create_owner(user, password, addon.credentials["database"])
        run_sql(svc, addon, first)
        run_sql(svc, addon, second, addon.credentials["database"])
    else:
        run_redis(svc, addon, kinds.redis_create_user(user, password))


def _make_member(svc: Services, addon: Addon, user: str, password: str) -> None:
    owner = owner_attachment(svc, addon)
    if addon.service == "postgres":
        run_sql(svc, addon, kinds.pg_create_member(user, password, owner.user))
    else:
        run_redis(svc, addon, kinds.redis_create_user(user, password))


def _drop_member(svc: Services, addon: Addon, user: str) -> None:
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
    addon = svc.store.create_addon(app, name, kind.name, memory, creds)
    try:
        out(f"-----> Creating {addon.name} ({kind.name}, {memory} MB) for {app.name}")
        start(svc, addon)
        wait_ready(svc, addon)
        owner_user, owner_password = kinds.new_user(), kinds.new_password()
        _make_owner(svc, addon, owner_user, owner_password)
        svc.store.attach(addon, app, var, owner_user, owner_password, owner=True)
        svc.scheduler.connect_service(addon.name, app.name)
    except BaseException:
        svc.scheduler.remove_service(addon.name)
        svc.store.delete_addon(addon)
        raise
    svc.store.add_event(app, "dockyard", "api", f"Add-on {addon.name} ({kind.name}) created by {user} as {var}")
    return addon


def create(svc: Services, app: App, kind_name: str, as_name: str | None, user: str, out: Out,
           memory_mb: int | None = None) -> Addon:
    from .releases import set_config
    with app_lock(svc.settings, app.name, "addons:create"):
        addon = provision(svc, svc.store.get_app(app.name), kind_name, as_name, user, out, memory_mb)
    att = svc.store.get_attachment(addon, app)
    set_config(svc, app, {att.var: url(svc, addon, att)}, user, True, out)
    return addon


def attach(svc: Services, addon: Addon, app: App, as_name: str | None, user: str, out: Out) -> Attachment:
    """Share the add-on with another app: its own credentials, its own var, one release."""
    from .releases import set_config
    kind = kinds.kind_of(addon.service)
    var = kinds.var_for(kind, as_name)
    with app_lock(svc.settings, app.name, "addons:attach"):
        current = svc.store.current_release(app)
        if svc.store.find_attachment(addon, app) is not None:
            raise Conflict(f"{addon.name} is already attached to {app.name}.")
        if var in {a.var for a in svc.store.attachments(app=app)} or (current and var in current.config):
            raise Conflict(f"{app.name} already has {var} set: attach with another name (`--as NAME`).")
        member, password = kinds.new_user("a"), kinds.new_password()
        _make_member(svc, addon, member, password)
        att = svc.store.attach(addon, app, var, member, password)
        svc.scheduler.connect_service(addon.name, app.name)
        svc.store.add_event(app, "dockyard", "api", f"Add-on {addon.name} attached by {user} as {var}")
    set_config(svc, app, {var: url(svc, addon, att)}, user, True, out)
    return att


def detach(svc: Services, addon: Addon, app: App, user: str, out: Out) -> None:
    from .releases import set_config
    att = svc.store.get_attachment(addon, app)
    if att.owner:
        raise BadRequest(f"{app.name} owns {addon.name}: destroy it with `dockyard addons:destroy {addon.name} "
                         f"-a {app.name} --confirm {app.name}` instead of detaching.")
    set_config(svc, app, {att.var: None}, user, True, out)
    with app_lock(svc.settings, app.name, "addons:detach"):
        svc.scheduler.disconnect_service(addon.name, app.name)
        try:
            _drop_member(svc, addon, att.user)
        except DockyardError as e:   # the role stays; it can no longer reach the service anyway
            out(f"       Could not remove {app.name}'s user from {addon.name}: {e.message}")
        svc.store.detach(addon, app)
        svc.store.add_event(app, "dockyard", "api", f"Add-on {addon.name} detached by {user}")


def destroy(svc: Services, addon: Addon, confirm: str | None, user: str, out: Out,
            final_backup: bool = True) -> str | None:
    """Delete the add-on and its data after a final backup (returned: its name); every
    attached app loses its var in one release each."""
    from . import backups
    from .releases import set_config
    if confirm != addon.app:
        raise BadRequest(f"Destroying {addon.name} deletes its data. To proceed, confirm with the owning "
                         f"app's name: `dockyard addons:destroy {addon.name} -a {addon.app} --confirm {addon.app}`.")
    kept = None
    if final_backup and svc.scheduler.service_status(addon.name).state == "running":
        kept = backups.capture(svc, addon, user, out, kind="final").name
    for att in svc.store.attachments(addon=addon):
        app = svc.store.get_app(att.app)
        set_config(svc, app, {att.var: None}, user, True, out)
    svc.scheduler.remove_service(addon.name)
    owner = svc.store.get_app(addon.app)
    svc.store.delete_addon(addon)
    svc.store.add_event(owner, "dockyard", "api", f"Add-on {addon.name} destroyed by {user}"
                        + (f"; final backup {kept}" if kept else ""))
    return kept


def set_memory(svc: Services, addon: Addon, memory_mb: int, user: str) -> Addon:
    if not 32 <= memory_mb <= 65536:
        raise BadRequest("An add-on's memory must be from 32 to 65536 MB (e.g. --memory 256).")
    svc.scheduler.set_service_memory(addon.name, memory_mb)
    addon = svc.store.set_addon_fields(addon, memory_mb=memory_mb)
    svc.store.add_event(svc.store.get_app(addon.app), "dockyard", "api",
                        f"Add-on {addon.name} memory set to {memory_mb} MB by {user}")
    return addon


# ---- what it is now ----------------------------------------------------------------------
def state(svc: Services, addon: Addon) -> tuple[str, list[str]]:
    """(available | starting | crashed | missing, the last output lines when crashed)."""
    st = svc.scheduler.service_status(addon.name)
    if st.state == "running":
        return "available", []
    if st.state == "missing":
        return "missing", []
    lines = [line.text for line in svc.scheduler.service_logs(addon.name, 10)]
    if st.state in ("restarting", "exited", "dead"):
        return "crashed", lines
    return st.state, lines


def check_all(svc: Services, log) -> None:
    """The reconciler's pass over the add-ons: start each one that is not running (its data
    is in its volume), saying why with its last lines; then the daily backups."""
    from . import backups
    live = svc.scheduler.services()
    for addon in svc.store.list_addons():
        st = live.get(addon.name)
        if st is None or st.state not in ("running", "restarting"):
            lines = [line.text for line in svc.scheduler.service_logs(addon.name, 5)] if st else []
            why = "missing" if st is None else st.state
            try:
                start(svc, addon)
                svc.store.add_event(svc.store.get_app(addon.app), "dockyard", "reconciler",
                                    f"Add-on {addon.name} was {why}; restarted"
                                    + (f" (last output: {' | '.join(lines)[:300]})" if lines else ""))
            except DockyardError as e:
                log.warning("add-on %s: %s", addon.name, e.message)
        try:
            backups.run_schedule(svc, addon, log)
        except DockyardError as e:
            log.warning("add-on %s backup: %s", addon.name, e.message)
