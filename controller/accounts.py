"""Users, tokens, collaborators, SSH keys and the audit log, on top of the state store
(tables of migration 2). Tokens are stored as SHA-256 hashes only."""
from __future__ import annotations

import json
import re
import secrets
import sqlite3

from core.errors import BadRequest, Conflict, NotFound
from core.models import App, User
from .store import Store, hash_token, now

USER_NAME_RE = re.compile(r"^[a-z][a-z0-9._-]{1,38}[a-z0-9]$")
AUDIT_KEPT = 100_000


def new_token() -> str:
    return "dy_" + secrets.token_urlsafe(32)


def validate_user_name(name: object) -> str:
    if not isinstance(name, str) or not USER_NAME_RE.fullmatch(name):
        shown = repr("".join(c if c.isprintable() else "?" for c in name)[:40]) if isinstance(name, str) else "(missing)"
        raise BadRequest(f"Invalid user name {shown}: use 3 to 40 characters, lower-case letters, digits, "
                         "'.', '_' and '-', starting with a letter (e.g. 'alice').")
    return name


def _user(row) -> User:
    return User(row["id"], row["name"], bool(row["is_admin"]))


def list_users(store: Store) -> list[dict]:
    with store.read() as db:
        rows = db.execute(
            "SELECT u.*, (SELECT COUNT(*) FROM tokens t WHERE t.user_id = u.id) AS tokens,"
            " (SELECT COUNT(*) FROM ssh_keys k WHERE k.user_id = u.id) AS keys,"
            " (SELECT COUNT(*) FROM apps a WHERE a.owner_id = u.id) AS apps FROM users u ORDER BY u.name").fetchall()
    return [{"name": r["name"], "is_admin": bool(r["is_admin"]), "created_at": r["created_at"],
             "tokens": r["tokens"], "keys": r["keys"], "apps": r["apps"]} for r in rows]


def get_user(store: Store, name: str) -> User:
    user = store.get_user(name)
    if user is None:
        raise NotFound(f"No user {name[:40]!r}: see `dockyard users`, or create one with `dockyard users:add NAME`.")
    return user


def remove_user(store: Store, name: str, by: User) -> None:
    user = get_user(store, name)
    if user.id == by.id:
        raise BadRequest("You cannot remove yourself: ask another admin.")
    with store.tx() as db:
        owned = [r[0] for r in db.execute("SELECT name FROM apps WHERE owner_id = ? ORDER BY name", (user.id,))]
        if owned:
            raise Conflict(f"{name} owns {', '.join(owned[:10])}: destroy those apps first "
                           f"(`dockyard apps:destroy -a APP --confirm APP`).")
        db.execute("DELETE FROM users WHERE id = ?", (user.id,))


def mint_token(store: Store, user: User) -> str:
    token = new_token()
    store.add_token(user.id, token)
    return token


def rotate_token(store: Store, user: User, old_token: str) -> str:
    """Replace the token used for this request by a new one, in one transaction."""
    token = new_token()
    with store.tx() as db:
        cur = db.execute("DELETE FROM tokens WHERE user_id = ? AND token_hash = ?", (user.id, hash_token(old_token)))
        if cur.rowcount != 1:
            raise Conflict("That token was already revoked or rotated: log in again with `dockyard login`.")
        db.execute("INSERT INTO tokens (user_id, token_hash, created_at) VALUES (?, ?, ?)",
                   (user.id, hash_token(token), now()))
    return token


def revoke_token(store: Store, token: str) -> bool:
    with store.tx() as db:
        return db.execute("DELETE FROM tokens WHERE token_hash = ?", (hash_token(token),)).rowcount == 1


def revoke_all_tokens(store: Store, user: User) -> int:
    with store.tx() as db:
        return db.execute("DELETE FROM tokens WHERE user_id = ?", (user.id,)).rowcount


# ---- collaborators ------------------------------------------------------------------
def collaborator_ids(store: Store, app: App) -> set[int]:
    with store.read() as db:
        return {r[0] for r in db.execute("SELECT user_id FROM collaborators WHERE app_id = ?", (app.id,))}


def access_list(store: Store, app: App) -> list[dict]:
    with store.read() as db:
        owner = db.execute("SELECT name FROM users WHERE id = ?", (app.owner_id,)).fetchone()
        rows = db.execute("SELECT u.name, c.created_at FROM collaborators c JOIN users u ON u.id = c.user_id"
                          " WHERE c.app_id = ? ORDER BY u.name", (app.id,)).fetchall()
    out = [{"user": owner["name"], "role": "owner"}] if owner else []
    return out + [{"user": r["name"], "role": "collaborator", "since": r["created_at"]} for r in rows]


