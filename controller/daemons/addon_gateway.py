"""The add-on gateway, a loop of the platform process (controller/daemons/platformd.py): while a
cluster exists, the apps' add-on forwarders on the nodes (controller/scheduler/swarm_addons.py)
connect here, on the platform host's address on the cluster's network, port
DOCKYARD_ADDON_GATEWAY_PORT. A connection must open with a hello line signed with the
platform's key for one attachment (app, add-on, port) within HELLO_TIMEOUT seconds; it is then
relayed to that add-on's container if the add-on is still attached to that app and running,
and closed otherwise, with nothing sent back. Every app's tasks can reach this port (the
nodes route to the platform host, as they must for the registry): the signature, which only
the platform and the forwarder it started hold, is what keeps one tenant from another's
add-on, and the add-on's own credentials stay the second lock."""
from __future__ import annotations

import logging
import socket
import threading

from controller.daemons.registry import Listener, cluster_address, pipe
from controller.scheduler.swarm_addons import HELLO_MAX, admitted, gateway_key
from controller.services import Services
from controller.settings import Settings

log = logging.getLogger("dockyard.addon-gateway")
HELLO_TIMEOUT = 5.0      # seconds a connection has to send its hello line
MAX_CONNECTIONS = 512    # relayed at once (each holds two threads)


def read_hello(conn: socket.socket) -> bytes | None:
    """The first line (at most HELLO_MAX bytes, read one byte at a time so nothing after it is
    taken from the stream), or None."""
    line = b""
    while len(line) < HELLO_MAX:
        byte = conn.recv(1)
        if not byte:
            return None
        if byte == b"\n":
            return line
        line += byte
    return None


class Gateway(Listener):
    """The listener: one thread accepting, one pair per admitted connection."""

    def __init__(self, listen: tuple[str, int], key: bytes, resolve):
        self.key, self.resolve = key, resolve
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(listen, "addon-gateway")

    def on_connection(self, conn: socket.socket, peer) -> None:
        if not self.slots.acquire(blocking=False):
            conn.close()
            return
        threading.Thread(target=self._serve, args=(conn, peer), daemon=True).start()

    def _serve(self, conn: socket.socket, peer) -> None:
        upstream = None
        try:
            conn.settimeout(HELLO_TIMEOUT)
            line = read_hello(conn)
            who = admitted(self.key, line) if line is not None else None
            target = self.resolve(who[1], who[0]) if who else None
            if who is None or target is None or target[1] != who[2]:
                log.warning("refused a connection from %s:%d (%s)", peer[0], peer[1],
                            "no valid signature" if who is None else f"{who[1]} not attached to {who[0]} or down")
                return
            upstream = socket.create_connection(target, timeout=5)
            upstream.settimeout(None)
            conn.settimeout(None)
            other = threading.Thread(target=pipe, args=(upstream, conn), daemon=True)
            other.start()
            pipe(conn, upstream)
            other.join()
        except OSError:
            pass
        finally:
            for sock in (conn, upstream):
                if sock is not None:
                    sock.close()
            self.slots.release()


def serve(s: Settings, stop: threading.Event) -> None:
    """While a cluster exists, listen for the add-on forwarders on the address the nodes reach
    this host by (the registry's, from the cluster file), until `stop`."""
    svc = Services(s)
    key = gateway_key(s.home)
    gateway: Gateway | None = None
    try:
        while not stop.is_set():
            registry = cluster_address(s)
            wanted = (registry[0], s.addon_gateway_port) if registry else None
            if gateway and gateway.listen != wanted:
                gateway.close()
                gateway = None
                log.info("cluster gone: the add-on gateway stopped")
            if wanted and gateway is None:
                try:
                    gateway = Gateway(wanted, key, svc.scheduler.service_address)
                    log.info("add-on gateway on %s:%d", *wanted)
                except OSError as e:
                    log.warning("cannot listen on %s:%d for the add-on forwarders yet: %s", *wanted, e)
            stop.wait(1.0)
    finally:
        if gateway:
            gateway.close()
