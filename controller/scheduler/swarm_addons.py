"""Cluster backend: the add-ons of an app reached from its tasks on the nodes.

Add-ons run on the platform host (their data stays in its volumes there, whether a cluster
exists or not), on internal networks the nodes cannot route to. Each attachment of an add-on
to an app gets a *forwarder* on the swarm: a one-task service on the app's own overlay network,
under the add-on's name as a network alias, so the app's DATABASE_URL (host = the add-on's
name) resolves to it unchanged, from instances and one-offs alike, and no other app's task
can resolve or route to it. The forwarder relays each connection to the platform's add-on
gateway on the cluster bridge (daemons/addon_gateway.py), opening it with a hello line that
names the app, the add-on and the port, signed with a key only the platform holds (an HMAC):
the gateway admits a connection only when the signature matches and the add-on is attached to
that app now, then relays it to the add-on's container. Any task on the nodes can connect to
the gateway's port; without the signature of an attachment it gets the connection closed.
The forwarder runs the stack image's own Python (pushed to the registry once; buildpack
release images share its layers), as nobody, every capability dropped."""
from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import time
from pathlib import Path

import docker.errors
import docker.types

from core.errors import SchedulerError

LABEL_FORWARDER = "dockyard.addon-forwarder"   # on a forwarder service: the add-on it relays to
HELLO_PREFIX = "dockyard-addon/1"
HELLO_MAX = 512          # bytes a hello line may take
RUNNING_WAIT = 120.0     # seconds a new forwarder may take to run (its node pulls the stack image)
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")

# The forwarder: Python's standard library only, so the stack image runs it as it is.
FORWARDER = r"""
import os, socket, threading
host, port = os.environ["DOCKYARD_GATEWAY"].rsplit(":", 1)
hello = os.environ["DOCKYARD_HELLO"].encode() + b"\n"
def pipe(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
def serve(conn):
    try:
        up = socket.create_connection((host, int(port)), timeout=10)
        up.settimeout(None)
        up.sendall(hello)
    except OSError as e:
        print("gateway unreachable:", e, flush=True)
        conn.close()
        return
    threading.Thread(target=pipe, args=(conn, up), daemon=True).start()
    pipe(up, conn)
    conn.close()
    up.close()
server = socket.create_server(("0.0.0.0", int(os.environ["DOCKYARD_LISTEN"])))
print("forwarding", os.environ["DOCKYARD_LISTEN"], "to the platform's add-on gateway", flush=True)
while True:
    conn, _ = server.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""


# ---- the signed hello (pure) ---------------------------------------------------------------
def gateway_key(home: Path) -> bytes:
    """The platform's key for signing hellos (DOCKYARD_HOME/addon-gateway.key, made once, 0600):
    every process of the platform reads the same one. Made by a link, so two processes making
    it at once agree on the first."""
    path = home / "addon-gateway.key"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        tmp = home / f".addon-gateway.key.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return bytes.fromhex(path.read_text().strip())


def signature(key: bytes, app: str, addon: str, port: int) -> str:
    return hmac.new(key, f"{app}\n{addon}\n{port}".encode(), hashlib.sha256).hexdigest()


def hello(key: bytes, app: str, addon: str, port: int) -> str:
    """The line a forwarder of `addon` for `app` opens each connection with."""
    return f"{HELLO_PREFIX} {app} {addon} {port} {signature(key, app, addon, port)}"


def admitted(key: bytes, line: bytes) -> tuple[str, str, int] | None:
    """Pure: (app, add-on, port) of a hello line whose signature is the platform's, else None."""
    try:
        words = line.decode("ascii").rstrip("\r\n").split(" ")
    except UnicodeDecodeError:
        return None
    if len(words) != 5 or words[0] != HELLO_PREFIX or not words[3].isdigit():
        return None
    _, app, addon, port, sig = words
    if not (_NAME_RE.fullmatch(app) and _NAME_RE.fullmatch(addon)):
        return None
    if not hmac.compare_digest(sig, signature(key, app, addon, int(port))):
        return None
    return app, addon, int(port)


def plan(wanted: dict[str, int], running: dict[str, str]) -> tuple[list[str], list[str]]:
    """Pure: (add-ons whose forwarder is to start, forwarder service ids to remove), given the
    add-ons attached to an app (name -> port) and its forwarders (add-on -> service id)."""
    return sorted(set(wanted) - set(running)), sorted(sid for name, sid in running.items() if name not in wanted)


