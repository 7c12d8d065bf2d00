"""What the scheduler needs of the platform's settings, and nothing more (as builder's
BuildConfig and router's RouterConfig): the services object builds it from Settings
(controller/services.py, `scheduler_config`), so no backend reads the controller's settings."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.isolation import Isolation


@dataclass(frozen=True)
class SchedulerConfig:
    """Each field is the Settings field of the same name (defaults, bounds and help live there,
    declared once); `backend` is DOCKYARD_SCHEDULER."""
    name: str                # the platform instance: LABEL_INSTANCE and every object's name prefix
    home: Path               # where the pulled-image records and the build sandboxes' sockets live
    backend: str             # docker | swarm | auto (the swarm while a cluster file exists)
    cluster_file: Path
    app_port: int            # $PORT of an instance whose image EXPOSEs none
    app_memory_mb: int       # an instance's memory limit when its formation sets none
    stop_grace: int          # seconds between SIGTERM and SIGKILL
    stack_image: str
    sandbox_image: str
    build_timeout: int
    build_memory_mb: int
    registry_port: int       # the local registry a cluster's nodes pull releases from
    registry_mirror: str     # Docker Hub pulls go through it when set
    addon_gateway_port: int  # the add-on gateway's port on the cluster bridge (swarm_addons.py)
    isolation: Isolation

    def image_repo(self, app: str) -> str:
        """The repository an app's images are tagged in (as Settings.image_repo)."""
        return f"{self.name}/{app}"
