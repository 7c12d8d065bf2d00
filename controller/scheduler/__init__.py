"""The scheduler: the one part of the platform that talks to the container engine.

`make_scheduler(config)` returns the backend a SchedulerConfig (config.py: the few settings the
scheduler uses, built by controller/services.py) picks; callers use it through the `Scheduler`
interface (base.py, the sum of its role protocols), in domain verbs, and get core.models records
back. Only the backend modules (docker_*.py) import the engine's SDK."""
from __future__ import annotations

from core.models import BuildRun, LogLine

from controller.scheduler.base import Scheduler
from controller.scheduler.config import SchedulerConfig
from controller.scheduler.sandbox_policy import tenant_key
from controller.scheduler.labels import (LABEL_APP, LABEL_BUILD, LABEL_DETACHED, LABEL_INDEX, LABEL_INSTANCE, LABEL_ONEOFF,
                     LABEL_PROCESS, LABEL_RELEASE)

__all__ = ["Scheduler", "SchedulerConfig", "make_scheduler", "tenant_key", "BuildRun", "LogLine", "LABEL_APP", "LABEL_BUILD", "LABEL_DETACHED",
           "LABEL_INDEX", "LABEL_INSTANCE", "LABEL_ONEOFF", "LABEL_PROCESS", "LABEL_RELEASE"]


def make_scheduler(config: SchedulerConfig) -> Scheduler:
    """The scheduler backend: the single-host Docker engine with DOCKYARD_SCHEDULER=docker;
    otherwise the selector, which runs instances on the swarm while a cluster exists."""
    # imported here, not above, so that a process which never schedules (the CLI, the SSH
    # gateway) does not load the engine SDK
    if config.backend == "docker":
        from controller.scheduler.docker_backend import DockerScheduler
        return DockerScheduler(config)
    from controller.scheduler.selector import SelectingScheduler
    return SelectingScheduler(config)
