"""Procfile parsing (pure). Same format as Heroku/honcho: `<type>: <command>` per line,
`#` comments and blank lines ignored. Unlike honcho, a line that is not a process
declaration is an error that names the line, never silently skipped."""
from __future__ import annotations

import re

from .errors import BadRequest
from .names import PROCESS_TYPE_RE

_LINE = re.compile(r"^([^:\s]+)\s*:\s*(.*)$")


class ProcfileError(BadRequest):
    code = "invalid_procfile"


def parse_procfile(data: bytes | str) -> dict[str, str]:
    if isinstance(data, bytes):
        if b"\x00" in data:
            raise ProcfileError("Procfile is binary, not text: write one `type: command` per line.")
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ProcfileError("Procfile is not UTF-8 text: write one `type: command` per line.") from None
    processes: dict[str, str] = {}
    for lineno, raw in enumerate(data.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if any(not ch.isprintable() for ch in line):
            raise ProcfileError(f"Procfile line {lineno} contains control characters: remove them.")
        m = _LINE.match(line)
        if not m:
            raise ProcfileError(
                f"Procfile line {lineno} is not `type: command` (e.g. `web: gunicorn app:app`)."
            )
        ptype, command = m.group(1), m.group(2).strip()
        if not PROCESS_TYPE_RE.fullmatch(ptype):
            raise ProcfileError(
                f"Procfile line {lineno}: process type {ptype[:40]!r} must be 1-30 characters "
                "from a-z, 0-9, '_' and '-' (e.g. 'web', 'worker')."
            )
        if not command:
            raise ProcfileError(f"Procfile line {lineno}: process type {ptype!r} has no command.")
        if ptype in processes:
            raise ProcfileError(f"Procfile line {lineno}: process type {ptype!r} is declared twice.")
        processes[ptype] = command
    return processes
