"""The `dockyard` client without a platform: escaping of app output, the one-off command
line, process ages, where the API is, ~/.netrc handling, the explicit token against a stray
~/.netrc entry (on a local HTTP server), and the package's independence from the server."""
from __future__ import annotations

import ast
import http.server
import json
import shlex
import stat
import threading
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from cli import client, logs, ps, releases, routing
from cli.main import cli
from cli.text import command_line, escape_control, format_age

ROOT = Path(__file__).resolve().parent.parent


# ---- escaping what apps print -------------------------------------------------------------
def test_control_characters_are_shown_escaped():
    osc52 = "\x1b]52;c;aGFja2Vk\x07"      # "write 'hacked' to the clipboard"
    assert escape_control(f"before {osc52} after") == "before \\x1b]52;c;aGFja2Vk\\x07 after"
    assert escape_control("\x1b[2J\x1b[31mred\r\x7f\x9b\x00") == "\\x1b[2J\\x1b[31mred\\x0d\\x7f\\x9b\\x00"
    assert escape_control("tab\tnew\nline, ünïcode ✓ 漢字") == "tab\tnew\nline, ünïcode ✓ 漢字"
    assert "\x1b" not in escape_control("".join(map(chr, range(0x00, 0xA0))))


def _fake_api(monkeypatch, module, answers: dict):
    def call(method, path, body=None, params=None, auth=None, timeout=3600):
        return answers[(method, path.split("?")[0])]
    monkeypatch.setattr(module, "call", call)


def test_logs_escape_control_characters_unless_raw(monkeypatch):
    message = "hi \x1b]52;c;eA==\x07 \x1b[31mred"
    rows = [{"at": "2026-11-30T23:05:58.1", "source": "app", "process": "web.1", "message": message}]
    _fake_api(monkeypatch, logs, {("GET", "/apps/shop/logs"): rows})
    out = CliRunner().invoke(cli, ["logs", "-a", "shop"]).output
    assert out == "2026-11-30T23:05:58.1 app[web.1]: hi \\x1b]52;c;eA==\\x07 \\x1b[31mred\n"
    raw = CliRunner().invoke(cli, ["logs", "-a", "shop", "--raw"]).output    # not a terminal either
    assert raw == f"2026-11-30T23:05:58.1 app[web.1]: {message}\n"


def test_build_output_is_escaped_unless_raw(monkeypatch):
    build = {"id": "b1", "status": "succeeded", "method": "dockerfile", "source_commit": "c" * 40,
             "image": "i", "error": None, "output": "step\n\x1b]0;pwned\x07done"}
    _fake_api(monkeypatch, releases, {("GET", "/apps/shop/builds/b1"): build})
    assert CliRunner().invoke(cli, ["builds:output", "b1", "-a", "shop"]).output == "step\n\\x1b]0;pwned\\x07done\n"
    assert CliRunner().invoke(cli, ["builds:output", "b1", "-a", "shop", "--raw"]).output == build["output"] + "\n"
    assert "\\x1b]0;pwned" in CliRunner().invoke(cli, ["builds:info", "b1", "-a", "shop"]).output


# ---- the one-off's command line -----------------------------------------------------------
@pytest.mark.parametrize("args, line", [
    (["read line; echo $line; exit 7"], "read line; echo $line; exit 7"),   # one argument: as it is
    (["sh", "-c", "exit 7"], "sh -c 'exit 7'"),
    (["python", "manage.py", "migrate"], "python manage.py migrate"),
    (["echo", "$PORT"], "echo $PORT"),                                      # still expands remotely
    (["echo", 'say "hi"', "it's"], "echo 'say \"hi\"' 'it'\"'\"'s'"),
    (["printf", "a\\nb", ""], "printf 'a\\nb' ''"),
])
def test_run_command_line_quotes_like_heroku(args, line):
    assert command_line(args) == line


def test_run_command_line_keeps_each_argument_with_whitespace_or_quotes():
    args = ["sh", "-c", "echo \"$1\" 'x'; exit 7", "--", "two words", "tab\there"]
    assert shlex.split(command_line(args)) == args


