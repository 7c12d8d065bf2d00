"""The dashboard in a real browser (headless Debian Chromium driven by Selenium) against a
real platform; metrics, Prometheus and a log drain received by a syslog listener the test
starts. One platform for the module (sampling every second so charts fill quickly).
Screenshots of each page go to $DOCKYARD_TEST_OUTPUT (default test-output/) /dashboard."""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
import requests

from .conftest import ROOT, make_app_repo, start_platform, stop_platform, unique_app

pytestmark = pytest.mark.e2e

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

SCRAPER_TOKEN = "scrape-" + os.urandom(8).hex()
OUT = Path(os.environ.get("DOCKYARD_TEST_OUTPUT", ROOT / "test-output")) / "dashboard"
# prints a line every second (with the time) while busybox httpd serves index.html
TICKER = ('CMD ["/bin/sh", "-c", "httpd -p $PORT -h /www; i=0; while true; do i=$((i+1)); '
          'echo printed-at $(date +%s) n=$i; sleep 1; done"]\n')


def app_files(text: str) -> dict[str, str]:
    return {"Dockerfile": f"FROM dockyard-test/busybox:1\nCOPY index.html /www/index.html\n{TICKER}",
            "index.html": text}


def collector_address() -> str:
    """This host's own non-loopback address (the one its default route uses) for the test's
    syslog collector: drains never reach loopback, and reach a private address only when the
    operator names it (DOCKYARD_DRAIN_PRIVATE_HOSTS)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("203.0.113.1", 9))   # sends nothing: picks the route's source address
        return s.getsockname()[0]


COLLECTOR = collector_address()


@pytest.fixture(scope="module")
def plat(tmp_path_factory, busybox_base):
    p = start_platform(tmp_path_factory.mktemp("dash"), DOCKYARD_METRICS_INTERVAL="1",
                       DOCKYARD_METRICS_TOKEN=SCRAPER_TOKEN, DOCKYARD_DRAIN_PRIVATE_HOSTS=COLLECTOR)
    try:
        yield p
    finally:
        stop_platform(p)


@pytest.fixture(scope="module")
def deployed(plat, tmp_path_factory):
    """An app with two releases serving "one" then "two"."""
    name = unique_app("dash")
    repo = tmp_path_factory.mktemp("repo") / name
    plat.cli("apps:create", name)
    make_app_repo(repo, app_files("one"), plat)
    plat.cli("git:remote", "-a", name, cwd=repo)
    plat.git("push", "dockyard", "main", cwd=repo)
    make_app_repo(repo, app_files("two"), plat)
    plat.git("push", "dockyard", "main", cwd=repo)
    assert plat.curl(name)[1].strip() == "two"
    return name


@pytest.fixture(scope="module")
def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,1000"):
        opts.add_argument(flag)
    os.environ.setdefault("SE_OFFLINE", "true")   # never let Selenium Manager fetch a driver
    driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService("/usr/bin/chromedriver"))
    driver.set_page_load_timeout(120)
    OUT.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def shot(driver, name: str) -> None:
    driver.save_screenshot(str(OUT / f"{name}.png"))


def wait(driver, cond, timeout=60, what=""):
    """Until `cond(driver)` is true. A page that refreshes a part of itself (instances, logs)
    replaces its elements: one read across a refresh is stale, the next poll reads again."""
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.5,
                             ignored_exceptions=(StaleElementReferenceException,)).until(lambda d: cond(d))
    except TimeoutException:
        shot(driver, "timeout-" + re.sub(r"\W+", "-", what)[:40])
        raise AssertionError(f"timed out waiting for {what}")


def login(driver, plat, token: str) -> None:
    driver.get(plat.api + "/dashboard/")
    driver.delete_all_cookies()   # a test that failed before may have left its session signed in
    driver.get(plat.api + "/dashboard/")
    wait(driver, lambda d: d.find_elements(By.NAME, "token"), what="login form")
    driver.find_element(By.NAME, "token").send_keys(token)
    driver.find_element(By.ID, "login").click()
    wait(driver, lambda d: d.find_elements(By.ID, "apps"), what="apps list")


def new_user(plat, name: str) -> str:
    r = requests.post(plat.api + "/users", json={"name": name},
                      headers={"Authorization": f"Bearer {plat.token()}"}, timeout=30)
    assert r.status_code == 201, r.text
    return r.json()["token"]


def session_for(plat, token: str) -> requests.Session:
    """A session logged in through the form, as a browser would (cookie checked on the way)."""
    s = requests.Session()
    s.trust_env = False
    r = s.post(plat.api + "/dashboard/login", data={"token": token}, allow_redirects=False, timeout=30)
    assert r.status_code == 302, r.text
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Max-Age=" in cookie, cookie
    return s


def test_browser_login_scale_logs_charts_rollback(plat, deployed, browser):
    d = browser
    assert f"{plat.api}/dashboard/" in "".join(plat.up_output)     # make up prints the URL
    login(d, plat, plat.token())
    row = d.find_element(By.CSS_SELECTOR, f'tr[data-app="{deployed}"]')
    assert "v" in row.text and "web=1" in row.text
    shot(d, "apps")

    # scale to 2 and see two instances
    d.find_element(By.LINK_TEXT, deployed).click()
    wait(d, lambda d: d.find_elements(By.ID, "formation"), what="app page")
    qty = d.find_element(By.CSS_SELECTOR, 'tr[data-type="web"] input[name=quantity]')
    qty.clear()
    qty.send_keys("2")
    d.find_element(By.CSS_SELECTOR, 'tr[data-type="web"] button.scale').click()
    wait(d, lambda d: d.find_elements(By.ID, "message"), 120, "the scale's answer")

    def two_up(d):
        """The page shows the engine's instances as it rendered: the previous release's instance,
        stopping in the background since the fixture's second push, may still be listed; look again."""
        if [r.find_element(By.CSS_SELECTOR, ".state").text
                for r in d.find_elements(By.CSS_SELECTOR, "#instances tr.instance")] == ["up", "up"]:
            return True
        d.get(plat.api + f"/dashboard/apps/{deployed}")
        return False
    wait(d, two_up, 120, "two instances up")
    labels = wait(d, lambda d: sorted(r.get_attribute("data-instance")
                                      for r in d.find_elements(By.CSS_SELECTOR, "#instances tr.instance")), 10, "labels")
    assert labels == ["web.1", "web.2"]

    # a line the app prints now appears in the live log
    d.get(plat.api + f"/dashboard/apps/{deployed}#logs")
    opened = int(time.time())

    def fresh_line(d):
        text = d.find_element(By.ID, "log-lines").text
        return any(int(n) > opened + 1 for n in re.findall(r"printed-at (\d+)", text))
    wait(d, fresh_line, 60, "a freshly printed line in the live log")

    # traffic through the router, then a chart with data
    for _ in range(30):
        plat.curl(deployed)
    deadline = time.time() + 90
    while time.time() < deadline:
        d.get(plat.api + f"/dashboard/apps/{deployed}")
        try:
            wait(d, lambda d: d.find_element(By.ID, "metrics").get_attribute("data-loaded") == "1", 20, "metrics")
        except AssertionError:
            continue
        cpu = int(d.find_element(By.ID, "chart-cpu").get_attribute("data-points") or 0)
        req = int(d.find_element(By.ID, "chart-req").get_attribute("data-points") or 0)
        if cpu >= 3 and req >= 1:
            break
        time.sleep(3)
    else:
        raise AssertionError("the charts got no data")
    assert d.find_elements(By.CSS_SELECTOR, "#chart-cpu canvas") and d.find_elements(By.CSS_SELECTOR, "#chart-req canvas")
    d.execute_script("document.getElementById('metrics').scrollIntoView()")
    shot(d, "app-metrics")
    d.execute_script("window.scrollTo(0, 0)")
    shot(d, "app")
    d.set_window_size(390, 844)    # a phone's width: the page still lays out in one column
    width = d.execute_script("return document.documentElement.scrollWidth")
    shot(d, "app-phone")
    d.set_window_size(1280, 1000)
    assert width <= 400, f"the app page is {width}px wide at a phone's width"

    # roll back to the previous release (confirm), then the router serves it
    current = wait(d, lambda d: max(int(r.get_attribute("data-version"))
                                    for r in d.find_elements(By.CSS_SELECTOR, "#release-list tr[data-version]")),
                   10, "releases")
    target = wait(d, lambda d: next(int(r.get_attribute("data-version"))
                                    for r in d.find_elements(By.CSS_SELECTOR, "#release-list tr[data-version]")
                                    if r.find_elements(By.CSS_SELECTOR, "button.rollback")
                                    and int(r.get_attribute("data-version")) < current and "Deploy" in r.text),
                  10, "a release to roll back to")
    d.find_element(By.CSS_SELECTOR, f'#release-list tr[data-version="{target}"] button.rollback').click()
    d.switch_to.alert.accept()
    wait(d, lambda d: d.find_elements(By.ID, "message") and "Rolled back" in d.find_element(By.ID, "message").text,
         180, "rollback message")
    assert plat.curl(deployed)[1].strip() == "one"

    # config: values hidden until revealed; an edit asks first, then makes a release
    d.get(plat.api + f"/dashboard/apps/{deployed}#config")
    form = d.find_element(By.CSS_SELECTOR, "#config form")
    form.find_element(By.NAME, "key").send_keys("GREETING")
    form.find_element(By.NAME, "value").send_keys("s3cret-value")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    d.switch_to.alert.accept()
    wait(d, lambda d: d.find_elements(By.ID, "message") and "Set GREETING" in d.find_element(By.ID, "message").text,
         180, "config set")
    row = d.find_element(By.CSS_SELECTOR, '#config-list tr[data-key="GREETING"]')
    assert "s3cret-value" not in d.page_source and "••" in row.text
    d.find_element(By.ID, "reveal").click()
    wait(d, lambda d: "s3cret-value" in row.text, 30, "revealed value")
    shot(d, "config")

    # build output, admin pages
    d.get(plat.api + f"/dashboard/apps/{deployed}#builds")
    wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#builds li a"), 30, "the build list")[0].click()
    wait(d, lambda d: d.find_elements(By.ID, "build-output"), what="build page")
    assert d.find_element(By.ID, "build-output").text.strip()
    shot(d, "build")
    d.get(plat.api + "/dashboard/admin/")
    wait(d, lambda d: d.find_elements(By.ID, "app-shares"), what="admin page")
    assert deployed in d.find_element(By.ID, "app-shares").text
    audit = d.find_element(By.ID, "audit").text
    assert "rollback" in audit and "ps:scale" in audit and "release=" in audit and "config:set" in audit
    assert "s3cret-value" not in d.page_source
    shot(d, "admin")
    d.execute_script("document.documentElement.dataset.theme = 'dark'")
    d.get(plat.api + f"/dashboard/apps/{deployed}")
    wait(d, lambda d: d.find_element(By.ID, "metrics").get_attribute("data-loaded") == "1", 30, "charts")
    d.find_element(By.ID, "theme-toggle").click()
    assert d.execute_script("return document.documentElement.dataset.theme") in ("light", "dark")
    wait(d, lambda d: d.find_element(By.ID, "metrics").get_attribute("data-loaded") == "1", 30, "charts redrawn")
    shot(d, "app-toggled-theme")
    if os.environ.get("DOCKYARD_UPDATE_DOCS"):   # the README's screenshot, refreshed on request only
        docs = ROOT / "docs"
        docs.mkdir(exist_ok=True)
        shutil.copy(OUT / "app-metrics.png", docs / "dashboard.png")


