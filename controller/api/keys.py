"""Your SSH public keys for `git push` over SSH. Each change rewrites the platform's
authorized_keys file (atomically) from the store."""
from flask import Blueprint, g, jsonify, request

from .. import accounts
from core.errors import BadRequest
from ..sshd import LISTEN_HOST, write_authorized_keys
from ..sshkeys import KEY_NAME_RE, default_key_name, parse_public_key
from .common import body, svc

bp = Blueprint("keys", __name__)


def _audit(action: str, **detail) -> None:
    g.audited = True
    accounts.audit(svc().store, g.user.name, action, None, detail, 200)


@bp.get("/account/keys")
def list_keys():
    everyone = request.args.get("all") in ("1", "true") and g.user.is_admin
    return jsonify(accounts.list_keys(svc().store, None if everyone else g.user))


@bp.post("/account/keys")
def add_key():
    data = body()
    key = parse_public_key(data.get("public_key"))
    taken = {k["name"] for k in accounts.list_keys(svc().store, g.user)}
    name = data.get("name") or default_key_name(key, taken)
    if not isinstance(name, str) or not KEY_NAME_RE.fullmatch(name):
        raise BadRequest("A key name is 1 to 64 characters from letters, digits and '_.@+-'.")
    added = accounts.add_key(svc().store, g.user, name, key.fingerprint, key.line)
    write_authorized_keys(svc().settings, svc().store)
    _audit("keys:add", name=name, fingerprint=key.fingerprint)
    return jsonify(added), 201


@bp.delete("/account/keys/<path:which>")
def remove_key(which):
    removed = accounts.remove_key(svc().store, g.user, which)
    write_authorized_keys(svc().settings, svc().store)
    _audit("keys:remove", name=removed["name"], fingerprint=removed["fingerprint"])
    return jsonify(removed)


@bp.get("/ssh")
def ssh_info():
    s = svc().settings
    # Where sshd really listens, which is not necessarily the API's host.
    return jsonify(user="git", host=LISTEN_HOST, port=s.ssh_port,
                   url_template=f"ssh://git@{LISTEN_HOST}:{s.ssh_port}/APP.git")
