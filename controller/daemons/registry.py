"""The platform's image registry (Debian's docker-registry), a Procfile process.

It serves on 127.0.0.1:DOCKYARD_REGISTRY_PORT (the host's engine pushes there: a loopback
registry needs no TLS), with its storage under DOCKYARD_HOME/registry. While a cluster exists
(DOCKYARD_HOME/cluster.json), the cluster's nodes pull from the gateway of their bridge network,
so a loop of the platform process forwards that address to the registry too; nothing else is
published. The Procfile's process prepares and then execs docker-registry.

Nothing pulls from it before a cluster exists (one host's builds leave their sandboxes through
the sandboxes' own registries), so until then the process is a shell waiting for the cluster
file (a few hundred kB instead of the registry's 20 MB), which then runs this module again."""
from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from core.fsutil import atomic_write

from controller.settings import Settings, from_env

log = logging.getLogger("dockyard.registry")


def config_text(s: Settings) -> str:
    """The registry's YAML: loopback only, filesystem storage, deletes allowed (the image GC)."""
    return (
        "version: 0.1\n"
        "log:\n  level: warn\n"
        "storage:\n"
        f"  filesystem:\n    rootdirectory: {s.registry_dir / 'data'}\n"
        "  delete:\n    enabled: true\n"
        "http:\n"
        f"  addr: 127.0.0.1:{s.registry_port}\n"
    )


def write_config(s: Settings) -> Path:
    s.registry_dir.mkdir(parents=True, exist_ok=True)
    path = s.registry_dir / "config.yml"
    atomic_write(path, config_text(s))
    return path


def cluster_address(s: Settings) -> tuple[str, int] | None:
    """The address the cluster's nodes pull from, while a cluster exists."""
    try:
        host, _, port = json.loads(s.cluster_file.read_text())["registry"].rpartition(":")
        return host, int(port)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Listener:
    """A TCP listener on `listen` whose thread hands each accepted connection to
    `on_connection(conn, peer)` until `close`; the registry's forwarder and the add-on gateway
    (addon_gateway.py) each say what a connection gets."""

    def __init__(self, listen: tuple[str, int], name: str):
        self.listen = listen
        self.sock = socket.create_server(listen)
        self.sock.settimeout(0.5)
        self.stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True, name=name).start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, peer = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            self.on_connection(conn, peer)

    def on_connection(self, conn: socket.socket, peer) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.stopped.set()
        self.sock.close()


class Forwarder(Listener):
    """TCP from `listen` to the registry's loopback port, one thread pair per connection."""

    def __init__(self, listen: tuple[str, int], target: tuple[str, int]):
        self.target = target
        super().__init__(listen, "registry-forward")

    def on_connection(self, conn: socket.socket, peer) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=5)
            upstream.settimeout(None)
            conn.settimeout(None)
        except OSError:
            conn.close()
            return
        threading.Thread(target=pipe, args=(conn, upstream), daemon=True).start()
        threading.Thread(target=pipe, args=(upstream, conn), daemon=True).start()


def serve_nodes(s: Settings, stop: threading.Event) -> None:
    """While a cluster exists, forward its nodes' address to the registry, until `stop` (a loop
    of the platform process)."""
    forwarder: Forwarder | None = None
    try:
        while not stop.is_set():
            wanted = cluster_address(s)
            if forwarder and (wanted is None or forwarder.listen != wanted):
                forwarder.close()
                forwarder = None
                log.info("cluster gone: stopped serving the nodes")
            if wanted and forwarder is None:
                try:
                    forwarder = Forwarder(wanted, ("127.0.0.1", s.registry_port))
                    log.info("serving the cluster's nodes on %s:%d", *wanted)
                except OSError as e:
                    log.warning("cannot listen on %s:%d for the nodes yet: %s", *wanted, e)
            stop.wait(1.0)
    finally:
        if forwarder:
            forwarder.close()


def main(settings: Settings | None = None) -> int:
    """Write the config, collect garbage, then become docker-registry (exec): the supervisor's
    child is the registry itself, with no Python process kept beside it."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s registry %(levelname)s %(message)s",
                        stream=sys.stdout)
    s = settings or from_env()
    if not Path(s.registry_bin).exists():
        # no crash loop: the platform runs without a registry on one host; cluster mode needs it
        log.warning("%s is missing: install Debian's docker-registry (scripts/install.sh does)", s.registry_bin)
        from controller.daemons.platformd import stop_on_signals   # only this rare branch needs it
        stopping = stop_on_signals()
        while not stopping:
            time.sleep(0.5)
        return 0
    if not s.cluster_file.exists():
        log.info("no cluster: the registry starts once %s exists", s.cluster_file)
        logging.shutdown()
        # $PPID gone: the supervisor died (its death signal lost); the shell goes with it
        os.execv("/bin/sh", ["sh", "-c", 'while [ ! -e "$1" ]; do kill -0 "$PPID" 2>/dev/null || exit 0; '
                             'sleep 1; done; exec "$2" -m controller.daemons.registry',
                             "dockyard-registry-waiting", str(s.cluster_file), sys.executable])
    config = write_config(s)
    # layers of manifests the image GC deleted are freed here, while nothing is being pushed
    gc = subprocess.run([s.registry_bin, "garbage-collect", str(config)], capture_output=True, text=True)
    if gc.returncode != 0:
        log.warning("garbage-collect failed: %s", (gc.stderr or gc.stdout).strip()[-300:])
    log.info("serving on 127.0.0.1:%d, storage %s", s.registry_port, s.registry_dir / "data")
    logging.shutdown()
    os.execv(s.registry_bin, [s.registry_bin, "serve", str(config)])


if __name__ == "__main__":
    sys.exit(main())
