"""What every command shares: where the API is, the token (from the environment or
~/.netrc), one HTTP call with its error handling, the app a command acts on, and how an
error is printed and turned into the exit code."""
from __future__ import annotations

import json
import netrc
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import click
import requests

from core.fsutil import atomic_write

CONFIG_PATH = Path("~/.config/dockyard/config.json")
REMOTE_APP = re.compile(r"/([a-z][a-z0-9-]*)\.git/?$")
DEFAULT_API_HOST = "127.0.0.1"
DEFAULT_API_PORT = 5000


# ---- where the API is ------------------------------------------------------------------
def config_file() -> Path:
    return CONFIG_PATH.expanduser()


def default_api_url(env: dict | None = None) -> str:
    """The API of the platform configured by this environment: the same DOCKYARD_API_HOST and
    DOCKYARD_API_PORT, with the same defaults, that the platform itself listens on."""
    env = os.environ if env is None else env
    host = env.get("DOCKYARD_API_HOST") or DEFAULT_API_HOST
    raw = env.get("DOCKYARD_API_PORT")
    port = DEFAULT_API_PORT
    if raw not in (None, ""):
        try:
            port = int(raw)
        except ValueError:
            raise click.ClickException(f"DOCKYARD_API_PORT={raw!r} is not a whole number; "
                                       f"set it to e.g. {DEFAULT_API_PORT}") from None
    return f"http://{host}:{port}"


def api_url() -> str:
    """DOCKYARD_API_URL, else the URL `dockyard login` remembered, else the local platform's."""
    if os.environ.get("DOCKYARD_API_URL"):
        return os.environ["DOCKYARD_API_URL"].rstrip("/")
    try:
        return json.loads(config_file().read_text())["api_url"].rstrip("/")
    except (OSError, ValueError, KeyError):
        return default_api_url()


def remember_api_url(url: str) -> None:
    cfg = config_file()
    cfg.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(cfg, json.dumps({"api_url": url}), mode=0o644)


# ---- ~/.netrc: the token, shared with git --------------------------------------------------
def netrc_path() -> Path:
    return Path(os.environ.get("NETRC") or Path.home() / ".netrc")


def netrc_entry(host: str | None, strict: bool = True) -> tuple | None:
    """(login, account, password) for `host` in ~/.netrc, or None. A file that cannot be read
    is an error that says how to fix it, unless `strict` is off."""
    path = netrc_path()
    try:
        return netrc.netrc(str(path)).authenticators(host) if path.exists() else None
    except (netrc.NetrcParseError, OSError) as e:
        if not strict:
            return None
        raise click.ClickException(f"Could not read {path}: {e}. Fix or remove the file, then `dockyard login`.")


def token() -> str:
    if os.environ.get("DOCKYARD_API_TOKEN"):
        return os.environ["DOCKYARD_API_TOKEN"]
    entry = netrc_entry(urlparse(api_url()).hostname)
    if not entry or not entry[2]:
        raise click.ClickException(f"Not logged in to {api_url()}: run `dockyard login`.")
    return entry[2]


def _parsed_netrc(path: Path) -> tuple[dict, dict]:
    if not path.exists():
        return {}, {}
    try:
        parsed = netrc.netrc(str(path))
    except netrc.NetrcParseError as e:
        raise click.ClickException(f"{path} is not a valid netrc file ({e}); fix or remove it.")
    return dict(parsed.hosts), parsed.macros


def _write_netrc_file(path: Path, hosts: dict, macros: dict) -> None:
    lines = []
    for machine, (lg, acct, pw) in hosts.items():
        line = f"machine {machine}" if machine != "default" else "default"
        line += (f" login {lg}" if lg else "") + (f" account {acct}" if acct else "") + (f" password {pw}" if pw else "")
        lines.append(line)
    for name, body in macros.items():
        lines.append(f"macdef {name}\n{''.join(body)}")
    atomic_write(path, "\n".join(lines) + ("\n" if lines else ""), mode=0o600)


def write_netrc(host: str, login: str, password: str) -> Path:
    """Add or replace the entry for `host`, keeping the others; mode 600; atomic."""
    path = netrc_path()
    hosts, macros = _parsed_netrc(path)
    hosts[host] = (login, None, password)
    _write_netrc_file(path, hosts, macros)
    return path


def remove_netrc(host: str) -> bool:
    """Drop `host` from ~/.netrc (others kept; mode 600; atomic). True when it was there."""
    path = netrc_path()
    hosts, macros = _parsed_netrc(path)
    if host not in hosts:
        return False
    del hosts[host]
    _write_netrc_file(path, hosts, macros)
    return True


# ---- HTTP ------------------------------------------------------------------------------
def call(method: str, path: str, body=None, params=None, auth: str | None = None, timeout: float = 3600):
    """One API request with the token this client was given; the JSON answer, or a
    ClickException carrying the API's message."""
    url = api_url() + path
    with requests.Session() as session:
        # The token is explicit: without this, requests would replace the Bearer header by a
        # ~/.netrc entry for the same host (the CLI reads ~/.netrc itself, in token()).
        session.trust_env = False
        try:
            resp = session.request(method, url, json=body, params=params, timeout=timeout,
                                   headers={"Authorization": f"Bearer {auth or token()}",
                                            "Accept": "application/json"})
        except requests.ConnectionError:
            raise click.ClickException(f"Cannot reach the Dockyard API at {api_url()}: is the platform running? "
                                       "Start it with `make up`.") from None
    try:
        data = resp.json()
    except ValueError:
        data = None
    if resp.status_code >= 400:
        message = data.get("message") if isinstance(data, dict) else resp.text[:300]
        raise click.ClickException(message or f"HTTP {resp.status_code}")
    return data


# ---- which app -------------------------------------------------------------------------
def app_from_remote(remote: str = "dockyard") -> str | None:
    try:
        url = subprocess.run(["git", "remote", "get-url", remote], capture_output=True, text=True,
                             check=False).stdout.strip()
    except FileNotFoundError:
        return None
    m = REMOTE_APP.search(url)
    return m.group(1) if m else None


def resolve_app(app: str | None) -> str:
    app = app or app_from_remote()
    if not app:
        raise click.ClickException("No app given: use -a APP, or run this inside a git repo with a "
                                   "`dockyard` remote (`dockyard git:remote -a APP`).")
    return app


app_option = click.option("-a", "--app", "app", help="App name (default: from the `dockyard` git remote).")


# ---- errors and exit codes ---------------------------------------------------------------
class Group(click.Group):
    """Errors print as ` !    message` on stderr (as Heroku's CLI does) and exit non-zero."""

    def main(self, *args, **kwargs):
        try:
            return super().main(*args, standalone_mode=False, **kwargs)
        except click.exceptions.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(1)
        except click.ClickException as e:
            click.echo(f" !    {e.format_message()}", err=True)
            sys.exit(e.exit_code or 1)
