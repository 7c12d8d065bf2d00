"""The fault suite: each test injects one fault into a real platform under a bounded load and
measures what users saw (failed requests, time to recover). The table of all faults is printed
at the end of the module."""
from __future__ import annotations

import http.client
import os
import secrets
import threading
import time
from pathlib import Path

import pytest
import requests

from .conftest import (ROOT, httpd_app, make_app_repo, run, start_platform, stop_platform, unique_app,
                       wait_until)

pytestmark = [pytest.mark.e2e, pytest.mark.alone]   # outages of a second or two: no other module beside it

RESULTS: list[tuple[str, int, int, str]] = []   # (fault, requests, failed, recovery)


@pytest.fixture(scope="module", autouse=True)
def fault_table(request):
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or not RESULTS:
        return
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        reporter.write_line(f"{'fault':58} {'requests':>9} {'failed':>7}  recovery")
        for fault, total, failed, recovery in RESULTS:
            reporter.write_line(f"{fault:58} {total:>9} {failed:>7}  {recovery}")


class Load:
    """GETs to one app through the router, one every `interval` s, for at most `limit` s."""

    def __init__(self, platform, app: str, interval: float = 0.05, limit: float = 120.0):
        self.platform, self.app, self.interval, self.limit = platform, app, interval, limit
        self.samples: list[tuple[float, bool]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        end = time.monotonic() + self.limit
        host = f"{self.app}.{self.platform.domain}"
        while not self.stop.is_set() and time.monotonic() < end:
            conn = http.client.HTTPConnection("127.0.0.1", self.platform.router_port, timeout=2)
            try:
                conn.request("GET", "/", headers={"Host": host})
                ok = conn.getresponse().status == 200
            except (OSError, http.client.HTTPException):
                ok = False
            finally:
                conn.close()
            self.samples.append((time.monotonic(), ok))
            self.stop.wait(self.interval)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)

    @property
    def failed(self) -> int:
        return sum(1 for _, ok in self.samples if not ok)

    def outage_after(self, t0: float) -> float | None:
        """Seconds from t0 until requests succeed again for good (None: never failed)."""
        after = [(t, ok) for t, ok in self.samples if t >= t0]
        bad = [t for t, ok in after if not ok]
        if not bad:
            return None
        recovered = [t for t, ok in after if ok and t > bad[-1]]
        return (recovered[0] - t0) if recovered else float("inf")


def _deploy(p, tmp_path: Path, files: dict) -> tuple[str, Path]:
    name = unique_app("flt")
    repo = make_app_repo(tmp_path / name, files, p)
    p.cli("apps:create", name, cwd=repo)
    p.git("push", "dockyard", "main", cwd=repo)
    return name, repo


def test_crashed_instance_is_replaced_while_the_next_release_builds(platform, tmp_path):
    """A push holds the app's lock through its build; the reconciler must still replace a
    crashed instance of the running release meanwhile."""
    name, repo = _deploy(platform, tmp_path, httpd_app("v1"))
    slow = httpd_app("v2", extra=f"RUN echo {secrets.token_hex(4)} && sleep 25\n")
    make_app_repo(repo, slow, platform)
    push = threading.Thread(target=lambda: platform.git("push", "dockyard", "main", cwd=repo, check=False))
    with Load(platform, name) as load:
        push.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:   # the build has begun: its record is pending
            builds = platform.cli("builds", "-a", name).stdout
            if "pending" in builds:
                break
            time.sleep(0.2)
        assert "pending" in builds, builds
        time.sleep(1)
        killed_at = time.monotonic()
        for cid in platform.containers(name, running_only=True):
            run(["docker", "kill", cid])
        while time.monotonic() - killed_at < 15 and push.is_alive():
            time.sleep(0.2)
        building = push.is_alive()
        time.sleep(0.5)
    push.join(120)
    outage = load.outage_after(killed_at)
    RESULTS.append(("docker kill of web.1 during a 25 s build", len(load.samples), load.failed,
                    f"{outage:.1f} s" if outage is not None else "none"))
    assert building, "the build ended before the check: make it slower"
    assert outage is not None and outage < 10, f"requests failed for {outage} s after the kill, during the build"


