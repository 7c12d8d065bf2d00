"""The platform process runs every background loop as a thread (controller/daemons/platformd.py).
A fault in one loop must not stop the others: here the rendezvous listener's port is taken by
someone else before `make up`, so that loop fails at every start. Meanwhile the router loop
restarts a killed nginx, the reconciler replaces a removed instance, `make status` names the
failing loop, the platform process itself never restarts, and once the port is free the loop
comes back on its own."""
from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess

import pytest

from .conftest import (ROOT, free_port, httpd_app, make_app_repo, run, start_platform, stop_platform, unique_app,
                       wait_until)

pytestmark = pytest.mark.e2e


def status(p) -> subprocess.CompletedProcess:
    return run([str(ROOT / ".venv/bin/python"), "-m", "controller.daemons.supervisor", "status"], env=p.env,
               check=False)


def platform_pid(p) -> int:
    return int((p.home / "run" / "platform.pid").read_text())


def tls_answers(port: int) -> bool:
    """The rendezvous listener speaks TLS: a handshake that completes is Dockyard's listener."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as raw, ctx.wrap_socket(raw):
            return True
    except (OSError, ssl.SSLError):
        return False


def test_a_failing_loop_leaves_the_others_running_and_comes_back(busybox_base, tmp_path):
    port = free_port()
    squatter = socket.create_server(("127.0.0.1", port))   # someone else holds the rendezvous port
    p = None
    try:
        p = start_platform(tmp_path / "p", DOCKYARD_RENDEZVOUS_PORT=port)
        pid = platform_pid(p)
        failing = wait_until(lambda: (lambda st: st if "rendezvous loop: restarting" in st.stdout else None)(status(p)),
                             30, "status to name the failing rendezvous loop")
        assert failing.returncode == 4, failing.stdout
        assert "router loop: running" in failing.stdout and "reconciler loop: running" in failing.stdout, failing.stdout
        assert "degraded: loops restarting after a failure: rendezvous" in failing.stdout, failing.stdout

        name = unique_app("loop")
        repo = make_app_repo(tmp_path / name, httpd_app("loops ok"), p)
        p.cli("apps:create", name, cwd=repo)
        p.git("push", "dockyard", "main", cwd=repo)
        assert p.curl(name) == (200, "loops ok")

        # the router loop still watches nginx: a killed master is started again
        nginx = int((p.home / "router" / "logs" / "nginx.pid").read_text())
        os.kill(nginx, signal.SIGKILL)
        wait_until(lambda: p.curl(name)[0] == 200 and int((p.home / "router/logs/nginx.pid").read_text()) != nginx,
                   20, "the router loop to restart nginx")
        # the reconciler loop still converges: a removed instance is replaced
        old = p.containers(name, running_only=True)
        run(["docker", "rm", "-f", *old])
        wait_until(lambda: (lambda ids: ids and not set(ids) & set(old))(p.containers(name, running_only=True)),
                   30, "the reconciler loop to replace the removed instance")
        wait_until(lambda: p.curl(name) == (200, "loops ok"), 20, "the app to serve again")

        squatter.close()
        wait_until(lambda: tls_answers(port), 45, "the rendezvous loop to start again once its port is free")
        healthy = wait_until(lambda: (lambda st: st if st.returncode == 0 else None)(status(p)), 20,
                             "status to say every loop runs")
        assert "rendezvous loop: running" in healthy.stdout and "restarts" in healthy.stdout, healthy.stdout
        assert platform_pid(p) == pid, "the platform process restarted: one loop's fault took the others down"

        # with no cluster nothing pulls from the platform's registry: it is not running (a shell
        # waits), and it serves a moment after a cluster file appears
        registry = int(p.env["DOCKYARD_REGISTRY_PORT"])
        assert not _accepts(registry) and not _registry_serving(p), "the registry runs with no cluster"
        (p.home / "cluster.json").write_text('{"manager": "tcp://192.0.2.1:2375", "managers": [], '
                                             f'"registry": "192.0.2.1:{registry}", "nodes": 0}}\n')
        try:
            wait_until(lambda: _accepts(registry), 20, "the registry to start once a cluster exists")
            assert _registry_serving(p)
        finally:
            (p.home / "cluster.json").unlink()
    finally:
        squatter.close()
        if p is not None:
            stop_platform(p)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _registry_serving(p) -> bool:
    """A docker-registry process serving this platform's config."""
    return str(p.home / "registry" / "config.yml") in run(["ps", "-eww", "-o", "args"]).stdout
