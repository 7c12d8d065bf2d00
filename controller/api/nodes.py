"""The cluster's nodes (admin only): list, join command, drain, activate, remove."""
from flask import Blueprint, jsonify

from controller.admin import nodes
from controller.web.common import audit, svc
from controller.api.users import require_admin

bp = Blueprint("nodes", __name__)


@bp.get("/nodes")
def list_nodes():
    require_admin("list the cluster's nodes")
    return jsonify(nodes.list_nodes(svc()))


@bp.get("/nodes/join-command")
def join_command():
    require_admin("see the cluster's join command")
    return jsonify(commands=nodes.join_command(svc()))


@bp.post("/nodes/<node>/drain")
def drain(node):
    require_admin("drain nodes")
    lines: list[str] = []
    row = nodes.drain(svc(), node, lines.append)
    audit("nodes:drain", node=node)
    return jsonify({**row, "output": lines})


@bp.post("/nodes/<node>/activate")
def activate(node):
    require_admin("activate nodes")
    row = nodes.activate(svc(), node)
    audit("nodes:activate", node=node)
    return jsonify(row)


@bp.delete("/nodes/<node>")
def remove(node):
    require_admin("remove nodes")
    nodes.remove(svc(), node)
    audit("nodes:remove", node=node)
    return jsonify(removed=node)