def _worker_fds(platform) -> dict[int, int]:
    """Open descriptors of each API (gunicorn) process of this platform."""
    master = int((platform.home / "run" / "api.pid").read_text())
    pids = [master] + [int(c) for c in Path(f"/proc/{master}/task/{master}/children").read_text().split()]
    return {pid: len(os.listdir(f"/proc/{pid}/fd")) for pid in pids}


def _worker_rss_mb(platform) -> float:
    """The API processes' resident memory, added up (MB)."""
    total = 0
    for pid in _worker_fds(platform):
        with open(f"/proc/{pid}/status") as f:
            total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return total / 1024


def _add_packs(repo_dir: Path, count: int) -> None:
    """Each push adds a pack; make many without building each."""
    from dulwich.objects import Blob
    from dulwich.repo import Repo
    with Repo(str(repo_dir)) as r:
        for i in range(count):
            r.object_store.add_objects([(Blob.from_string(f"pack {i} {secrets.token_hex(4)}".encode()), None)])


def test_git_fetches_keep_descriptors_flat_and_packs_bounded(platform, tmp_path):
    """Every repository a git request opens is closed with the request, and the repository is
    repacked once it has many packs (each push adds one)."""
    name, _repo = _deploy(platform, tmp_path, httpd_app("fetch"))
    repo_dir = platform.home / "repos" / f"{name}.git"
    _add_packs(repo_dir, 28)
    url = f"{platform.api}/{name}.git/info/refs?service=git-upload-pack"
    headers = {"Authorization": f"Bearer {platform.token()}"}
    with requests.Session() as http:
        http.trust_env = False
        for _ in range(20):
            assert http.get(url, headers=headers, timeout=10).status_code == 200
        before = _worker_fds(platform)
        rss_before = _worker_rss_mb(platform)
        started = time.monotonic()
        failed = 0
        for _ in range(1000):
            failed += http.get(url, headers=headers, timeout=10).status_code != 200
        elapsed = time.monotonic() - started
        assert http.get(f"{platform.api}/healthz", timeout=5).status_code == 200
    after = _worker_fds(platform)
    rss_after = _worker_rss_mb(platform)
    growth = max(after.get(pid, 0) - n for pid, n in before.items())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(list((repo_dir / "objects" / "pack").glob("pack-*.pack"))) > 10:
        time.sleep(0.5)
    packs = len(list((repo_dir / "objects" / "pack").glob("pack-*.pack")))
    RESULTS.append((f"1000 git fetches of a repo with 29 packs ({elapsed:.1f} s)", 1000, failed,
                    f"fd growth {growth}, packs after repack {packs}, API memory {rss_before:.0f} -> "
                    f"{rss_after:.0f} MB"))
    assert failed == 0
    assert growth < 30, (before, after)
    assert packs <= 10, packs
    assert rss_after - rss_before < 50, (rss_before, rss_after)


def _platform_pids(platform) -> dict[str, int]:
    run_dir = platform.home / "run"
    return {p.stem: int(p.read_text()) for p in run_dir.glob("*.pid")}


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_supervisor_kill9_leaves_no_orphans_and_up_restores_one_set(platform, tmp_path):
    """kill -9 of the supervisor: its children end with it (nginx keeps serving apps), `make
    status` says so, and `make up` brings back exactly one set of platform processes."""
    name, _repo = _deploy(platform, tmp_path, httpd_app("supervised"))
    before = _platform_pids(platform)
    assert {"supervisor", "api", "platform", "sshd", "registry"} <= set(before), before
    with Load(platform, name, limit=90) as load:
        killed_at = time.monotonic()
        os.kill(before["supervisor"], 9)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(p) for p in before.values()):
            time.sleep(0.2)
        left = {n: p for n, p in before.items() if _alive(p)}
        status = run(["make", "-s", "-C", str(ROOT), "status"], env=platform.env, check=False)
        platform.make("up")
        time.sleep(1)
    after = _platform_pids(platform)
    RESULTS.append(("kill -9 of the supervisor, then make up", len(load.samples), load.failed,
                    f"children ended in {time.monotonic() - killed_at:.0f} s or less; one new set"))
    assert not left, f"orphans kept running: {left}"
    assert status.returncode != 0 and "supervisor: stopped" in status.stdout, status.stdout
    assert "api: running" not in status.stdout and "platform: running" not in status.stdout, status.stdout
    assert not set(after.values()) & set(before.values())
    for proc_name, pid in after.items():
        assert _alive(pid), f"{proc_name} (pid {pid}) is not running after make up"
    assert load.failed == 0, f"{load.failed} app requests failed while the platform restarted"


