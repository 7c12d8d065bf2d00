"""JSON and page views of instances that the API and the dashboard both render."""
from __future__ import annotations

from controller.web.common import svc


def instance_state(inst, healthy) -> str:
    """Pure: the state `ps` and the dashboard show: crashed, up (passed its check), starting, or the engine's."""
    if inst.state == "restarting" or (inst.state == "exited" and inst.exit_code not in (0, None)):
        return "crashed"
    if inst.state == "running":
        return "up" if inst.container_id in healthy else "starting"
    return inst.state


def dyno_json(inst, healthy, health: dict | None = None, limit_mb: int | None = None) -> dict:
    state = instance_state(inst, healthy)
    health = health or {}
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
