"""`heroku logs` and `heroku logs --tail`: a log session (`POST /apps/X/log-sessions`) answers a
`logplex_url` that the CLI then reads as a server-sent event stream without its API token, so
the URL carries its own credential: a ticket (tickets.py) good for LOG_TICKET_TTL seconds,
bound to the user and the app, re-checked while a tail runs. The lines are the app's
(applogs.py) in Heroku's format: `2026-12-06T20:00:00.000000+00:00 app[web.1]: text`."""
from __future__ import annotations

import re
import time
from datetime import datetime, timezone
from typing import Iterator

from core.errors import BadRequest
from core.models import App, User

from controller.observe import applogs
from controller.runtime.heroku_run import holder
from controller.services import Services
from controller.accounts.tickets import Tickets

LOG_TICKET_TTL = 300.0      # seconds a logplex_url may be opened (and reopened by a reconnecting tail)
MAX_LINES = 1500            # Heroku's limit for -n
POLL = 1.0                  # seconds between looks for new lines while tailing
RECHECK = 10.0              # seconds between checks that the user still may read the app
HEARTBEAT = 15.0            # seconds between comments on a quiet stream (finds clients that left)
_STREAM_SECRET = re.compile(r"(/log-streams/)[^\s?#]+")
SOURCES = ("app", "heroku", "router", "dockyard", "platform")   # Heroku's two, then Dockyard's


def redact_secrets(text: str) -> str:
    """Pure: a request line or path with a log stream's secret hidden (for the access log)."""
    return _STREAM_SECRET.sub(r"\1[secret]", text)


def log_tickets(svc: Services) -> Tickets:
    return Tickets(svc.settings.home, "log-session")


def heroku_origin(row: dict) -> tuple[str, str]:
    """Pure: a Dockyard log line's (source, process) as Heroku names them: the app's output is
    app[web.1], the API's events (releases, config) app[api], the router heroku[router], and
    the platform's other events heroku[<process>]."""
    if row["source"] == "app":
        return "app", row["process"]
    if row["source"] == "router":
        return "heroku", "router"
    if row["process"] == "api":
        return "app", "api"
    return "heroku", row["process"]


def wanted(row: dict, source: str) -> bool:
    """Pure: does the line pass `--source` (Heroku's app or heroku, or Dockyard's names)?"""
    if source in ("app", "heroku"):
        return heroku_origin(row)[0] == source
    if source == "router":
        return row["source"] == "router"
    if source in ("dockyard", "platform"):
        return row["source"] == "dockyard"
    return True


def sse_event(row: dict) -> bytes:
    """Pure: one line as a server-sent event; its id (the time) lets a reconnect go on from it."""
    src, ps = heroku_origin(row)
    text = f"{row['at']} {src}[{ps}]: {row['message']}".replace("\r\n", "\n").replace("\r", "\n")
    data = "".join(f"data: {part}\n" for part in text.split("\n"))
    return f"id: {row['at']}\n{data}\n".encode("utf-8", "replace")


def session_params(body: dict) -> dict:
    """Pure: the log session a request asks for (the CLI sends dyno, source, lines, tail)."""
    source = body.get("source") or ""
    if source not in ("", *SOURCES):
        raise BadRequest(f"source {str(source)[:40]!r} is not one Dockyard has: use app or heroku "
                         "(or router, dockyard).")
    dyno = body.get("dyno") or ""
    if not isinstance(dyno, str) or len(dyno) > 64:
        raise BadRequest("dyno must be a process type (web) or a process (web.1).")
    try:
        lines = int(body.get("lines") or 100)
    except (TypeError, ValueError):
        raise BadRequest("lines must be a whole number.") from None
    return {"source": source, "dyno": dyno, "lines": max(1, min(lines, MAX_LINES)), "tail": bool(body.get("tail"))}


def open_session(svc: Services, app: App, user: User, body: dict, base_url: str) -> dict:
    """A log session in the Platform API's shape; `base_url` is where the caller reached the API."""
    params = session_params(body)
    secret, _ = log_tickets(svc).issue({"app": app.name, "app_id": app.id, "user": user.name, "user_id": user.id,
                                        **params}, LOG_TICKET_TTL)
    at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"id": secret[:8], "logplex_url": f"{base_url.rstrip('/')}/log-streams/{secret}",
            "created_at": at, "updated_at": at}


def _lines(svc: Services, app: App, ticket: dict, count: int, since: str) -> list[dict]:
    source = ticket["source"]
    rows = applogs.lines(svc, app, max(count, 1000) if source else count, since, "", ticket["dyno"])
    return [r for r in rows if wanted(r, source)][-count:]


def stream(svc: Services, secret: str, last_event_id: str = "") -> Iterator[bytes] | None:
    """The session's events: the last `lines` lines, then with `tail` the new ones as they come
    until the client leaves or loses access. None when the secret names no live session."""
    ticket = log_tickets(svc).peek(secret)
    who = holder(svc, ticket) if ticket else None
    if who is None:
        return None
    return _events(svc, ticket, who[1], last_event_id[:40])


def _events(svc: Services, ticket: dict, app: App, since: str) -> Iterator[bytes]:
    rows = _lines(svc, app, ticket, ticket["lines"], since)
    for row in rows:
        yield sse_event(row)
    if not ticket["tail"]:
        return
    since = rows[-1]["at"] if rows else (since or datetime.now(timezone.utc).isoformat(timespec="microseconds"))
    checked = spoke = time.monotonic()
    while True:
        time.sleep(POLL)
        now = time.monotonic()
        if now - checked > RECHECK:
            if holder(svc, ticket) is None:
                return
            checked = now
        for row in _lines(svc, app, ticket, 1000, since):
            since = row["at"]
            spoke = now
            yield sse_event(row)
        if now - spoke > HEARTBEAT:
            spoke = now
            yield b": keep-alive\n\n"
