"""The single-host backend: one Docker engine, on the platform's own host, runs every app
instance, one-off and build (a tenant's Dockerfile in the tenant's build sandbox, docker_sandbox);
the router reaches web instances on 127.0.0.1."""
from __future__ import annotations

from .base import Scheduler
from .docker_stats import DockerStats
from .docker_host import DockerHost
from .docker_images import DockerImages
from .docker_oneoff import DockerOneoffs
from .docker_sandbox import DockerSandboxes
from .docker_services import DockerServices


class DockerScheduler(DockerHost, DockerStats, DockerOneoffs, DockerImages, DockerSandboxes, DockerServices, Scheduler):
    """Scheduler on a single Docker engine (see base.Scheduler for the contract)."""
