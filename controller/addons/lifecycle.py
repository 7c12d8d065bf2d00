"""The add-on use cases: provision a backing service for an app, attach it to other apps,
detach, destroy, restore a backup into a fresh one, and let an app go with its add-ons.
Attaching sets the app's config var (DATABASE_URL, REDIS_URL or NAME_URL) through
releases.set_config: one new release, so the app restarts with it. Credentials are per
attachment and secret: they go to the service on stdin, to the app in its config, and nowhere
else (never into events, the audit log or error messages). The primitives are in
controller/addons/ops.py, backups in controller/addons/backups.py."""
from __future__ import annotations

import time

from core.errors import BadRequest, Conflict, DockyardError
from core.models import Addon, App, Attachment

from controller.addons import kinds
from controller.addons import backups
from controller.addons.ops import drop_member, make_member, provision, url, wait_ready
from controller.runtime.locks import addon_lock, app_lock
from controller.apps.releases import destroy_app as _destroy_app, set_config
from controller.services import Out, Services


def create(svc: Services, app: App, kind_name: str, as_name: str | None, user: str, out: Out,
           memory_mb: int | None = None) -> Addon:
    with app_lock(svc.settings, app.name, "addons:create"):
        addon = provision(svc, svc.store.get_app(app.name), kind_name, as_name, user, out, memory_mb)
    att = svc.store.get_attachment(addon, app)
    try:
        set_config(svc, app, {att.var: url(svc, addon, att)}, user, True, out)
    except BaseException as e:
        if _var_is_live(svc, app, att.var):   # the release went live after all: both exist
            raise
        # the attachment and the config must agree: the new, empty add-on goes again
        with addon_lock(svc.settings, addon.name, "destroy"):
            svc.scheduler.remove_service(addon.name)
            svc.store.delete_addon(addon)
        svc.store.add_event(app, "dockyard", "api", f"Add-on {addon.name} removed again: the release setting "
                            f"{att.var} failed")
        if not isinstance(e, DockyardError):
            raise
        raise e.__class__(f"{e.message} The add-on {addon.name} was removed again (it held no data yet), so "
                          f"{app.name} has neither it nor {att.var}: fix what the release reported, then run "
                          f"`dockyard addons:create {addon.service} -a {app.name}` again.") from None
    return addon


def _var_is_live(svc: Services, app: App, var: str) -> bool:
    current = svc.store.current_release(svc.store.get_app(app.name))
    return current is not None and var in current.config


def attach(svc: Services, addon: Addon, app: App, as_name: str | None, user: str, out: Out) -> Attachment:
    """Share the add-on with another app: its own credentials, its own var, one release."""
    kind = kinds.kind_of(addon.service)
    var = kinds.var_for(kind, as_name)
    with app_lock(svc.settings, app.name, "addons:attach"):
        current = svc.store.current_release(app)
        if svc.store.find_attachment(addon, app) is not None:
            raise Conflict(f"{addon.name} is already attached to {app.name}.")
        if var in {a.var for a in svc.store.attachments(app=app)} or (current and var in current.config):
            raise Conflict(f"{app.name} already has {var} set: attach with another name (`--as NAME`).")
        member, password = kinds.new_user("a"), kinds.new_password()
        make_member(svc, addon, member, password)
        att = svc.store.attach(addon, app, var, member, password)
        svc.scheduler.connect_service(addon.name, app.name)
        svc.store.add_event(app, "dockyard", "api", f"Add-on {addon.name} attached by {user} as {var}")
    try:
        set_config(svc, app, {var: url(svc, addon, att)}, user, True, out)
    except DockyardError as e:
        if _var_is_live(svc, app, var):
            raise
        with app_lock(svc.settings, app.name, "addons:attach"):   # attachment and config agree: neither
            svc.scheduler.disconnect_service(addon.name, app.name)
            try:
                drop_member(svc, addon, att.user)
            except DockyardError:
                pass      # the role stays; it can no longer reach the service
            svc.store.detach(addon, app)
        raise e.__class__(f"{e.message} {addon.name} was detached again, so {app.name} has neither it nor {var}: "
                          f"fix what the release reported, then attach it again.") from None
    return att


def detach(svc: Services, addon: Addon, app: App, user: str, out: Out) -> None:
    att = svc.store.get_attachment(addon, app)
    if att.owner:
        raise BadRequest(f"{app.name} owns {addon.name}: destroy it with `dockyard addons:destroy {addon.name} "
                         f"-a {app.name} --confirm {app.name}` instead of detaching.")
    set_config(svc, app, {att.var: None}, user, True, out)
    with app_lock(svc.settings, app.name, "addons:detach"):
        svc.scheduler.disconnect_service(addon.name, app.name)
        try:
            drop_member(svc, addon, att.user)
        except DockyardError as e:   # the role stays; it can no longer reach the service anyway
            out(f"       Could not remove {app.name}'s user from {addon.name}: {e.message}")
        svc.store.detach(addon, app)
        svc.store.add_event(app, "dockyard", "api", f"Add-on {addon.name} detached by {user}")


