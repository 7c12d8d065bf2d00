"""The platform process (Procfile: `platform: python -m controller.daemons.platformd`): every
background loop of the platform in one Python process, a thread each, instead of a process each
(one interpreter and one copy of the controller's modules, not six).

Each loop is guarded (controller/daemons/loops.py): one that raises, or returns, is logged and
started again after a back-off while the others go on; its state shows in `make status`. A crash
of the whole process (a kill, an interpreter fault) is the supervisor's to restart.

A new loop is one line in LOOPS: a name and `module:function`, the function being
`serve(settings, stop)` that runs until the `stop` event is set."""
from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path

from controller.daemons.loops import LoopSet
from controller.settings import Settings, from_env

LOOPS: dict[str, str] = {
    "router": "controller.daemons.routerd:serve",                 # routes -> nginx; access logs -> store
    "reconciler": "controller.daemons.reconcilerd:serve",         # apps converge; crashes; sweeps
    "metrics": "controller.daemons.metricsd:serve_sampler",       # instances' resource readings
    "drains": "controller.daemons.metricsd:serve_drains",         # log lines -> each app's drains
    "rendezvous": "controller.daemons.rendezvousd:serve",         # `heroku run` attach listener
    "waker": "controller.daemons.waked:serve_loop",               # holds a sleeping app's requests, wakes it
    "ssh-gateway": "controller.git.sshd:serve_gateway",           # git over SSH: sshd's forced command -> builds
    "registry-nodes": "controller.daemons.registry:serve_nodes",  # the cluster's nodes -> the image registry
    "addon-gateway": "controller.daemons.addon_gateway:serve",    # the nodes' add-on forwarders -> add-ons
}

log = logging.getLogger("dockyard.platform")


def state_path(s: Settings) -> Path:
    return s.run_dir / "loops.json"


def stop_on_signals() -> list[int]:
    """SIGTERM and SIGINT only enqueue (an append to the list returned). Setting the loops'
    stop event in the handler would take that event's lock, which the main thread holds for a
    moment each time its wait wakes: a signal at that moment waited for the lock forever, and
    the process outlived its supervisor."""
    stopping: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.append(1))
    return stopping


def main(settings: Settings | None = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(threadName)s %(levelname)s %(message)s")
    s = settings or from_env()
    s.ensure_dirs()
    loops = LoopSet(LOOPS, s, state_path(s))
    stopping = stop_on_signals()
    loops.start()
    log.info("running %d loops: %s", len(LOOPS), ", ".join(LOOPS))
    parent = os.getppid()
    while not stopping and not loops.stop.is_set():
        time.sleep(0.2)
        if os.getppid() != parent:   # the supervisor is gone, even if its death signal was lost
            log.warning("the supervisor (pid %d) is gone: stopping", parent)
            break
    loops.stop.set()
    left = loops.join(timeout=float(s.stop_grace) + 10)
    if left:
        log.warning("loops still ending at exit: %s", ", ".join(left))
    log.info("stopped")
    return 0


if __name__ == "__main__":
    code = main()
    logging.shutdown()
    # The loops had their grace: a worker thread still inside an engine call or a health check
    # must not hold the process (and, with the supervisor gone, leave it an orphan); the store
    # holds the desired state, and the next platform process carries on from it.
    os._exit(code)
