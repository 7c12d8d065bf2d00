"""JSON and page views of instances that the API and the dashboard both render."""
from __future__ import annotations

from controller.addons import ops as addon_ops
from controller.addons import queries as addon_queries
from controller.web.common import svc


def instance_state(inst, healthy, stopping: bool = False) -> str:
    """Pure: the state `ps` and the dashboard show: stopping (no longer served, draining), crashed,
    up (passed its check), starting, or the engine's."""
    if stopping and inst.state in ("running", "restarting"):
        return "stopping"
    if inst.state == "restarting" or (inst.state == "exited" and inst.exit_code not in (0, None)):
        return "crashed"
    if inst.state == "running":
        return "up" if inst.container_id in healthy else "starting"
    return inst.state


def dyno_json(inst, healthy, health: dict | None = None, limit_mb: int | None = None) -> dict:
    health = health or {}
    state = instance_state(inst, healthy, bool(health.get("stopping")))
    row = {"name": inst.label, "type": inst.process, "state": state,
           "release": {"version": inst.version}, "container": inst.container_id[:12],
           "port": inst.host_port, "node": inst.node, "exit_code": inst.exit_code,
           "created_at": inst.started_at, "restarts": health.get("restarts", 0), "last_exit": health.get("last_exit"),
           "oom_killed": bool(health.get("oom"))}
    detail = state_detail(state, row["oom_killed"], row["last_exit"], row["restarts"], limit_mb)
    if detail:
        row["state_detail"] = detail
    if state == "crashed":    # say why, as Heroku's "crashed" alone never does
        row["last_output"] = [line.text for line in svc().scheduler.logs(inst.container_id, tail=5)]
    return row


def state_detail(state: str, oom: bool, last_exit: int | None, restarts: int, limit_mb: int | None) -> str:
    """Pure: what `ps` says after the state: why it last crashed and how often."""
    parts = []
    if oom:
        parts.append(f"out of memory: limit {limit_mb} MB")
    elif last_exit not in (None, 0) and (state == "crashed" or restarts):
        parts.append(f"last exit {last_exit}")
    if restarts:
        parts.append(f"{restarts} restart{'s' if restarts != 1 else ''}")
    return ", ".join(parts)


def addon_row(addon, app) -> dict:
    """An add-on as the API's list and the dashboard's app page show it: its state (crashed and
    missing ones too, with their last lines) and the var it is attached to this app as."""
    s = svc()
    state, lines = addon_ops.state(s, addon)
    att = addon_queries.find_attachment(s, addon, app)
    row = {"name": addon.name, "service": addon.service, "plan": f"{addon.memory_mb} MB",
           "memory_mb": addon.memory_mb, "state": state, "app": addon.app, "var": att.var if att else None,
           "created_at": addon.created_at,
           "backup_schedule": f"daily at {addon.backup_at} UTC" if addon.backup_at else None}
    if lines:
        row["last_output"] = lines
    if state == "available":
        row.update(addon_ops.usage(s, addon))
    return row


def addon_rows(app) -> list[dict]:
    return [addon_row(a, app) for a in addon_queries.of_app(svc(), app)]