def test_other_team_sees_nothing_and_forged_posts_are_refused(plat, deployed, browser):
    bob_token = new_user(plat, "bob" + unique_app("")[1:])
    bob = session_for(plat, bob_token)
    apps = bob.get(plat.api + "/dashboard/", timeout=30)
    assert apps.status_code == 200 and deployed not in apps.text
    page = bob.get(plat.api + f"/dashboard/apps/{deployed}", timeout=30)
    assert page.status_code == 404 and "v1" not in page.text and "web.1" not in page.text
    for path in ("metrics.json", "config.json", "logs/stream"):
        assert bob.get(plat.api + f"/dashboard/apps/{deployed}/{path}", timeout=30).status_code == 404
    csrf = re.search(r'name="csrf" value="([^"]+)"', apps.text).group(1)
    r = bob.post(plat.api + f"/dashboard/apps/{deployed}/scale", data={"csrf": csrf, "type": "web", "quantity": "0"},
                 timeout=30)
    assert r.status_code == 404

    # the admin's own session, but a POST without the CSRF token (or with another session's)
    admin = session_for(plat, plat.token())
    before = requests.get(plat.api + f"/apps/{deployed}/formation", timeout=30,
                          headers={"Authorization": f"Bearer {plat.token()}"}).json()
    for forged in ({"type": "web", "quantity": "0"}, {"type": "web", "quantity": "0", "csrf": csrf}):
        r = admin.post(plat.api + f"/dashboard/apps/{deployed}/scale", data=forged, timeout=30)
        assert r.status_code == 403 and "CSRF" in r.text
    after = requests.get(plat.api + f"/apps/{deployed}/formation", timeout=30,
                         headers={"Authorization": f"Bearer {plat.token()}"}).json()
    assert after == before

    # revoking the token (auth:logout) ends its dashboard sessions
    r = requests.delete(plat.api + "/account/token", headers={"Authorization": f"Bearer {bob_token}"}, timeout=30)
    assert r.status_code == 200, r.text
    r = bob.get(plat.api + "/dashboard/", allow_redirects=False, timeout=30)
    assert r.status_code == 302 and "/dashboard/login" in r.headers["Location"]

    # and in the browser: bob's apps list shows nothing of the admin's app
    browser.delete_all_cookies()
    login(browser, plat, new_user(plat, "carol" + unique_app("")[1:]))
    assert deployed not in browser.page_source
    shot(browser, "other-user-apps")
    browser.get(plat.api + f"/dashboard/apps/{deployed}")
    assert "web.1" not in browser.page_source
    shot(browser, "other-user-404")


