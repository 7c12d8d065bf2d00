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
@click.option("--ssh", "use_ssh", is_flag=True, help="Push over SSH (add a key with `dockyard keys:add`).")
def git_remote(app, remote, use_ssh):
    """Add (or update) the git remote for an app in the current repo."""
    data = call("GET", f"/apps/{resolve_app(app)}")
    if use_ssh:   # issue 6: ssh://git@HOST:PORT/APP.git
        url = call("GET", "/ssh")["url_template"].replace("APP", data["name"])
        click.echo(url)
        if subprocess.run(["git", "rev-parse", "--git-dir"], capture_output=True).returncode != 0:
            raise click.ClickException("Not inside a git repository: cd into your app's repo (or `git init`).")
        existing = subprocess.run(["git", "remote", "get-url", remote], capture_output=True, text=True)
        subprocess.run(["git", "remote", "set-url" if existing.returncode == 0 else "add", remote, url], check=True)
        click.echo(f"Git remote {remote} set to {url}")
        return
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


no_restart_option = click.option("--no-restart", is_flag=True,
                                  help="Make the release but leave the processes running until the next restart.")


def _change_config(name: str, changes: dict, no_restart: bool, verb: str) -> None:
    call("PATCH", f"/apps/{name}/config-vars", changes, params={"restart": "false"} if no_restart else None)
    if no_restart:
        click.echo(f"{verb} {', '.join(changes)} on {name}... done (not restarted: "
                   f"`dockyard ps:restart -a {name}` applies it)")
    else:
        click.echo(f"{verb} {', '.join(changes)} and restarting {name}... done")


@cli.command("config:set")
@click.argument("pairs", nargs=-1, required=True)
@no_restart_option
@app_option
def config_set(pairs, no_restart, app):
    """Set config vars (KEY=VALUE ...): one release, one rolling restart."""
    changes = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise click.ClickException(f"{pair[:40]!r} is not KEY=VALUE.")
        changes[key] = value
    _change_config(resolve_app(app), changes, no_restart, "Setting")


@cli.command("config:unset")
@click.argument("keys", nargs=-1, required=True)
@no_restart_option
@app_option
def config_unset(keys, no_restart, app):
    """Unset config vars."""
    _change_config(resolve_app(app), {k: None for k in keys}, no_restart, "Unsetting")


# ---- processes ----------------------------------------------------------------------
@cli.command()
@app_option
def ps(app):
    """List an app's processes."""
    name = resolve_app(app)
    dynos = call("GET", f"/apps/{name}/dynos")
    stopped = [f["type"] for f in call("GET", f"/apps/{name}/formation") if f.get("stopped")]
    if not dynos:
        click.echo(f"No processes are running for {name}.")
    if stopped:
        click.echo(f"Stopped (ps:stop): {', '.join(stopped)}; start with `dockyard ps:start -a {name}`")
    by_type: dict[str, list] = {}
    for d in dynos:
        by_type.setdefault(d["type"], []).append(d)
    for ptype, items in sorted(by_type.items()):
        click.echo(f"=== {ptype} ({len(items)})")
        for d in items:
            extra = f" exit {d['exit_code']}" if d["exit_code"] not in (None, 0) else ""
            detail = f" ({d['state_detail']})" if d.get("state_detail") else ""
            click.echo(f"{d['name']}: {d['state']}{detail}{extra} v{d['release']['version']} "
                       f"(container {d['container']}) {d['created_at']}")
            for text in d.get("last_output") or []:
                click.echo(f"    | {text}")


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


def _stop_or_start(action: str, ptype: str | None, app: str | None) -> None:
    name = resolve_app(app)
    call("POST", f"/apps/{name}/formation/actions/{action}", {"type": ptype} if ptype else {})
    done = {"stop": "Stopped", "start": "Started"}[action]
    click.echo(f"{done} {ptype or 'all processes'} of {name}")


@cli.command("ps:stop")
@click.argument("ptype", required=False)
@app_option
def ps_stop(ptype, app):
    """Stop all processes (or one type); the formation is kept for ps:start."""
    _stop_or_start("stop", ptype, app)


