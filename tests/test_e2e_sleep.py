"""Autosleep through the whole platform (`make up`, real git push, Docker, nginx, curl): an app
sleeps after a short window, a request wakes it and gets its page, twenty concurrent requests
during a wake all succeed with one start (the container created when the app went to sleep), a
deploy to a sleeping app releases without waking it and the next request gets the new release, a
wake that crashes answers 503 with the reason, and a WebSocket and a large upload sent to a
sleeping app wait through its wake; the dashboard lists the sleeps and wakes. One platform and two
apps (two builds; the second app is the stack image) for the module."""
from __future__ import annotations

import json
import os
import re
import socket
import threading

import pytest
import requests

from .conftest import httpd_app, make_app_repo, run, start_platform, stop_platform, unique_app, wait_until
from .test_e2e_router import STACK, WS_APP

pytestmark = pytest.mark.e2e

WINDOW = "3s"
# busybox httpd that refuses to start while CRASH is set (a wake that crashes)
START = ('CMD ["/bin/sh", "-c", "if [ -n \\"$CRASH\\" ]; then echo \\"boom: CRASH=$CRASH\\"; exit 3; fi; '
         'exec httpd -f -p $PORT -h /www"]\n')


def files(text: str, base: str) -> dict[str, str]:
    app = httpd_app(text, base)
    app["Dockerfile"] = app["Dockerfile"].replace('CMD ["/bin/sh", "-c", "exec httpd -f -p $PORT -h /www"]\n', START)
    return app


@pytest.fixture(scope="module")
def plat(tmp_path_factory, busybox_base):
    # a reconciler pass every second: the app is judged idle soon after its window
    p = start_platform(tmp_path_factory.mktemp("sleep"), DOCKYARD_RECONCILE_INTERVAL="1", DOCKYARD_WAKE_TIMEOUT="20")
    try:
        yield p
    finally:
        stop_platform(p)


@pytest.fixture(scope="module")
def app(plat, tmp_path_factory, busybox_base):
    name = unique_app("nap")
    repo = make_app_repo(tmp_path_factory.mktemp("nap") / name, files("page v1", busybox_base), plat)
    plat.cli("apps:create", name, cwd=repo)
    plat.git("push", "dockyard", "main", cwd=repo)
    out = plat.cli("ps:autosleep", "web", "--after", WINDOW, "-a", name).stdout
    assert "web: sleeps after 3s without a request; awake" in out
    return name, repo


def asleep(plat, name: str) -> str:
    """Wait until `ps` says web sleeps and no container of the app runs; `ps`'s output."""
    def check():
        out = plat.cli("ps", "-a", name).stdout
        return out if "web: sleeping since" in out and not plat.containers(name, running_only=True) else None
    return wait_until(check, 30, f"{name} to sleep", every=0.5)


def standbys(plat, name: str) -> list[tuple[str, str, str]]:
    """(id, release, state) of the app's containers created ahead for its next wake."""
    out = run(["docker", "ps", "-a", "--filter", f"label=dockyard.app={name}", "--filter",
               f"label=dockyard.instance={plat.name}", "--filter", "label=dockyard.standby", "--format",
               '{{.ID}} {{.Label "dockyard.release"}} {{.State}}']).stdout
    return [tuple(line.split()) for line in out.splitlines()]


def events(plat, name: str) -> str:
    return plat.cli("logs", "-a", name, "-n", "300").stdout


def woke_once(plat, name: str) -> str:
    """The app's log once its wake is recorded (after the held requests are answered); one wake."""
    def recorded():
        text = events(plat, name)
        return text if "Woke web on a request in" in text else None
    log = wait_until(recorded, 30, f"{name}'s wake in its log", every=0.5)
    assert len(re.findall(r"Woke web on a request in", log)) == 1, log
    return log


