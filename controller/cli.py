"""`dockyard`: the command-line client. Heroku's command names; every command is a call
to the JSON API. The app comes from -a/--app or from the `dockyard` git remote."""
from __future__ import annotations

import json
import netrc
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import click
import requests

from .settings import from_env

CONFIG_PATH = Path("~/.config/dockyard/config.json")
REMOTE_APP = re.compile(r"/([a-z][a-z0-9-]*)\.git/?$")


# ---- configuration ------------------------------------------------------------------
def _config_file() -> Path:
    return CONFIG_PATH.expanduser()


def api_url() -> str:
    if os.environ.get("DOCKYARD_API_URL"):
        return os.environ["DOCKYARD_API_URL"].rstrip("/")
    try:
        return json.loads(_config_file().read_text())["api_url"].rstrip("/")
    except (OSError, ValueError, KeyError):
        return from_env().api_url


def _netrc_path() -> Path:
    return Path(os.environ.get("NETRC") or Path.home() / ".netrc")


def token() -> str:
    if os.environ.get("DOCKYARD_API_TOKEN"):
        return os.environ["DOCKYARD_API_TOKEN"]
    host = urlparse(api_url()).hostname
    path = _netrc_path()
    try:
        entry = netrc.netrc(str(path)).authenticators(host) if path.exists() else None
    except (netrc.NetrcParseError, OSError) as e:
        raise click.ClickException(f"Could not read {path}: {e}. Fix or remove the file, then `dockyard login`.")
    if not entry or not entry[2]:
        raise click.ClickException(f"Not logged in to {api_url()}: run `dockyard login`.")
    return entry[2]


