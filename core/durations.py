"""Durations as people type them (`30m`, `90s`, `2h`, `1h30m`, a bare number of seconds) and
back (pure)."""
from __future__ import annotations

import re

_PART = re.compile(r"(\d{1,7})([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_SECONDS = 30 * 86400


def parse_duration(raw: object) -> int:
    """Seconds in `raw`; ValueError naming the accepted forms otherwise."""
    text = str(raw).strip().lower() if isinstance(raw, (str, int)) and not isinstance(raw, bool) else ""
    if text.isdigit():
        seconds = int(text)
    else:
        parts = _PART.findall(text)
        if not text or "".join(n + u for n, u in parts) != text:
            raise ValueError(f"{str(raw)[:40]!r} is not a duration: write it like 30m, 90s, 2h or 1h30m.")
        seconds = sum(int(n) * _UNIT[u] for n, u in parts)
    if seconds > MAX_SECONDS:
        raise ValueError(f"{str(raw)[:40]!r} is longer than 30 days: pick a shorter duration.")
    return seconds


def format_duration(seconds: int) -> str:
    """30m, 1h30m, 45s: the shortest exact spelling."""
    if seconds <= 0:
        return "0s"
    out = []
    for unit in ("d", "h", "m", "s"):
        n, seconds = divmod(seconds, _UNIT[unit])
        if n:
            out.append(f"{n}{unit}")
    return "".join(out)
