"""Pure text helpers of the CLI: what app-controlled text looks like on the operator's
terminal, how a one-off's arguments become one command line, and a process state's age."""
from __future__ import annotations

import re
import shlex
import time
from datetime import datetime

import click

from core.terminal import escape_control

__all__ = ["escape_control", "echo_output", "command_line", "format_age"]
_NEEDS_QUOTES = re.compile(r"""[\s'"\\]""")


def escape_line(text: str) -> str:
    """`text` as one line: every control character shown visibly, newlines and tabs too, so a
    stored value cannot start a line of its own that looks like the platform's."""
    return escape_control(text).replace("\n", "\\n").replace("\t", "\\t")


def echo_output(text: str, raw: bool = False) -> None:
    """Print app-controlled text escaped, or with `raw` exactly as it is (click would otherwise
    drop colour sequences, and only those, when the output is not a terminal)."""
    if raw:
        click.echo(text, color=True)
    else:
        click.echo(escape_control(text))


def command_line(args: tuple[str, ...] | list[str]) -> str:
    """The command line a one-off runs (with `sh -c`), as Heroku's CLI builds it: a single
    argument is the command line as it is (`dockyard run 'rake test; echo $X'`); of several,
    each that holds whitespace, a quote or a backslash is shell-quoted, so
    `dockyard run -- sh -c 'exit 7'` runs `sh -c 'exit 7'`. The others pass as they are, so
    `dockyard run -- echo \\$PORT` still expands $PORT in the container."""
    if len(args) == 1:
        return args[0]
    return " ".join(shlex.quote(a) if not a or _NEEDS_QUOTES.search(a) else a for a in args)


def _timestamp(value) -> float | None:
    """Seconds since the epoch from the engine's two shapes: an epoch number (a container
    list's `Created`) or an RFC 3339 time (`State.StartedAt`, nanoseconds and all)."""
    text = str(value or "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text)
    if not m:
        return None
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    try:
        stamp = datetime.fromisoformat(m.group(1) + zone).timestamp()
    except ValueError:
        return None
    return stamp + float(f"0.{m.group(2) or 0}")


def format_age(value, now: float | None = None) -> str:
    """`2026/11/30 23:05:58 +0000 (~ 5m ago)`, as Heroku's `ps` shows when a state began (local
    time; no age past 25 hours). A value that is not a time is shown as it is."""
    stamp = _timestamp(value)
    if stamp is None:
        return str(value or "")
    if stamp < 86400 * 366:   # the engine's zero time (year 1) and the like: no start recorded
        return ""
    when = datetime.fromtimestamp(stamp).astimezone().strftime("%Y/%m/%d %H:%M:%S %z")
    elapsed = max(0, int((time.time() if now is None else now) - stamp))
    if elapsed <= 60:
        return f"{when} (~ {elapsed}s ago)"
    if elapsed <= 60 * 60:
        return f"{when} (~ {int(elapsed / 60 + 0.5)}m ago)"
    if elapsed <= 60 * 60 * 25:
        return f"{when} (~ {int(elapsed / 3600 + 0.5)}h ago)"
    return when
