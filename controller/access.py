"""Who may do what to an app (pure)."""
from __future__ import annotations

from .models import App, User


def can_read(user: User, app: App) -> bool:
    return user.is_admin or app.owner_id == user.id


def can_deploy(user: User, app: App) -> bool:
    return can_read(user, app)


def can_admin(user: User, app: App) -> bool:
    return user.is_admin or app.owner_id == user.id
