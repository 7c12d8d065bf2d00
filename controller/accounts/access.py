"""Who may do what to an app (pure).

Roles: an admin may do anything; the owner may do anything to their app; a collaborator
(`dockyard access:add USER`) may read, deploy, change config, scale, restart and roll back,
but not destroy the app or change who has access (those are the owner's). Anyone else is
told the app does not exist (404), so names of other people's apps never leak."""
from __future__ import annotations

from typing import Iterable

from core.models import App, User

OWNER, COLLABORATOR = "owner", "collaborator"


def role(user: User, app: App, collaborator_ids: Iterable[int] = ()) -> str | None:
    if user.is_admin or app.owner_id == user.id:
        return OWNER
    if user.id in set(collaborator_ids):
        return COLLABORATOR
    return None


def can_read(user: User, app: App, collaborator_ids: Iterable[int] = ()) -> bool:
    return role(user, app, collaborator_ids) is not None


def can_deploy(user: User, app: App, collaborator_ids: Iterable[int] = ()) -> bool:
    return can_read(user, app, collaborator_ids)


def can_admin(user: User, app: App, collaborator_ids: Iterable[int] = ()) -> bool:
    return role(user, app, collaborator_ids) == OWNER
