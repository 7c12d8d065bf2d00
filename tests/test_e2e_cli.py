"""The `dockyard` client against a real platform: a one-off's arguments keep their quoting
(and its exit code comes back), what an app prints reaches the terminal with its control
characters escaped, and a stray ~/.netrc entry for the API's host replaces neither the CLI's
explicit token nor the test suite's own."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from .conftest import BUSYBOX_BASE, ROOT, run
from .test_e2e_workflow import deploy, env_app

pytestmark = pytest.mark.e2e
DOCKYARD = str(ROOT / ".venv/bin/dockyard")


def test_run_keeps_the_quoting_of_several_arguments_and_returns_the_exit_code(platform, tmp_path):
    name, _, _ = deploy(platform, tmp_path, env_app("web"))
    seven = subprocess.run([DOCKYARD, "run", "-a", name, "--", "sh", "-c", "exit 7"],
                           capture_output=True, text=True, env=platform.env, timeout=120, stdin=subprocess.DEVNULL)
    assert seven.returncode == 7, seven
    proc = subprocess.run([DOCKYARD, "run", "-a", name, "--", "sh", "-c", "echo \"two  spaces\" $DYNO; exit 7"],
                          capture_output=True, text=True, env=platform.env, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 7, proc
    assert proc.stdout == "two  spaces run.1\n", proc
    assert "Running `sh -c 'echo \"two  spaces\" $DYNO; exit 7'` on" in proc.stderr, proc.stderr


def test_logs_show_an_apps_terminal_escape_sequences_escaped(platform, tmp_path):
    # OSC 52 asks the terminal to write its clipboard; ESC [2J clears the screen.
    files = {"Dockerfile": f"FROM {BUSYBOX_BASE}\n"
                           "CMD [\"/bin/sh\", \"-c\", \"printf '\\\\033]52;c;aGFja2Vk\\\\007osc-marker \\\\033[2J\\\\n'; "
                           "echo up > /www/index.html; exec httpd -f -p $PORT -h /www\"]\n"}
    name, _, _ = deploy(platform, tmp_path, files)
    out = ""
    for _ in range(60):
        out = platform.cli("logs", "-a", name, "--source", "app").stdout
        if "osc-marker" in out:
            break
        run(["sleep", "0.5"])
    assert "app[web.1]: \\x1b]52;c;aGFja2Vk\\x07osc-marker \\x1b[2J" in out, out
    assert "\x1b" not in out and "\x07" not in out, repr(out)
    raw = platform.cli("logs", "-a", name, "--source", "app", "--raw").stdout
    assert "\x1b]52;c;aGFja2Vk\x07osc-marker \x1b[2J" in raw, repr(raw)


def test_a_stray_netrc_entry_replaces_no_explicit_token(platform, tmp_path):
    """After `make up`, the operator's ~/.netrc holds that platform's admin token for 127.0.0.1:
    a token given explicitly (to the CLI, or by a test to requests) must still be the one sent."""
    home = tmp_path / "operator-home"
    home.mkdir()
    (home / ".netrc").write_text("machine 127.0.0.1 login admin password stale-token-of-another-platform\n")
    # The test suite started from that HOME, as `make test` after `make up` is: its requests
    # with an explicit token authenticate.
    inner = tmp_path / "test_stray_netrc_inner.py"
    inner.write_text(textwrap.dedent("""
        import os

        import requests


        def test_explicit_token_is_sent():
            r = requests.get(os.environ["INNER_API"] + "/account", timeout=30,
                             headers={"Authorization": "Bearer " + os.environ["INNER_TOKEN"]})
            assert r.status_code == 200, r.text
    """))
    proc = run([sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest", "-p", "no:cacheprovider",
                "--basetemp", str(tmp_path / "inner-tmp"), str(inner)], cwd=ROOT, check=False,
               env={**os.environ, "HOME": str(home), "INNER_API": platform.api, "INNER_TOKEN": platform.token()})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The CLI with a token in its environment, then `login --token` (which replaces the entry).
    env = {**platform.env, "HOME": str(home), "DOCKYARD_API_URL": platform.api, "DOCKYARD_API_TOKEN": platform.token()}
    assert run([DOCKYARD, "auth:whoami"], env=env).stdout.strip() == "admin"
    assert "stale-token" in (home / ".netrc").read_text()
    login = run([DOCKYARD, "login", "--api", platform.api, "--token", platform.token()],
                env={**env, "DOCKYARD_API_TOKEN": ""})
    assert "as admin" in login.stdout and "stale-token" not in (home / ".netrc").read_text()
