"""The labels the scheduler puts on every object it makes (containers, images, networks).

They are the scheduler's business: callers name an app, a release, a build; the backend turns
them into these labels and finds its objects by them again. `dockyard.instance=<name>` is on
everything, so two platform instances on one engine never touch each other's objects."""
from __future__ import annotations

LABEL_INSTANCE = "dockyard.instance"   # the platform instance (settings.name): on every object
LABEL_APP = "dockyard.app"             # the app: on its containers and images
LABEL_RELEASE = "dockyard.release"     # the release version an instance or one-off runs
LABEL_PROCESS = "dockyard.process"     # the process type of an app instance (none on one-offs)
LABEL_INDEX = "dockyard.index"         # the instance's number within its process type
LABEL_BUILD = "dockyard.build"         # the build that made an image or runs in a build container
LABEL_ONEOFF = "dockyard.oneoff"       # a one-off's kind: `run` (dockyard run) or the release phase
LABEL_DETACHED = "dockyard.detached"   # "1" on a `dockyard run --detach` one-off, else "0"
LABEL_SERVICE = "dockyard.addon"       # the add-on: on its container, volume and networks
LABEL_SERVICE_KIND = "dockyard.addon.service"   # postgres | redis, on the add-on's container
SERVICE_PORTS = {"postgres": 5432, "redis": 6379}   # the port of each kind (as controller/addons/kinds.py)
LABEL_PORT = "dockyard.port"           # the port a web instance listens on inside (the router's target)
LABEL_STANDBY = "dockyard.standby"     # an instance created ahead for a wake: the spec it was made for

__all__ = ["LABEL_INSTANCE", "LABEL_APP", "LABEL_RELEASE", "LABEL_PROCESS", "LABEL_INDEX", "LABEL_BUILD",
           "LABEL_ONEOFF", "LABEL_DETACHED", "LABEL_SERVICE", "LABEL_SERVICE_KIND", "LABEL_PORT",
           "LABEL_STANDBY", "SERVICE_PORTS"]
