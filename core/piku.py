"""piku's conventions (pure): a Procfile's `wsgi:` / `asgi:` entries, which piku serves with
uWSGI / an ASGI server, and the `ENV` file of config defaults.

    wsgi: app:application      ->  web: gunicorn app:application --bind 0.0.0.0:$PORT
    asgi: main:app             ->  web: uvicorn main:app --host 0.0.0.0 --port $PORT

    # ENV: KEY=VALUE per line (quotes optional), defaults for keys the app's config lacks
    DEBUG=false"""
from __future__ import annotations

import re
import shlex

from .errors import BadRequest

SERVERS = {"wsgi": "gunicorn {target} --bind 0.0.0.0:$PORT",
           "asgi": "uvicorn {target} --host 0.0.0.0 --port $PORT"}
_TARGET = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*(:[A-Za-z_][A-Za-z0-9_.()]*)?$")
_LINE = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")
# Set by the platform for every process, never from a file.
PLATFORM_KEYS = ("PORT",)


class PikuError(BadRequest):
    code = "invalid_procfile"


def serve_types(procfile: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """Procfile types with `wsgi` / `asgi` turned into the `web` process that serves them;
    (types, what was turned into what)."""
    served = [t for t in SERVERS if t in procfile]
    if not served:
        return procfile, []
    if len(served) > 1 or "web" in procfile:
        raise PikuError(f"The Procfile has {' and '.join(served + (['web'] if 'web' in procfile else []))}: "
                        "each is the app's web process here, so keep one.")
    ptype = served[0]
    target = procfile[ptype].split()[0] if procfile[ptype].split() else ""
    if not _TARGET.match(target):
        raise PikuError(f"The Procfile's `{ptype}: {procfile[ptype][:60]}` must name a module and callable, "
                        "e.g. `wsgi: app:application`.")
    types = {k: v for k, v in procfile.items() if k != ptype}
    types["web"] = SERVERS[ptype].format(target=target)
    return types, [f"{ptype}: {target} is served by `{types['web']}`"]


def parse_env_file(text: str) -> dict[str, str]:
    """piku's ENV file: KEY=VALUE lines; `#` comments, blank lines and `export ` are allowed;
    a quoted value is unquoted. Lines that are not assignments are skipped, as piku does."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        m = _LINE.match(line)
        if not line or line.startswith("#") or not m or m.group(1) in PLATFORM_KEYS:
            continue
        value = m.group(2).strip()
        if value[:1] in ("'", '"'):
            try:
                value = " ".join(shlex.split(value))
            except ValueError:
                pass
        else:
            value = value.split(" #", 1)[0].strip()
        values[m.group(1)] = value
    return values