def test_in_place_upgrade_restarts_platform_processes_with_apps_serving(platform, tmp_path):
    """`git pull && make up` on a running platform: new code on disk, `make up` restarts every
    platform process on it, one at a time; app requests never fail."""
    name, _repo = _deploy(platform, tmp_path, httpd_app("upgraded"))
    before = _platform_pids(platform)
    marker = ROOT / "controller" / "__init__.py"
    with Load(platform, name, limit=120) as load:
        started = time.monotonic()
        os.utime(marker)   # what a `git pull` does to the code's fingerprint
        up = platform.make("up")
        took = time.monotonic() - started
        assert platform.cli("apps").returncode == 0
    after = _platform_pids(platform)
    RESULTS.append(("in-place upgrade (new code, make up)", len(load.samples), load.failed,
                    f"processes restarted in {took:.1f} s"))
    assert "platform upgraded" in up.stdout, up.stdout
    assert after["supervisor"] == before["supervisor"]
    for proc_name in ("api", "platform", "sshd", "registry"):
        assert after[proc_name] != before[proc_name], f"{proc_name} was not restarted"
    assert load.failed == 0, f"{load.failed} app requests failed during the upgrade"


def test_nginx_master_killed_is_restarted_at_once_and_router_kill_drops_nothing(platform, tmp_path):
    name, _repo = _deploy(platform, tmp_path, httpd_app("watched"))
    nginx_pid = int((platform.home / "router" / "logs" / "nginx.pid").read_text())
    with Load(platform, name, interval=0.02, limit=60) as load:
        time.sleep(0.5)
        killed_at = time.monotonic()
        os.kill(nginx_pid, 9)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not (load.samples and load.samples[-1][1]
                                                   and load.samples[-1][0] > killed_at + 0.3):
            time.sleep(0.1)
        time.sleep(0.5)
    outage = load.outage_after(killed_at)
    RESULTS.append(("kill -9 of the nginx master", len(load.samples), load.failed,
                    f"{outage:.2f} s" if outage is not None else "none"))
    assert outage is not None and outage < 3, outage

    router_pid = int((platform.home / "run" / "platform.pid").read_text())   # its router loop
    with Load(platform, name, interval=0.02, limit=60) as load:
        time.sleep(0.5)
        os.kill(router_pid, 9)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and int((platform.home / "run" / "platform.pid").read_text()) == router_pid:
            time.sleep(0.2)
        time.sleep(2)
    RESULTS.append(("kill -9 of the platform process (its router loop)", len(load.samples), load.failed,
                    "nginx kept serving; the new router adopted it"))
    assert load.failed == 0, f"{load.failed} requests failed when the router process died"


OOM_ONCE = ('CMD ["/bin/sh", "-c", "if [ ! -f /www/crashed ]; then touch /www/crashed; httpd -p $PORT -h /www; sleep 4; '
            'x=$(head -c 200000000 /dev/zero | tr \'\\\\0\' a); fi; exec httpd -f -p $PORT -h /www"]\n')
OOM_ALWAYS = ('CMD ["/bin/sh", "-c", "httpd -p $PORT -h /www; sleep 3; '
              'x=$(head -c 200000000 /dev/zero | tr \'\\\\0\' a)"]\n')


def _busybox_app(text: str, cmd: str) -> dict:
    from .conftest import BUSYBOX_BASE
    return {"Dockerfile": f"FROM {BUSYBOX_BASE}\nCOPY index.html /www/index.html\n{cmd}", "index.html": text}


