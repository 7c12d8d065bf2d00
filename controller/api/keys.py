"""Your SSH public keys for `git push` over SSH. Each change rewrites the platform's
authorized_keys file (atomically) from the store."""
from flask import Blueprint, g, jsonify, request

from controller.accounts import users as accounts
from controller.accounts import keys
from controller.accounts.keyfile import LISTEN_HOST
from controller.web.common import audit, body, svc

bp = Blueprint("keys", __name__)


@bp.get("/account/keys")
def list_keys():
    everyone = request.args.get("all") in ("1", "true") and g.user.is_admin
    return jsonify(accounts.list_keys(svc(), None if everyone else g.user))


@bp.post("/account/keys")
def add_key():
    data = body()
    added = keys.add_key(svc(), g.user, data.get("public_key"), data.get("name"))
    audit("keys:add", name=added["name"], fingerprint=added["fingerprint"])
    return jsonify(added), 201


@bp.delete("/account/keys/<path:which>")
def remove_key(which):
    removed = keys.remove_key(svc(), g.user, which)
    audit("keys:remove", name=removed["name"], fingerprint=removed["fingerprint"])
    return jsonify(removed)


@bp.get("/ssh")
def ssh_info():
    s = svc().settings
    # Where sshd really listens, which is not necessarily the API's host.
    return jsonify(user="git", host=LISTEN_HOST, port=s.ssh_port,
                   url_template=f"ssh://git@{LISTEN_HOST}:{s.ssh_port}/APP.git")
