"""Add-ons (backing services) and their attachments to apps. Credentials are stored like
config values: in the database only, never in events or the audit log."""
from __future__ import annotations

import json
import sqlite3
import uuid

from core.errors import Conflict, NotFound
from core.models import Addon, App, Attachment

from controller.store.base import now

_ADDON_SELECT = "SELECT a.*, p.name AS app FROM addons a JOIN apps p ON p.id = a.app_id"
_ATTACH_SELECT = """
    SELECT t.*, a.name AS addon, p.name AS app FROM addon_attachments t
    JOIN addons a ON a.id = t.addon_id JOIN apps p ON p.id = t.app_id
"""


def _addon(row: sqlite3.Row) -> Addon:
    return Addon(id=row["id"], name=row["name"], service=row["service"], app_id=row["app_id"], app=row["app"],
                 memory_mb=row["memory_mb"], credentials=json.loads(row["credentials"]),
                 created_at=row["created_at"], backup_at=row["backup_at"], node=row["node"])


def _attachment(row: sqlite3.Row) -> Attachment:
    return Attachment(addon_id=row["addon_id"], addon=row["addon"], app_id=row["app_id"], app=row["app"],
                      var=row["var"], user=row["user"], password=row["password"], owner=bool(row["owner"]),
                      created_at=row["created_at"])



def addon_not_found(name: str) -> NotFound:
    """The one answer for an add-on name that does not exist, or whose app the asker cannot see."""
    return NotFound(f"Add-on {name[:60]!r} not found: list them with `dockyard addons -a APP`.")


class AddonsMixin:
    def create_addon(self, app: App, name: str, service: str, memory_mb: int, credentials: dict,
                     node: str | None = None) -> Addon:
        with self.tx() as db:
            try:
                db.execute("INSERT INTO addons (id, name, service, app_id, memory_mb, credentials, node, created_at)"
                           " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           (uuid.uuid4().hex[:12], name, service, app.id, memory_mb, json.dumps(credentials),
                            node, now()))
            except sqlite3.IntegrityError:
                raise Conflict(f"An add-on named {name!r} already exists: pick another with --as or a new name.") from None
        return self.get_addon(name)

    def find_addon(self, name: str) -> Addon | None:
        with self.read() as db:
            row = db.execute(_ADDON_SELECT + " WHERE a.name = ?", (name,)).fetchone()
        return _addon(row) if row else None

    def get_addon(self, name: str) -> Addon:
        addon = self.find_addon(name)
        if addon is None:
            raise addon_not_found(name)
        return addon

    def list_addons(self, app: App | None = None) -> list[Addon]:
        """Every add-on, or those attached to `app` (owned or shared with it)."""
        with self.read() as db:
            if app is None:
                rows = db.execute(_ADDON_SELECT + " ORDER BY a.name").fetchall()
            else:
                rows = db.execute(_ADDON_SELECT + " WHERE a.id IN (SELECT addon_id FROM addon_attachments"
                                  " WHERE app_id = ?) ORDER BY a.name", (app.id,)).fetchall()
        return [_addon(r) for r in rows]

    def owned_addons(self, app: App) -> list[Addon]:
        with self.read() as db:
            rows = db.execute(_ADDON_SELECT + " WHERE a.app_id = ? ORDER BY a.name", (app.id,)).fetchall()
        return [_addon(r) for r in rows]

    def delete_addon(self, addon: Addon) -> None:
        with self.tx() as db:
            db.execute("DELETE FROM addons WHERE id = ?", (addon.id,))

    def set_addon_fields(self, addon: Addon, **fields) -> Addon:
        allowed = {"memory_mb", "backup_at", "node"}
        assert set(fields) <= allowed, fields
        with self.tx() as db:
            for key, value in fields.items():
                db.execute(f"UPDATE addons SET {key} = ? WHERE id = ?", (value, addon.id))
        return self.get_addon(addon.name)

    # ---- attachments ------------------------------------------------------
    def attach(self, addon: Addon, app: App, var: str, user: str, password: str, owner: bool = False) -> Attachment:
        with self.tx() as db:
            if db.execute("SELECT 1 FROM addon_attachments WHERE addon_id = ? AND app_id = ?",
                          (addon.id, app.id)).fetchone():
                raise Conflict(f"{addon.name} is already attached to {app.name}.")
            if db.execute("SELECT 1 FROM addon_attachments WHERE app_id = ? AND var = ?", (app.id, var)).fetchone():
                raise Conflict(f"{app.name} already has an add-on as {var}: attach with another name "
                               f"(`--as NAME` sets NAME_URL).")
            db.execute("INSERT INTO addon_attachments (addon_id, app_id, var, user, password, owner, created_at)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?)", (addon.id, app.id, var, user, password, int(owner), now()))
        return self.get_attachment(addon, app)

    def find_attachment(self, addon: Addon, app: App) -> Attachment | None:
        with self.read() as db:
            row = db.execute(_ATTACH_SELECT + " WHERE t.addon_id = ? AND t.app_id = ?", (addon.id, app.id)).fetchone()
        return _attachment(row) if row else None

    def get_attachment(self, addon: Addon, app: App) -> Attachment:
        found = self.find_attachment(addon, app)
        if found is None:
            raise NotFound(f"{addon.name} is not attached to {app.name}: see `dockyard addons -a {app.name}`.")
        return found

    def attachments(self, addon: Addon | None = None, app: App | None = None) -> list[Attachment]:
        where, args = [], []
        if addon is not None:
            where.append("t.addon_id = ?")
            args.append(addon.id)
        if app is not None:
            where.append("t.app_id = ?")
            args.append(app.id)
        sql = _ATTACH_SELECT + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY t.created_at"
        with self.read() as db:
            return [_attachment(r) for r in db.execute(sql, args).fetchall()]

    def detach(self, addon: Addon, app: App) -> None:
        with self.tx() as db:
            db.execute("DELETE FROM addon_attachments WHERE addon_id = ? AND app_id = ?", (addon.id, app.id))
