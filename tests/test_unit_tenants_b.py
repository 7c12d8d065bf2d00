"""Pure parts of the hostile-tenant fixes of tests/test_e2e_tenants_doors_b.py: who a name under a
custom domain belongs to, bounded whole numbers, image references, the one terminal escaping,
and the login form's origin check (Flask's test client, a real SQLite store, no engine)."""
import pytest

from cli.text import escape_control as cli_escape
from controller.accounts import users as accounts
from controller.daemons.webapp import create_app
from controller.routing.domains import claimed_by
from controller.settings import from_env
from core.errors import BadRequest
from core.names import image_ref
from core.numbers import SQL_MAX, whole_number
from core.terminal import escape_control


@pytest.mark.parametrize("held,host,expected", [
    ("shop.example", "a.shop.example", True), ("shop.example", "*.shop.example", True),
    ("shop.example", "x.y.shop.example", True), ("shop.example", "*.y.shop.example", True),
    ("shop.example", "shop.example", True), ("shop.example", "xshop.example", False),
    ("shop.example", "a.xshop.example", False), ("a.shop.example", "shop.example", False),   # the apex is not under
    ("*.shop.example", "a.shop.example", True), ("*.shop.example", "shop.example", False),
    ("a.shop.example", "*.shop.example", True)])    # a wildcard would answer for a held name
def test_names_under_a_held_domain_are_its_holders(held, host, expected):
    assert claimed_by(held, host) is expected


@pytest.mark.parametrize("raw,expected", [(3, 3), ("3", 3), (" 42 ", 42), ("+7", 7), (0, 0), (SQL_MAX, SQL_MAX),
                                          (str(SQL_MAX), SQL_MAX)])
def test_whole_numbers_within_bounds(raw, expected):
    assert whole_number(raw, "n") == expected


@pytest.mark.parametrize("raw", [10 ** 30, SQL_MAX + 1, str(10 ** 30), "9" * 5000, -1, "-1", True, 2.0, "2.0", "",
                                 None, "٣", "0x10", [], "1e3"])
def test_whole_numbers_out_of_bounds_or_not_numbers_are_400s(raw):
    with pytest.raises(BadRequest) as e:
        whole_number(raw, "lines")
    assert "lines must be a whole number from 0 to" in e.value.message


def test_whole_number_bounds_and_message():
    assert whole_number("5", "q", 1, 5) == 5
    with pytest.raises(BadRequest, match="q must be a whole number from 1 to 5"):
        whole_number(6, "q", 1, 5)
    with pytest.raises(BadRequest, match="^custom$"):
        whole_number("x", "q", message="custom")


@pytest.mark.parametrize("value,expected", [
    ("python", "python:latest"), ("python:3.12", "python:3.12"), ("127.0.0.1:5000/a/b", "127.0.0.1:5000/a/b:latest"),
    ("3f2a1b4c5d6e", "3f2a1b4c5d6e"), ("sha256:" + "a" * 64, "sha256:" + "a" * 64), ("a" * 64, "a" * 64),
    ("3f2a1b4c5d6", "3f2a1b4c5d6:latest"), ("3f2a1b4c5d6g", "3f2a1b4c5d6g:latest")])
def test_a_bare_image_id_gets_no_latest_tag(value, expected):
    assert image_ref(value) == expected


def test_one_terminal_escaping_for_the_cli_and_git():
    assert cli_escape is escape_control
    assert escape_control("\x1b]0;pwned\x07\x1b[2J\x9b31m\rok\tok\n") == "\\x1b]0;pwned\\x07\\x1b[2J\\x9b31m\\x0dok\tok\n"


@pytest.fixture()
def dash(tmp_path):
    app = create_app(from_env({"DOCKYARD_HOME": str(tmp_path), "DOCKYARD_NAME": "dyunit"}))
    store = app.extensions["dockyard"].store
    store.migrate()
    return app, accounts.mint_token(app.extensions["dockyard"], store.create_user("bob"))


@pytest.mark.parametrize("headers,status", [
    ({}, 302), ({"Origin": "http://localhost"}, 302), ({"Referer": "http://localhost/dashboard/login"}, 302),
    ({"Origin": "http://evil.example"}, 403), ({"Origin": "null"}, 403), ({"Referer": "http://evil.example/"}, 403),
    ({"Origin": "http://evil.example", "Referer": "http://localhost/dashboard/login"}, 403),
    ({"Origin": "http://localhost:1"}, 403), ({"Referer": "http://[::1/"}, 403)])
def test_login_is_accepted_only_from_the_dashboards_own_pages(dash, headers, status):
    app, token = dash
    r = app.test_client().post("/dashboard/login", data={"token": token}, headers=headers)
    assert r.status_code == status
    assert ("Set-Cookie" in r.headers) is (status == 302)
    if status == 403:
        assert "another site" in r.text and "nobody was" in r.text
