"""An attached process over the API's WebSocket (`run`, `pg:psql`, `redis:cli`): our stdin
goes to it, its stdout and stderr come back (first byte 1 or 2), then its exit code."""
from __future__ import annotations

import json
import os
import sys
import threading
from typing import Callable

import click

from .client import api_url, token


def _pump_stdin(ws, closed: type[Exception]) -> None:
    """Our stdin to the process, then an end-of-file message."""
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


def attach(path: str, first: dict, what: str, started: Callable[[dict], str]) -> int:
    """Connect to `path`, send `first`, relay stdin and output; return the exit code.
    `started(event)` is the line printed (to stderr) once the process runs."""
    import simple_websocket    # only attached commands need it: the others start without it
    url = "ws" + api_url()[len("http"):] + path
    try:
        ws = simple_websocket.Client(url, headers={"Authorization": f"Bearer {token()}"})
    except (simple_websocket.ConnectionError, OSError) as e:
        raise click.ClickException(f"Could not attach to {what} ({e}): is the platform running?")
    ws.send(json.dumps(first))
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
                click.echo(started(event), err=True)
            elif "exit" in event:
                return int(event["exit"])
            elif "error" in event:
                raise click.ClickException(event["error"])
    except simple_websocket.ConnectionClosed:
        raise click.ClickException(f"The connection to {what} was lost before it reported its exit code.")
    finally:
        try:
            ws.close()
        except Exception:  # noqa: BLE001 - closing a dead socket
            pass
