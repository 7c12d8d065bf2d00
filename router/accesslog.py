"""Router access logs: nginx writes one JSON line per request of any app (format
``dockyard_json`` in router/render.py, file ``logs/access.log`` in the router prefix);
the router process harvests them into each app's ``dockyard logs`` as ``router`` lines.

``parse_line``/``format_line`` are pure. ``Harvester`` is the shell: it reads complete lines
from where it stopped (the offset survives restarts in ``logs/access.log.offset``) and, once
the file is larger than ``max_bytes`` and fully read, truncates it so it never grows without
bound. nginx opens the file with O_APPEND, so its next write lands at the new end. (Renaming
+ USR1 is not used: workers run as www-data and cannot reopen files under the private
DOCKYARD_HOME.) Only the few bytes nginx might write between the final read and the
truncate could be lost, and only at a truncation.
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from core import latency
from core.fsutil import atomic_write
from router import render

log = logging.getLogger("dockyard.router")

Row = tuple[str, str, str, str]   # (at, source, process, message), as the store's add_events takes
Sink = Callable[[dict[str, list[Row]]], None]
StatsSink = Callable[[list[dict]], None]


def _ms(value: str) -> str:
    """nginx seconds ("0.003", "-", "0.001, 0.002" after a retry) -> "3ms" (the last try)."""
    last = (value or "-").split(",")[-1].split(":")[-1].strip()
    try:
        return f"{round(float(last) * 1000)}ms"
    except ValueError:
        return "-"


def _q(text: str) -> str:
    return '"' + "".join(ch if ch.isprintable() and ch != '"' else "%%%02X" % ord(ch) for ch in text[:2000]) + '"'


def parse_line(line: str) -> tuple[str, Row] | None:
    """One JSON access-log line -> (app, row), or None if it is not one of ours."""
    try:
        d = json.loads(line)
    except ValueError:
        return None
    if not isinstance(d, dict) or not isinstance(d.get("app"), str) or not d["app"]:
        return None
    try:
        at = datetime.fromtimestamp(float(d.get("msec", "")), timezone.utc).isoformat(timespec="microseconds")
    except (TypeError, ValueError, OverflowError):
        return None
    return d["app"], (at, "router", "router", format_line(d))


def format_line(d: dict) -> str:
    """Heroku-style router line."""
    status = str(d.get("status", ""))
    level = "error" if status.startswith("5") else "info"
    return (f"at={level} method={d.get('method', '')} path={_q(str(d.get('path', '')))} "
            f"host={d.get('host', '')} request_id={d.get('request_id', '')} fwd={_q(str(d.get('fwd', '')))} "
            f"status={status} bytes={d.get('bytes', '')} connect={_ms(str(d.get('connect_time', '-')))} "
            f"service={_ms(str(d.get('upstream_time', '-')))} protocol={d.get('proto', '')} "
            f"upstream={d.get('upstream') or '-'}")


def group(lines: list[str], max_per_app: int = 2000) -> dict[str, list[Row]]:
    """Pure: lines -> app -> rows, keeping the newest ``max_per_app`` per app (the store
    keeps a bounded number per app anyway)."""
    out: dict[str, list[Row]] = {}
    for line in lines:
        parsed = parse_line(line)
        if parsed is not None:
            out.setdefault(parsed[0], []).append(parsed[1])
    return {app: rows[-max_per_app:] for app, rows in out.items()}


def requests(lines: list[str]) -> list[dict]:
    """Pure: lines -> one record per request of an app: app, at (Unix s), status, bytes,
    ms (the app's response time, or the whole request's when no upstream answered), upstream."""
    out = []
    for line in lines:
        try:
            d = json.loads(line)
            at = float(d["msec"])
        except (ValueError, KeyError, TypeError):
            continue
        if not isinstance(d, dict) or not isinstance(d.get("app"), str) or not d["app"]:
            continue
        ms = _ms(str(d.get("upstream_time", "-")))
        if ms == "-":
            ms = _ms(str(d.get("request_time", "-")))
        try:
            size = int(d.get("bytes") or 0)
        except ValueError:
            size = 0
        out.append({"app": d["app"], "at": at, "status": str(d.get("status", "")), "bytes": size,
                    "ms": float(ms[:-2]) if ms != "-" else 0.0,
                    "upstream": str(d.get("upstream") or "").split(",")[-1].strip()})
    return out


def per_minute(reqs: list[dict], version_of: Callable[[str, str], int]) -> dict[tuple[str, int, int], dict]:
    """Pure: requests -> (app, release version, minute) -> counts, status classes, bytes and a
    latency histogram. `version_of(app, upstream)` names the release that answered (0: none)."""
    out: dict[tuple[str, int, int], dict] = {}
    for r in reqs:
        key = (r["app"], version_of(r["app"], r["upstream"]), int(r["at"]) // 60 * 60)
        m = out.setdefault(key, {"requests": 0, "s2xx": 0, "s3xx": 0, "s4xx": 0, "s5xx": 0, "bytes": 0, "hist": {}})
        m["requests"] += 1
        cls = f"s{r['status'][:1]}xx"
        if cls in m:
            m[cls] += 1
        m["bytes"] += r["bytes"]
        b = str(latency.bucket(r["ms"]))
        m["hist"][b] = m["hist"].get(b, 0) + 1
    return out


class Harvester:
    def __init__(self, router_dir: Path, sink: Sink, max_bytes: int = 4 * 1024 * 1024,
                 chunk: int = 8 * 1024 * 1024, stats_sink: StatsSink | None = None) -> None:
        self.stats_sink = stats_sink
        self.path = Path(router_dir) / render.ACCESS_LOG
        self.offset_path = self.path.with_name(self.path.name + ".offset")
        self.sink = sink
        self.max_bytes = max_bytes
        self.chunk = chunk

    def _offset(self) -> int:
        try:
            return int(self.offset_path.read_text())
        except (OSError, ValueError):
            return 0

    def _save_offset(self, offset: int) -> None:
        atomic_write(self.offset_path, str(offset))

    def harvest(self) -> int:
        """Move new complete lines into the sink; returns how many lines were read."""
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            return 0
        with f:
            size = os.fstat(f.fileno()).st_size
            offset = self._offset()
            if offset > size:        # truncated by someone else (or a new file): start over
                offset = 0
            f.seek(offset)
            data = f.read(self.chunk)
            end = data.rfind(b"\n") + 1
            lines = data[:end].decode("utf-8", "replace").splitlines()
            if lines:
                self.sink(group(lines))
                if self.stats_sink is not None:
                    self.stats_sink(requests(lines))
            offset += end
            if offset >= self.max_bytes and offset == os.fstat(f.fileno()).st_size:
                os.truncate(self.path, 0)
                offset = 0
            self._save_offset(offset)
        return len(lines)


def cap_log(path: Path, max_bytes: int, keep: int = 256 * 1024) -> bool:
    """Bound a log nginx appends to (error.log): once over `max_bytes`, its last `keep` bytes
    go to <name>.1 and it is truncated in place (nginx writes with O_APPEND, so its next line
    lands at the new end; renaming would need a reopen its workers cannot do here)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return False
    if size <= max_bytes:
        return False
    with open(path, "rb") as f:
        f.seek(max(0, size - keep))
        tail = f.read(keep)
    atomic_write(path.with_name(path.name + ".1"), tail, 0o640)
    os.truncate(path, 0)
    return True
