"""Who may do what: users, API tokens (kept as SHA-256 hashes only), collaborators, SSH
public keys, and the audit log of what they did (bounded)."""
from __future__ import annotations

import json
import sqlite3

from core.errors import Conflict
from core.models import App, User

from controller.store.base import hash_token, now

AUDIT_KEPT = 100_000


def user_row(row: sqlite3.Row) -> User:
    """A users row as a User (the dashboard session query reads users too)."""
    return User(row["id"], row["name"], bool(row["is_admin"]), row["email"])


class AccountsMixin:
    # ---- users and tokens -------------------------------------------------
    def create_user(self, name: str, is_admin: bool = False) -> User:
        with self.tx() as db:
            try:
                cur = db.execute("INSERT INTO users (name, is_admin, created_at) VALUES (?, ?, ?)",
                                 (name, int(is_admin), now()))
            except sqlite3.IntegrityError:
                raise Conflict(f"User {name!r} already exists.") from None
            return User(id=cur.lastrowid, name=name, is_admin=is_admin)

    def get_user(self, name: str) -> User | None:
        with self.read() as db:
            row = db.execute("SELECT * FROM users WHERE name = ?", (name,)).fetchone()
        return user_row(row) if row else None

    def find_user(self, login: str) -> User | None:
        """The user whose email, else whose name, this is."""
        with self.read() as db:
            row = (db.execute("SELECT * FROM users WHERE email = ?", (login,)).fetchone()
                   or db.execute("SELECT * FROM users WHERE name = ?", (login,)).fetchone())
        return user_row(row) if row else None

    def set_email(self, user: User, email: str | None) -> None:
        with self.tx() as db:
            try:
                db.execute("UPDATE users SET email = ? WHERE id = ?", (email, user.id))
            except sqlite3.IntegrityError:
                raise Conflict(f"The email {email!r} belongs to another user: pick your own.") from None

    def all_users(self) -> list[User]:
        with self.read() as db:
            return [user_row(r) for r in db.execute("SELECT * FROM users ORDER BY name")]

    def list_users(self) -> list[dict]:
        """Every user with how many tokens, keys and apps they have."""
        with self.read() as db:
            rows = db.execute(
                "SELECT u.*, (SELECT COUNT(*) FROM tokens t WHERE t.user_id = u.id) AS tokens,"
                " (SELECT COUNT(*) FROM ssh_keys k WHERE k.user_id = u.id) AS keys,"
                " (SELECT COUNT(*) FROM apps a WHERE a.owner_id = u.id) AS apps FROM users u ORDER BY u.name"
            ).fetchall()
        return [{"name": r["name"], "email": r["email"], "is_admin": bool(r["is_admin"]), "created_at": r["created_at"],
                 "tokens": r["tokens"], "keys": r["keys"], "apps": r["apps"]} for r in rows]

    def delete_user_owning_nothing(self, user: User) -> list[str]:
        """Delete the user unless they own apps; returns the names of the apps they own (then
        nothing is deleted). One transaction, so no app can be given to them meanwhile."""
        with self.tx() as db:
            owned = [r[0] for r in db.execute("SELECT name FROM apps WHERE owner_id = ? ORDER BY name", (user.id,))]
            if not owned:
                db.execute("DELETE FROM users WHERE id = ?", (user.id,))
        return owned

    def add_token(self, user_id: int, token: str) -> None:
        with self.tx() as db:
            db.execute("INSERT INTO tokens (user_id, token_hash, created_at) VALUES (?, ?, ?)",
                       (user_id, hash_token(token), now()))

    def user_for_token(self, token: str) -> User | None:
        with self.read() as db:
            row = db.execute(
                "SELECT u.* FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = ?",
                (hash_token(token),)).fetchone()
        return user_row(row) if row else None

    def replace_token(self, user_id: int, old_token: str, new_token: str) -> bool:
        """Swap one of the user's tokens for another in one transaction; False (and no change)
        when the old one is not theirs any more."""
        with self.tx() as db:
            cur = db.execute("DELETE FROM tokens WHERE user_id = ? AND token_hash = ?",
                             (user_id, hash_token(old_token)))
            if cur.rowcount != 1:
                return False
            db.execute("INSERT INTO tokens (user_id, token_hash, created_at) VALUES (?, ?, ?)",
                       (user_id, hash_token(new_token), now()))
        return True

    def delete_token(self, token: str) -> bool:
        with self.tx() as db:
            return db.execute("DELETE FROM tokens WHERE token_hash = ?", (hash_token(token),)).rowcount == 1

    def delete_tokens_of(self, user_id: int) -> int:
        with self.tx() as db:
            return db.execute("DELETE FROM tokens WHERE user_id = ?", (user_id,)).rowcount

    # ---- collaborators ----------------------------------------------------
    def collaborator_ids(self, app: App) -> set[int]:
        with self.read() as db:
            return {r[0] for r in db.execute("SELECT user_id FROM collaborators WHERE app_id = ?", (app.id,))}

    def collaborators_by_app(self) -> dict[str, set[int]]:
        """App id -> its collaborators' user ids (one query for a listing of every app)."""
        out: dict[str, set[int]] = {}
        with self.read() as db:
            for app_id, user_id in db.execute("SELECT app_id, user_id FROM collaborators"):
                out.setdefault(app_id, set()).add(user_id)
        return out

    def app_members(self, app: App) -> tuple[str | None, list[tuple[str, str]]]:
        """(owner's name or None, [(collaborator's name, since)] by name)."""
        with self.read() as db:
            owner = db.execute("SELECT name FROM users WHERE id = ?", (app.owner_id,)).fetchone()
            rows = db.execute("SELECT u.name, c.created_at FROM collaborators c JOIN users u ON u.id = c.user_id"
                              " WHERE c.app_id = ? ORDER BY u.name", (app.id,)).fetchall()
        return (owner["name"] if owner else None), [(r["name"], r["created_at"]) for r in rows]

    def add_collaborator(self, app: App, user: User) -> None:
        with self.tx() as db:
            try:
                db.execute("INSERT INTO collaborators (app_id, user_id, created_at) VALUES (?, ?, ?)",
                           (app.id, user.id, now()))
            except sqlite3.IntegrityError:
                raise Conflict(f"{user.name} already has access to {app.name}.") from None

    def remove_collaborator(self, app: App, user: User) -> bool:
        with self.tx() as db:
            cur = db.execute("DELETE FROM collaborators WHERE app_id = ? AND user_id = ?", (app.id, user.id))
        return cur.rowcount == 1

    # ---- SSH keys ---------------------------------------------------------
    def list_keys(self, user: User | None = None) -> list[dict]:
        with self.read() as db:
            sql = "SELECT k.*, u.name AS user FROM ssh_keys k JOIN users u ON u.id = k.user_id"
            rows = db.execute(sql + (" WHERE k.user_id = ?" if user else "") + " ORDER BY k.id",
                              (user.id,) if user else ()).fetchall()
        return [{"id": r["id"], "name": r["name"], "fingerprint": r["fingerprint"], "user": r["user"],
                 "public_key": r["public_key"], "created_at": r["created_at"]} for r in rows]

    def add_key(self, user: User, name: str, fingerprint: str, public_key: str) -> dict:
        with self.tx() as db:
            if db.execute("SELECT 1 FROM ssh_keys WHERE fingerprint = ?", (fingerprint,)).fetchone():
                raise Conflict(f"The key {fingerprint} is already registered (each key belongs to one user): "
                               "see `dockyard keys`, or generate another with `ssh-keygen -t ed25519`.")
            try:
                cur = db.execute("INSERT INTO ssh_keys (user_id, name, fingerprint, public_key, created_at)"
                                 " VALUES (?, ?, ?, ?, ?)", (user.id, name, fingerprint, public_key, now()))
            except sqlite3.IntegrityError:
                raise Conflict(f"You already have a key named {name!r}: pick another with --name.") from None
        return {"id": cur.lastrowid, "name": name, "fingerprint": fingerprint}

    def remove_key(self, user: User, which: str) -> dict | None:
        """Delete the user's key named or fingerprinted `which`; None if they have none such."""
        with self.tx() as db:
            row = db.execute("SELECT * FROM ssh_keys WHERE user_id = ? AND (fingerprint = ? OR name = ?)",
                             (user.id, which, which)).fetchone()
            if row is None:
                return None
            db.execute("DELETE FROM ssh_keys WHERE id = ?", (row["id"],))
        return {"id": row["id"], "name": row["name"], "fingerprint": row["fingerprint"]}

    def user_for_key(self, key_id: int) -> tuple[User, str] | None:
        with self.read() as db:
            row = db.execute("SELECT u.*, k.fingerprint FROM ssh_keys k JOIN users u ON u.id = k.user_id"
                             " WHERE k.id = ?", (key_id,)).fetchone()
        return (user_row(row), row["fingerprint"]) if row else None

    def all_keys(self) -> list[tuple[int, str]]:
        with self.read() as db:
            return [(r["id"], r["public_key"]) for r in db.execute("SELECT id, public_key FROM ssh_keys ORDER BY id")]

    # ---- audit log --------------------------------------------------------
    def add_audit(self, actor: str, action: str, app: str | None, detail: dict, status: int | None) -> None:
        with self.tx() as db:
            db.execute("INSERT INTO audit (at, actor, action, app, detail, status) VALUES (?, ?, ?, ?, ?, ?)",
                       (now(), actor, action, app, json.dumps(detail, sort_keys=True), status))
            db.execute("DELETE FROM audit WHERE id <= (SELECT id FROM audit ORDER BY id DESC LIMIT 1 OFFSET ?)",
                       (AUDIT_KEPT,))

    def audit_entries(self, app: str | None = None, actor: str | None = None, limit: int = 100) -> list[dict]:
        where, args = [], []
        if app:
            where.append("app = ?"), args.append(app)
        if actor:
            where.append("actor = ?"), args.append(actor)
        sql = "SELECT * FROM audit" + (" WHERE " + " AND ".join(where) if where else "")
        with self.read() as db:
            rows = db.execute(f"SELECT * FROM ({sql} ORDER BY id DESC LIMIT ?) ORDER BY id", (*args, limit)).fetchall()
        return [{"id": r["id"], "at": r["at"], "actor": r["actor"], "action": r["action"], "app": r["app"],
                 "detail": json.loads(r["detail"]), "status": r["status"]} for r in rows]
