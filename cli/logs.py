"""An app's output: logs (control characters shown escaped unless --raw) and one-off
processes with `run` (attached: stdin, stdout, stderr and the exit code pass through
untouched, as a terminal session should; or --detach, with output in the logs)."""
from __future__ import annotations

import json
import os
import sys
import threading
import time

import click

from .client import api_url, app_option, call, resolve_app, token
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


def _pump_stdin(ws, closed: type[Exception]) -> None:
    """Our stdin to the one-off, then an end-of-file message."""
    try:
        fd = sys.stdin.fileno()
        while True:
            data = os.read(fd, 65536)
            if not data:
                break
            ws.send(data)
    except (OSError, ValueError, closed):
        pass
    try:
        ws.send(json.dumps({"eof": True}))
    except closed:
        pass


def _run_attached(name: str, line: str) -> int:
    import simple_websocket    # only `run` needs it: the other commands start without it
    url = "ws" + api_url()[len("http"):] + f"/apps/{name}/run"
    try:
        ws = simple_websocket.Client(url, headers={"Authorization": f"Bearer {token()}"})
    except (simple_websocket.ConnectionError, OSError) as e:
        raise click.ClickException(f"Could not attach to {name}'s one-off ({e}): is the platform running?")
    ws.send(json.dumps({"command": line}))
    threading.Thread(target=_pump_stdin, args=(ws, simple_websocket.ConnectionClosed), daemon=True).start()
    try:
        while True:
            msg = ws.receive()
            if isinstance(msg, bytes):
                stream = sys.stdout.buffer if msg[:1] == b"\x01" else sys.stderr.buffer
                stream.write(msg[1:])
                stream.flush()
                continue
            event = json.loads(msg)
            if "started" in event:
                click.echo(f"Running `{line}` on {name} (v{event.get('release')})... up, {event['started']}", err=True)
            elif "exit" in event:
                return int(event["exit"])
            elif "error" in event:
                raise click.ClickException(event["error"])
    except simple_websocket.ConnectionClosed:
        raise click.ClickException("The connection to the one-off was lost before it reported its exit code.")
    finally:
        try:
            ws.close()
        except Exception:  # noqa: BLE001 - closing a dead socket
            pass


COMMANDS = [logs, run]