def write_netrc(host: str, login: str, password: str) -> Path:
    """Add or replace the entry for `host`, keeping the others; mode 600; atomic."""
    path = _netrc_path()
    entries: dict[str, tuple] = {}
    macros: dict = {}
    if path.exists():
        try:
            parsed = netrc.netrc(str(path))
        except netrc.NetrcParseError as e:
            raise click.ClickException(f"{path} is not a valid netrc file ({e}); fix or remove it.")
        entries, macros = dict(parsed.hosts), parsed.macros
    entries[host] = (login, None, password)
    lines = []
    for machine, (lg, acct, pw) in entries.items():
        line = f"machine {machine}" if machine != "default" else "default"
        line += f" login {lg}" if lg else ""
        line += f" account {acct}" if acct else ""
        line += f" password {pw}" if pw else ""
        lines.append(line)
    for name, body in macros.items():
        lines.append(f"macdef {name}\n{''.join(body)}")
    tmp = path.with_name(path.name + ".dockyard-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)
    os.chmod(path, 0o600)
    return path


# ---- HTTP -------------------------------------------------------------------------
def call(method: str, path: str, body=None, params=None, auth: str | None = None, timeout: float = 3600):
    url = api_url() + path
    session = requests.Session()
    session.trust_env = False   # else requests replaces our Bearer header with ~/.netrc's Basic auth
    try:
        resp = session.request(method, url, json=body, params=params, timeout=timeout,
                                headers={"Authorization": f"Bearer {auth or token()}", "Accept": "application/json"})
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


class Group(click.Group):
    def main(self, *args, **kwargs):
        try:
            return super().main(*args, standalone_mode=False, **kwargs)
        except click.exceptions.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(1)
        except click.ClickException as e:
            click.echo(f" !    {e.format_message()}", err=True)
            sys.exit(e.exit_code or 1)


@click.group(cls=Group)
def cli():
    """Dockyard: git push to deploy, Heroku-style."""


# ---- auth ---------------------------------------------------------------------------
@cli.command()
@click.option("--api", "api", help="API URL, e.g. http://127.0.0.1:5000")
@click.option("--token", "tok", help="API token (prompted for when omitted).")
@click.option("--token-file", type=click.Path(exists=True, dir_okay=False), help="Read the token from a file.")
def login(api, tok, token_file):
    """Store your token in ~/.netrc (git push uses it) and remember the API URL."""
    if api:
        os.environ["DOCKYARD_API_URL"] = api.rstrip("/")
    if token_file:
        tok = Path(token_file).read_text().strip()
    if not tok:
        tok = click.prompt("Dockyard token", hide_input=True)
    account = call("GET", "/account", auth=tok)
    cfg = _config_file()
    cfg.parent.mkdir(parents=True, exist_ok=True)
    tmp = cfg.with_suffix(".tmp")
    tmp.write_text(json.dumps({"api_url": api_url()}))
    os.replace(tmp, cfg)
    path = write_netrc(urlparse(api_url()).hostname, account["name"], tok)
    click.echo(f"Logged in to {api_url()} as {account['name']} (token stored in {path})")


@cli.command("auth:whoami")
def whoami():
    """Show who you are logged in as."""
    click.echo(call("GET", "/account")["name"])


# ---- apps ---------------------------------------------------------------------------
@cli.command()
def apps():
    """List your apps."""
    rows = call("GET", "/apps")
    click.echo("=== Apps")
    for a in rows:
        click.echo(a["name"])
    if not rows:
        click.echo("You have no apps. Create one with `dockyard apps:create NAME`.")


@cli.command("apps:create")
@click.argument("name")
@click.option("--remote", default="dockyard", show_default=True, help="Git remote to add if in a git repo.")
def apps_create(name, remote):
    """Create an app (and add its git remote when run in a git repo)."""
    app = call("POST", "/apps", {"name": name})
    click.echo(f"Creating {app['name']}... done")
    click.echo(f"{app['web_url']} | {app['git_url']}")
    if subprocess.run(["git", "rev-parse", "--git-dir"], capture_output=True).returncode == 0:
        _set_remote(remote, app["git_url"])


@cli.command("apps:info")
@app_option
def apps_info(app):
    """Show an app's details."""
    data = call("GET", f"/apps/{resolve_app(app)}")
    click.echo(f"=== {data['name']}")
    click.echo(f"Git URL:   {data['git_url']}")
    click.echo(f"Web URL:   {data['web_url']}")
    click.echo(f"Release:   v{data['released_version']}")
    click.echo("Formation: " + (" ".join(f"{k}={v}" for k, v in data["formation"].items()) or "(none)"))


@cli.command("apps:destroy")
@app_option
@click.option("--confirm", help="The app's name again, to confirm.")
def apps_destroy(app, confirm):
    """Delete an app: its containers, images, repo and releases."""
    name = resolve_app(app)
    if confirm != name:
        raise click.ClickException(f"This deletes {name} for good. Run again with --confirm {name}.")
    call("DELETE", f"/apps/{name}")
    click.echo(f"Destroying {name}... done")


def _set_remote(remote: str, url: str) -> None:
    if subprocess.run(["git", "rev-parse", "--git-dir"], capture_output=True).returncode != 0:
        raise click.ClickException("Not inside a git repository: cd into your app's repo (or `git init`).")
    existing = subprocess.run(["git", "remote", "get-url", remote], capture_output=True, text=True)
    verb = "set-url" if existing.returncode == 0 else "add"
    subprocess.run(["git", "remote", verb, remote, url], check=True)
    # After ~/.netrc, git asks this helper: it answers from the same login, or says how to log in.
    base = url.split("/", 3)
    helper = f"!{Path(sys.argv[0]).resolve()} git:credentials"
    subprocess.run(["git", "config", f"credential.{base[0]}//{base[2]}.helper", helper], check=True)
    click.echo(f"Git remote {remote} set to {url}")


@cli.command("git:credentials", hidden=True)
@click.argument("operation")
def git_credentials(operation):
    """git credential helper protocol (`get`): answer with the logged-in token."""
    if operation != "get":
        return
    fields = dict(line.split("=", 1) for line in sys.stdin.read().splitlines() if "=" in line)
    host = fields.get("host", "").rsplit(":", 1)[0]
    path = _netrc_path()
    try:
        entry = netrc.netrc(str(path)).authenticators(host) if path.exists() else None
    except (netrc.NetrcParseError, OSError):
        entry = None
    if not entry or not entry[2]:
        click.echo(f"dockyard: not logged in to {fields.get('host', host)}: run `dockyard login` "
                   "(it stores your token in ~/.netrc for git).", err=True)
        return
    click.echo(f"username={entry[0] or 'dockyard'}\npassword={entry[2]}")


@cli.command("git:remote")
@app_option
@click.option("-r", "--remote", default="dockyard", show_default=True)
def git_remote(app, remote):
    """Add (or update) the git remote for an app in the current repo."""
    data = call("GET", f"/apps/{resolve_app(app)}")
    _set_remote(remote, data["git_url"])


# ---- releases -----------------------------------------------------------------------
@cli.command()
@app_option
def releases(app):
    """List an app's releases."""
    name = resolve_app(app)
    click.echo(f"=== {name} Releases")
    for r in reversed(call("GET", f"/apps/{name}/releases")):
        mark = " (current)" if r["current"] else ""
        click.echo(f"v{r['version']:<4} {r['status']:<9} {r['description']:<40} {r['user'] or '':<10} "
                   f"{r['created_at'][:19]}{mark}")


@cli.command("releases:info")
@click.argument("version")
@app_option
def releases_info(version, app):
    """Show one release."""
    name = resolve_app(app)
    r = call("GET", f"/apps/{name}/releases/{version}")
    click.echo(f"=== Release v{r['version']}")
    for key in ("status", "description", "user", "created_at", "build_id", "image"):
        click.echo(f"{key + ':':<14}{r[key]}")
    click.echo(f"{'config:':<14}{', '.join(r['config_keys']) or '(none)'}")


@cli.command()
@click.argument("version", required=False)
@app_option
def rollback(version, app):
    """Roll back to a release (default: the one before the current)."""
    name = resolve_app(app)
    r = call("POST", f"/apps/{name}/releases", {"release": version} if version else {})
    click.echo(f"Rolled back {name}: {r['description']} is v{r['version']}")


# ---- config -------------------------------------------------------------------------
@cli.command()
@app_option
@click.option("--json", "as_json", is_flag=True)
def config(app, as_json):
    """Show config vars."""
    name = resolve_app(app)
    data = call("GET", f"/apps/{name}/config-vars")
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"=== {name} Config Vars")
    for k in sorted(data):
        click.echo(f"{k + ':':<24}{data[k]}")


