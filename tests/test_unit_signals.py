"""The platform process's stop signals only enqueue (controller/daemons/platformd.py). Its main
thread waits on the loops' stop event, and holds that event's lock for a moment each time the
wait wakes; a handler that set the event then waited for that lock forever, and the process
outlived its supervisor (seen once: `kill -9` of the supervisor left the platform process
running). Each case runs in a fresh interpreter, bounded in time."""
from __future__ import annotations

import subprocess
import sys

from .conftest import ROOT

SIGNAL_WHILE_LOCKED = """
import os, signal, threading
stop = threading.Event()               # the loops' stop event
{install}
with stop._cond:                       # the moment the main thread's stop.wait() wakes
    os.kill(os.getpid(), signal.SIGTERM)   # the handler runs here, in this thread
print("handled", flush=True)
"""


def run_case(install: str) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run([sys.executable, "-c", SIGNAL_WHILE_LOCKED.format(install=install)], cwd=ROOT,
                              capture_output=True, text=True, timeout=5)
    except subprocess.TimeoutExpired:
        return None


def test_a_handler_that_sets_the_event_hangs_there():
    assert run_case("signal.signal(signal.SIGTERM, lambda *_: stop.set())") is None


def test_the_platform_process_handler_only_enqueues_and_returns():
    done = run_case("from controller.daemons.platformd import stop_on_signals\nstopping = stop_on_signals()\n"
                    "import atexit; atexit.register(lambda: print('stopping', stopping))")
    assert done is not None and done.returncode == 0, done
    assert "handled" in done.stdout and "stopping [1]" in done.stdout, done.stdout
