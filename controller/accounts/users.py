"""Users, tokens, collaborators, SSH keys and the audit log: the rules (who may be removed,
what a token looks like, which errors say what), on top of the store's rows. Each takes the services object."""
from __future__ import annotations

import re
import secrets

from core.errors import BadRequest, Conflict, NotFound
from core.models import App, User

from controller.services import Services

USER_NAME_RE = re.compile(r"^[a-z][a-z0-9._-]{1,38}[a-z0-9]$")
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[a-zA-Z0-9-]+(\.[a-zA-Z0-9-]+)*$")


def new_token() -> str:
    return "dy_" + secrets.token_urlsafe(32)


def validate_user_name(name: object) -> str:
    if not isinstance(name, str) or not USER_NAME_RE.fullmatch(name):
        shown = repr("".join(c if c.isprintable() else "?" for c in name)[:40]) if isinstance(name, str) else "(missing)"
        raise BadRequest(f"Invalid user name {shown}: use 3 to 40 characters, lower-case letters, digits, "
                         "'.', '_' and '-', starting with a letter (e.g. 'alice').")
    return name


def list_users(svc: Services) -> list[dict]:
    return svc.store.list_users()


def get_user(svc: Services, name: str) -> User:
    user = svc.store.get_user(name)
    if user is None:
        raise NotFound(f"No user {name[:40]!r}: see `dockyard users`, or create one with `dockyard users:add NAME`.")
    return user


def find_user(svc: Services, login: object) -> User:
    """A user by email, else by name (Heroku's tools name users by email)."""
    user = svc.store.find_user(login) if isinstance(login, str) and login else None
    if user is None:
        shown = login[:60] if isinstance(login, str) else "(missing)"
        raise NotFound(f"No user {shown!r}: give a user's name or email (`dockyard users` lists them for an admin).")
    return user


def set_email(svc: Services, user: User, email: object) -> User:
    """The user's own email (None clears it: the name is shown instead)."""
    if email is not None and (not isinstance(email, str) or len(email) > 254 or not EMAIL_RE.fullmatch(email)):
        raise BadRequest("Give an email like alice@example.com (or null to clear it).")
    email = email.lower() if email else None
    other = svc.store.find_user(email) if email else None
    if other is not None and other.id != user.id:
        raise Conflict(f"The email {email!r} belongs to another user: pick your own.")
    svc.store.set_email(user, email)
    return svc.store.get_user(user.name)


def all_users(svc: Services) -> list[User]:
    return svc.store.all_users()


def remove_user(svc: Services, name: str, by: User) -> None:
    user = get_user(svc, name)
    if user.id == by.id:
        raise BadRequest("You cannot remove yourself: ask another admin.")
    owned = svc.store.delete_user_owning_nothing(user)
    if owned:
        raise Conflict(f"{name} owns {', '.join(owned[:10])}: destroy those apps first "
                       f"(`dockyard apps:destroy -a APP --confirm APP`).")


def add_user(svc: Services, name: str, is_admin: bool = False) -> tuple[User, str]:
    """A new user and their first token (shown once)."""
    user = svc.store.create_user(name, is_admin=is_admin)
    return user, mint_token(svc, user)


def mint_token(svc: Services, user: User) -> str:
    token = new_token()
    svc.store.add_token(user.id, token)
    return token


def rotate_token(svc: Services, user: User, old_token: str) -> str:
    """Replace the token used for this request by a new one, in one transaction."""
    token = new_token()
    if not svc.store.replace_token(user.id, old_token, token):
        raise Conflict("That token was already revoked or rotated: log in again with `dockyard login`.")
    return token


def revoke_token(svc: Services, token: str) -> bool:
    return svc.store.delete_token(token)


def revoke_all_tokens(svc: Services, user: User) -> int:
    return svc.store.delete_tokens_of(user.id)


# ---- collaborators ------------------------------------------------------------------
def collaborator_ids(svc: Services, app: App) -> set[int]:
    return svc.store.collaborator_ids(app)


def access_list(svc: Services, app: App) -> list[dict]:
    owner, collaborators = svc.store.app_members(app)
    out = [{"user": owner, "role": "owner"}] if owner else []
    return out + [{"user": name, "role": "collaborator", "since": since} for name, since in collaborators]


def add_collaborator(svc: Services, app: App, user: User) -> None:
    if user.id == app.owner_id:
        raise Conflict(f"{user.name} owns {app.name} already.")
    svc.store.add_collaborator(app, user)


def remove_collaborator(svc: Services, app: App, user: User) -> None:
    if not svc.store.remove_collaborator(app, user):
        raise NotFound(f"{user.name} is not a collaborator on {app.name}: see `dockyard access -a {app.name}`.")


# ---- SSH keys -----------------------------------------------------------------------
def list_keys(svc: Services, user: User | None = None) -> list[dict]:
    return svc.store.list_keys(user)


def add_key(svc: Services, user: User, name: str, fingerprint: str, public_key: str) -> dict:
    return svc.store.add_key(user, name, fingerprint, public_key)


def remove_key(svc: Services, user: User, which: str) -> dict:
    removed = svc.store.remove_key(user, which)
    if removed is None:
        raise NotFound(f"You have no key {which[:60]!r}: see `dockyard keys` for names and fingerprints.")
    return removed


def user_for_key(svc: Services, key_id: int) -> tuple[User, str] | None:
    return svc.store.user_for_key(key_id)


def all_keys(svc: Services) -> list[tuple[int, str]]:
    return svc.store.all_keys()


# ---- audit log ----------------------------------------------------------------------
def audit(svc: Services, actor: str, action: str, app: str | None = None, detail: dict | None = None,
          status: int | None = None) -> None:
    """Record who did what. `detail` must never hold secret values (config keys only)."""
    svc.store.add_audit(actor, action, app, detail or {}, status)


def audit_entries(svc: Services, app: str | None = None, actor: str | None = None, limit: int = 100) -> list[dict]:
    return svc.store.audit_entries(app=app, actor=actor, limit=limit)


def find_by_name(svc: Services, name: str) -> User | None:
    return svc.store.get_user(name)


def user_for_token(svc: Services, token: str) -> User | None:
    """The user an API token belongs to; None for an unknown or revoked one."""
    return svc.store.user_for_token(token) if token else None


# ---- dashboard sessions ---------------------------------------------------------------
def start_session(svc: Services, token: str, session_id: str, csrf: str, expires_at: int) -> None:
    svc.store.add_session(session_id, token, csrf, expires_at)


def session(svc: Services, session_id: str):
    """(user, CSRF token) of a live session; None for an unknown or expired one."""
    return svc.store.session(session_id) if session_id else None


def end_session(svc: Services, session_id: str) -> None:
    svc.store.end_session(session_id)
