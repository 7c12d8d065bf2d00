"""Pure readers of what the Docker engine returns: containers -> Instance, log text ->
LogLine, attach-stream frames. No engine call here, so each is tested with plain dicts."""
from __future__ import annotations

import re
import struct

from core.models import Crash, Instance, LogLine

from controller.scheduler.labels import (LABEL_APP, LABEL_BUILD, LABEL_DETACHED, LABEL_INDEX, LABEL_ONEOFF, LABEL_PORT, LABEL_PROCESS,
                     LABEL_RELEASE, LABEL_STANDBY)

# A list row's Status text: "Up 5 minutes", "Exited (137) 2 seconds ago", "Restarting (137) 1 second
# ago", "Created", "Dead", "Removal In Progress". The code is the last exit's.
_STATUS_EXIT = re.compile(r"^(?:Exited|Restarting) \((-?\d+)\)")
# States in which the last exit tells what happened (a running or created one has not exited).
_ENDED = ("exited", "dead", "restarting")


def _int(value, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _inspect_port(data: dict, app_port: int) -> int | None:
    bindings = (data.get("NetworkSettings") or {}).get("Ports") or {}
    port = None
    for b in bindings.get(f"{app_port}/tcp") or []:
        if b.get("HostIp") in ("127.0.0.1", "") and b.get("HostPort"):
            port = int(b["HostPort"])
    return port


def _list_port(row: dict, app_port: int) -> int | None:
    port = None
    for p in row.get("Ports") or []:
        if p.get("PrivatePort") == app_port and p.get("PublicPort") and p.get("IP") == "127.0.0.1":
            port = int(p["PublicPort"])
    return port


def parse_instance(data: dict, app_port: int) -> Instance:
    """One container as the engine describes it -> Instance. `data` is either the answer to an
    inspect (`GET /containers/{id}/json`: State is an object with ExitCode, OOMKilled, StartedAt;
    RestartCount; Config.Labels) or a row of a listing (`GET /containers/json`: State is a word,
    Status a text such as "Restarting (137) 2 seconds ago", Labels; no restart count and no OOM
    flag, which stay 0 and False). `app_port` is the port web processes listen on inside, unless
    their LABEL_PORT names another."""
    state = data.get("State")
    if isinstance(state, dict):    # inspect
        labels = (data.get("Config") or {}).get("Labels") or {}
        status = state.get("Status", "unknown")
        ended = status in _ENDED
        exit_code = _int(state.get("ExitCode"), -1) if ended else None
        oom_killed = bool(state.get("OOMKilled")) if ended else False
        restart_count = _int(data.get("RestartCount"))
        name = data.get("Name", "")
        port = _inspect_port(data, _int(labels.get(LABEL_PORT), app_port))
        image = (data.get("Config") or {}).get("Image", "")
        started_at = state.get("StartedAt", "")
    else:                          # a listing's row
        labels = data.get("Labels") or {}
        status = state or "unknown"
        m = _STATUS_EXIT.match(data.get("Status") or "")
        exit_code = int(m.group(1)) if m else None
        oom_killed, restart_count = False, 0
        name = (data.get("Names") or ["?"])[0]
        port = _list_port(data, _int(labels.get(LABEL_PORT), app_port))
        image = data.get("Image", "")
        started_at = str(data.get("Created", ""))
    return Instance(
        container_id=data["Id"], name=name.lstrip("/"), app=labels.get(LABEL_APP, ""),
        version=_int(labels.get(LABEL_RELEASE)), process=labels.get(LABEL_PROCESS) or labels.get(LABEL_ONEOFF, ""),
        index=_int(labels.get(LABEL_INDEX)), state=status, exit_code=exit_code,
        host_port=port if status == "running" else None, image=image, started_at=started_at,
        restart_count=restart_count, detached=labels.get(LABEL_DETACHED) == "1", oom_killed=oom_killed,
        standby=labels.get(LABEL_STANDBY, "") if status == "created" else "")


def iso(stamp: str) -> str:
    """Docker's RFC 3339 nanosecond stamp -> the store's isoformat (microseconds, +00:00)."""
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z$", stamp)
    if not m:
        return stamp
    return f"{m.group(1)}.{(m.group(2) or '0')[:6].ljust(6, '0')}+00:00"


def parse_logs(raw: bytes) -> list[LogLine]:
    """Log text read with timestamps (each line `<RFC 3339 stamp> <text>`) -> LogLines."""
    out = []
    for line in raw.decode("utf-8", "replace").splitlines():
        at, _, text = line.partition(" ")
        out.append(LogLine(at=iso(at), text=text))
    return out


def split_frames(buf: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """An attach stream without a TTY, multiplexed as frames (1 byte stream: 1 stdout, 2 stderr;
    3 bytes padding; 4 bytes big-endian size; the data) -> the complete frames, and the rest."""
    frames = []
    while len(buf) >= 8:
        stream, size = buf[0], struct.unpack(">I", buf[4:8])[0]
        if len(buf) < 8 + size:
            break
        frames.append((stream, buf[8:8 + size]))
        buf = buf[8 + size:]
    return frames, buf


class Lines:
    """Text that arrives in chunks -> whole lines, each handed to `on_line` as soon as it ends."""

    def __init__(self, on_line):
        self.on_line = on_line
        self.pending = ""

    def feed(self, text: str) -> None:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            self.on_line(line)

    def flush(self) -> None:
        """The last line, if the text did not end with a newline."""
        if self.pending:
            pending, self.pending = self.pending, ""
            self.on_line(pending)


OOM_PAIRING = 1.5   # seconds between a container's `oom` and its `die`, in either order


def parse_crashes(events: list[dict], since: float = 0.0) -> list[Crash]:
    """The engine's `oom` and `die` events -> one Crash per exit at or after `since`: an `oom`
    of the same container within OOM_PAIRING seconds of a `die` marks it. Either can come first
    (with cgroup v2 the engine can log the exit before the kernel's OOM report reaches it), so
    the events given may start before `since` and end after the last exit wanted."""
    def at(ev: dict) -> float:
        return ev.get("timeNano", 0) / 1e9 or float(ev.get("time", 0))

    def cid(ev: dict) -> str:
        return ev.get("id") or (ev.get("Actor") or {}).get("ID", "")

    def action(ev: dict) -> str:
        return ev.get("Action") or ev.get("status") or ""

    ooms: dict[str, list[float]] = {}
    for ev in events:
        if action(ev) == "oom":
            ooms.setdefault(cid(ev), []).append(at(ev))
    out = []
    for ev in events:
        if action(ev) != "die" or at(ev) < since:
            continue
        code = ((ev.get("Actor") or {}).get("Attributes") or {}).get("exitCode")
        out.append(Crash(container_id=cid(ev), at=at(ev), exit_code=_int(code) if code is not None else None,
                         oom_killed=any(abs(t - at(ev)) <= OOM_PAIRING for t in ooms.get(cid(ev), ()))))
    return out


# One-offs a deploy runs and removes itself (app.json's scripts, the release phase): one found
# while the app's lock is free was orphaned by a killed deploy.
DEPLOY_PHASES = ("release", "predeploy", "postdeploy")


def is_leftover(labels: dict) -> bool:
    """A build container or a deploy-phase container, by its labels. App instances and
    one-offs carry their image's labels too (dockyard.build among them): their process or
    one-off kind tells them apart."""
    if labels.get(LABEL_ONEOFF) in DEPLOY_PHASES:
        return True
    return LABEL_BUILD in labels and LABEL_PROCESS not in labels and LABEL_ONEOFF not in labels


def image_removal(tags: list[str], repo: str, keep: set[str], builds_only: bool) -> tuple[str, list[str]]:
    """What collecting an app's image does: ("skip", []) for one a release still needs (or a
    shared dependency image, with builds_only); ("untag", the app's own tags) for one another
    app's repo also names (a promotion released it there too: it must keep running); else
    ("remove", [])."""
    if keep.intersection(tags):
        return "skip", []
    if builds_only and any(t.rpartition(":")[2].startswith("deps-") for t in tags):
        return "skip", []
    own = [t for t in tags if t.rpartition(":")[0] == repo]
    if len(own) < len(tags):
        return "untag", own
    return "remove", []
