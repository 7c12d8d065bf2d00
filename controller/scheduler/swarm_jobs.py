"""Cluster backend: detached one-offs (`dockyard run --detach`, `heroku run:detached`, cron)
on the swarm's nodes. Each is a Swarm service of one task that is never restarted, so the
manager places it as it places instances (the node with the fewest tasks), keeps its state
and exit code after it ended, and gathers its output from whichever node ran it: `ps` lists
it, `logs` shows it, `ps:stop run.N` removes it, and the reconciler keeps its output and
removes it once it exited, as on one host. A service (not a container on a node's engine)
because the manager then answers for every node at once: nothing has to ask each node what
runs there, and a one-off on a node that is lost shows as ended instead of vanishing."""
from __future__ import annotations

import secrets

import docker.errors
import docker.types

from core.errors import SchedulerError
from core.models import Instance, Release

from controller.scheduler.docker_parse import iso
from controller.scheduler.labels import LABEL_APP, LABEL_DETACHED, LABEL_INDEX, LABEL_ONEOFF, LABEL_RELEASE
from controller.scheduler.swarm_parse import LABEL_IMAGE, PREFIX, node_address

NANO = 1_000_000_000
_STARTING = ("new", "pending", "assigned", "accepted", "ready", "preparing", "starting")


def _int(value, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def parse_jobs(services: list, tasks: list, nodes: list) -> list[Instance]:
    """Pure: one-off services (labelled `dockyard.oneoff=run`) with their only task -> detached
    `run` instances: running, created while Swarm places or pulls it, exited (with the exit
    code) once it ended, also when it was stopped (replicas 0) or Swarm refused it."""
    by_service: dict[str, list] = {}
    for t in tasks:
        by_service.setdefault(t.get("ServiceID", ""), []).append(t)
    hostnames = {n["ID"]: ((n.get("Description") or {}).get("Hostname", ""), node_address(n)) for n in nodes}
    out = []
    for svc in services:
        spec = svc.get("Spec") or {}
        labels = spec.get("Labels") or {}
        mine = sorted(by_service.get(svc["ID"], []), key=lambda t: t.get("CreatedAt", ""))
        latest = mine[-1] if mine else {}
        status = latest.get("Status") or {}
        task_state = status.get("State", "new")
        replicas = ((spec.get("Mode") or {}).get("Replicated") or {}).get("Replicas", 1)
        if replicas == 0 or task_state not in ("running", *_STARTING):
            state = "exited"
        else:
            state = "running" if task_state == "running" else "created"
        code = (status.get("ContainerStatus") or {}).get("ExitCode")
        hostname, addr = hostnames.get(latest.get("NodeID", ""), ("", ""))
        out.append(Instance(
            container_id=PREFIX + svc["ID"], name=spec.get("Name", ""), app=labels.get(LABEL_APP, ""),
            version=_int(labels.get(LABEL_RELEASE)), process="run", index=_int(labels.get(LABEL_INDEX)),
            state=state, exit_code=(_int(code, -1) if code is not None else -1) if state == "exited" else None,
            host_port=None, image=labels.get(LABEL_IMAGE, ""),
            started_at=iso(status["Timestamp"]) if status.get("Timestamp") else "",
            detached=True, node=hostname, address=addr or "127.0.0.1"))
    return sorted(out, key=lambda i: (i.app, i.index))


def list_jobs(swarm, app: str | None = None) -> list[Instance]:
    """The detached one-offs of this platform (of one app) on the swarm."""
    api = swarm.manager.api
    try:
        services = api.services(filters=swarm._filters(app, f"{LABEL_ONEOFF}=run"))
        if not services:
            return []
        tasks = api.tasks(filters={"service": [svc["ID"] for svc in services]})
        return parse_jobs(services, tasks, swarm._nodes())
    except docker.errors.APIError as e:
        raise SchedulerError(f"Could not list the swarm's one-offs: {e.explanation}") from None


def start_job(swarm, app: str, release: Release, command: str, image: str, index: int,
              env: dict[str, str] | None = None) -> Instance:
    """Start `command` as a detached one-off service of the release on a node: the release's
    config, the app's overlay network, and the isolation and limits of an instance."""
    s = swarm.config
    ref = swarm.node_image(image)
    labels = swarm._labels(app, **{LABEL_RELEASE: str(release.version), LABEL_ONEOFF: "run", LABEL_INDEX: str(index),
                                   LABEL_DETACHED: "1", LABEL_IMAGE: image})
    variables = {**swarm._env(app, release, f"run.{index}", PORT=str(release.port or s.app_port)), **(env or {})}
    hardening = s.isolation
    spec = docker.types.ContainerSpec(
        ref, args=["/bin/sh", "-c", command], env=[f"{k}={v}" for k, v in variables.items()],
        user=swarm._user(image), labels=labels, cap_drop=["ALL"], cap_add=list(hardening.caps) or None,
        mounts=[docker.types.Mount("/tmp", None, type="tmpfs", tmpfs_size=hardening.tmp_mb << 20, tmpfs_mode=0o1777)])
    template = docker.types.TaskTemplate(
        spec, resources=docker.types.Resources(
            cpu_limit=int(hardening.cpus * NANO) if hardening.cpus > 0 else None, mem_limit=s.app_memory_mb << 20),
        restart_policy=docker.types.RestartPolicy(condition="none"),   # a one-off runs once
        log_driver=docker.types.DriverConfig("json-file", {"max-size": "10m", "max-file": "3"}))
    name = f"{s.name}-{app}-run-{index}-v{release.version}-{secrets.token_hex(2)}"
    try:
        created = swarm.manager.api.create_service(template, name=name, labels=labels,
                                                   networks=[swarm._app_network(app)],
                                                   mode=docker.types.ServiceMode("replicated", 1))
    except docker.errors.APIError as e:
        raise SchedulerError(f"Could not start the one-off on the swarm: {e.explanation}") from None
    found = next((j for j in list_jobs(swarm, app) if j.container_id == PREFIX + created["ID"]), None)
    if found is None:
        raise SchedulerError(f"The one-off run.{index} of {app} vanished right after it started.")
    return found

