"""Users, tokens, collaborators, SSH keys and the audit log: the rules (who may be removed,
what a token looks like, which errors say what), on top of the store's rows."""
from __future__ import annotations

import re
import secrets

from core.errors import BadRequest, Conflict, NotFound
from core.models import App, User

from controller.store import Store

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


def list_users(store: Store) -> list[dict]:
    return store.list_users()


def get_user(store: Store, name: str) -> User:
    user = store.get_user(name)
    if user is None:
        raise NotFound(f"No user {name[:40]!r}: see `dockyard users`, or create one with `dockyard users:add NAME`.")
    return user


def find_user(store: Store, login: object) -> User:
    """A user by email, else by name (Heroku's tools name users by email)."""
    user = store.find_user(login) if isinstance(login, str) and login else None
    if user is None:
        shown = login[:60] if isinstance(login, str) else "(missing)"
        raise NotFound(f"No user {shown!r}: give a user's name or email (`dockyard users` lists them for an admin).")
    return user


def set_email(store: Store, user: User, email: object) -> User:
    """The user's own email (None clears it: the name is shown instead)."""
    if email is not None and (not isinstance(email, str) or len(email) > 254 or not EMAIL_RE.fullmatch(email)):
        raise BadRequest("Give an email like alice@example.com (or null to clear it).")
    email = email.lower() if email else None
    other = store.find_user(email) if email else None
    if other is not None and other.id != user.id:
        raise Conflict(f"The email {email!r} belongs to another user: pick your own.")
    store.set_email(user, email)
    return store.get_user(user.name)


def all_users(store: Store) -> list[User]:
    return store.all_users()


def remove_user(store: Store, name: str, by: User) -> None:
    user = get_user(store, name)
    if user.id == by.id:
        raise BadRequest("You cannot remove yourself: ask another admin.")
    owned = store.delete_user_owning_nothing(user)
    if owned:
        raise Conflict(f"{name} owns {', '.join(owned[:10])}: destroy those apps first "
                       f"(`dockyard apps:destroy -a APP --confirm APP`).")


def add_user(store: Store, name: str, is_admin: bool = False) -> tuple[User, str]:
    """A new user and their first token (shown once)."""
    user = store.create_user(name, is_admin=is_admin)
    return user, mint_token(store, user)


def mint_token(store: Store, user: User) -> str:
    token = new_token()
    store.add_token(user.id, token)
    return token


def rotate_token(store: Store, user: User, old_token: str) -> str:
    """Replace the token used for this request by a new one, in one transaction."""
    token = new_token()
    if not store.replace_token(user.id, old_token, token):
        raise Conflict("That token was already revoked or rotated: log in again with `dockyard login`.")
    return token


def revoke_token(store: Store, token: str) -> bool:
    return store.delete_token(token)


def revoke_all_tokens(store: Store, user: User) -> int:
    return store.delete_tokens_of(user.id)


# ---- collaborators ------------------------------------------------------------------
def collaborator_ids(store: Store, app: App) -> set[int]:
    return store.collaborator_ids(app)


def access_list(store: Store, app: App) -> list[dict]:
    owner, collaborators = store.app_members(app)
    out = [{"user": owner, "role": "owner"}] if owner else []
    return out + [{"user": name, "role": "collaborator", "since": since} for name, since in collaborators]


def add_collaborator(store: Store, app: App, user: User) -> None:
    if user.id == app.owner_id:
        raise Conflict(f"{user.name} owns {app.name} already.")
    store.add_collaborator(app, user)


def remove_collaborator(store: Store, app: App, user: User) -> None:
    if not store.remove_collaborator(app, user):
        raise NotFound(f"{user.name} is not a collaborator on {app.name}: see `dockyard access -a {app.name}`.")


# ---- SSH keys -----------------------------------------------------------------------
def list_keys(store: Store, user: User | None = None) -> list[dict]:
    return store.list_keys(user)


def add_key(store: Store, user: User, name: str, fingerprint: str, public_key: str) -> dict:
    return store.add_key(user, name, fingerprint, public_key)


def remove_key(store: Store, user: User, which: str) -> dict:
    removed = store.remove_key(user, which)
    if removed is None:
        raise NotFound(f"You have no key {which[:60]!r}: see `dockyard keys` for names and fingerprints.")
    return removed


def user_for_key(store: Store, key_id: int) -> tuple[User, str] | None:
    return store.user_for_key(key_id)


def all_keys(store: Store) -> list[tuple[int, str]]:
    return store.all_keys()


# ---- audit log ----------------------------------------------------------------------
def audit(store: Store, actor: str, action: str, app: str | None = None, detail: dict | None = None,
          status: int | None = None) -> None:
    """Record who did what. `detail` must never hold secret values (config keys only)."""
    store.add_audit(actor, action, app, detail or {}, status)


def audit_entries(store: Store, app: str | None = None, actor: str | None = None, limit: int = 100) -> list[dict]:
    return store.audit_entries(app=app, actor=actor, limit=limit)