@cli.command("ps:start")
@click.argument("ptype", required=False)
@app_option
def ps_start(ptype, app):
    """Start what ps:stop stopped."""
    _stop_or_start("start", ptype, app)


@cli.command("ps:limits")
@click.argument("ptype", required=False)
@click.option("--memory", "memory", help="Memory per instance in MB (e.g. 256), or 'default'.")
@click.option("--cpu", "cpu", help="CPUs per instance (e.g. 0.5), or 'default'.")
@app_option
def ps_limits(ptype, memory, cpu, app):
    """Show resource limits, or set them for a process type (rolls that type)."""
    name = resolve_app(app)
    if memory is None and cpu is None:
        rows = call("GET", f"/apps/{name}/limits")
    else:
        if not ptype:
            raise click.ClickException("Name the process type: `dockyard ps:limits web --memory 256 --cpu 0.5`.")
        update = {}
        for key, raw, cast in (("memory_mb", memory, int), ("cpus", cpu, float)):
            if raw is None:
                continue
            try:
                update[key] = None if raw == "default" else cast(raw)
            except ValueError:
                raise click.ClickException(f"{raw!r} is not a number for --{'memory' if key == 'memory_mb' else 'cpu'}.")
        rows = call("PATCH", f"/apps/{name}/limits/{ptype}", update)["limits"]
    for r in rows:
        cpus = "unlimited" if r["cpus"] is None else f"{r['cpus']:g}"
        click.echo(f"{r['type']}: memory {r['memory_mb']} MB{' (default)' if r['memory_default'] else ''}, "
                   f"cpus {cpus}{' (default)' if r['cpus_default'] else ''}")


def _print_checks(rows) -> None:
    for r in rows:
        if not r["checks"]:
            click.echo(f"{r['type']}: default: {r['default']}")
        for c in r["checks"]:
            what = c.get("command") or ("listening" if c.get("listening") else f"GET {c.get('path')}")
            content = f" expecting {c['content']!r}" if c.get("content") else ""
            click.echo(f"{r['type']}: {c['name']!r} {what}{content}: attempts {c['attempts']}, timeout "
                       f"{c['timeout']} s, wait {c['wait']} s, initial delay {c['initialDelay']} s "
                       f"[{r['source']}]")


@cli.command("checks")
@app_option
def checks(app):
    """Health checks each process type must pass before it gets traffic."""
    _print_checks(call("GET", f"/apps/{resolve_app(app)}/checks"))


@cli.command("cron")
@app_option
def cron(app):
    """Scheduled jobs (app.json `cron`): schedule, command, next run, last run and exit code."""
    name = resolve_app(app)
    jobs = call("GET", f"/apps/{name}/cron")
    if not jobs:
        click.echo(f"{name} has no scheduled jobs: add `cron` to app.json, e.g. "
                   '[{"command": "python job.py", "schedule": "0 5 * * *"}], and push.')
        return
    for j in jobs:
        last = "never run" if not j["last_run"] else (
            f"last run {j['last_run']} ({j['process']}): {j['state']}"
            + (f", exit code {j['exit_code']}" if j["exit_code"] is not None else ""))
        click.echo(f"{j['schedule']:<16} {j['command']}\n{'':<16} next run {j['next_run']}; {last}")


@cli.command("checks:set")
@click.argument("ptype")
@click.argument("pairs", nargs=-1, required=True)
@app_option
def checks_set(ptype, pairs, app):
    """Set a type's check (overrides app.json): path=/health content=ok attempts=3 timeout=5 wait=2."""
    spec = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise click.ClickException(f"{pair[:40]!r} is not KEY=VALUE (e.g. path=/health).")
        spec[key] = value
    name = resolve_app(app)
    _print_checks(call("PUT", f"/apps/{name}/checks/{ptype}", spec))
    click.echo(f"Used from the next deploy or `dockyard ps:restart -a {name}`.")