def test_run_sends_the_quoted_command_line(monkeypatch):
    sent = []
    monkeypatch.setattr(logs, "call", lambda method, path, body=None, **kw: sent.append(body) or {"name": "run.1"})
    out = CliRunner().invoke(cli, ["run", "--detach", "-a", "shop", "--", "sh", "-c", "exit 7"]).output
    assert sent == [{"command": "sh -c 'exit 7'"}] and "Running `sh -c 'exit 7'` on shop... up, run.1" in out


# ---- ps: the state's age ------------------------------------------------------------------
@pytest.fixture
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_age_is_shown_as_heroku_does(utc):
    start = 1796079958   # 2026-11-30 23:05:58 UTC
    assert format_age(str(start), now=start + 300) == "2026/11/30 23:05:58 +0000 (~ 5m ago)"
    assert format_age(start, now=start + 7) == "2026/11/30 23:05:58 +0000 (~ 7s ago)"
    assert format_age(str(start), now=start + 3 * 3600 + 100) == "2026/11/30 23:05:58 +0000 (~ 3h ago)"
    assert format_age(str(start), now=start + 3 * 86400) == "2026/11/30 23:05:58 +0000"
    assert format_age(str(start), now=start - 5) == "2026/11/30 23:05:58 +0000 (~ 0s ago)"   # clock skew
    # the engine's other shape (State.StartedAt, nanoseconds), and no start at all
    assert format_age("2026-11-30T23:05:58.123456789Z", now=start + 100) == "2026/11/30 23:05:58 +0000 (~ 2m ago)"
    assert format_age("2026-11-30T23:05:58+00:00", now=start + 100) == "2026/11/30 23:05:58 +0000 (~ 2m ago)"
    assert format_age("0001-01-01T00:00:00Z") == "" and format_age("") == "" and format_age(None) == ""
    assert format_age("soon") == "soon"


def test_ps_shows_the_age_and_escapes_a_crashed_process_output(monkeypatch, utc):
    started = int(time.time()) - 125
    dynos = [{"name": "web.1", "type": "web", "state": "crashed", "exit_code": 4, "release": {"version": 3},
              "container": "1a2b3c4d5e6f", "created_at": str(started), "last_output": ["dying \x1b[2J"]}]
    _fake_api(monkeypatch, ps, {("GET", "/apps/shop/dynos"): dynos, ("GET", "/apps/shop/formation"): []})
    out = CliRunner().invoke(cli, ["ps", "-a", "shop"]).output.splitlines()
    when = time.strftime("%Y/%m/%d %H:%M:%S +0000", time.gmtime(started))
    assert out == ["=== web (1)", f"web.1: crashed exit 4 v3 (container 1a2b3c4d5e6f) {when} (~ 2m ago)",
                   "    | dying \\x1b[2J"]


# ---- where the API is ---------------------------------------------------------------------
@pytest.mark.parametrize("env", [
    {}, {"DOCKYARD_API_HOST": "127.0.0.2"}, {"DOCKYARD_API_PORT": "5123"}, {"DOCKYARD_API_PORT": ""},
    {"DOCKYARD_API_HOST": "", "DOCKYARD_API_PORT": " 6000 "}, {"DOCKYARD_API_HOST": "10.0.0.5", "DOCKYARD_API_PORT": "80"},
])
def test_default_api_url_is_the_platforms_own(env):
    from controller.settings import from_env
    assert client.default_api_url(env) == from_env(env).api_url


def test_default_api_url_names_a_bad_port():
    from controller.settings import from_env
    with pytest.raises(ValueError) as server:
        from_env({"DOCKYARD_API_PORT": "http"})
    with pytest.raises(click.ClickException) as ours:
        client.default_api_url({"DOCKYARD_API_PORT": "http"})
    assert ours.value.message == str(server.value)


