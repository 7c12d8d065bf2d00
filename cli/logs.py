"""An app's output: logs (control characters shown escaped unless --raw) and one-off
processes with `run` (attached: stdin, stdout, stderr and the exit code pass through
untouched, as a terminal session should; or --detach, with output in the logs)."""
from __future__ import annotations

import sys
import time

import click

from .attach import attach
from .client import app_option, call, resolve_app
from .text import command_line, echo_output


# ---- logs --------------------------------------------------------------------------------
def _print_lines(rows, raw: bool = False) -> str | None:
    last = None
    for r in rows:
        echo_output(f"{r['at']} {r['source']}[{r['process']}]: {r['message']}", raw)
        last = r["at"]
    return last


@click.command()
@app_option
@click.option("-n", "--num", default=100, show_default=True, help="Number of lines.")
@click.option("-t", "--tail", is_flag=True, help="Keep following new lines.")
@click.option("--ps", "ps_name", default="", help="Only this process, e.g. web.1.")
@click.option("--source", default="", help="Only app, router or dockyard (platform) lines.")
@click.option("--raw", is_flag=True,
              help="Print control characters (terminal escape sequences) as they are, unescaped.")
def logs(app, num, tail, ps_name, source, raw):
    """Show an app's logs (kept across deploys)."""
    name = resolve_app(app)
    params = {"lines": num, "ps": ps_name, "source": source}
    since = _print_lines(call("GET", f"/apps/{name}/logs", params=params), raw) or ""
    while tail:
        time.sleep(1)
        since = _print_lines(call("GET", f"/apps/{name}/logs", params={**params, "since": since}), raw) or since


# ---- run ---------------------------------------------------------------------------------
@click.command("run", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--detach", "-d", is_flag=True, help="Run in the background; output goes to `dockyard logs`.")
@app_option
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(detach, app, command):
    """Run a one-off process in the current release: `dockyard run -a APP -- python manage.py migrate`.
    stdin, stdout, stderr and the exit code pass through."""
    name = resolve_app(app)
    line = command_line(command)
    if detach:
        dyno = call("POST", f"/apps/{name}/dynos", {"command": line})
        click.echo(f"Running `{line}` on {name}... up, {dyno['name']}; see `dockyard logs -a {name} --ps {dyno['name']}`")
        return
    call("GET", f"/apps/{name}")      # a clear error (login, access, no such app) before attaching
    sys.exit(_run_attached(name, line))


def _run_attached(name: str, line: str) -> int:
    return attach(f"/apps/{name}/run", {"command": line}, f"{name}'s one-off",
                  lambda e: f"Running `{line}` on {name} (v{e.get('release')})... up, {e['started']}")


COMMANDS = [logs, run]
