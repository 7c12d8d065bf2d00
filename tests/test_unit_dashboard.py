"""Dashboard sessions in-process (Flask's test client, a real SQLite store, no engine): the
cookie's flags, CSRF on every POST, sessions ended by revoking their token."""
import re

import pytest

from controller.accounts import users as accounts
from controller.daemons.webapp import create_app
from controller.settings import from_env


@pytest.fixture()
def dash(tmp_path):
    app = create_app(from_env({"DOCKYARD_HOME": str(tmp_path), "DOCKYARD_NAME": "dyunit"}))
    store = app.extensions["dockyard"].store
    store.migrate()
    user = store.create_user("alice", is_admin=True)
    return app, store, accounts.mint_token(app.extensions["dockyard"], user)


def login(client, token):
    return client.post("/dashboard/login", data={"token": token})


def test_login_sets_a_strict_httponly_expiring_cookie(dash):
    app, _, token = dash
    c = app.test_client()
    assert c.get("/dashboard/").status_code == 302
    assert login(c, "not-a-token").status_code == 401
    r = login(c, token)
    assert r.status_code == 302
    cookie = r.headers["Set-Cookie"]
    for flag in ("HttpOnly", "SameSite=Strict", "Max-Age=43200", "Path=/dashboard"):
        assert flag in cookie
    assert token not in cookie
    page = c.get("/dashboard/")
    assert page.status_code == 200 and "alice" in page.text


def test_a_post_without_the_sessions_csrf_token_is_refused(dash):
    app, _, token = dash
    c = app.test_client()
    login(c, token)
    csrf = re.search(r'name="csrf" value="([^"]+)"', c.get("/dashboard/").text).group(1)
    assert c.post("/dashboard/logout").status_code == 403
    assert c.post("/dashboard/logout", data={"csrf": "forged"}).status_code == 403
    other = app.test_client()
    login(other, token)
    other_csrf = re.search(r'name="csrf" value="([^"]+)"', other.get("/dashboard/").text).group(1)
    assert c.post("/dashboard/logout", data={"csrf": other_csrf}).status_code == 403
    assert c.get("/dashboard/").status_code == 200           # still logged in
    assert c.post("/dashboard/logout", data={"csrf": csrf}).status_code == 302
    assert c.get("/dashboard/").status_code == 302           # logged out


def test_revoking_the_token_ends_its_sessions(dash):
    app, store, token = dash
    c = app.test_client()
    login(c, token)
    assert c.get("/dashboard/").status_code == 200
    r = app.test_client().delete("/account/token", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    assert c.get("/dashboard/").status_code == 302


def test_pages_refuse_framing_and_inline_script(dash):
    app, _, token = dash
    c = app.test_client()
    login(c, token)
    r = c.get("/dashboard/")
    assert r.headers["X-Frame-Options"] == "DENY"
    assert "script-src" not in r.headers["Content-Security-Policy"]      # default-src 'self' covers it
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    assert "<script>" not in r.text
