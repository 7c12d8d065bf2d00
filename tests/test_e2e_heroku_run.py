"""`heroku run`, `run:detached` and `heroku logs` from the official Heroku CLI (npm, pinned) against
a real platform: the rendezvous listener (TLS, trusted through NODE_EXTRA_CA_CERTS as a user
would), exit codes, stdin, detached output in the logs, Heroku's log lines with --ps, --source,
-n and --tail; and a second user who tries to use secrets that are not, or no longer, hers."""
from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import secrets
import signal
import socket
import ssl
import struct
import subprocess
import termios
import threading
import time
from urllib.parse import urlparse

import pytest
import requests

from .conftest import BUSYBOX_BASE, make_app_repo, unique_app, wait_until
from .heroku_cli import CLI, heroku_env

pytestmark = pytest.mark.e2e

# A web process that answers HTTP and prints a numbered, timestamped line every second.
TICK_APP = {
    "Dockerfile": f"FROM {BUSYBOX_BASE}\nCOPY index.html /www/index.html\n"
                  'CMD ["/bin/sh", "-c", "httpd -p $PORT -h /www; i=0; while true; do i=$((i+1)); '
                  'echo tick $i $(date +%s); sleep 1; done"]\n',
    "index.html": "ticking\n",
}


class User:
    def __init__(self, p, name: str, token: str, ca_file: str):
        self.p, self.name, self.token = p, name, token
        self.env = {**heroku_env(p, token), "NODE_EXTRA_CA_CERTS": ca_file}

    def heroku(self, *args, input: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([str(CLI), *args], env=self.env, cwd=self.p.user_home, capture_output=True, text=True,
                              timeout=timeout, input=input, stdin=None if input is not None else subprocess.DEVNULL)

    def api(self, method: str, path: str, **kw) -> requests.Response:
        return requests.request(method, self.p.api + path, headers={"Authorization": f"Bearer {self.token}",
                                "Accept": "application/vnd.heroku+json; version=3"}, timeout=60, **kw)


@pytest.fixture(scope="module")
def world(platform, tmp_path_factory):
    """The admin's ticking app, deployed once; the admin and a second user (Mallory), each with
    the rendezvous certificate fetched from the API as the docs say."""
    tmp = tmp_path_factory.mktemp("heroku-run")
    pem = requests.get(platform.api + "/rendezvous/certificate",
                       headers={"Authorization": f"Bearer {platform.token()}"}, timeout=30)
    assert pem.status_code == 200 and "BEGIN CERTIFICATE" in pem.text and "PRIVATE" not in pem.text, pem.text
    ca = tmp / "rendezvous.pem"
    ca.write_text(pem.text)
    name = unique_app("hrun")
    repo = make_app_repo(tmp / name, TICK_APP, platform)
    platform.cli("apps:create", name, cwd=repo)
    platform.git("push", "dockyard", "main", cwd=repo)
    mallory_name = f"mal{secrets.token_hex(3)}"
    mallory_token = platform.cli("users:add", mallory_name).stdout.strip().splitlines()[-1].strip()
    return {"app": name, "owner": User(platform, "admin", platform.token(), str(ca)),
            "mallory": User(platform, mallory_name, mallory_token, str(ca)), "ca": str(ca)}


def test_run_passes_exit_code_output_stdin_and_env(world, platform):
    owner, app = world["owner"], world["app"]
    seven = owner.heroku("run", "--exit-code", "-a", app, "--", "sh", "-c", "exit 7")
    assert seven.returncode == 7, seven
    hello = owner.heroku("run", "-a", app, "--", "echo", "hello")
    assert hello.returncode == 0 and hello.stdout.strip() == "hello", hello
    piped = owner.heroku("run", "--exit-code", "-a", app, "--", "cat", input="data from stdin\nline 2\n")
    assert piped.returncode == 0 and piped.stdout == "data from stdin\nline 2\n", piped
    env = owner.heroku("run", "--exit-code", "-e", "GREETING=salut", "-a", app, "--", "echo $GREETING from $DYNO")
    assert env.returncode == 0 and re.fullmatch(r"salut from run\.\d{4}\n", env.stdout), env
    # each one-off is gone once it ended: only the web instance is left
    assert wait_until(lambda: len(platform.containers(app)) == 1, 30, "the one-offs to be removed")


def test_run_from_a_terminal_gets_a_pseudo_terminal_of_its_size(world):
    """The CLI in a terminal (here a pty of 100x30) asks for COLUMNS and LINES: the one-off gets
    a pseudo-terminal of that size, as `heroku run bash` needs for a prompt and line editing."""
    owner, app = world["owner"], world["app"]
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    proc = subprocess.Popen([str(CLI), "run", "--exit-code", "-a", app, "--",
                             "sleep 1; test -t 0 && test -t 1 && echo TTY-OK $(stty size)"],
                            env=owner.env, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    out = b""
    try:
        deadline = time.monotonic() + 120
        while b"TTY-OK" not in out or proc.poll() is None:
            if time.monotonic() > deadline:
                break
            if select.select([master], [], [], 0.5)[0]:
                try:
                    out += os.read(master, 65536)
                except OSError:      # the CLI exited and the pty closed
                    break
        assert proc.wait(30) == 0, out
    finally:
        proc.kill()
        os.close(master)
    assert re.search(rb"TTY-OK 30 100", out), out


def test_a_client_that_leaves_stops_its_one_off(world, platform):
    """Ctrl-C after the input ended (nothing reads the connection then) while the one-off prints
    nothing: it is stopped, not left running for DOCKYARD_RUN_TIMEOUT."""
    owner, app = world["owner"], world["app"]
    proc = subprocess.Popen([str(CLI), "run", "-a", app, "--", "sleep 300"], env=owner.env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: len(platform.containers(app, running_only=True)) == 2, 90, "the one-off to run")
        time.sleep(2)
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    finally:
        proc.kill()
    assert wait_until(lambda: len(platform.containers(app)) == 1, 30, "the one-off to be stopped and removed")


def test_a_listener_that_stops_stops_its_one_offs(world, platform):
    """The platform process, whose loop the listener is, stops (SIGTERM, as `make down` or an upgrade does): the one-offs
    attached through it are stopped, not left running with no client; the supervisor brings it back."""
    owner, app = world["owner"], world["app"]
    pid_file = platform.home / "run" / "platform.pid"
    pid = int(pid_file.read_text())
    proc = subprocess.Popen([str(CLI), "run", "-a", app, "--", "sleep 300"], env=owner.env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: len(platform.containers(app, running_only=True)) == 2, 90, "the one-off to run")
        os.kill(pid, signal.SIGTERM)
        assert wait_until(lambda: len(platform.containers(app)) == 1, 30, "the one-off to be stopped and removed")
        proc.wait(30)
    finally:
        proc.kill()
    wait_until(lambda: pid_file.exists() and int(pid_file.read_text()) != pid, 60, "the listener to be restarted")
    again = owner.heroku("run", "-a", app, "--", "echo", "back")
    assert again.returncode == 0 and again.stdout.strip() == "back", again


def test_run_detached_output_reaches_dockyard_logs(world, platform):
    owner, app = world["owner"], world["app"]
    marker = f"detached-{secrets.token_hex(4)}"
    out = owner.heroku("run:detached", "-a", app, "--", f"echo {marker}")
    assert out.returncode == 0, out
    dyno = re.search(r"--dyno (run\.\d+)", out.stdout)
    assert dyno, out.stdout
    logs = wait_until(lambda: (lambda t: marker in t and t)(platform.cli("logs", "-a", app, "-n", "300").stdout),
                      60, "the detached one-off's output in `dockyard logs`")
    assert f"app[{dyno.group(1)}]: {marker}" in logs, logs


def test_logs_shows_the_apps_lines_filtered_by_ps_source_and_num(world):
    owner, app = world["owner"], world["app"]
    wait_until(lambda: owner.heroku("logs", "-a", app, "--ps", "web", "-n", "5").stdout.count("app[web.1]: tick") == 5,
               60, "five ticks")
    out = owner.heroku("logs", "-a", app, "-n", "300")
    assert out.returncode == 0, out
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00"
    assert re.search(rf"^{stamp} app\[web\.1\]: tick \d+ \d+$", out.stdout, re.M), out.stdout
    assert re.search(rf"^{stamp} app\[api\]: ", out.stdout, re.M), out.stdout     # the release's events
    web = owner.heroku("logs", "-a", app, "--ps", "web", "-n", "300").stdout
    assert "app[web.1]: tick" in web and "app[api]" not in web and "[run." not in web, web
    platform_lines = owner.heroku("logs", "-a", app, "--source", "heroku", "-n", "300").stdout
    assert "app[" not in platform_lines, platform_lines
    app_only = owner.heroku("logs", "-a", app, "--source", "app", "-n", "300").stdout
    assert "app[web.1]: tick" in app_only and "heroku[" not in app_only, app_only
    five = owner.heroku("logs", "-a", app, "--ps", "web", "-n", "5").stdout.splitlines()
    assert len(five) == 5 and all("app[web.1]: tick" in line for line in five), five


def test_logs_tail_shows_a_line_printed_after_it_started(world):
    owner, app = world["owner"], world["app"]
    started = int(time.time())
    proc = subprocess.Popen([str(CLI), "logs", "--tail", "-a", app, "--ps", "web", "-n", "1"], env=owner.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    seen: list[str] = []
    later = threading.Event()

    def read():
        for line in proc.stdout:
            seen.append(line)
            m = re.search(r"app\[web\.1\]: tick \d+ (\d+)$", line.strip())
            if m and int(m.group(1)) > started + 2:
                later.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert later.wait(45), (seen, proc.poll())
        assert proc.poll() is None            # still following
    finally:
        proc.kill()
        proc.wait(10)


# ---- a second user ----------------------------------------------------------------------
def attach(ca: str, attach_url: str, stdin: bytes = b"\x04", timeout: float = 60) -> bytes:
    """The CLI's side of the rendezvous, by hand: TLS (the platform's certificate trusted), the
    secret, input ending with Ctrl-D; returns all that came back."""
    url = urlparse(attach_url)
    ctx = ssl.create_default_context(cafile=ca)
    with socket.create_connection((url.hostname, url.port), timeout=timeout) as raw, \
            ctx.wrap_socket(raw, server_hostname=url.hostname) as tls:
        tls.sendall(url.path[1:].encode() + b"\r\n")
        first = tls.recv(65536)
        tls.sendall(stdin)
        got = first
        while True:
            try:
                chunk = tls.recv(65536)
            except ssl.SSLError:
                break
            if not chunk:
                break
            got += chunk
    return got


def one_off_runs(p, app: str) -> int:
    """How many attached one-offs the platform log recorded for the app."""
    rows = requests.get(f"{p.api}/apps/{app}/logs", params={"lines": 2000},
                        headers={"Authorization": f"Bearer {p.token()}"}, timeout=30).json()
    return sum("One-off run by" in r["message"] for r in rows)


def test_a_second_user_cannot_use_anothers_rendezvous_or_log_session(world, platform):
    owner, mallory, app, ca = world["owner"], world["mallory"], world["app"], world["ca"]
    # Not her app: no one-off, no log session.
    assert mallory.api("POST", f"/apps/{app}/dynos", json={"command": "id", "attach": True}).status_code == 404
    assert mallory.api("POST", f"/apps/{app}/log-sessions", json={}).status_code == 404
    # The owner's attach secret works once; replayed by Mallory (seen on a screen, in a proxy's
    # log), it is refused and nothing runs.
    dyno = owner.api("POST", f"/apps/{app}/dynos", json={"command": "echo owner-ran", "attach": True}).json()
    assert dyno["attach_url"].startswith("rendezvous://127.0.0.1:") and re.fullmatch(r"run\.\d{4}", dyno["name"])
    assert b"owner-ran" in attach(ca, dyno["attach_url"])
    runs = one_off_runs(platform, app)
    replay = attach(ca, dyno["attach_url"], stdin=b"id\n\x04")
    assert b"secret is unknown, used, expired" in replay and b"owner-ran" not in replay, replay
    guessed = attach(ca, dyno["attach_url"][:-4] + "AAAA")
    assert b"secret is unknown" in guessed
    # A collaborator removed from the app keeps neither her pending attach nor her log stream.
    assert owner.api("POST", f"/apps/{app}/collaborators", json={"user": mallory.name}).status_code in (200, 201)
    pending = mallory.api("POST", f"/apps/{app}/dynos", json={"command": "echo mallory-ran", "attach": True}).json()
    session = mallory.api("POST", f"/apps/{app}/log-sessions", json={"tail": False}).json()
    assert "tick" in requests.get(session["logplex_url"], timeout=30).text     # while she may read the app
    assert owner.api("DELETE", f"/apps/{app}/collaborators/{mallory.name}").status_code in (200, 204)
    after = requests.get(session["logplex_url"], timeout=30)
    assert after.status_code == 404 and "tick" not in after.text, after.text
    refused = attach(ca, pending["attach_url"])
    assert b"mallory-ran" not in refused and b"no longer yours" in refused, refused
    assert one_off_runs(platform, app) == runs          # neither replay nor the revoked attach ran anything
    # The log stream's URL is the credential: the API token is not needed, a wrong secret is refused,
    # and no platform log keeps it (nor the attach secrets).
    assert requests.get(session["logplex_url"][:-4] + "AAAA", timeout=30).status_code == 404
    for secret in (session["logplex_url"].rsplit("/", 1)[1], pending["attach_url"].rsplit("/", 1)[1]):
        for log in (platform.home / "logs").glob("*.log"):
            assert secret.encode() not in log.read_bytes(), log
    body = json.dumps({"command": "true", "attach": True})
    assert requests.post(f"{platform.api}/apps/{app}/dynos", data=body, timeout=30).status_code == 401


def test_refused_attaches_leave_no_descriptors_behind(world, platform):
    """Many bad secrets at once (and TLS handshakes that never finish): the listener answers
    each, and its open descriptors and threads come back to where they were."""
    pid = int((platform.home / "run" / "platform.pid").read_text())
    port = int(platform.env["DOCKYARD_RENDEZVOUS_PORT"])

    def fds() -> int:
        return len(os.listdir(f"/proc/{pid}/fd"))

    def threads() -> int:
        return len(os.listdir(f"/proc/{pid}/task"))

    before, before_threads = fds(), threads()
    url = f"rendezvous://127.0.0.1:{port}/"
    workers = [threading.Thread(target=attach, args=(world["ca"], url + secrets.token_urlsafe(32))) for _ in range(40)]
    silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]   # no handshake at all
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    for s in silent:
        s.close()
    wait_until(lambda: fds() <= before + 2 and threads() <= before_threads + 2, 30,
               f"the listener's descriptors ({before}) and threads ({before_threads}) to come back")