def add_collaborator(store: Store, app: App, user: User) -> None:
    if user.id == app.owner_id:
        raise Conflict(f"{user.name} owns {app.name} already.")
    with store.tx() as db:
        try:
            db.execute("INSERT INTO collaborators (app_id, user_id, created_at) VALUES (?, ?, ?)",
                       (app.id, user.id, now()))
        except sqlite3.IntegrityError:
            raise Conflict(f"{user.name} already has access to {app.name}.") from None


def remove_collaborator(store: Store, app: App, user: User) -> None:
    with store.tx() as db:
        cur = db.execute("DELETE FROM collaborators WHERE app_id = ? AND user_id = ?", (app.id, user.id))
    if cur.rowcount != 1:
        raise NotFound(f"{user.name} is not a collaborator on {app.name}: see `dockyard access -a {app.name}`.")


# ---- SSH keys -----------------------------------------------------------------------
def list_keys(store: Store, user: User | None = None) -> list[dict]:
    with store.read() as db:
        sql = "SELECT k.*, u.name AS user FROM ssh_keys k JOIN users u ON u.id = k.user_id"
        rows = db.execute(sql + (" WHERE k.user_id = ?" if user else "") + " ORDER BY k.id",
                          (user.id,) if user else ()).fetchall()
    return [{"id": r["id"], "name": r["name"], "fingerprint": r["fingerprint"], "user": r["user"],
             "public_key": r["public_key"], "created_at": r["created_at"]} for r in rows]


def add_key(store: Store, user: User, name: str, fingerprint: str, public_key: str) -> dict:
    with store.tx() as db:
        if db.execute("SELECT 1 FROM ssh_keys WHERE fingerprint = ?", (fingerprint,)).fetchone():
            raise Conflict(f"The key {fingerprint} is already registered (each key belongs to one user): "
                           "see `dockyard keys`, or generate another with `ssh-keygen -t ed25519`.")
        try:
            cur = db.execute("INSERT INTO ssh_keys (user_id, name, fingerprint, public_key, created_at)"
                             " VALUES (?, ?, ?, ?, ?)", (user.id, name, fingerprint, public_key, now()))
        except sqlite3.IntegrityError:
            raise Conflict(f"You already have a key named {name!r}: pick another with --name.") from None
    return {"id": cur.lastrowid, "name": name, "fingerprint": fingerprint}


def remove_key(store: Store, user: User, which: str) -> dict:
    with store.tx() as db:
        row = db.execute("SELECT * FROM ssh_keys WHERE user_id = ? AND (fingerprint = ? OR name = ?)",
                         (user.id, which, which)).fetchone()
        if row is None:
            raise NotFound(f"You have no key {which[:60]!r}: see `dockyard keys` for names and fingerprints.")
        db.execute("DELETE FROM ssh_keys WHERE id = ?", (row["id"],))
    return {"id": row["id"], "name": row["name"], "fingerprint": row["fingerprint"]}


def user_for_key(store: Store, key_id: int) -> tuple[User, str] | None:
    with store.read() as db:
        row = db.execute("SELECT u.*, k.fingerprint FROM ssh_keys k JOIN users u ON u.id = k.user_id"
                         " WHERE k.id = ?", (key_id,)).fetchone()
    return (_user(row), row["fingerprint"]) if row else None


def all_keys(store: Store) -> list[tuple[int, str]]:
    with store.read() as db:
        return [(r["id"], r["public_key"]) for r in db.execute("SELECT id, public_key FROM ssh_keys ORDER BY id")]


# ---- audit log ----------------------------------------------------------------------
def audit(store: Store, actor: str, action: str, app: str | None = None, detail: dict | None = None,
          status: int | None = None) -> None:
    """Record who did what. `detail` must never hold secret values (config keys only)."""
    with store.tx() as db:
        db.execute("INSERT INTO audit (at, actor, action, app, detail, status) VALUES (?, ?, ?, ?, ?, ?)",
                   (now(), actor, action, app, json.dumps(detail or {}, sort_keys=True), status))
        db.execute("DELETE FROM audit WHERE id <= (SELECT id FROM audit ORDER BY id DESC LIMIT 1 OFFSET ?)",
                   (AUDIT_KEPT,))


def audit_entries(store: Store, app: str | None = None, actor: str | None = None, limit: int = 100) -> list[dict]:
    where, args = [], []
    if app:
        where.append("app = ?"), args.append(app)
    if actor:
        where.append("actor = ?"), args.append(actor)
    sql = "SELECT * FROM audit" + (" WHERE " + " AND ".join(where) if where else "")
    with store.read() as db:
        rows = db.execute(f"SELECT * FROM ({sql} ORDER BY id DESC LIMIT ?) ORDER BY id", (*args, limit)).fetchall()
    return [{"id": r["id"], "at": r["at"], "actor": r["actor"], "action": r["action"], "app": r["app"],
             "detail": json.loads(r["detail"]), "status": r["status"]} for r in rows]
