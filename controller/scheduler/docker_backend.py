"""The single-host backend: one Docker engine, on the platform's own host, runs every app
instance, one-off and build (a tenant's Dockerfile in the tenant's build sandbox, docker_sandbox);
the router reaches web instances on 127.0.0.1."""
from __future__ import annotations

from controller.scheduler.base import Scheduler
from controller.scheduler.docker_stats import DockerStats
from controller.scheduler.docker_host import DockerHost
from controller.scheduler.docker_images import DockerImages
from controller.scheduler.docker_pull import DockerPulls
from controller.scheduler.docker_oneoff import DockerOneoffs
from controller.scheduler.docker_sandbox import DockerSandboxes
from controller.scheduler.docker_services import DockerServices


class DockerScheduler(DockerHost, DockerStats, DockerOneoffs, DockerImages, DockerPulls, DockerSandboxes,
                      DockerServices, Scheduler):
    """Scheduler on a single Docker engine (see base.Scheduler for the contract)."""