def test_api_url_from_environment_then_login_then_default(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("DOCKYARD_API_URL", raising=False)
    monkeypatch.setenv("DOCKYARD_API_PORT", "5999")
    assert client.api_url() == "http://127.0.0.1:5999"
    client.remember_api_url("http://10.1.1.1:5000")
    assert json.loads((tmp_path / ".config/dockyard/config.json").read_text()) == {"api_url": "http://10.1.1.1:5000"}
    assert client.api_url() == "http://10.1.1.1:5000"
    monkeypatch.setenv("DOCKYARD_API_URL", "http://example.test:1/")
    assert client.api_url() == "http://example.test:1"


# ---- ~/.netrc -----------------------------------------------------------------------------
def test_netrc_entries_are_replaced_and_removed_keeping_the_others(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("NETRC", raising=False)
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine other.example login me password keep\nmacdef init\necho hi\n\n")
    client.write_netrc("127.0.0.1", "admin", "t1")
    client.write_netrc("127.0.0.1", "admin", "t2")
    assert stat.S_IMODE(netrc.stat().st_mode) == 0o600
    text = netrc.read_text()
    assert "machine 127.0.0.1 login admin password t2" in text and "t1" not in text
    assert "machine other.example login me password keep" in text and "macdef init\necho hi" in text
    monkeypatch.delenv("DOCKYARD_API_TOKEN", raising=False)
    monkeypatch.setenv("DOCKYARD_API_URL", "http://127.0.0.1:5000")
    assert client.token() == "t2"
    assert client.remove_netrc("127.0.0.1") is True and client.remove_netrc("127.0.0.1") is False
    assert "127.0.0.1" not in netrc.read_text() and "password keep" in netrc.read_text()
    with pytest.raises(click.ClickException, match="Not logged in to http://127.0.0.1:5000"):
        client.token()


class _EchoAuth(http.server.BaseHTTPRequestHandler):
    """Answers 200 only to `Authorization: Bearer good`, and says what it was sent."""

    def do_GET(self):  # noqa: N802 - the http.server interface
        sent = self.headers.get("Authorization", "")
        body = json.dumps({"name": "admin", "sent": sent, "message": f"got {sent}"}).encode()
        self.send_response(200 if sent == "Bearer good" else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def echo_api():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EchoAuth)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_explicit_token_is_sent_whatever_netrc_holds_for_the_host(monkeypatch, tmp_path, echo_api):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("NETRC", raising=False)
    (tmp_path / ".netrc").write_text("machine 127.0.0.1 login admin password stale\n")
    monkeypatch.setenv("DOCKYARD_API_URL", echo_api)
    assert client.call("GET", "/account", auth="good")["sent"] == "Bearer good"          # login --token
    monkeypatch.setenv("DOCKYARD_API_TOKEN", "good")
    assert client.call("GET", "/account")["sent"] == "Bearer good"                        # the environment
    monkeypatch.delenv("DOCKYARD_API_TOKEN")
    with pytest.raises(click.ClickException, match="got Bearer stale"):                  # else: ~/.netrc's
        client.call("GET", "/account")
    out = CliRunner().invoke(cli, ["login", "--api", echo_api, "--token", "good"])
    assert out.exit_code == 0, out.output
    assert client.call("GET", "/account")["sent"] == "Bearer good"


# ---- the package's shape ------------------------------------------------------------------
def test_cli_imports_nothing_from_the_server_packages():
    for path in sorted((ROOT / "cli").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            for name in names:
                assert name.split(".")[0] not in ("controller", "builder", "router"), (path.name, name)


def test_router_report_is_the_router_command_under_another_name():
    assert routing.router_report_alias.callback is routing.router_report.callback
    assert cli.commands["router:report"].params == cli.commands["router"].params


def test_sshd_address_is_the_one_given_to_clients(tmp_path):
    """`git:remote --ssh` gets the address sshd listens on, not the API's host."""
    from controller.daemons.webapp import create_app
    from controller.services import Services
    from controller.settings import Settings
    from controller.git.sshd import render_sshd_config
    settings = Settings(home=tmp_path, api_host="0.0.0.0", ssh_port=2299)
    svc = Services(settings)
    settings.ensure_dirs()
    svc.store.migrate()
    svc.store.add_token(svc.store.create_user("olga").id, "tok")
    info = create_app(settings, svc).test_client().get("/ssh", headers={"Authorization": "Bearer tok"}).get_json()
    listen = next(line.split()[1] for line in render_sshd_config(settings, 2299).splitlines()
                  if line.startswith("ListenAddress"))
    assert info["url_template"] == f"ssh://git@{listen}:2299/APP.git" and info["host"] == listen
