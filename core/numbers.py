"""Whole numbers from requests (pure). Every route that reads an integer from a path, a query
string, a form or a JSON body reads it here, within bounds: nothing past what SQLite holds
(64 bits), no negative count and no 5,000-digit string reaches the store or the engine, and a
bad value is a 400 that names the range."""
from __future__ import annotations

import re

from .errors import BadRequest

SQL_MAX = 2 ** 63 - 1                 # SQLite's INTEGER
_DIGITS = re.compile(r"[+-]?[0-9]{1,19}")  # ASCII digits only; 19 covers SQL_MAX


def whole_number(raw: object, what: str, lo: int = 0, hi: int = SQL_MAX, message: str | None = None) -> int:
    """`raw` (an int, or a string of ASCII digits with an optional sign) as an int from `lo` to
    `hi`; otherwise BadRequest with `message`, or one naming `what` and the range. Booleans and
    floats are not whole numbers here."""
    value = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, str) and _DIGITS.fullmatch(raw.strip()):
        value = int(raw.strip())
    if value is None or not lo <= value <= hi:
        raise BadRequest(message or f"{what} must be a whole number from {lo} to {hi}.")
    return value
