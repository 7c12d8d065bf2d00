"""The single-host backend: one Docker engine, on the platform's own host, runs every app
instance, one-off and build; the router reaches web instances on 127.0.0.1."""
from __future__ import annotations

from .base import Scheduler
from .docker_build import DockerBuild
from .docker_stats import DockerStats
from .docker_host import DockerHost
from .docker_images import DockerImages
from .docker_pull import DockerPulls
from .docker_oneoff import DockerOneoffs
from .docker_services import DockerServices


class DockerScheduler(DockerHost, DockerStats, DockerOneoffs, DockerImages, DockerPulls, DockerBuild, DockerServices,
                      Scheduler):
    """Scheduler on a single Docker engine (see base.Scheduler for the contract)."""
