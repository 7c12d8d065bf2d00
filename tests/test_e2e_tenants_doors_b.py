"""More of the hostile-tenant suite (see test_e2e_tenants.py): `bob`, a plain user, against
`alice`, another one, on one real platform (`make up`, gunicorn, Docker, nginx, sshd, git,
headless Chromium). Taking names under another tenant's custom domain, learning who owns an
add-on, integers SQLite cannot hold, terminal escapes in build output reaching `git push`,
logging a browser into the attacker's account from another site, and error hints that send
the user the wrong way. The module adds its attacks to the suite's tally and prints it."""
from __future__ import annotations

import http.server
import os
import re
import secrets
import threading

import pytest
import requests

from .conftest import BUSYBOX_BASE, make_app_repo, run, start_platform, stop_platform
from .test_e2e_access import new_user
from .test_e2e_tenants import TALLY, attack, new_app, push

pytestmark = pytest.mark.e2e
HUGE = 10 ** 30                      # far past SQLite's 64-bit integers


@pytest.fixture(scope="module")
def plat(tmp_path_factory, busybox_base):
    # The CLI adds git remotes and credential helpers to the repository it runs in: the module's
    # commands run outside any checkout, so they never write to this one's git config.
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path_factory.mktemp("cwd"))
        p = start_platform(tmp_path_factory.mktemp("tenants-b"))
        try:
            yield p
        finally:
            stop_platform(p)
            print(f"\nhostile-tenant attacks tried: {TALLY['tried']}, held: {TALLY['held']}")


def _dockerfile(title: str) -> str:
    """A busybox web app whose build prints an OSC title write, a screen clear and a C1 CSI."""
    return (f"FROM {BUSYBOX_BASE}\nCOPY index.html /www/index.html\n"
            f'RUN printf "\\033]0;{title}\\007\\033[2J\\302\\23331m{title}-done\\n"\n'
            'CMD ["/bin/sh", "-c", "exec httpd -f -p $PORT -h /www"]\n')


@pytest.fixture(scope="module")
def world(plat, tmp_path_factory):
    """alice with an app (`shop`) and a custom domain; bob with an app deployed over HTTP."""
    base = tmp_path_factory.mktemp("tenant-b-users")
    alice, bob = new_user(plat, base, "alice"), new_user(plat, base, "bob")
    w = {"alice": alice, "bob": bob, "base": base, "shop": new_app(alice, "shop"),
         "corp": f"shop-{secrets.token_hex(3)}.example", "mine": new_app(bob, "mine")}
    r = alice.api("POST", f"/apps/{w['shop']}/domains", json={"hostname": w["corp"]})
    assert r.status_code == 201, r.text
    w["repo"] = make_app_repo(base / "mine", {"Dockerfile": _dockerfile("pwned-http"), "index.html": "bob\n"}, plat)
    w["push"] = push(bob, plat, w["mine"], w["repo"])
    assert "is live" in w["push"].stderr, w["push"].stderr
    return w


# ---- 7. names under another tenant's custom domain are theirs ------------------------------
def test_names_under_a_custom_domain_belong_to_its_owner(plat, world):
    w, a, b = world, world["alice"], world["bob"]
    for host in (f"a.{w['corp']}", f"*.{w['corp']}", f"x.y.{w['corp']}", f"*.y.{w['corp']}"):
        with attack(f"claim {host} under another tenant's {w['corp']}"):
            r = b.api("POST", f"/apps/{w['mine']}/domains", json={"hostname": host})
            assert r.status_code == 409, (host, r.status_code, r.text)
            assert "belong to its owner" in r.json()["message"], r.text
            assert w["corp"] in r.json()["message"] and w["shop"] not in r.text, r.text
    assert [d["hostname"] for d in b.api("GET", f"/apps/{w['mine']}/domains").json()] == [
        f"{w['mine']}.{plat.domain}"]
    # a request for a name under alice's domain reaches no app of bob's
    r = requests.get(f"http://127.0.0.1:{plat.router_port}/", headers={"Host": f"a.{w['corp']}"}, timeout=30)
    assert "bob" not in r.text, (r.status_code, r.text)
    # the owner may add names under her own domain; a look-alike is someone else's name
    assert a.api("POST", f"/apps/{w['shop']}/domains", json={"hostname": f"a.{w['corp']}"}).status_code == 201
    assert b.api("POST", f"/apps/{w['mine']}/domains", json={"hostname": f"a.x{w['corp']}"}).status_code == 201


