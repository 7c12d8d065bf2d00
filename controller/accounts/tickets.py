"""Short-lived capability tickets: a random secret handed to one user that a client presents
later on a channel with no API token (the Heroku CLI's rendezvous for `heroku run`, its log
stream for `heroku logs`). The secret itself is never stored: each ticket is a file under
<home>/tickets/<kind>/ named by the secret's SHA-256, holding what the secret allows and until
when. Files rather than a table because tickets live for seconds to minutes, are read by
another process (the rendezvous listener) and a rename gives a single winner: `claim` moves the
file away before reading it, so a single-use ticket is used once even when two clients race."""
from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import time
from pathlib import Path

from core.fsutil import atomic_write

_KIND = re.compile(r"^[a-z][a-z-]{0,30}$")


def ticket_key(secret: str) -> str:
    """Pure: the file name of a secret's ticket (its SHA-256: any input maps to a safe name)."""
    return hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()


def is_live(ticket: dict, now: float) -> bool:
    """Pure: a ticket is good until its `expires_at` (seconds since the epoch)."""
    expires = ticket.get("expires_at")
    return isinstance(expires, (int, float)) and now < expires


class Tickets:
    def __init__(self, home: Path, kind: str):
        if not _KIND.fullmatch(kind):
            raise ValueError(f"ticket kind {kind!r} must be lower-case letters and dashes")
        self.dir = home / "tickets" / kind
        self.claimed = home / "tickets" / f"{kind}.claimed"

    def _dirs(self) -> None:
        for d in (self.dir.parent, self.dir, self.claimed):
            d.mkdir(mode=0o700, exist_ok=True)

    def issue(self, data: dict, ttl: float) -> tuple[str, dict]:
        """A new secret for `data`, good for `ttl` seconds. Returns (secret, the ticket)."""
        self._dirs()
        self.sweep()
        secret = secrets.token_urlsafe(32)
        ticket = {**data, "expires_at": time.time() + ttl}
        atomic_write(self.dir / f"{ticket_key(secret)}.json", json.dumps(ticket))
        return secret, ticket

    def peek(self, secret: str) -> dict | None:
        """The live ticket of `secret` (it stays valid: a log stream may reconnect), or None."""
        try:
            ticket = json.loads((self.dir / f"{ticket_key(secret)}.json").read_text())
        except (OSError, ValueError):
            return None
        return ticket if isinstance(ticket, dict) and is_live(ticket, time.time()) else None

    def claim(self, secret: str) -> dict | None:
        """The live ticket of `secret`, used up: a second claim, even a concurrent one, gets None."""
        key = ticket_key(secret)
        self._dirs()
        taken = self.claimed / f"{key}.{os.getpid()}.{secrets.token_hex(4)}"
        try:
            os.rename(self.dir / f"{key}.json", taken)    # one rename wins; the others find no file
        except FileNotFoundError:
            return None
        try:
            ticket = json.loads(taken.read_text())
        except (OSError, ValueError):
            return None
        finally:
            taken.unlink(missing_ok=True)
        return ticket if isinstance(ticket, dict) and is_live(ticket, time.time()) else None

    def sweep(self) -> int:
        """Remove expired tickets, and claims a killed process left (after a minute: a claim
        being read now is younger); returns how many."""
        now, removed = time.time(), 0
        for path in self.dir.glob("*.json"):
            try:
                ticket = json.loads(path.read_text())
            except (OSError, ValueError):
                ticket = None
            if not (isinstance(ticket, dict) and is_live(ticket, now)):
                path.unlink(missing_ok=True)
                removed += 1
        for path in self.claimed.glob("*"):
            try:
                if path.stat().st_mtime < now - 60:
                    path.unlink(missing_ok=True)
                    removed += 1
            except FileNotFoundError:
                pass
        return removed
