"""Use cases for SSH keys: every change to who may push over SSH also rewrites sshd's
authorized_keys file from the store (atomically), so the file and the store never disagree."""
from __future__ import annotations

from core.errors import BadRequest
from core.models import User

from controller.accounts import users as accounts
from controller.accounts.keyfile import write_authorized_keys
from controller.accounts.sshkeys import KEY_NAME_RE, default_key_name, parse_public_key
from controller.scheduler import tenant_key
from controller.services import Services


def add_key(svc: Services, user: User, public_key: object, name: object = None) -> dict:
    key = parse_public_key(public_key)
    taken = {k["name"] for k in accounts.list_keys(svc, user)}
    name = name or default_key_name(key, taken)
    if not isinstance(name, str) or not KEY_NAME_RE.fullmatch(name):
        raise BadRequest("A key name is 1 to 64 characters from letters, digits and '_.@+-'.")
    added = accounts.add_key(svc, user, name, key.fingerprint, key.line)
    write_authorized_keys(svc)
    return added


def remove_key(svc: Services, user: User, which: str) -> dict:
    removed = accounts.remove_key(svc, user, which)
    write_authorized_keys(svc)
    return removed


def remove_user(svc: Services, name: str, by: User) -> None:
    """A removed user's keys go with them, and their build sandbox (images they may no longer use)."""
    user = accounts.get_user(svc, name)
    accounts.remove_user(svc, name, by)
    write_authorized_keys(svc)
    svc.scheduler.remove_sandbox(tenant_key(user.id))