def test_out_of_memory_shows_in_ps_and_logs_and_a_crash_loop_rolls_back(platform, tmp_path):
    p = platform
    name, repo = _deploy(p, tmp_path, httpd_app("v1"))
    p.cli("ps:limits", "web", "--memory", "32", "-a", name)
    make_app_repo(repo, _busybox_app("v2", OOM_ONCE), p)
    p.git("push", "dockyard", "main", cwd=repo)
    started = time.monotonic()
    def ps_with_oom():
        out = p.cli("ps", "-a", name).stdout
        return out if "out of memory" in out else None

    ps = wait_until(ps_with_oom, 60, "ps to show the out-of-memory kill")
    seen_after = time.monotonic() - started
    logs = p.cli("logs", "-a", name, "--source", "dockyard").stdout
    assert "limit 32 MB" in ps and "1 restart" in ps, ps
    assert "crashed: out of memory (limit 32 MB)" in logs and "ps:limits web --memory 64" in logs, logs
    # web=1: the one instance is down while the engine restarts it, then serves again
    wait_until(lambda: p.curl(name) == (200, "v2"), 15, "v2 serving after the engine restarted it")
    # a release that crash-loops in its first minute fails and the previous one comes back
    make_app_repo(repo, _busybox_app("v3", OOM_ALWAYS), p)
    p.git("push", "dockyard", "main", cwd=repo)
    looped = time.monotonic()
    wait_until(lambda: "crash-looped" in p.cli("releases", "-a", name).stdout, 120, "the automatic rollback")
    rolled = time.monotonic() - looped
    releases = p.cli("releases", "-a", name).stdout
    wait_until(lambda: p.curl(name) == (200, "v2"), 30, "v2 serving again")
    RESULTS.append(("an instance killed for memory once", 0, 0, f"in ps and logs after {seen_after:.1f} s"))
    RESULTS.append(("a release that crash-loops (OOM every 3 s)", 0, 0, f"rolled back after {rolled:.1f} s"))
    assert "Rollback to v2 (v3 crash-looped)" in releases, releases


def test_an_instance_the_engine_restarts_is_routed_again_at_once(tmp_path):
    """A crashed instance comes back on a new published port: the router follows the engine's
    events, so requests recover as soon as it runs, not at the router's next pass (5 s here, the
    product's default)."""
    p = start_platform(tmp_path / "p", DOCKYARD_RECONCILE_INTERVAL="5")
    try:
        name, _repo = _deploy(p, tmp_path, httpd_app("back"))
        outages = []
        with Load(p, name, interval=0.02, limit=90) as load:
            for _ in range(3):
                time.sleep(1)
                [cid] = p.containers(name, running_only=True)
                pid = int(run(["docker", "inspect", "-f", "{{.State.Pid}}", cid]).stdout)
                killed_at = time.monotonic()
                os.kill(pid, 9)     # the app's process dies; the engine restarts its container
                wait_until(lambda: load.samples[-1][0] > killed_at + 0.5 and load.samples[-1][1], 20,
                          "requests to succeed again")
                outages.append(load.outage_after(killed_at) or 0.0)
        RESULTS.append(("kill -9 of web.1's process (engine restarts it), x3", len(load.samples), load.failed,
                        "max " + f"{max(outages):.2f} s"))
        assert max(outages) < 2.0, f"requests failed for {outages} s after each crash"
    finally:
        stop_platform(p)


def test_kill9_of_the_api_mid_build_leaves_nothing_behind(platform, tmp_path):
    p = platform
    name, repo = _deploy(p, tmp_path, httpd_app("v1"))
    make_app_repo(repo, httpd_app("v2", extra=f"RUN echo {secrets.token_hex(4)} && sleep 30\n"), p)
    push = threading.Thread(target=lambda: p.git("push", "dockyard", "main", cwd=repo, check=False))
    push.start()
    wait_until(lambda: "pending" in p.cli("builds", "-a", name).stdout, 30, "the build to start")
    copies = list(Path("/tmp").glob(f"dockyard-build.{p.name}.{name}.*"))
    api = int((p.home / "run" / "api.pid").read_text())
    os.killpg(api, 9)
    killed = time.monotonic()
    push.join(60)
    def swept_builds():
        out = p.cli("builds", "-a", name, check=False).stdout
        return out if out and "pending" not in out else None

    builds = wait_until(swept_builds, 60, "the interrupted build to be swept")
    swept = time.monotonic() - killed
    RESULTS.append(("kill -9 of the API mid-build", 0, 0, f"build marked failed, copy removed in {swept:.1f} s"))
    assert "failed" in builds, builds
    assert copies and not any(c.exists() for c in copies), copies
    assert p.curl(name) == (200, "v1")
    # git said only "Everything up-to-date": the next push says what happened and what serves
    make_app_repo(repo, httpd_app("v3"), p)
    again = p.git("push", "dockyard", "main", cwd=repo)
    said = again.stdout + again.stderr
    assert "The previous push" in said and "was interrupted before it finished: nothing of it was released" in said, said
    assert "kept serving" in said and p.curl(name) == (200, "v3")


