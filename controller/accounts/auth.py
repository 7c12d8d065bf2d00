"""Reading the caller's token (pure). Like Heroku: `Authorization: Bearer <token>`, or HTTP
Basic with the token as the password (what git sends from ~/.netrc, and what HTTP
libraries that honour ~/.netrc send)."""
from __future__ import annotations

import base64
import binascii


def token_from_header(header: str) -> str | None:
    scheme, _, value = (header or "").partition(" ")
    value = value.strip()
    if not value:
        return None
    if scheme.lower() == "bearer":
        return value
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return password or None
    return None
