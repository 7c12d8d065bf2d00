"""Autosleep through the whole platform (`make up`, real git push, Docker, nginx, curl): an app
sleeps after a short window, a request wakes it and gets its page, twenty concurrent requests
during a wake all succeed with one start, a deploy to a sleeping app releases without waking it
and the next request gets the new release, and a wake that crashes answers 503 with the reason.
One platform and one app (two builds) for the module."""
from __future__ import annotations

import json
import re
import threading

import pytest

from .conftest import httpd_app, make_app_repo, run, start_platform, stop_platform, unique_app, wait_until

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


def events(plat, name: str) -> str:
    return plat.cli("logs", "-a", name, "-n", "300").stdout


def test_sleeps_then_twenty_concurrent_requests_wake_it_with_one_start(plat, app):
    name, _ = app
    out = asleep(plat, name)
    assert "autosleep after 3s; 1 instance start on the next request" in out
    formation = json.loads(run(["curl", "-sS", "-H", f"Authorization: Bearer {plat.token()}",
                                f"{plat.api}/apps/{name}/formation"]).stdout)
    assert [(f["type"], f["quantity"], f["autosleep"]["after"]) for f in formation] == [("web", 1, "3s")]   # kept
    answers: list[tuple[int, str]] = []
    threads = [threading.Thread(target=lambda: answers.append(plat.curl(name))) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(set(answers)) == [(200, "page v1")], answers
    assert len(plat.containers(name)) == 1                       # one start for twenty requests
    log = events(plat, name)
    assert len(re.findall(r"Woke web on a request in", log)) == 1, log
    assert "web sleeps: no request for" in log
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