class SyslogListener:
    """A TCP syslog receiver (RFC 6587 octet counting) on loopback, started by the test."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind((COLLECTOR, 0))
        self.sock.listen(5)
        self.port = self.sock.getsockname()[1]
        self.messages: list[str] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn):
        buf = b""
        with conn:
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
                while b" " in buf:
                    length, _, rest = buf.partition(b" ")
                    if len(rest) < int(length):
                        break
                    self.messages.append(rest[:int(length)].decode())
                    buf = rest[int(length):]

    def close(self):
        self.sock.close()


def test_metrics_cli_prometheus_and_a_syslog_drain(plat, deployed):
    listener = SyslogListener()
    dead = socket.socket()
    dead.bind((COLLECTOR, 0))
    dead_port = dead.getsockname()[1]
    dead.close()                                  # nothing listens there: a dead drain
    try:
        plat.cli("drains:add", "-a", deployed, f"syslog://{COLLECTOR}:{dead_port}")
        plat.cli("drains:add", "-a", deployed, f"syslog://{COLLECTOR}:{listener.port}")
        bad = plat.cli("drains:add", "-a", deployed, "ftp://x", check=False)
        assert bad.returncode != 0 and "syslog://HOST:PORT" in bad.stderr
        started = time.time()
        deadline = started + 60
        while time.time() < deadline:
            plat.curl(deployed, "/drain-probe")
            app_lines = [m for m in listener.messages if f" {deployed} web." in m and "printed-at" in m]
            router_lines = [m for m in listener.messages if f" {deployed} router " in m and "/drain-probe" in m]
            if app_lines and router_lines:
                break
            time.sleep(1)
        else:
            raise AssertionError(f"drain received {listener.messages[:5]}")
        assert re.match(r"^<\d+>1 \d{4}-\d\d-\d\dT\S+ \S+ " + re.escape(deployed) + r" web\.\d ", app_lines[0])
        # the dead drain did not hold the live one back, and says why it is failing
        assert time.time() - started < 30
        listing = plat.cli("drains", "-a", deployed).stdout
        assert f"{COLLECTOR}:{dead_port}" in listing and "ConnectionRefused" in listing
        plat.cli("drains:remove", "-a", deployed, f"syslog://{COLLECTOR}:{dead_port}")
        assert f"{COLLECTOR}:{dead_port}" not in plat.cli("drains", "-a", deployed).stdout
    finally:
        listener.close()

    out = plat.cli("metrics", "-a", deployed, "--since", "1h").stdout
    assert re.search(r"web\.1\s+\d+\.\d", out), out
    data = json.loads(plat.cli("metrics", "-a", deployed, "--json").stdout)
    assert data["summary"]["requests"] > 0 and data["samples"] and data["releases"]
    assert {"p50_ms", "p95_ms", "p99_ms", "s2xx", "version"} <= set(data["requests"][0])

    r = requests.get(plat.api + "/metrics", timeout=30)
    assert r.status_code == 401
    r = requests.get(plat.api + "/metrics", headers={"Authorization": f"Bearer {plat.token()}"}, timeout=30)
    assert r.status_code == 200 and f'dockyard_instance_cpu_seconds_total{{app="{deployed}",dyno="web.1",process="web"}}' in r.text
    assert f'dockyard_http_requests_total{{app="{deployed}",process="web",status_class="2xx"}}' in r.text
    scraped = requests.get(plat.api + "/metrics", headers={"Authorization": f"Bearer {SCRAPER_TOKEN}"}, timeout=30)
    assert scraped.status_code == 200 and "dockyard_instance_memory_bytes" in scraped.text
    # the scraper's token opens /metrics only
    assert requests.get(plat.api + "/apps", headers={"Authorization": f"Bearer {SCRAPER_TOKEN}"},
                        timeout=30).status_code == 401
