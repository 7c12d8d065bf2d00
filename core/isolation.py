"""How app containers are isolated (pure: settings -> engine options; the operator's
choices are read once, by controller/settings.py, into an Isolation). The scheduler
applies these to every instance and one-off container.

- capabilities: all dropped (`cap_drop=ALL`); apps listen on $PORT (5000 by default) and need
  none. DOCKYARD_APP_CAPS adds some back (comma-separated). An image that EXPOSEs a port below
  1024 (e.g. nginx on 80) binds it without NET_BIND_SERVICE: the container's own network
  namespace sets net.ipv4.ip_unprivileged_port_start=0, which grants nothing else and holds for
  every user in the container (a capability would not reach a non-root USER).
- user: the image's own USER when it declares one. Otherwise, with DOCKYARD_APP_USER=auto (the
  default), images built FROM the stack image run as its `app` user (uid 1000, owner of /app),
  and other images (e.g. FROM scratch, which have no users and root-owned directories the app
  may write to) keep root, without capabilities. DOCKYARD_APP_USER=UID[:GID] forces that user
  for every image without USER; DOCKYARD_APP_USER=root keeps root everywhere.
- limits: memory (DOCKYARD_APP_MEMORY_MB, in the scheduler), pids 1024, CPU DOCKYARD_APP_CPUS
  (default 1.0).
- /tmp: a private tmpfs (DOCKYARD_APP_TMP_MB, default 64), writable by the unprivileged user.
- network: a bridge with inter-container traffic (ICC) off, so app A cannot reach app B: the
  engine's default bridge when its ICC is off (`make up` configures the engines it installs so),
  else one bridge of the platform instance's own (DOCKYARD_APPS_NETWORK=own forces that). A
  container on a network the engine calls user-defined gets the engine's DNS resolver set up in
  its namespace at every start (a re-execution of dockerd and eleven iptables calls: 0.1 s of a
  container's start here); the default bridge has none, and apps need no names of each other."""
from __future__ import annotations

from dataclasses import dataclass

ICC_OPTION = "com.docker.network.bridge.enable_icc"
NETWORK_OPTIONS = {ICC_OPTION: "false"}
DEFAULT_BRIDGE = "bridge"          # the engine's own network of that name (docker0)
NETWORK_CHOICES = ("auto", "own")  # DOCKYARD_APPS_NETWORK


@dataclass(frozen=True)
class Isolation:
    user: str = "auto"
    cpus: float = 1.0
    caps: tuple[str, ...] = ()
    tmp_mb: int = 64
    network: str = "auto"    # one of NETWORK_CHOICES


def host_config_options(iso: Isolation) -> dict:
    return {
        "cap_drop": ["ALL"],
        "cap_add": list(iso.caps) or None,
        "nano_cpus": int(iso.cpus * 1e9) if iso.cpus > 0 else None,
        "tmpfs": {"/tmp": f"rw,nosuid,nodev,size={iso.tmp_mb}m,mode=1777"},
        "sysctls": {"net.ipv4.ip_unprivileged_port_start": "0"},   # per network namespace: this container only
    }


STACK_USER = "1000:1000"   # the stack image's `app` user (scripts/build-stack.sh)


def container_user(image_user: str, iso: Isolation, from_stack: bool = False) -> str | None:
    """The user a container runs as (None = the engine's default, root): the image's USER
    wins; else the operator's setting; else `app` for stack-based images."""
    if image_user:
        return image_user
    if iso.user in ("", "root", "0", "0:0"):
        return None
    if iso.user == "auto":
        return STACK_USER if from_stack else None
    return iso.user


def built_from(image_layers: list[str], base_layers: list[str]) -> bool:
    """An image is built FROM base when its layers start with all of base's layers."""
    return bool(base_layers) and image_layers[:len(base_layers)] == base_layers


def network_name(instance: str) -> str:
    """The platform instance's own apps network."""
    return f"{instance}-apps"


def apps_network(iso: Isolation, instance: str, default_bridge_options: dict | None) -> str:
    """The network app containers join, given the engine's default bridge's options (None: the
    engine has none): that bridge when its ICC is off and the operator left the choice to us,
    else the instance's own network (created with ICC off)."""
    if iso.network == "auto" and (default_bridge_options or {}).get(ICC_OPTION) == "false":
        return DEFAULT_BRIDGE
    return network_name(instance)