# ---- 8. an add-on's name says nothing about its owner ---------------------------------------
def test_another_tenants_addon_answers_as_a_name_that_does_not_exist(plat, world):
    w, a, b = world, world["alice"], world["bob"]
    a.cli("addons:create", "redis", "-a", w["shop"], "--memory", "64")
    (mine,) = [x["name"] for x in a.api("GET", f"/apps/{w['shop']}/addons").json()]
    ghost = "x" * len(mine)                       # a name nobody has, of the same length

    def same(method: str, path: str, **kw) -> None:
        real = b.api(method, path.format(addon=mine), **kw)
        none = b.api(method, path.format(addon=ghost), **kw)
        assert real.status_code == none.status_code, (path, real.status_code, real.text, none.text)
        assert real.text.replace(mine, "NAME") == none.text.replace(ghost, "NAME"), (path, real.text, none.text)
        assert w["shop"] not in real.text and "alice" not in real.text, real.text

    routes = [("PUT", "/apps/{mine}/addons/{{addon}}/attachment", {"json": {}}),
              ("PUT", "/apps/{mine}/addons/{{addon}}/attachment", {"json": {"as": "STOLEN"}}),
              ("GET", "/apps/{mine}/addons/{{addon}}", {}),
              ("PATCH", "/apps/{mine}/addons/{{addon}}", {"json": {"memory_mb": 128}}),
              ("DELETE", "/apps/{mine}/addons/{{addon}}/attachment", {}),
              ("POST", "/apps/{mine}/addons/{{addon}}/backups", {})]
    for method, path, kw in routes:
        path = path.format(mine=w["mine"])
        with attack(f"{method} {path.format(addon='ADDON')} {kw or ''} with another tenant's add-on name"):
            same(method, path, **kw)
    with attack("addons:attach of another tenant's add-on (CLI)"):
        real = b.cli("addons:attach", mine, "-a", w["mine"], check=False)
        none = b.cli("addons:attach", ghost, "-a", w["mine"], check=False)
        assert real.returncode == none.returncode != 0
        assert real.stderr.replace(mine, "NAME") == none.stderr.replace(ghost, "NAME"), (real.stderr, none.stderr)
    assert not any(x["name"] == mine for x in b.api("GET", f"/apps/{w['mine']}/addons").json())


# ---- 10. integers past what SQLite holds: 400/404 JSON, never a 500 page --------------------
def _json_refusal(r) -> dict:
    assert r.status_code in (400, 404), (r.status_code, r.text[:300])
    assert r.headers["Content-Type"].startswith("application/json"), r.headers["Content-Type"]
    return r.json()


