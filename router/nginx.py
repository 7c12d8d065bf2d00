"""The I/O shell around nginx: files in the router prefix, ``nginx -t``, and applying a
route table (swap and reload, the reload checking it; ``nginx -t`` first only while nginx is
not running) under the router lock that every process shares.
Starting, reloading and stopping the nginx master itself is ``router.master``.

Layout of ``RouterConfig.prefix`` (the nginx prefix)::

    conf/nginx.conf     main config (render_main), rewritten when it changes
    conf/routes.conf    routes (render_routes), replaced atomically by apply()
    logs/               pid file, error.log, access.log
    tmp/                nginx temp paths (unused: bodies are streamed)
    apply.lock          flock serialising apply/reload/start across processes
    refused.json        apps whose own settings/certificate were refused at the last apply, and why
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO

from core.fsutil import atomic_write
from router import render
from router.config import RouterConfig
from router.errors import ConfigRejected, RenderError, RouterError
from router.master import NginxMaster, ReloadRefused, tail
from router.table import Route


class Nginx:
    """Our own nginx, living in ``config.prefix``.

    ``worker_user`` is the user nginx workers run as when the master runs as
    root (default ``www-data``); ignored otherwise. ``on_reload(result, seconds)`` hears of
    every config apply: ``ok`` (reloaded, and how long it took), ``rejected`` (nginx
    refused it) or ``failed`` (the reload did not complete); its errors are the caller's.
    """

    def __init__(
        self,
        config: RouterConfig,
        *,
        worker_user: str | None = None,
        listen_host: str = "127.0.0.1",
        proxy_read_timeout: int = 60,
        command_timeout: float = 30.0,
        reload_timeout: float = 15.0,
        lock_timeout: float = 60.0,
        on_reload: Callable[[str, float], None] | None = None,
    ) -> None:
        self.config = config
        self.on_reload = on_reload
        self.prefix = Path(config.prefix)
        self.conf_path = self.prefix / render.MAIN_CONF
        self.routes_path = self.prefix / render.ROUTES_CONF
        self.lock_path = self.prefix / "apply.lock"
        self.rejected_path = self.prefix / "conf" / "routes.conf.rejected"
        self.refused_path = self.prefix / "refused.json"
        # The `user` directive only means something when the master runs as root.
        self.worker_user = (worker_user or "www-data") if os.geteuid() == 0 else None
        self.listen_host = listen_host
        self.proxy_read_timeout = proxy_read_timeout
        self.command_timeout = command_timeout
        self.reload_timeout = reload_timeout
        self.lock_timeout = lock_timeout
        self.master = NginxMaster(self.prefix, config.nginx_bin, self.conf_path, config.port,
                                  reload_timeout=reload_timeout, start_command=config.start_command)
        self.pid_path = self.master.pid_path
        self.error_log = self.master.error_log
        self._reload_owed = False  # a reload failed: the next apply must reload even if unchanged
        # apply_current's tickets: calls asked so far, calls served by a load begun after them
        self._tickets = threading.Lock()
        self._asked = self._served = 0
        self._last_changed = False
        self._last: tuple[tuple[Route, ...], str] | None = None   # the table this object last applied, as on disk

    # ------------------------------------------------------------ rendering
    def _main_text(self, routes_file: Path | None = None) -> str:
        return render.render_main(
            str(self.prefix),
            self.config.port,
            self.worker_user,
            routes_file=None if routes_file is None else str(routes_file),
            proxy_read_timeout=self.proxy_read_timeout,
        )

    def _routes_text(self, routes: Iterable[Route]) -> str:
        return render.render_routes(
            routes, self.config.port, listen_host=self.listen_host, tls_port=self.config.tls_port,
            domain=self.config.domain,
        )

    def _render_tolerant(self, routes: Iterable[Route], refused: dict[str, str]) -> tuple[str, list[Route]]:
        """Render; an app whose own extras (settings, certificate) cannot be rendered is
        rendered without them and its reason is put in ``refused``. Anything else raises."""
        routes = list(routes)
        for _ in range(len(routes) + 1):
            try:
                return self._routes_text(routes), routes
            except RenderError as exc:
                idx = _extras_index(routes, exc.app)
                if idx is None:
                    raise
                refused[exc.app] = exc.message
                routes[idx] = routes[idx].plain()
        raise RouterError("could not render the routes even without the apps' own settings")  # unreachable

    def refused(self) -> dict[str, str]:
        """app -> why its own router settings or certificate are not in use (last apply)."""
        try:
            data = json.loads(self.refused_path.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    # ------------------------------------------------------------ layout
    def ensure_layout(self) -> None:
        """Create ``conf/``, ``logs/``, ``tmp/``; write nginx.conf if it changed;
        write an empty routes file (404 for every host) if there is none."""
        with self._locked():
            self._ensure_layout_locked()

    def _ensure_layout_locked(self) -> None:
        for sub in ("conf", "logs", "tmp"):
            (self.prefix / sub).mkdir(parents=True, exist_ok=True)
        # Leftovers of a process that died mid-apply (we hold the lock: no one is using them).
        for leftover in (self.prefix / "conf").glob(".*.tmp"):
            leftover.unlink(missing_ok=True)
        main = self._main_text()
        if _read(self.conf_path) != main:
            atomic_write(self.conf_path, main, 0o644, durable=True)
        if not self.routes_path.exists():
            atomic_write(self.routes_path, self._routes_text(()), 0o644, durable=True)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Exclusive flock on ``apply.lock``, shared by every process using this
        router directory. Bounded by ``lock_timeout``."""
        self.prefix.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a+") as lock:
            deadline = time.monotonic() + self.lock_timeout
            while True:
                try:
                    fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if time.monotonic() > deadline:
                        raise RouterError(
                            f"Timed out after {self.lock_timeout:g}s waiting for the router lock {self.lock_path}: "
                            "another Dockyard process is applying routes or (re)starting nginx. Retry; if it "
                            f"keeps happening, look for a stuck {self._router_process()} or API worker."
                        ) from None
                    time.sleep(0.002)   # a deploy's switch waits out another pass: take the lock as it frees
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    # ------------------------------------------------------------ apply
    def apply(self, routes: Iterable[Route]) -> bool:
        """Make nginx serve ``routes``.

        Returns False if the config on disk already matches. Otherwise a running
        nginx is reloaded on the new config, which the reload checks (a refusal
        leaves the previous config serving and on disk, and raises ``ConfigRejected``);
        with nginx stopped, ``nginx -t`` checks it before it replaces the live one.
        When this returns, new connections are routed by the new config. Safe to
        call concurrently from several processes.
        """
        refused: dict[str, str] = {}
        text, table = self._render_tolerant(tuple(routes), refused)  # RenderError before touching anything
        with self._locked():
            return self._apply_with_fallback_locked(text, table, refused)

    def apply_fresh(self, load: Callable[[], Iterable[Route]]) -> bool:
        """Like ``apply``, but computes the routes with ``load()`` while holding the
        router lock. Every process that changes routes must use this: a table computed
        before another process's newer one can then never be applied after it (a stale
        table is how an app briefly loses all its upstreams in the middle of a deploy)."""
        with self._locked():
            refused: dict[str, str] = {}
            text, table = self._render_tolerant(tuple(load()), refused)
            return self._apply_with_fallback_locked(text, table, refused)

    def apply_current(self, load: Callable[[], Iterable[Route]]) -> bool:
        """Like ``apply_fresh``, for callers whose ``load`` always computes the table as it is
        now from the same source (the store and the engine). A call that waited for the lock
        while another call of this object loaded a table begun after it asked is served by
        that table: N concurrent callers (parallel deploys, app creations) cost one or two
        renders and reloads, not N in a row. Returns whether the serving apply changed the config."""
        with self._tickets:
            self._asked += 1
            ticket = self._asked
        with self._locked():
            with self._tickets:
                if self._served >= ticket:
                    return self._last_changed
                upto = self._asked     # every call asked by now is served by the load below
            refused: dict[str, str] = {}
            text, table = self._render_tolerant(tuple(load()), refused)
            changed = self._apply_with_fallback_locked(text, table, refused)
            with self._tickets:
                self._served, self._last_changed = max(self._served, upto), changed
            return changed

    def apply_patch(self, app: str, route: Callable[[], Route | None], load: Callable[[], Iterable[Route]]) -> bool:
        """Like ``apply_fresh``, for a change of one app's route: when the live routes file is still
        the one this object last applied, only ``route()`` (the app's route now; None: compute the
        whole table) is computed, in place of the app's, and every other app's is as it serves;
        otherwise, or for an app that table lacks, the whole table is loaded with ``load()``."""
        with self._locked():
            last = self._last
            fresh = None
            if last is not None and _read(self.routes_path) == last[1] and any(r.app == app for r in last[0]):
                fresh = route()
            if fresh is None:
                table = tuple(load())
            else:
                table = tuple(fresh if r.app == app else r for r in last[0])
            refused: dict[str, str] = {}
            text, rendered = self._render_tolerant(table, refused)
            return self._apply_with_fallback_locked(text, rendered, refused, table)

    def _apply_with_fallback_locked(self, text: str, routes: list[Route], refused: dict[str, str],
                                    table: tuple[Route, ...] | None = None) -> bool:
        """Apply; when nginx refuses the config because of one app's own settings or
        certificate, serve that app without them (and record why) instead of refusing every
        route change. Anything nginx refuses that no app's extras explain raises ConfigRejected."""
        table = tuple(routes) if table is None else table
        self._last = None
        try:
            for _ in range(len(routes) + 1):
                try:
                    changed = self._apply_locked(text)
                    self._last = (table, text)     # on disk now, and served
                    return changed
                except ConfigRejected as exc:
                    app = _blame(exc.output, text, routes, self.rejected_path)
                    if app is None:
                        raise
                    refused[app] = ("nginx refused this app's router settings or certificate, so it is served "
                                    "without them. nginx said: " + _first_error(exc.output, app))
                    routes = [r.plain() if r.app == app else r for r in routes]
                    text, routes = self._render_tolerant(routes, refused)
            raise RouterError("nginx kept refusing the routes even without the apps' own settings")
        finally:
            self._record_refused(refused)

    def _router_process(self) -> str:
        cmd = self.config.start_command
        return f"`{cmd}`" if cmd else "router process"

    def _record_refused(self, refused: dict[str, str]) -> None:
        text = json.dumps(refused, indent=1, sort_keys=True) + "\n"
        if _read(self.refused_path) != text:
            atomic_write(self.refused_path, text, 0o644, durable=True)

    def _apply_locked(self, routes_text: str) -> bool:
        main_text = self._main_text()
        for sub in ("conf", "logs", "tmp"):
            (self.prefix / sub).mkdir(parents=True, exist_ok=True)
        unchanged = _read(self.conf_path) == main_text and _read(self.routes_path) == routes_text
        if unchanged and not self._reload_owed:
            return False
        running = self.running()
        if not unchanged and not running:
            try:   # nginx starts on this config: check it first
                self._validate_and_install(main_text, routes_text)
            except ConfigRejected:
                self._heard("rejected", 0.0)
                raise
        if running:
            started = time.monotonic()
            try:
                self._install_and_reload(main_text, routes_text, unchanged)
            except ConfigRejected:
                self._heard("rejected", time.monotonic() - started)
                raise
            except RouterError:
                self._heard("failed", time.monotonic() - started)
                raise
            self._heard("ok", time.monotonic() - started)
        self._reload_owed = False
        return True

    def _install_and_reload(self, main_text: str, routes_text: str, unchanged: bool) -> None:
        """Put the new config in place and reload: the running master checks it as it loads
        it (one parse, not a separate `nginx -t` first), and on a refusal keeps serving the
        old config, whose files are then put back, so what is on disk is what is served."""
        before = (_read(self.conf_path), _read(self.routes_path))
        if not unchanged:
            if before[0] != main_text:
                atomic_write(self.conf_path, main_text, 0o644, durable=True)
            if before[1] != routes_text:
                atomic_write(self.routes_path, routes_text, 0o644, durable=True)
        self._reload_owed = True
        try:
            self.master.reload()
        except ReloadRefused as exc:
            for path, text in zip((self.conf_path, self.routes_path), before):
                if text is not None:
                    atomic_write(path, text, 0o644, durable=True)
            self._reload_owed = False       # the old config serves, and is on disk again
            atomic_write(self.rejected_path, routes_text, 0o644, durable=True)
            output = exc.output.replace(str(self.routes_path), str(self.rejected_path))
            raise ConfigRejected(
                "nginx rejected the new routing config, so it was not applied; the previous config keeps "
                f"serving. The rejected routes are saved in {self.rejected_path}. nginx said:\n{output.strip()}",
                output=output,
            ) from None

    def _heard(self, result: str, seconds: float) -> None:
        if self.on_reload is not None:
            self.on_reload(result, seconds)

    def _validate_and_install(self, main_text: str, routes_text: str) -> None:
        conf_dir = self.conf_path.parent
        cand_routes = _write_temp(conf_dir, ".routes.conf.", routes_text)
        cand_main: Path | None = None
        try:
            cand_main = _write_temp(conf_dir, ".nginx.conf.", self._main_text(routes_file=cand_routes))
            ok, output = self._test_config(cand_main)
            if not ok:
                atomic_write(self.rejected_path, routes_text, 0o644, durable=True)
                output = output.replace(str(cand_routes), str(self.rejected_path))
                raise ConfigRejected(
                    "nginx rejected the new routing config, so it was not applied; the previous config keeps "
                    f"serving. The rejected routes are saved in {self.rejected_path}. nginx said:\n{output.strip()}",
                    output=output,
                )
            if _read(self.conf_path) != main_text:
                atomic_write(self.conf_path, main_text, 0o644, durable=True)
            os.replace(cand_routes, self.routes_path)
            _fsync_dir(conf_dir)
        finally:
            cand_routes.unlink(missing_ok=True)
            if cand_main is not None:
                cand_main.unlink(missing_ok=True)

    def test_config(self) -> None:
        """Run ``nginx -t`` on the live config; raise ConfigRejected if it fails."""
        ok, output = self._test_config(self.conf_path)
        if not ok:
            raise ConfigRejected(f"nginx rejected {self.conf_path}. nginx said:\n{output.strip()}", output=output)

    def _test_config(self, conf: Path) -> tuple[bool, str]:
        result = self._run([self.config.nginx_bin, "-t", "-q", "-p", f"{self.prefix}/", "-c", str(conf)])
        output = result.stdout
        if result.returncode != 0 and not output.strip():
            output = f"(nginx -t exited {result.returncode} without output; end of {self.error_log}:)\n" + tail(
                self.error_log
            )
        return result.returncode == 0, output

    def _run(self, argv: list[str]) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=self.command_timeout,
                check=False,  # the caller checks returncode and reports nginx's output
            )
        except FileNotFoundError:
            raise RouterError(
                f"nginx is not installed at {argv[0]}: install it (apt-get install nginx-light) "
                "or point DOCKYARD_NGINX at the nginx binary."
            ) from None
        except subprocess.TimeoutExpired:
            raise RouterError(f"`{' '.join(argv)}` did not finish within {self.command_timeout:g}s.") from None

    # ------------------------------------------------------------ process control
    def running(self) -> bool:
        """True if the pid file names a live nginx master for this prefix."""
        return self.master.pid() is not None

    def master_pid(self) -> int | None:
        return self.master.pid()

    def start_foreground(
        self, *, stdout: IO | int | None = None, stderr: IO | int | None = None, timeout: float = 10.0
    ) -> subprocess.Popen:
        """Start nginx as our child (``daemon off``, own process group) on the checked config.

        Returns once nginx listens and its workers are up. Raises RouterError
        (with nginx's log) if it exits or does not come up within ``timeout``.
        """
        with self._locked():
            pid = self.master.pid()
            if pid is not None:
                raise RouterError(
                    f"nginx is already running for {self.prefix} (pid {pid}). Stop it first "
                    f"(kill -QUIT {pid}) or reload it instead of starting another one."
                )
            self.master.reap_leftovers()
            self._ensure_layout_locked()
            self.test_config()
            return self.master.start(stdout=stdout, stderr=stderr, timeout=timeout)

    def reload(self) -> None:
        """SIGHUP the master and wait until its new workers took over."""
        with self._locked():
            self.master.reload()

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful shutdown; see ``NginxMaster.stop``."""
        self.master.stop(timeout)


# ---------------------------------------------------------------- helpers
def _extras_index(routes: list[Route], app: str | None) -> int | None:
    if app is None:
        return None
    for i, route in enumerate(routes):
        if route.app == app and route.has_extras():
            return i
    return None


def _blame(output: str, text: str, routes: list[Route], rejected_path: Path) -> str | None:
    """Pure: the app whose own extras explain nginx's complaint, if any.

    nginx names the file and line of a bad directive (``in FILE:LINE``), or the
    certificate/key file it could not load."""
    candidates: list[str] = []
    for m in re.finditer(r" in (\S+):(\d+)", output):
        if m.group(1) == str(rejected_path):
            app = render.app_at_line(text, int(m.group(2)))
            if app is not None:
                candidates.append(app)
    for route in routes:
        if route.tls is not None and (route.tls.cert_path in output or route.tls.key_path in output):
            candidates.append(route.app)
    for app in candidates:
        if _extras_index(routes, app) is not None:
            return app
    return None


def _first_error(output: str, app: str) -> str:
    for line in output.splitlines():
        if "[emerg]" in line or "[crit]" in line or "[alert]" in line:
            return re.sub(r"^\d+#\d+: ", "", line.split("] ", 1)[-1].strip())
    return output.strip().splitlines()[0] if output.strip() else f"(no output; see the router's error.log for {app})"


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def _write_temp(directory: Path, prefix: str, text: str) -> Path:
    fd, name = tempfile.mkstemp(dir=directory, prefix=prefix, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(name, 0o644)
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