@cli.command("config:get")
@click.argument("key")
@app_option
def config_get(key, app):
    """Print one config var's value."""
    data = call("GET", f"/apps/{resolve_app(app)}/config-vars")
    if key not in data:
        raise click.ClickException(f"{key} is not set.")
    click.echo(data[key])


@cli.command("config:set")
@click.argument("pairs", nargs=-1, required=True)
@app_option
def config_set(pairs, app):
    """Set config vars (KEY=VALUE ...): one release, one rolling restart."""
    changes = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise click.ClickException(f"{pair[:40]!r} is not KEY=VALUE.")
        changes[key] = value
    name = resolve_app(app)
    call("PATCH", f"/apps/{name}/config-vars", changes)
    click.echo(f"Setting {', '.join(changes)} and restarting {name}... done")


@cli.command("config:unset")
@click.argument("keys", nargs=-1, required=True)
@app_option
def config_unset(keys, app):
    """Unset config vars."""
    name = resolve_app(app)
    call("PATCH", f"/apps/{name}/config-vars", {k: None for k in keys})
    click.echo(f"Unsetting {', '.join(keys)} and restarting {name}... done")


# ---- processes ----------------------------------------------------------------------
@cli.command()
@app_option
def ps(app):
    """List an app's processes."""
    name = resolve_app(app)
    dynos = call("GET", f"/apps/{name}/dynos")
    if not dynos:
        click.echo(f"No processes are running for {name}.")
    by_type: dict[str, list] = {}
    for d in dynos:
        by_type.setdefault(d["type"], []).append(d)
    for ptype, items in sorted(by_type.items()):
        click.echo(f"=== {ptype} ({len(items)})")
        for d in items:
            extra = f" exit {d['exit_code']}" if d["exit_code"] not in (None, 0) else ""
            click.echo(f"{d['name']}: {d['state']}{extra} v{d['release']['version']} "
                       f"(container {d['container']}) {d['created_at']}")


@cli.command("ps:scale")
@click.argument("pairs", nargs=-1, required=True)
@app_option
def ps_scale(pairs, app):
    """Scale process types: web=3 worker=1."""
    updates = []
    for pair in pairs:
        ptype, sep, qty = pair.partition("=")
        if not sep or not qty.isdigit():
            raise click.ClickException(f"{pair[:40]!r} is not TYPE=NUMBER (e.g. web=2).")
        updates.append({"type": ptype, "quantity": int(qty)})
    name = resolve_app(app)
    rows = call("PATCH", f"/apps/{name}/formation", {"updates": updates})
    click.echo("Scaled to " + " ".join(f"{r['type']}={r['quantity']}" for r in rows))