def destroy(svc: Services, addon: Addon, confirm: str | None, user: str, out: Out,
            final_backup: bool = True, skip_app: str | None = None) -> str | None:
    """Delete the add-on and its data after a final backup (returned: its name); every
    attached app (but `skip_app`, which is going) loses its var in one release each."""
    if confirm != addon.app:
        raise BadRequest(f"Destroying {addon.name} deletes its data. To proceed, confirm with the owning "
                         f"app's name: `dockyard addons:destroy {addon.name} -a {addon.app} --confirm {addon.app}`.")
    kept = None
    if final_backup and svc.scheduler.service_status(addon.name).state == "running":
        kept = backups.capture(svc, addon, user, out, kind="final").name
    for att in svc.store.attachments(addon=addon):
        if att.app != skip_app:
            set_config(svc, svc.store.get_app(att.app), {att.var: None}, user, True, out)
    owner = svc.store.get_app(addon.app)
    with addon_lock(svc.settings, addon.name, "destroy"):   # the reconciler does not restart it meanwhile
        svc.scheduler.remove_service(addon.name)
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


def require_confirmed(svc: Services, app: App, confirmed: bool) -> None:
    """apps:destroy deletes the data of the app's own add-ons only once asked to."""
    owned = svc.store.owned_addons(app)
    if owned and not confirmed:
        others = sorted({t.app for a in owned for t in svc.store.attachments(addon=a)} - {app.name})
        raise Conflict(f"{app.name} has add-ons with data: {', '.join(a.name for a in owned)}"
                       + (f" (also used by {', '.join(others)})" if others else "")
                       + ". Destroying the app deletes them after a final backup of each (kept in "
                       f"DOCKYARD_HOME/backups/{app.name}/); confirm that too (`dockyard apps:destroy` asks).",
                       fix="answer yes when `dockyard apps:destroy` asks (API: DELETE /apps/APP?addons=destroy)")


def teardown_for_app(svc: Services, app: App, user: str, out: Out) -> list[str]:
    """The app's own add-ons are destroyed (final backup first); others' are detached from it.
    Returns the final backups' names."""
    kept = []
    for addon in svc.store.list_addons(app):
        if addon.app != app.name:
            svc.scheduler.disconnect_service(addon.name, app.name)
            try:
                drop_member(svc, addon, svc.store.get_attachment(addon, app).user)
            except DockyardError as e:
                out(f"       Could not remove {app.name}'s user from {addon.name}: {e.message}")
            svc.store.detach(addon, app)
    for addon in svc.store.owned_addons(app):
        name = destroy(svc, addon, app.name, user, out, final_backup=True, skip_app=app.name)
        if name:
            kept.append(name)
    return kept


def restore(svc: Services, app: App, name: str, confirm: str | None, as_name: str | None, user: str,
            out: Out) -> Addon:
    """Restore a backup into a fresh add-on attached to the app. Without --as it takes over the
    var of the add-on the backup came from (which stays, attached as <ITS_NAME>_URL, until
    destroyed: a restore never deletes data); with --as it is attached as NAME_URL."""
    if confirm != app.name:
        raise BadRequest(f"Restoring changes what {app.name} connects to: confirm with "
                         f"`--confirm {app.name}`.")
    backup = backups.get_backup(svc, app.name, name)
    source = svc.store.find_addon(backup.addon)
    source_att = svc.store.find_attachment(source, app) if source else None
    changes: dict[str, str | None] = {}
    with app_lock(svc.settings, app.name, "pg:backups:restore"):
        if as_name is None and source_att is not None:
            moved = kinds.var_for(kinds.kind_of(source.service), source.name.replace("-", "_"))
            svc.store.detach(source, app)
            svc.store.attach(source, app, moved, source_att.user, source_att.password, owner=source_att.owner)
            changes[moved] = url(svc, source, source_att)
            as_name = source_att.var
        try:
            addon = provision(svc, app, backup.service, as_name, user, out, replaces=bool(changes))
        except BaseException:
            if changes:   # put the source back as it was
                svc.store.detach(source, app)
                svc.store.attach(source, app, source_att.var, source_att.user, source_att.password, source_att.owner)
            raise
        started = time.monotonic()
        with addon_lock(svc.settings, addon.name, "restore"):
            backups.load(svc, addon, backup)
        wait_ready(svc, addon)
        out(f"-----> Restored {backup.name} into {addon.name} in {time.monotonic() - started:.1f} s")
        att = svc.store.get_attachment(addon, app)
        changes[att.var] = url(svc, addon, att)
        svc.store.add_event(app, "dockyard", "api", f"Backup {backup.name} restored into {addon.name} by {user}")
    set_config(svc, app, changes, user, True, out)
    return addon


def destroy_app(svc: Services, app: App, user: str, addons_confirmed: bool, out: Out) -> list[str]:
    """apps:destroy: refused while the app owns add-ons unless `addons_confirmed`; then its
    add-ons go (a final backup of each is kept, and returned) and the app after them."""
    require_confirmed(svc, app, addons_confirmed)
    kept = teardown_for_app(svc, app, user, out)
    _destroy_app(svc, app)
    return kept