def test_huge_integers_are_refused_as_json(plat, world):
    w, b = world, world["bob"]
    app = w["mine"]
    for version in (str(HUGE), f"v{HUGE}", str(2 ** 63), "9" * 5000, "-1"):
        with attack(f"GET /releases/{version[:24]}"):
            _json_refusal(b.api("GET", f"/apps/{app}/releases/{version}"))
    for value in (HUGE, str(HUGE), f"v{HUGE}", -HUGE, 2 ** 63):
        with attack(f"rollback to {str(value)[:24]}"):
            _json_refusal(b.api("POST", f"/apps/{app}/releases", json={"release": value}))
    for path in (f"/apps/{app}/logs?lines={HUGE}", f"/apps/{app}/logs?lines=-{HUGE}",
                 f"/apps/{app}/logs?lines={'9' * 5000}"):
        with attack(f"GET {path[:60]}"):
            r = b.api("GET", path)
            assert r.status_code in (200, 400) and r.headers["Content-Type"].startswith("application/json"), r.text
    with attack("scale to a huge quantity"):
        r = b.api("PATCH", f"/apps/{app}/formation", json={"updates": [{"type": "web", "quantity": HUGE}]})
        _json_refusal(r)
    with attack("metrics since a 5,000-digit number of minutes"):
        _json_refusal(b.api("GET", f"/apps/{app}/metrics?since={'9' * 5000}m"))
    with attack("a router timeout of 5,000 digits"):
        _json_refusal(b.api("PATCH", f"/apps/{app}/router", json={"settings": {"read-timeout": "9" * 5000}}))
    with attack("an add-on of a huge memory_mb"):
        _json_refusal(b.api("POST", f"/apps/{app}/addons", json={"service": "redis", "memory_mb": HUGE}))
    s = dashboard_session(plat, b.token)
    page = s.get(f"{plat.api}/dashboard/apps/{app}", timeout=30).text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    for form, value in (("rollback", "version"), ("scale", "quantity")):
        with attack(f"dashboard {form} with {value}={HUGE}"):
            r = s.post(f"{plat.api}/dashboard/apps/{app}/{form}", timeout=30, allow_redirects=False,
                       data={"csrf": csrf, value: str(HUGE), "type": "web"})
            assert r.status_code in (302, 400, 404) and "Internal Server Error" not in r.text, (r.status_code, r.text)
    assert b.api("GET", f"/apps/{app}/releases/1").status_code == 200        # an ordinary number still works


def dashboard_session(plat, token: str) -> requests.Session:
    """Logged in through the form, from the dashboard's own page (as a browser would)."""
    s = requests.Session()
    s.trust_env = False
    s.get(f"{plat.api}/dashboard/login", timeout=30)
    r = s.post(f"{plat.api}/dashboard/login", data={"token": token}, allow_redirects=False, timeout=30,
               headers={"Origin": plat.api, "Referer": f"{plat.api}/dashboard/login"})
    assert r.status_code == 302, r.text
    return s


# ---- 11. a build cannot drive the pusher's terminal -----------------------------------------
def _shows_escaped(stderr: str, title: str) -> None:
    assert "\x1b" not in stderr and "\x07" not in stderr and "\x9b" not in stderr, repr(stderr[-2000:])
    assert f"\\x1b]0;{title}\\x07" in stderr and f"{title}-done" in stderr, stderr[-2000:]


def test_build_output_reaches_git_push_escaped(plat, world):
    w, b = world, world["bob"]
    with attack("terminal escapes from a RUN step through git push over HTTP"):
        _shows_escaped(w["push"].stderr, "pwned-http")
    with attack("terminal escapes from a RUN step through git push over SSH"):
        b.cli("keys:add", str(b.key) + ".pub")
        make_app_repo(w["repo"], {"Dockerfile": _dockerfile("pwned-ssh")}, plat)
        url = f"ssh://git@127.0.0.1:{plat.env['DOCKYARD_SSH_PORT']}/{w['mine']}.git"
        proc = b.git("push", url, "HEAD:main", cwd=w["repo"], check=False)
        assert "is live" in proc.stderr, proc.stderr
        _shows_escaped(proc.stderr, "pwned-ssh")


# ---- 12. login CSRF: another site cannot log a browser into the attacker's account ----------
class _EvilPage(http.server.BaseHTTPRequestHandler):
    page = b""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(self.page)))
        self.end_headers()
        self.wfile.write(self.page)

    def log_message(self, *args):
        pass