@cli.command("ps:restart")
@click.argument("ptype", required=False)
@app_option
def ps_restart(ptype, app):
    """Rolling restart of all processes, or of one type."""
    name = resolve_app(app)
    call("DELETE", f"/apps/{name}/dynos" + (f"/{ptype}" if ptype else ""))
    click.echo(f"Restarting {ptype or 'all processes'} of {name}... done")


# ---- builds -------------------------------------------------------------------------
@cli.command()
@app_option
def builds(app):
    """List an app's builds."""
    name = resolve_app(app)
    for b in reversed(call("GET", f"/apps/{name}/builds")):
        click.echo(f"{b['id']}  {b['status']:<9} {b['method']:<10} {b['source_commit'][:8]}  {b['created_at'][:19]}")


@cli.command("builds:info")
@click.argument("build_id")
@app_option
def builds_info(build_id, app):
    """Show one build with its full output."""
    b = call("GET", f"/apps/{resolve_app(app)}/builds/{build_id}")
    click.echo(f"=== Build {b['id']} ({b['status']})")
    click.echo(f"Method:   {b['method']}")
    click.echo(f"Commit:   {b['source_commit']}")
    if b.get("duration_seconds") is not None:
        click.echo(f"Duration: {b['duration_seconds']} s")
    click.echo(f"Image:    {b['image']}")
    if b["error"]:
        click.echo(f"Error: {b['error']}")
    click.echo(b["output"])


# ---- logs ---------------------------------------------------------------------------
def _print_lines(rows) -> str | None:
    last = None
    for r in rows:
        click.echo(f"{r['at']} {r['source']}[{r['process']}]: {r['message']}")
        last = r["at"]
    return last


@cli.command()
@app_option
@click.option("-n", "--num", default=100, show_default=True, help="Number of lines.")
@click.option("-t", "--tail", is_flag=True, help="Keep following new lines.")
@click.option("--ps", "ps_name", default="", help="Only this process, e.g. web.1.")
@click.option("--source", default="", help="Only app, router or dockyard lines.")
def logs(app, num, tail, ps_name, source):
    """Show an app's logs (kept across deploys)."""
    name = resolve_app(app)
    params = {"lines": num, "ps": ps_name, "source": source}
    since = _print_lines(call("GET", f"/apps/{name}/logs", params=params)) or ""
    while tail:
        time.sleep(1)
        since = _print_lines(call("GET", f"/apps/{name}/logs", params={**params, "since": since})) or since


# --- buildpacks (issue 3) ---------------------------------------------------------------
@cli.command("builds:output")
@click.argument("build_id")
@app_option
def builds_output(build_id, app):
    """Print a build's full output (as the `git push` showed it)."""
    b = call("GET", f"/apps/{resolve_app(app)}/builds/{build_id}")
    click.echo(b["output"])
    if b["status"] == "failed":
        sys.exit(1)


@cli.command("repo:purge-cache")
@app_option
def repo_purge_cache(app):
    """Clear the app's build cache (pip/npm/Go caches kept between buildpack builds)."""
    name = resolve_app(app)
    r = call("DELETE", f"/apps/{name}/build-cache")
    if r["purged"]:
        click.echo(f"Purged the build cache of {name} ({r['bytes'] / 1e6:.1f} MB); the next build downloads "
                   "its dependencies again.")
    else:
        click.echo(f"{name} has no build cache (nothing to purge).")


@cli.command()
@app_option
@click.option("--image", required=True, help="IMAGE[:TAG] already in this machine's Docker engine.")
@click.option("--procfile", "procfile", default=None,
              help="Process types, as a Procfile's text (e.g. 'web: ./server'); default: the image's command as web.")
def deploy(app, image, procfile):
    """Release an image that is already in the local engine (no registry)."""
    name = resolve_app(app)
    r = call("POST", f"/apps/{name}/builds", {"image": image, "procfile": procfile})
    for line in r["output"]:
        click.echo(line)
    click.echo(f"Deployed {image} to {name} as v{r['release']} (build {r['build']['id']}).")


def main():
    cli()


if __name__ == "__main__":
    main()
