"""What tenants share and how much of it each may take: images every user may deploy or build
on (added by an admin), and per-user quotas an admin set (unset fields: the platform defaults)."""
from __future__ import annotations

import sqlite3
from typing import Callable

from core.errors import NotFound
from core.models import App, User

from controller.store.apps import write_limit
from controller.store.base import now

QUOTA_FIELDS = ("max_apps", "max_instances", "max_memory_mb")


class TenancyMixin:
    # ---- allowed images ---------------------------------------------------
    def allowed_images(self) -> list[dict]:
        with self.read() as db:
            return [dict(image=r["image"], created_by=r["created_by"], created_at=r["created_at"]) for r in
                    db.execute("SELECT image, created_by, created_at FROM allowed_images ORDER BY image")]

    def allow_image(self, image: str, by: str) -> None:
        with self.tx() as db:
            db.execute("INSERT OR IGNORE INTO allowed_images (image, created_by, created_at) VALUES (?, ?, ?)",
                       (image, by, now()))

    def disallow_image(self, image: str) -> bool:
        with self.tx() as db:
            return db.execute("DELETE FROM allowed_images WHERE image = ?", (image,)).rowcount > 0

    # ---- quotas -----------------------------------------------------------
    def quota(self, user: User) -> dict:
        """The fields an admin set for the user (absent: the default applies)."""
        with self.read() as db:
            row = db.execute("SELECT * FROM user_quotas WHERE user_id = ?", (user.id,)).fetchone()
        return {k: row[k] for k in QUOTA_FIELDS if row is not None and row[k] is not None}

    def set_quota(self, user: User, values: dict) -> None:
        with self.tx() as db:
            db.execute("INSERT INTO user_quotas (user_id, max_apps, max_instances, max_memory_mb) VALUES (?, ?, ?, ?)"
                       " ON CONFLICT (user_id) DO UPDATE SET max_apps = excluded.max_apps,"
                       " max_instances = excluded.max_instances, max_memory_mb = excluded.max_memory_mb",
                       (user.id, *(values.get(k) for k in QUOTA_FIELDS)))

    def apps_owned_by(self, user: User) -> list:
        return [a for a in self.list_apps() if a.owner_id == user.id]

    # ---- usage, and changes reserved against it ---------------------------------------
    def usage(self, owner_id: int, default_mb: int, change: tuple[str, dict, dict] | None = None) -> dict:
        """{apps, instances, memory_mb} over the apps `owner_id` owns; `change` = (app id, its
        quantities, its memory per type) replaces what that app has, to judge a change first."""
        with self.read() as db:
            return _usage(db, owner_id, default_mb, change)

    def reserve(self, app: App, default_mb: int, judge: Callable[[dict], None] | None,
                quantities: dict[str, int], limits: dict[str, tuple[int | None, float | None]],
                only_missing: bool = False) -> None:
        """Judge a formation/limits change of `app` against its owner's usage and write it, in
        one write transaction: concurrent changes of the owner's apps are judged one after the
        other, each seeing what the others reserved. `judge(usage with the change)` raises to
        refuse (nothing is written); `limits` is {type: (memory_mb, cpus)}, (None, None) resets."""
        with self.tx() as db:
            row = db.execute("SELECT owner_id FROM apps WHERE id = ?", (app.id,)).fetchone()
            if row is None:
                raise NotFound(f"App {app.name!r} was deleted.")
            if judge is not None and row["owner_id"] is not None:
                memory = {t: (mb or default_mb) for t, (mb, _) in limits.items()}
                judge(_usage(db, row["owner_id"], default_mb, (app.id, quantities, memory)))
            verb = ("INSERT OR IGNORE INTO formation (app_id, type, quantity) VALUES (?, ?, ?)" if only_missing else
                    "INSERT INTO formation (app_id, type, quantity) VALUES (?, ?, ?)"
                    " ON CONFLICT (app_id, type) DO UPDATE SET quantity = excluded.quantity")
            for ptype, qty in quantities.items():
                db.execute(verb, (app.id, ptype, qty))
            for ptype, (mb, cpus) in limits.items():
                write_limit(db, app.id, ptype, mb, cpus)


def _usage(db: sqlite3.Connection, owner_id: int, default_mb: int, change: tuple[str, dict, dict] | None) -> dict:
    apps = [r[0] for r in db.execute("SELECT id FROM apps WHERE owner_id = ?", (owner_id,))]
    instances = memory = 0
    for app_id in apps:
        rows = db.execute("SELECT type, quantity, stopped FROM formation WHERE app_id = ?", (app_id,)).fetchall()
        quantities = {r["type"]: r["quantity"] for r in rows}
        stopped = {r["type"] for r in rows if r["stopped"]}
        mem = {r["type"]: (r["memory_mb"] or default_mb) for r in
               db.execute("SELECT type, memory_mb FROM limits WHERE app_id = ?", (app_id,))}
        changed: dict = {}
        if change is not None and change[0] == app_id:   # a type the change scales runs again
            changed = change[1]
            quantities, mem = {**quantities, **change[1]}, {**mem, **change[2]}
        for ptype, qty in quantities.items():
            if ptype in stopped and ptype not in changed:
                continue
            instances += qty
            memory += qty * mem.get(ptype, default_mb)
    return {"apps": len(apps), "instances": instances, "memory_mb": memory}
