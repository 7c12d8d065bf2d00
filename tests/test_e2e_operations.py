"""An operator's bad day, on a real platform whose DOCKYARD_HOME is a small tmpfs the test mounts:
the disk guard names the filesystem and a fix that frees only this platform's data; a full
filesystem gives JSON errors that say what to free while reads go on, `/healthz` and `make status`
say the platform is degraded, and everything resumes once space is freed; `make status` tells
the truth about every process (it said sshd was stopped while it ran)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT, httpd_app, make_app_repo, run, start_platform, stop_platform, unique_app, wait_until

pytestmark = pytest.mark.e2e

HOME_MB = 200
MIN_FREE_MB = 120      # the disk guard's setting, below what the empty tmpfs has free


@pytest.fixture(scope="module")
def plat(tmp_path_factory, busybox_base):
    tmp = tmp_path_factory.mktemp("ops")
    home = tmp / "state"
    home.mkdir()
    run(["mount", "-t", "tmpfs", "-o", f"size={HOME_MB}m,mode=0700", "tmpfs", str(home)])
    p = None
    try:
        p = start_platform(tmp, DOCKYARD_MIN_FREE_MB=MIN_FREE_MB, DOCKYARD_STOP_GRACE=6)
        yield p
    finally:
        if p is not None:
            stop_platform(p)
        run(["umount", "-l", str(home)], check=False)


def make_status(p) -> subprocess.CompletedProcess:
    """What `make status` runs, for its own exit code (make turns every failure into 2)."""
    return run([str(ROOT / ".venv/bin/python"), "-m", "controller.daemons.supervisor", "status"], env=p.env,
               cwd=ROOT, check=False)


def procfile_names() -> list[str]:
    return [line.split(":", 1)[0] for line in (ROOT / "Procfile").read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def healthz(p) -> dict:
    with urllib.request.urlopen(f"{p.api}/healthz", timeout=5) as resp:
        return json.loads(resp.read())


def test_the_disk_guard_names_the_filesystem_the_setting_and_a_fix_for_this_platform_only(plat, tmp_path):
    name = unique_app("guard")
    plat.cli("apps:create", name)
    repo = make_app_repo(tmp_path / name, httpd_app("hi"), plat)
    plat.cli("git:remote", "-a", name, cwd=repo)
    free_mb = shutil.disk_usage(plat.home).free >> 20
    ballast = plat.home / "ballast.bin"
    with open(ballast, "wb") as f:       # leaves less than DOCKYARD_MIN_FREE_MB free
        f.write(b"\0" * ((free_mb - MIN_FREE_MB + 20) << 20))
    try:
        push = plat.git("push", "dockyard", "main", cwd=repo, check=False)
    finally:
        ballast.unlink()
    assert push.returncode != 0
    out = push.stdout + push.stderr
    assert f"free on DOCKYARD_HOME ({plat.home})" in out and f"at least {MIN_FREE_MB} MB (DOCKYARD_MIN_FREE_MB)" in out, out
    assert "repo:purge-cache" in out, out
    assert "label=dockyard.instance " not in out   # a hint that would prune every platform's images
    plat.git("push", "dockyard", "main", cwd=repo)     # room again: the same push builds
    assert plat.curl(name) == (200, "hi")


def test_ps_says_stopping_while_old_instances_drain(plat, tmp_path):
    name = unique_app("drain")
    plat.cli("apps:create", name)
    # a server that ignores SIGTERM: it drains for the whole DOCKYARD_STOP_GRACE
    files = httpd_app("v1")
    files["Dockerfile"] = files["Dockerfile"].replace('CMD ["/bin/sh", "-c", "exec httpd -f -p $PORT -h /www"]',
                                                      'CMD ["/bin/sh", "-c", "trap \'\' TERM; httpd -f -p $PORT -h /www & wait; wait"]')
    repo = make_app_repo(tmp_path / name, files, plat)
    plat.cli("git:remote", "-a", name, cwd=repo)
    plat.git("push", "dockyard", "main", cwd=repo)
    make_app_repo(repo, {"index.html": "v2"}, plat)
    plat.git("push", "dockyard", "main", cwd=repo)
    def ps_lines(word: str) -> list[str]:
        return [line for line in plat.cli("ps", "-a", name).stdout.splitlines() if word in line]

    stopping = wait_until(lambda: ps_lines("stopping"), 6, "ps to show the old instance stopping", every=0.2)
    up = ps_lines(": up")
    version = lambda line: line.split(" v", 1)[1].split()[0]    # noqa: E731
    assert up and version(stopping[0]) != version(up[0]), (stopping, up)   # the old release drains, the new serves
    assert not [line for line in ps_lines("web.") if "starting" in line]
    wait_until(lambda: not ps_lines("stopping"), 30, "the old instance to be gone")


def test_make_status_tells_the_truth_about_each_process(plat):
    assert run(["make", "-s", "-C", str(ROOT), "status"], env=plat.env, check=False).returncode == 0
    first = make_status(plat)
    assert first.returncode == 0, first.stdout + first.stderr
    for name in procfile_names():
        assert f"{name}: running" in first.stdout, first.stdout
    assert "platform: ok" in first.stdout
    supervisor = int((plat.home / "run" / "supervisor.pid").read_text())
    for name in procfile_names():
        pid = int((plat.home / "run" / f"{name}.pid").read_text())
        os.kill(supervisor, signal.SIGSTOP)       # nobody restarts it while the status is read
        try:
            os.killpg(pid, signal.SIGKILL)        # the process and its children (gunicorn workers, OpenSSH)
            wait_until(lambda: ended(pid), 20, f"{name} to end")
            down = make_status(plat)
            assert down.returncode == 3 and f"{name}: stopped" in down.stdout, down.stdout
            assert sum("running" in line for line in down.stdout.splitlines()
                       if not line.startswith(" ")) == len(procfile_names())  # + supervisor; not the loops
        finally:
            os.kill(supervisor, signal.SIGCONT)
        wait_until(lambda: make_status(plat).returncode == 0, 60, f"{name} to be restarted and status to say so")


def ended(pid: int) -> bool:
    """Gone, or a zombie its (stopped) parent has not reaped yet."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def fill(path: Path) -> Path:
    blob = path / "fill.bin"
    with open(blob, "wb") as f:
        try:
            while True:
                f.write(b"\0" * (1 << 20))
                f.flush()
        except OSError:
            pass
    return blob


def test_a_full_filesystem_gives_json_errors_keeps_reads_and_says_degraded_then_resumes(plat):
    kept = unique_app("kept")
    plat.cli("apps:create", kept)
    blob = fill(plat.home)
    try:
        listing = plat.cli("apps", check=False)
        assert listing.returncode == 0 and kept in listing.stdout, listing.stdout + listing.stderr
        refused = plat.cli("apps:create", unique_app("late"), check=False)
        assert refused.returncode != 0
        said = refused.stdout + refused.stderr
        assert "<html" not in said.lower() and f"DOCKYARD_HOME ({plat.home}) is full" in said, said
        health = healthz(plat)
        assert health["status"] == "degraded" and str(plat.home) in health["problems"][0]
        status = make_status(plat)
        assert status.returncode == 4 and "platform: degraded" in status.stdout, status.stdout
    finally:
        blob.unlink()
    wait_until(lambda: healthz(plat)["status"] == "ok", 30, "the platform to say it is healthy again")
    again = unique_app("again")
    plat.cli("apps:create", again)
    names = plat.cli("apps").stdout
    assert kept in names and again in names
    assert make_status(plat).returncode == 0