@cli.command("checks:unset")
@click.argument("ptype")
@app_option
def checks_unset(ptype, app):
    """Back to app.json's checks (or the default) for a type."""
    _print_checks(call("DELETE", f"/apps/{resolve_app(app)}/checks/{ptype}"))


@cli.command("run", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--detach", "-d", is_flag=True, help="Run in the background; output goes to `dockyard logs`.")
@app_option
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(detach, app, command):
    """Run a one-off process in the current release: `dockyard run -a APP -- python manage.py migrate`.
    stdin, stdout, stderr and the exit code pass through."""
    name = resolve_app(app)
    line = " ".join(command)
    if detach:
        dyno = call("POST", f"/apps/{name}/dynos", {"command": line})
        click.echo(f"Running `{line}` on {name}... up, {dyno['name']}; see `dockyard logs -a {name} --ps {dyno['name']}`")
        return
    call("GET", f"/apps/{name}")      # a clear error (login, access, no such app) before attaching
    sys.exit(_run_attached(name, line))


def _run_attached(name: str, line: str) -> int:
    import threading

    import simple_websocket
    url = "ws" + api_url()[len("http"):] + f"/apps/{name}/run"
    try:
        ws = simple_websocket.Client(url, headers={"Authorization": f"Bearer {token()}"})
    except (simple_websocket.ConnectionError, OSError) as e:
        raise click.ClickException(f"Could not attach to {name}'s one-off ({e}): is the platform running?")
    ws.send(json.dumps({"command": line}))

    def pump_stdin() -> None:
        try:
            fd = sys.stdin.fileno()
            while True:
                data = os.read(fd, 65536)
                if not data:
                    break
                ws.send(data)
        except (OSError, ValueError, simple_websocket.ConnectionClosed):
            pass
        try:
            ws.send(json.dumps({"eof": True}))
        except simple_websocket.ConnectionClosed:
            pass

    threading.Thread(target=pump_stdin, daemon=True).start()
    try:
        while True:
            msg = ws.receive()
            if isinstance(msg, bytes):
                stream = sys.stdout.buffer if msg[:1] == b"\x01" else sys.stderr.buffer
                stream.write(msg[1:])
                stream.flush()
                continue
            event = json.loads(msg)
            if "started" in event:
                click.echo(f"Running `{line}` on {name} (v{event.get('release')})... up, {event['started']}", err=True)
            elif "exit" in event:
                return int(event["exit"])
            elif "error" in event:
                raise click.ClickException(event["error"])
    except simple_websocket.ConnectionClosed:
        raise click.ClickException("The connection to the one-off was lost before it reported its exit code.")
    finally:
        try:
            ws.close()
        except Exception:  # noqa: BLE001 - closing a dead socket
            pass


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
@click.option("--source", default="", help="Only app, router or dockyard (platform) lines.")
def logs(app, num, tail, ps_name, source):
    """Show an app's logs (kept across deploys)."""
    name = resolve_app(app)
    params = {"lines": num, "ps": ps_name, "source": source}
    since = _print_lines(call("GET", f"/apps/{name}/logs", params=params)) or ""
    while tail:
        time.sleep(1)
        since = _print_lines(call("GET", f"/apps/{name}/logs", params={**params, "since": since})) or since


# --- router (issue 5): domains, certs, router settings, maintenance ---------------------
@cli.command()
@app_option
def domains(app):
    """List an app's hostnames (the default one and custom ones)."""
    name = resolve_app(app)
    rows = call("GET", f"/apps/{name}/domains")
    click.echo(f"=== {name} Domains")
    for d in rows:
        click.echo(f"{d['hostname']:<50} {d['kind']}")


@cli.command("domains:add")
@click.argument("hostname")
@app_option
def domains_add(hostname, app):
    """Route HOSTNAME (or *.example.com) to the app. Point its DNS at this machine."""
    name = resolve_app(app)
    d = call("POST", f"/apps/{name}/domains", {"hostname": hostname})
    click.echo(f"Adding {d['hostname']} to {name}... done")
    click.echo(f"Point the DNS of {d['hostname']} (A/AAAA or CNAME) at this router.")


@cli.command("domains:remove")
@click.argument("hostname")
@app_option
def domains_remove(hostname, app):
    """Stop routing HOSTNAME to the app."""
    name = resolve_app(app)
    call("DELETE", f"/apps/{name}/domains/{hostname}")
    click.echo(f"Removing {hostname} from {name}... done")


def _print_cert(c: dict) -> None:
    click.echo(f"Names:      {', '.join(c['names'])}")
    click.echo(f"Issuer:     {c['issuer']}{' (self-signed)' if c['self_signed'] else ''}")
    click.echo(f"Expires:    {c['not_after']} ({c['expires_in_days']} days)")
    click.echo(f"SHA-256:    {c['fingerprint']}")
    click.echo(f"HTTPS port: {c['tls_port']}   force-https: {str(c['force_https']).lower()}")
    if c["uncovered_hosts"]:
        click.echo(f"Warning: not covered by this certificate: {', '.join(c['uncovered_hosts'])}")


@cli.command()
@app_option
def certs(app):
    """Show the app's TLS certificate."""
    name = resolve_app(app)
    rows = call("GET", f"/apps/{name}/sni-endpoints")
    if not rows:
        click.echo(f"{name} has no certificate. Add one with: dockyard certs:add CERT KEY -a {name}")
        return
    click.echo(f"=== {name} Certificate")
    _print_cert(rows[0])


@cli.command("certs:add")
@click.argument("cert", type=click.Path(exists=True, dir_okay=False))
@click.argument("key", type=click.Path(exists=True, dir_okay=False))
@app_option
def certs_add(cert, key, app):
    """Add (or replace) the app's certificate: CERT is the PEM chain, KEY its private key."""
    name = resolve_app(app)
    c = call("POST", f"/apps/{name}/sni-endpoints",
             {"certificate_chain": Path(cert).read_text(), "private_key": Path(key).read_text()})
    click.echo(f"Adding certificate to {name}... done")
    _print_cert(c)


@cli.command("certs:remove")
@app_option
def certs_remove(app):
    """Remove the app's certificate (HTTPS stops; force-https is turned off)."""
    name = resolve_app(app)
    call("DELETE", f"/apps/{name}/sni-endpoints")
    click.echo(f"Removing certificate from {name}... done")


def _print_router(r: dict) -> None:
    click.echo(f"=== {r['app']} Router")
    for key, value in sorted(r["settings"].items()):
        value = str(value).lower() if isinstance(value, bool) else value
        mark = "" if key in r["customized"] else "  (default)"
        click.echo(f"{key + ':':<24}{value}{mark}")
    if r["refused"]:
        click.echo(f"Refused by the router (not in use): {r['refused']}")


@cli.command("router")
@app_option
def router_report(app):
    """Show the app's router settings."""
    _print_router(call("GET", f"/apps/{resolve_app(app)}/router"))


@cli.command("router:report")
@app_option
def router_report_alias(app):
    """Show the app's router settings (same as `router`)."""
    _print_router(call("GET", f"/apps/{resolve_app(app)}/router"))


@cli.command("router:set")
@click.argument("pairs", nargs=-1, required=True)
@app_option
def router_set(pairs, app):
    """Set router settings: client-max-body-size=50m read-timeout=120 send-timeout=60
    connect-timeout=5 force-https=true. NAME= (empty) resets one to its default."""
    changes = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise click.ClickException(f"{pair[:40]!r} is not NAME=VALUE (e.g. read-timeout=120).")
        changes[key] = value if value != "" else None
    name = resolve_app(app)
    _print_router(call("PATCH", f"/apps/{name}/router", {"settings": changes}))


@cli.command("maintenance")
@app_option
def maintenance_show(app):
    """Show whether the app is in maintenance mode."""
    r = call("GET", f"/apps/{resolve_app(app)}/router")
    click.echo("on" if r["settings"]["maintenance"] else "off")


@cli.command("maintenance:on")
@app_option
def maintenance_on(app):
    """Answer every request with a 503 maintenance page; the app keeps running."""
    name = resolve_app(app)
    call("PATCH", f"/apps/{name}/router", {"settings": {"maintenance": True}})
    click.echo(f"Enabling maintenance mode for {name}... done")


@cli.command("maintenance:off")
@app_option
def maintenance_off(app):
    """Serve the app again."""
    name = resolve_app(app)
    call("PATCH", f"/apps/{name}/router", {"settings": {"maintenance": False}})
    click.echo(f"Disabling maintenance mode for {name}... done")


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


# --- access and security (issue 6): users, tokens, collaborators, SSH keys, audit ---
def _remove_netrc(host: str) -> bool:
    """Drop `host` from ~/.netrc (others kept; mode 600; atomic). True when it was there."""
    path = _netrc_path()
    if not path.exists():
        return False
    try:
        parsed = netrc.netrc(str(path))
    except netrc.NetrcParseError as e:
        raise click.ClickException(f"{path} is not a valid netrc file ({e}); fix or remove it.")
    if host not in parsed.hosts:
        return False
    hosts = dict(parsed.hosts)
    del hosts[host]
    lines = []
    for machine, (lg, acct, pw) in hosts.items():
        line = f"machine {machine}" if machine != "default" else "default"
        line += (f" login {lg}" if lg else "") + (f" account {acct}" if acct else "") + (f" password {pw}" if pw else "")
        lines.append(line)
    for name, body in parsed.macros.items():
        lines.append(f"macdef {name}\n{''.join(body)}")
    tmp = path.with_name(path.name + ".dockyard-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + ("\n" if lines else ""))
    os.replace(tmp, path)
    os.chmod(path, 0o600)
    return True


@cli.command("auth:token")
@click.option("--user", "user", help="(admin) mint a new token for this user and print it.")
@click.option("--rotate", is_flag=True, help="Replace your token by a new one; the old one stops working.")
def auth_token(user, rotate):
    """Print your API token (or mint one for a user, or rotate yours)."""
    if user and rotate:
        raise click.ClickException("Use either --user or --rotate.")
    if user:
        data = call("POST", f"/users/{user}/tokens")
        click.echo(f"New token for {data['user']} (give it to them; it is shown once):", err=True)
        click.echo(data["token"])
        return
    if rotate:
        data = call("POST", "/account/token/rotate")
        if not os.environ.get("DOCKYARD_API_TOKEN"):
            write_netrc(urlparse(api_url()).hostname, data["user"], data["token"])
            click.echo(f"Token rotated; the new one is in {_netrc_path()} (the old one no longer works).", err=True)
        click.echo(data["token"])
        return
    click.echo(token())


@cli.command("auth:logout")
@click.option("--all", "everywhere", is_flag=True, help="Revoke all your tokens, not only this one.")
def auth_logout(everywhere):
    """Revoke your token on the server and remove it from ~/.netrc."""
    host = urlparse(api_url()).hostname
    try:
        call("DELETE", "/account/token", params={"all": "1"} if everywhere else None)
        revoked = True
    except click.ClickException as e:
        if "Missing or invalid token" not in str(e.message) and "Not logged in" not in str(e.message):
            raise
        revoked = False
    removed = _remove_netrc(host)
    if not revoked and not removed:
        raise click.ClickException(f"Not logged in to {api_url()}.")
    click.echo(f"Logged out of {api_url()}" + (" (token revoked)" if revoked else "")
               + (f"; removed from {_netrc_path()}" if removed else ""))


@cli.command("users")
def users_list():
    """(admin) List users."""
    click.echo("=== Users")
    for u in call("GET", "/users"):
        click.echo(f"{u['name']:<24} {'admin' if u['is_admin'] else 'user':<6} apps={u['apps']} keys={u['keys']} "
                   f"tokens={u['tokens']}")


@cli.command("users:add")
@click.argument("name")
@click.option("--admin", is_flag=True, help="Make the user an admin.")
def users_add(name, admin):
    """(admin) Create a user; prints their first token on the last line."""
    data = call("POST", "/users", {"name": name, "admin": admin})
    click.echo(f"Created user {data['name']}{' (admin)' if data['is_admin'] else ''}. Their token (shown once; "
               f"they log in with `dockyard login --token TOKEN`):")
    click.echo(data["token"])


@cli.command("users:remove")
@click.argument("name")
@click.option("--confirm", help="The user's name again, to confirm.")
def users_remove(name, confirm):
    """(admin) Remove a user, their tokens, keys and app access."""
    if confirm != name:
        raise click.ClickException(f"This removes {name} and revokes their tokens and keys. "
                                   f"Run again with --confirm {name}.")
    call("DELETE", f"/users/{name}")
    click.echo(f"Removed user {name}")


@cli.command("access")
@app_option
def access_list(app):
    """List who has access to an app."""
    name = resolve_app(app)
    click.echo(f"=== {name} access")
    for row in call("GET", f"/apps/{name}/collaborators"):
        click.echo(f"{row['user']:<24} {row['role']}")


@cli.command("access:add")
@click.argument("user")
@app_option
def access_add(user, app):
    """(owner) Give USER collaborator access to an app."""
    name = resolve_app(app)
    call("POST", f"/apps/{name}/collaborators", {"user": user})
    click.echo(f"Adding {user} to {name} collaborators... done")


@cli.command("access:remove")
@click.argument("user")
@app_option
def access_remove(user, app):
    """(owner) Remove USER's access to an app."""
    name = resolve_app(app)
    call("DELETE", f"/apps/{name}/collaborators/{user}")
    click.echo(f"Removing {user} from {name} collaborators... done")


@cli.command("keys")
@click.option("--all", "everyone", is_flag=True, help="(admin) Everyone's keys.")
def keys_list(everyone):
    """List your SSH keys (for git push over SSH)."""
    rows = call("GET", "/account/keys", params={"all": "1"} if everyone else None)
    click.echo("=== SSH keys")
    for k in rows:
        click.echo(f"{k['name']:<24} {k['fingerprint']}" + (f"  ({k['user']})" if everyone else ""))
    if not rows:
        click.echo("You have no keys. Add one with `dockyard keys:add ~/.ssh/id_ed25519.pub`.")


@cli.command("keys:add")
@click.argument("file", type=click.Path(dir_okay=False), required=False)
@click.option("--name", help="A name for the key (default: its comment).")
def keys_add(file, name):
    """Add an SSH public key (default ~/.ssh/id_ed25519.pub)."""
    path = Path(file or "~/.ssh/id_ed25519.pub").expanduser()
    try:
        text = path.read_text()
    except OSError as e:
        raise click.ClickException(f"Cannot read {path}: {e.strerror}. Create a key with "
                                   "`ssh-keygen -t ed25519`, then `dockyard keys:add ~/.ssh/id_ed25519.pub`.")
    data = call("POST", "/account/keys", {"public_key": text, **({"name": name} if name else {})})
    click.echo(f"Added key {data['name']} ({data['fingerprint']})")


@cli.command("keys:remove")
@click.argument("which")
def keys_remove(which):
    """Remove an SSH key by name or fingerprint."""
    data = call("DELETE", f"/account/keys/{which}")
    click.echo(f"Removed key {data['name']} ({data['fingerprint']})")


@cli.command("audit")
@app_option
@click.option("--user", "actor", help="Only this user's actions.")
@click.option("-n", "--num", default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def audit_log(app, actor, num, as_json):
    """(admin) Who did what: deploys, config changes (keys only), scaling, access, keys, users."""
    rows = call("GET", "/audit", params={"app": app or "", "user": actor or "", "limit": num})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        detail = " ".join(f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in r["detail"].items())
        click.echo(f"{r['at'][:19]} {r['actor']:<12} {r['action']:<14} {r['app'] or '-':<20} "
                   f"{r['status'] or ''} {detail}".rstrip())


if __name__ == "__main__":
    main()