@pytest.fixture()
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update", "--disable-dev-shm-usage"):
        opts.add_argument(flag)
    os.environ.setdefault("SE_OFFLINE", "true")   # never let Selenium Manager fetch a driver
    driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService("/usr/bin/chromedriver"))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def test_login_form_posted_from_another_site_is_refused(plat, world, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    b = world["bob"]
    # bob's page on another site (evil.localhost resolves to loopback in Chromium) posts his
    # token to the platform's login form as soon as alice's browser opens it
    _EvilPage.page = (f'<form id="f" method="post" action="{plat.api}/dashboard/login">'
                      f'<input name="token" value="{b.token}"></form>'
                      '<script>document.getElementById("f").submit()</script>').encode()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EvilPage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with attack("a cross-site form logging the victim's browser into the attacker's account"):
            browser.get(f"http://evil.localhost:{server.server_address[1]}/")
            WebDriverWait(browser, 30).until(lambda d: d.current_url.startswith(plat.api))
            assert not any(c["name"] == "dockyard_session" for c in browser.get_cookies()), browser.get_cookies()
            browser.get(f"{plat.api}/dashboard/")
            WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.NAME, "token"))
            assert world["mine"] not in browser.page_source
        # the dashboard's own login form, in the same browser, still logs in
        browser.find_element(By.NAME, "token").send_keys(b.token)
        browser.find_element(By.ID, "login").click()
        WebDriverWait(browser, 30).until(lambda d: world["mine"] in d.page_source)
    finally:
        server.shutdown()
        server.server_close()
    for what, headers in (("an Origin of another site", {"Origin": "http://evil.localhost:1"}),
                          ("a null Origin", {"Origin": "null"}),
                          ("only a Referer of another site", {"Referer": "http://evil.localhost:1/x"})):
        with attack(f"login POST with {what}"):
            r = requests.post(f"{plat.api}/dashboard/login", data={"token": b.token}, headers=headers,
                              allow_redirects=False, timeout=30)
            assert r.status_code == 403 and "Set-Cookie" not in r.headers, (r.status_code, r.headers)
    # the dashboard's own form still logs in, and so does a client that sends neither header
    assert dashboard_session(plat, b.token).get(f"{plat.api}/dashboard/", timeout=30).status_code == 200
    r = requests.post(f"{plat.api}/dashboard/login", data={"token": b.token}, allow_redirects=False, timeout=30)
    assert r.status_code == 302 and "dockyard_session=" in r.headers["Set-Cookie"]


# ---- 14. every hint names what actually fixes it -------------------------------------------
def test_error_hints_name_the_real_fix(plat, world):
    w, a, b = world, world["alice"], world["bob"]
    own = b.api("GET", f"/apps/{w['mine']}/releases").json()[-1]["image"]
    with attack("an admin-only action's hint"):
        for method, path, kw in (("POST", "/images/allowed", {"json": {"image": own}}), ("GET", "/audit", {}),
                                 ("POST", "/users", {"json": {"name": "eve"}})):
            r = b.api(method, path, **kw)
            assert r.status_code == 403, (path, r.text)
            assert "admin" in r.json()["fix"] and "owner" not in r.json()["fix"], (path, r.json())
    with attack("image_not_allowed's hint"):
        r = a.api("POST", f"/apps/{w['shop']}/builds", json={"image": own})
        assert r.status_code == 403 and r.json()["id"] == "image_not_allowed", r.text
        assert "images:allow" in r.json()["fix"] and "owner" not in r.json()["fix"], r.json()
    with attack("a missing image's hint"):
        r = b.api("POST", f"/apps/{w['mine']}/builds", json={"image": f"nosuch-{secrets.token_hex(3)}:1"})
        assert r.status_code == 404 and "dockyard apps" not in r.json()["fix"], r.json()
        assert "docker images" in r.json()["fix"] and "docker load" in r.json()["fix"], r.json()
    with attack("a domain conflict's hint"):
        r = b.api("POST", f"/apps/{w['mine']}/domains", json={"hostname": w["corp"]})
        assert r.status_code == 409 and "try again" not in r.json()["fix"], r.json()
        assert "another hostname" in r.json()["fix"] and "domains:remove" in r.json()["fix"], r.json()
    with attack("deploy by a bare image id"):
        image_id = run(["docker", "image", "inspect", "-f", "{{.Id}}", own]).stdout.strip()
        short = image_id.removeprefix("sha256:")[:12]
        r = b.api("POST", f"/apps/{w['mine']}/builds", json={"image": short})
        assert r.status_code == 201, r.text
        assert ":latest" not in r.text, r.text
    with attack("a bare image id of another tenant's image"):
        r = a.api("POST", f"/apps/{w['shop']}/builds", json={"image": short})
        assert r.status_code == 403 and r.json()["id"] == "image_not_allowed", r.text