def test_sleeps_then_twenty_concurrent_requests_wake_it_with_one_start(plat, app):
    name, _ = app
    out = asleep(plat, name)
    assert "autosleep after 3s; 1 instance start on the next request" in out
    formation = json.loads(run(["curl", "-sS", "-H", f"Authorization: Bearer {plat.token()}",
                                f"{plat.api}/apps/{name}/formation"]).stdout)
    assert [(f["type"], f["quantity"], f["autosleep"]["after"]) for f in formation] == [("web", 1, "3s")]   # kept
    [(ready, version, state)] = standbys(plat, name)              # made when it went to sleep
    assert state == "created" and version == "1"
    answers: list[tuple[int, str]] = []
    threads = [threading.Thread(target=lambda: answers.append(plat.curl(name))) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(set(answers)) == [(200, "page v1")], answers
    assert [c[:12] for c in plat.containers(name)] == [ready]   # one start for twenty: the standby
    log = woke_once(plat, name)
    assert "web sleeps: no request for" in log
    dash = requests.Session()
    dash.trust_env = False
    assert dash.post(f"{plat.api}/dashboard/login", data={"token": plat.token()}, timeout=30).status_code == 200
    page = dash.get(f"{plat.api}/dashboard/apps/{name}", timeout=30).text
    shown = page[page.index('<ul id="sleep-events">'):]
    assert "Woke web on a request in" in shown and "web sleeps: no request for" in shown, shown[:2000]
    metrics = run(["curl", "-sS", "-H", f"Authorization: Bearer {plat.token()}", f"{plat.api}/metrics"]).stdout
    assert re.search(r'dockyard_app_wakes_total\{app="%s",result="ok"\} 1\.0' % name, metrics), metrics[-2000:]
    assert re.search(r'dockyard_app_sleeps_total\{app="%s",process="web"\} [1-9]' % name, metrics)   # maybe asleep again


def test_a_deploy_to_a_sleeping_app_serves_the_new_release_on_wake(plat, app, busybox_base):
    name, repo = app
    asleep(plat, name)
    make_app_repo(repo, files("page v2", busybox_base), plat)
    push = plat.git("push", "dockyard", "main", cwd=repo)
    assert "web sleeping (autosleep): v2 starts on the next request" in push.stderr + push.stdout
    assert not plat.containers(name, running_only=True)          # released without waking
    assert [(v, st) for _, v, st in standbys(plat, name)] == [("2", "created")]   # replaced by v2's
    assert plat.curl(name) == (200, "page v2")


def test_a_wake_that_crashes_answers_503_with_the_reason(plat, app):
    name, _ = app
    asleep(plat, name)
    plat.cli("config:set", "CRASH=yes", "-a", name)               # a release the wake cannot start
    assert not plat.containers(name, running_only=True)
    status, body = plat.curl(name)
    assert status == 503, body
    assert f"App {name} could not wake: web.1 exited with code 3" in body and "boom: CRASH=yes" in body, body
    assert "web: sleeping since" in plat.cli("ps", "-a", name).stdout   # asleep again: the next request retries
    plat.cli("config:unset", "CRASH", "-a", name)
    assert plat.curl(name) == (200, "page v2")


# The router tests' WebSocket echo app, answering a plain request with the size of its body.
COUNTING_APP = WS_APP.replace(
    '            if n:\n                self.rfile.read(n)\n            body = ("ws-app " + line.decode().split()[1] + "\\n").encode()',
    '            got = len(self.rfile.read(n)) if n else 0\n'
    '            body = ("ws-app %s got %d bytes\\n" % (line.decode().split()[1], got)).encode()')


@pytest.fixture(scope="module")
def ws_app(plat):
    """The stack image released as it is (no build), its program in a config var."""
    assert COUNTING_APP != WS_APP
    name = unique_app("napws")
    plat.cli("apps:create", name)
    plat.cli("config:set", f"APP_PY={COUNTING_APP}", "-a", name)
    r = requests.post(f"{plat.api}/apps/{name}/builds", json={"image": STACK, "procfile": 'web: exec python3 -c "$APP_PY"'},
                      headers={"Authorization": f"Bearer {plat.token()}"}, timeout=300)
    assert r.status_code == 201, r.text
    plat.cli("ps:autosleep", "web", "--after", WINDOW, "-a", name)
    return name


def test_a_websocket_and_a_large_upload_to_a_sleeping_app_wait_through_its_wake(plat, ws_app, tmp_path):
    from websockets.sync.client import connect
    asleep(plat, ws_app)
    body = tmp_path / "upload.bin"
    body.write_bytes(os.urandom(4 << 20))
    upload: list[str] = []
    url = f"http://{ws_app}.{plat.domain}:{plat.router_port}/upload"
    sender = threading.Thread(target=lambda: upload.append(run(
        ["curl", "-sS", "--max-time", "30", "--data-binary", f"@{body}", "-w", "\n%{http_code}", url]).stdout))
    sender.start()                                               # both arrive while it sleeps
    sock = socket.create_connection(("127.0.0.1", plat.router_port), timeout=30)
    with connect(f"ws://{ws_app}.{plat.domain}:{plat.router_port}/ws", sock=sock, open_timeout=30) as ws:
        for i in range(3):
            ws.send(f"hi {i}")
            assert ws.recv(timeout=10) == f"echo: hi {i}"
    sender.join(40)
    assert upload == [f"ws-app /upload got {4 << 20} bytes\n\n200"], upload
    woke_once(plat, ws_app)


def test_an_app_created_asleep_starts_nothing_until_its_first_request(plat, app):
    name, _ = app
    builds = json.loads(run(["curl", "-sS", "-H", f"Authorization: Bearer {plat.token()}",
                             f"{plat.api}/apps/{name}/builds"]).stdout)
    image = [b["image"] for b in builds if b["status"] == "succeeded"][-1]
    other = unique_app("bed")
    plat.cli("apps:create", other, "--autosleep", "5m")
    assert "web: sleeps after 5m without a request; sleeping since" in plat.cli("ps:autosleep", "-a", other).stdout
    status, body = plat.curl(other)
    assert status != 200 and "deploy" in body.lower(), (status, body)   # never deployed: how to deploy it
    out = plat.cli("deploy", "--image", image, "-a", other).stdout
    assert "web sleeping (autosleep): v1 starts on the next request" in out, out
    assert not plat.containers(other, running_only=True)                 # released, nothing started
    status, body = plat.curl(other)
    assert status == 200, body                                            # the first request wakes it
    assert len(plat.containers(other, running_only=True)) == 1
