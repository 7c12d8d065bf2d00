"""What tenants share and how much of it each may take: images every user may deploy or build
on (added by an admin), and per-user quotas an admin set (unset fields: the platform defaults)."""
from __future__ import annotations

from core.models import User

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