def forwarder_name(instance: str, app: str, addon: str) -> str:
    """A service name (a DNS label: at most 63 characters) unique per attachment."""
    return f"{instance}-fwd-{hashlib.sha256(f'{app}/{addon}'.encode()).hexdigest()[:16]}"


# ---- the forwarders on the swarm ------------------------------------------------------------
def sync_forwarders(swarm, app: str, wanted: dict[str, int], gateway: str, key: bytes) -> None:
    """Make the app's forwarders on the swarm those of the add-ons attached to it now (`wanted`:
    name -> port), and wait until each new one runs (a one-off started next must reach it)."""
    api = swarm.manager.api
    try:
        services = api.services(filters=swarm._filters(app, LABEL_FORWARDER))
    except docker.errors.APIError as e:
        raise SchedulerError(f"Could not list the add-on forwarders of {app}: {e.explanation}") from None
    running = {((s.get("Spec") or {}).get("Labels") or {}).get(LABEL_FORWARDER, ""): s["ID"] for s in services}
    start, drop = plan(wanted, running)
    for sid in drop:
        try:
            api.remove_service(sid)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not remove an add-on forwarder of {app}: {e.explanation}") from None
    if not start:
        return
    network = swarm._app_network(app)
    image = swarm.node_image(swarm.config.stack_image)
    created = [_create(swarm, app, addon, wanted[addon], network, image, gateway, key) for addon in start]
    _wait_running(swarm, app, created)


def _create(swarm, app: str, addon: str, port: int, network: str, image: str, gateway: str, key: bytes) -> str:
    labels = swarm._labels(app, **{LABEL_FORWARDER: addon})
    spec = docker.types.ContainerSpec(
        image, command=["python3", "-c", FORWARDER], user="65534:65534", labels=labels, cap_drop=["ALL"],
        env=[f"DOCKYARD_GATEWAY={gateway}", f"DOCKYARD_LISTEN={port}",
             f"DOCKYARD_HELLO={hello(key, app, addon, port)}"])
    template = docker.types.TaskTemplate(
        spec, resources=docker.types.Resources(mem_limit=64 << 20),
        restart_policy=docker.types.RestartPolicy(condition="any", delay=1_000_000_000),
        log_driver=docker.types.DriverConfig("json-file", {"max-size": "1m", "max-file": "2"}))
    name = forwarder_name(swarm.config.name, app, addon)
    try:
        return swarm.manager.api.create_service(
            template, name=name, labels=labels, mode=docker.types.ServiceMode("replicated", 1),
            networks=[docker.types.NetworkAttachmentConfig(network, aliases=[addon])],
            # the name resolves to the task's own address: a virtual IP (IPVS) did not carry
            # connections on the Docker-in-Docker nodes, and one task needs no balancing
            endpoint_spec=docker.types.EndpointSpec(mode="dnsrr"))["ID"]
    except docker.errors.APIError as e:
        if "already exists" in str(e.explanation) or e.status_code == 409:
            return name     # another process made it at the same moment
        raise SchedulerError(f"Could not start the forwarder of {addon} for {app}: {e.explanation}") from None


def _wait_running(swarm, app: str, services: list[str]) -> None:
    deadline = time.monotonic() + RUNNING_WAIT
    while True:
        try:
            tasks = swarm.manager.api.tasks(filters={"service": services, "desired-state": "running"})
        except docker.errors.APIError as e:
            raise SchedulerError(f"Could not list the add-on forwarders of {app}: {e.explanation}") from None
        up = {t.get("ServiceID") for t in tasks if (t.get("Status") or {}).get("State") == "running"}
        if len(up) >= len(services):
            return
        if time.monotonic() > deadline:
            raise SchedulerError(f"The add-on forwarders of {app} did not start within {RUNNING_WAIT:.0f} s: "
                                 "see `docker service ps` on a manager, and `dockyard nodes`.")
        time.sleep(0.5)


def remove_forwarders_of(swarm, addon: str | None) -> None:
    """Every forwarder of `addon` (it is being destroyed), or every forwarder (the cluster is
    being taken down and no instance is left on it)."""
    api = swarm.manager.api
    try:
        for svc in api.services(filters=swarm._filters(None, f"{LABEL_FORWARDER}={addon}" if addon else LABEL_FORWARDER)):
            api.remove_service(svc["ID"])
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as e:
        raise SchedulerError(f"Could not remove the forwarders of {addon}: {e.explanation}") from None
