"""Test harness. End-to-end tests run a whole, isolated platform instance via the real
`make up` (own DOCKYARD_HOME, ports, instance name and domain; the CLI and git get their
own HOME, so ~/.netrc is the test's), then drive it with the real git client and curl.
The suite itself runs with its own HOME, netrc and git config too (`suite_home`), so what
the operator's account holds (a `make up` writes its admin token for 127.0.0.1 into
~/.netrc, which requests would send instead of a test's token) changes no result."""
from __future__ import annotations

import fcntl
import os
import re
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUSYBOX_BASE = "dockyard-test/busybox:1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, check=True, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 900)
    proc = subprocess.run(cmd, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


@dataclass
class Platform:
    name: str
    home: Path
    user_home: Path
    api_port: int
    router_port: int
    domain: str
    env: dict = field(default_factory=dict)
    up_output: list = field(default_factory=list)
    router_tls_port: int = 0   # DOCKYARD_ROUTER_TLS_PORT

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def cli(self, *args, cwd=None, check=True, timeout=600) -> subprocess.CompletedProcess:
        """The dockyard CLI, run in `cwd` or else in the user's home: never in the checkout, whose
        .git/config would get the remote and credential helper that `apps:create` adds in a repo."""
        return run([str(ROOT / ".venv/bin/dockyard"), *args], cwd=cwd or self.user_home, env=self.env, check=check,
                   timeout=timeout)

    def git(self, *args, cwd, check=True, timeout=600) -> subprocess.CompletedProcess:
        return run(["git", *args], cwd=cwd, env=self.env, check=check, timeout=timeout)

    def curl(self, app: str, path: str = "/", host: str | None = None) -> tuple[int, str]:
        """The real curl, by hostname: <app>.<domain> resolves to loopback with no DNS set-up."""
        url = f"http://{host or f'{app}.{self.domain}'}:{self.router_port}{path}"
        proc = run(["curl", "-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}", url], check=False)
        body, _, code = proc.stdout.rpartition("\n")
        return int(code or 0), body

    def containers(self, app: str, running_only: bool = False) -> list[str]:
        """Ids of this platform's containers for `app`, found by label with the docker CLI."""
        flags = "-q" if running_only else "-aq"
        return run(["docker", "ps", flags, "--filter", f"label=dockyard.app={app}",
                    "--filter", f"label=dockyard.instance={self.name}"]).stdout.split()

    def token(self) -> str:
        return (self.home / "admin.token").read_text().strip()

    def make(self, target: str) -> subprocess.CompletedProcess:
        return run(["make", "-C", str(ROOT), target], env=self.env, timeout=900)


def platform_env(name: str, home: Path, user_home: Path, api_port: int, router_port: int, domain: str, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKYARD_", "GIT_"))}
    env.update(
        HOME=str(user_home), DOCKYARD_HOME=str(home), DOCKYARD_NAME=name,
        DOCKYARD_API_PORT=str(api_port), DOCKYARD_ROUTER_PORT=str(router_port), DOCKYARD_DOMAIN=domain,
        DOCKYARD_HEALTH_TIMEOUT="8", DOCKYARD_STOP_GRACE="2", DOCKYARD_RECONCILE_INTERVAL="0.5",
        DOCKYARD_GUNICORN_TIMEOUT="5",  # far below the slow-build test: a cut-off build would show
        DOCKYARD_SWEEP_INTERVAL="2", DOCKYARD_STABLE_AFTER="3",
        DOCKYARD_ALLOWED_IMAGES=BUSYBOX_BASE,   # the operator lets every user build on the test base image
        GIT_TERMINAL_PROMPT="0", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com",
        GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com",
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


# Every port of every platform this process started: the checkout's git config must name none
# of them when the run ends (`checkout_git_config_untouched`).
STARTED_PORTS: set[int] = set()


def start_platform(tmp: Path, **extra) -> Platform:
    name = "dyt" + secrets.token_hex(3)
    p = Platform(name=name, home=tmp / "state", user_home=tmp / "home", api_port=free_port(),
                 router_port=free_port(), domain=f"{name}.localhost")
    p.user_home.mkdir(parents=True)
    p.router_tls_port = int(extra.setdefault("DOCKYARD_ROUTER_TLS_PORT", free_port()))
    # Each platform's own sshd port (git over SSH), so instances never share one.
    extra.setdefault("DOCKYARD_SSH_PORT", free_port())
    extra.setdefault("DOCKYARD_REGISTRY_PORT", free_port())   # each platform's own image registry
    extra.setdefault("DOCKYARD_RENDEZVOUS_PORT", free_port())   # each platform's own `heroku run` listener
    extra.setdefault("DOCKYARD_WAKE_PORT", free_port())   # each platform's own wake listener (autosleep)
    extra.setdefault("DOCKYARD_ADDON_GATEWAY_PORT", free_port())   # each platform's own add-on gateway (cluster)
    p.env = platform_env(name, p.home, p.user_home, p.api_port, p.router_port, p.domain, **extra)
    STARTED_PORTS.update(int(v) for k, v in p.env.items() if k.startswith("DOCKYARD_") and k.endswith("_PORT"))
    try:
        p.up_output.append(p.make("up").stdout)
    except BaseException:
        stop_platform(p)
        raise
    return p


def stop_platform(p: Platform) -> None:
    run(["make", "-C", str(ROOT), "down"], env=p.env, check=False)
    ids = run(["docker", "ps", "-aq", "--filter", f"label=dockyard.instance={p.name}"], check=False).stdout.split()
    if ids:
        run(["docker", "rm", "-f", "-v", *ids], check=False)
    # build sandboxes keep a named volume and a network; build steps have networks too
    label = f"label=dockyard.instance={p.name}"
    for kind in ("volume", "network"):
        names = run(["docker", kind, "ls", "-q", "--filter", label], check=False).stdout.split()
        if names:
            run(["docker", kind, "rm", *names], check=False)
    for _ in range(3):   # parents (buildpack dependency images) go once their children have
        imgs = run(["docker", "images", "-q", "--filter", f"label=dockyard.instance={p.name}"], check=False).stdout.split()
        if not imgs:
            break
        run(["docker", "rmi", "-f", *sorted(set(imgs))], check=False)
    port = p.env.get("DOCKYARD_REGISTRY_PORT")
    pushed = [t for t in run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"], check=False).stdout.split()
              if port and t.startswith(f"127.0.0.1:{port}/")]
    if pushed:   # tags for its registry of shared images (the stack the add-on forwarders run): untagged only
        run(["docker", "rmi", *pushed], check=False)
    nets = run(["docker", "network", "ls", "-q", "--filter", f"label=dockyard.instance={p.name}"], check=False).stdout.split()
    if nets:   # the instance's apps network, once its containers are gone
        run(["docker", "network", "rm", *nets], check=False)
    # its sandboxes' socket folders on the host (their containers are gone)
    from controller.scheduler.sandbox_policy import SOCKET_ROOT
    shutil.rmtree(Path(SOCKET_ROOT) / p.name, ignore_errors=True)


def ensure_busybox_base(ctx: Path) -> str:
    """A 2 MB base image with a shell and httpd, built locally (nothing can be pulled). Built once
    a machine: a lock makes the other test processes (`make test` runs two) wait for the first."""
    with open("/tmp/dockyard-test-busybox.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build_busybox_base(ctx)


def _build_busybox_base(ctx: Path) -> str:
    if run(["docker", "image", "inspect", BUSYBOX_BASE], check=False).returncode != 0:
        ctx.mkdir(parents=True, exist_ok=True)
        shutil.copy("/bin/busybox", ctx / "busybox")
        (ctx / "Dockerfile").write_text(
            'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
            'RUN ["/bin/mkdir", "-p", "/www", "/tmp"]\n')
        run(["docker", "build", "-q", "-t", BUSYBOX_BASE, str(ctx)])
    return BUSYBOX_BASE


# `make test` runs the suite in two processes (pytest-xdist -n 2 --dist loadfile), each taking
# one unit at a time: a module (its tests share the platforms it starts), or the modules that
# count failed requests under load, which run one after another so that no two of them load the
# machine at once (the fault module, which bounds outages to a second or two, is marked `alone`). Units go out in collection order, the longest first, so that no
# long one starts last while the other process idles. Seconds measured on the 2-core machine
# (docs/testing.md); a module not named here counts as a minute if end to end, else a second.
MODULE_SECONDS = {
    "test_e2e_heroku_cli.py": 360, "test_e2e_cluster.py": 700, "test_e2e_faults.py": 240,
    "test_e2e_platforms.py": 220, "test_e2e_langs.py": 200, "test_e2e_buildpacks.py": 180,
    "test_e2e_access.py": 150, "test_e2e_tenants.py": 120, "test_e2e_runtimes.py": 120,
}
UNDER_LOAD = ("test_e2e_cluster.py", "test_e2e_workflow.py")


def _module_seconds(name: str) -> float:
    if name in MODULE_SECONDS:
        return MODULE_SECONDS[name]
    return 60.0 if name.startswith("test_e2e_") else 1.0


def _unit(nodeid: str) -> str:
    """The unit of work a test belongs to, from its node id (`tests/test_x.py::test_y`)."""
    name = nodeid.split("::", 1)[0].rsplit("/", 1)[-1]
    return "under-load" if name in UNDER_LOAD else name


def pytest_collection_modifyitems(config, items):
    """Units longest first (stable: a module's tests keep their order). The modules marked
    `alone` (they restart the engine) come last, and `make test` runs them in a pass of their own."""
    seconds: dict[str, float] = {}
    for name in {Path(str(item.path)).name for item in items}:
        seconds[_unit(name)] = seconds.get(_unit(name), 0.0) + _module_seconds(name)

    def key(item):
        unit = _unit(item.nodeid)
        return (item.get_closest_marker("alone") is not None, -seconds[unit], unit)
    items.sort(key=key)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """--dist loadfile, with the modules of UNDER_LOAD as one unit (xdist's own loadgroup
    marks do not group under pytest 9: it renames node ids that pytest no longer reads)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class UnitScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _unit(nodeid)
    return UnitScheduling(config, log)


# The environment that points clients at a user's files, a platform or git settings.
_OPERATOR_ENV = ("NETRC", "XDG_CONFIG_HOME", "DOCKYARD_API_URL", "DOCKYARD_API_TOKEN",
                 "GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM", "GIT_CONFIG_NOSYSTEM", "GIT_DIR", "GIT_WORK_TREE")


@pytest.fixture(scope="session", autouse=True)
def suite_home(tmp_path_factory):
    """For the whole run: a HOME of the suite's own (no ~/.netrc, a ~/.gitconfig with only
    an identity), and none of the operator's client settings in the environment."""
    home = tmp_path_factory.mktemp("suite-home")
    (home / ".gitconfig").write_text("[user]\n\tname = t\n\temail = t@example.com\n")
    with pytest.MonkeyPatch.context() as mp:
        for key in _OPERATOR_ENV:
            mp.delenv(key, raising=False)
        mp.setenv("HOME", str(home))
        yield home


def git_config_lines_naming(ports: set[int]) -> list[str]:
    """The lines of the checkout's git config (shared by its worktrees) that name one of `ports`:
    what a client run in the checkout would have added (a remote, a credential helper)."""
    common = run(["git", "rev-parse", "--path-format=absolute", "--git-common-dir"], cwd=ROOT, check=False)
    config = Path(common.stdout.strip()) / "config"
    if common.returncode != 0 or not config.exists():
        return []
    return [line.strip() for line in config.read_text().splitlines()
            if any(int(port) in ports for port in re.findall(r":(\d{2,5})\b", line))]


@pytest.fixture(scope="session", autouse=True)
def checkout_git_config_untouched():
    """Tests run the CLIs in the platform user's home (or an app's repo), never in the checkout:
    after the run, the checkout's git config names no port of this run's platforms."""
    yield
    added = git_config_lines_naming(STARTED_PORTS)
    assert not added, f"a client ran in the checkout and wrote into its .git/config: {added}"


@pytest.fixture(scope="session")
def busybox_base(tmp_path_factory) -> str:
    return ensure_busybox_base(tmp_path_factory.mktemp("busybox"))


@pytest.fixture(scope="session")
def platform(tmp_path_factory, busybox_base):
    p = start_platform(tmp_path_factory.mktemp("platform"))
    try:
        p.up_output.append(p.make("up").stdout)   # the second `make up` must change nothing
        yield p
    finally:
        stop_platform(p)


def make_app_repo(path: Path, files: dict[str, str | bytes], platform: Platform | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    env = platform.env if platform else None
    if not (path / ".git").exists():
        run(["git", "init", "-q", "-b", "main", str(path)], env=env)
    for rel, content in files.items():
        target = path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content if isinstance(content, bytes) else content.encode())
    run(["git", "add", "-A"], cwd=path, env=env)
    run(["git", "commit", "-q", "--allow-empty", "-m", f"change {time.time()}"], cwd=path, env=env)
    return path


def httpd_app(text: str, base: str = BUSYBOX_BASE, extra: str = "") -> dict[str, str]:
    """A tiny web app: busybox httpd serving index.html on $PORT."""
    return {
        "Dockerfile": f"FROM {base}\nCOPY index.html /www/index.html\n{extra}"
                      'CMD ["/bin/sh", "-c", "exec httpd -f -p $PORT -h /www"]\n',
        "index.html": text,
    }


def wait_until(check, timeout: float, what: str, every: float = 0.3):
    """`check()`'s first truthy value within `timeout` seconds, asked every `every` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def unique_app(prefix: str = "app") -> str:
    return f"{prefix}-{secrets.token_hex(3)}"
