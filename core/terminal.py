"""What app-controlled text looks like on someone's terminal (pure): the CLI's logs and
releases output and the build output `git push` prints (over HTTP and SSH) use this one
escaping, so what a build or an app prints cannot drive the terminal that shows it."""
from __future__ import annotations

# C0 controls but newline and tab, DEL, and C1 controls: anything a terminal may act on
# (cursor moves, title and clipboard writes such as OSC 52, resets) rather than display.
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if c not in (0x09, 0x0A)}


def escape_control(text: str) -> str:
    """`text` with every control character but \\n and \\t shown visibly (ESC as `\\x1b`)."""
    return text.translate(_CONTROL)