def test_a_killed_deploys_release_phase_container_is_swept_and_instances_stay(platform, tmp_path):
    """What a deploy killed in its release phase leaves: the sweep (one look at the engine for
    every app, then only the apps with something left) removes it, and no app's instance."""
    from .conftest import BUSYBOX_BASE
    p = platform
    name, _ = _deploy(p, tmp_path, httpd_app("v1"))
    other, _ = _deploy(p, tmp_path, httpd_app("other"))
    instances = {app: p.containers(app, running_only=True) for app in (name, other)}
    left = run(["docker", "run", "-d", "--label", f"dockyard.instance={p.name}", "--label", f"dockyard.app={name}",
                "--label", "dockyard.oneoff=release", "--label", "dockyard.build=b-killed", BUSYBOX_BASE,
                "sleep", "300"]).stdout.strip()
    try:
        wait_until(lambda: left[:12] not in run(["docker", "ps", "-aq", "--no-trunc"]).stdout, 30,
                   "the sweep to remove the killed deploy's release-phase container")
        assert {app: p.containers(app, running_only=True) for app in (name, other)} == instances
        assert p.curl(name) == (200, "v1") and p.curl(other) == (200, "other")
    finally:
        run(["docker", "rm", "-f", left], check=False)


def test_a_release_live_before_its_ref_moved_gets_its_ref_back(platform, tmp_path):
    """The state a kill leaves between a push's release going live and its ref moving."""
    from dulwich.repo import Repo
    p = platform
    name, repo = _deploy(p, tmp_path, httpd_app("v1"))
    make_app_repo(repo, httpd_app("v2"), p)
    p.git("push", "dockyard", "main", cwd=repo)
    head = run(["git", "rev-parse", "HEAD"], cwd=repo).stdout.strip()
    parent = run(["git", "rev-parse", "HEAD~1"], cwd=repo).stdout.strip()
    with Repo(str(p.home / "repos" / f"{name}.git")) as bare:
        bare.refs[b"refs/heads/main"] = parent.encode()
    moved = wait_until(lambda: (r := p.git("ls-remote", "dockyard", "main", cwd=repo).stdout).startswith(head) and r,
                      30, "main to move to the live release's commit")
    assert moved.startswith(head)
    assert "moved to" in p.cli("logs", "-a", name, "--source", "dockyard").stdout


def _api_down_for(platform) -> float:
    """kill -9 the API (gunicorn's whole group); seconds until /healthz answers again."""
    pid = int((platform.home / "run" / "api.pid").read_text())
    os.killpg(pid, 9)
    killed = time.monotonic()
    deadline = killed + 60
    while time.monotonic() < deadline:
        try:
            if int((platform.home / "run" / "api.pid").read_text()) != pid and \
                    requests.get(f"{platform.api}/healthz", timeout=1).status_code == 200:
                return time.monotonic() - killed
        except (requests.RequestException, ValueError, OSError):
            pass
        time.sleep(0.1)
    raise AssertionError("the API did not come back within 60 s")


def test_restart_backoff_starts_over_after_a_stable_run(platform):
    """Crashes in a row back off (1, 2, 4 s); after the API ran fine for a while (the test
    platform's DOCKYARD_STABLE_AFTER is 3 s), the next crash costs 1 s again, not the next step."""
    quick = [_api_down_for(platform) for _ in range(3)]
    time.sleep(4)
    after_stable = _api_down_for(platform)
    RESULTS.append(("kill -9 of the API: 3 in a row, then after a stable run", 4, 0,
                    "down " + ", ".join(f"{d:.1f}" for d in quick) + f" s; then {after_stable:.1f} s"))
    assert quick[2] > quick[0] + 1.5, quick           # the back-off grows while it crashes
    assert after_stable < quick[2] - 1.5, (quick, after_stable)
