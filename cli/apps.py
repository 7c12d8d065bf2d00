"""Apps and their git remote: apps, apps:create, apps:info, apps:rename, apps:destroy, git:remote and the
git credential helper that answers from the same login."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click

from .client import app_option, call, netrc_entry, resolve_app


@click.command()
def apps():
    """List your apps."""
    rows = call("GET", "/apps")
    click.echo("=== Apps")
    for a in rows:
        click.echo(a["name"])
    if not rows:
        click.echo("You have no apps. Create one with `dockyard apps:create NAME`.")


@click.command("apps:create")
@click.argument("name")
@click.option("--remote", default="dockyard", show_default=True, help="Git remote to add if in a git repo.")
@click.option("--autosleep", "after", default=None, metavar="DURATION",
              help="web sleeps from the start with this autosleep window (30m, 90s): deploys start nothing "
                   "until the first request.")
def apps_create(name, remote, after):
    """Create an app (and add its git remote when run in a git repo)."""
    app = call("POST", "/apps", {"name": name, **({"autosleep": after} if after else {})})
    click.echo(f"Creating {app['name']}... done")
    click.echo(f"{app['web_url']} | {app['git_url']}")
    if _in_git_repo():
        _set_remote(remote, app["git_url"])


@click.command("apps:info")
@app_option
def apps_info(app):
    """Show an app's details."""
    data = call("GET", f"/apps/{resolve_app(app)}")
    click.echo(f"=== {data['name']}")
    click.echo(f"Git URL:   {data['git_url']}")
    click.echo(f"Web URL:   {data['web_url']}")
    click.echo(f"Release:   v{data['released_version']}")
    click.echo("Formation: " + (" ".join(f"{k}={v}" for k, v in data["formation"].items()) or "(none)"))


@click.command("apps:destroy")
@app_option
@click.option("--confirm", help="The app's name again, to confirm.")
def apps_destroy(app, confirm):
    """Delete an app: its containers, images, repo and releases."""
    name = resolve_app(app)
    if confirm != name:
        raise click.ClickException(f"This deletes {name} for good. Run again with --confirm {name}.")
    owned = [a["name"] for a in call("GET", f"/apps/{name}/addons") if a["app"] == name]
    if owned:   # their data goes too: ask, every time (a final backup of each is kept)
        click.confirm(f"{name} has add-ons with data: {', '.join(owned)}. Destroying the app deletes them "
                      "(a final backup of each is kept). Delete them too?", abort=True)
    data = call("DELETE", f"/apps/{name}", params={"addons": "destroy"} if owned else None)
    for backup in data.get("final_backups") or []:
        click.echo(f"Kept a final backup: {backup} (yours and admins' only: `dockyard backups:destroyed`)")
    click.echo(f"Destroying {name}... done")


@click.command("apps:rename")
@click.argument("new_name")
@app_option
def apps_rename(new_name, app):
    """Rename an app that is not deployed yet and has no add-ons."""
    name = resolve_app(app)
    data = call("PATCH", f"/apps/{name}", {"name": new_name})
    click.echo(f"Renaming {name} to {data['name']}... done")
    click.echo(f"{data['web_url']} | {data['git_url']}")


# ---- git -------------------------------------------------------------------------------
def _in_git_repo() -> bool:
    return subprocess.run(["git", "rev-parse", "--git-dir"], capture_output=True).returncode == 0


def _add_or_update_remote(remote: str, url: str) -> None:
    if not _in_git_repo():
        raise click.ClickException("Not inside a git repository: cd into your app's repo (or `git init`).")
    existing = subprocess.run(["git", "remote", "get-url", remote], capture_output=True, text=True)
    subprocess.run(["git", "remote", "set-url" if existing.returncode == 0 else "add", remote, url], check=True)


def _set_remote(remote: str, url: str) -> None:
    _add_or_update_remote(remote, url)
    # After ~/.netrc, git asks this helper: it answers from the same login, or says how to log in.
    base = url.split("/", 3)
    helper = f"!{Path(sys.argv[0]).resolve()} git:credentials"
    subprocess.run(["git", "config", f"credential.{base[0]}//{base[2]}.helper", helper], check=True)
    click.echo(f"Git remote {remote} set to {url}")


@click.command("git:credentials", hidden=True)
@click.argument("operation")
def git_credentials(operation):
    """git credential helper protocol (`get`): answer with the logged-in token."""
    if operation != "get":
        return
    fields = dict(line.split("=", 1) for line in sys.stdin.read().splitlines() if "=" in line)
    host = fields.get("host", "").rsplit(":", 1)[0]
    entry = netrc_entry(host, strict=False)
    if not entry or not entry[2]:
        click.echo(f"dockyard: not logged in to {fields.get('host', host)}: run `dockyard login` "
                   "(it stores your token in ~/.netrc for git).", err=True)
        return
    click.echo(f"username={entry[0] or 'dockyard'}\npassword={entry[2]}")


@click.command("git:remote")
@app_option
@click.option("-r", "--remote", default="dockyard", show_default=True)
@click.option("--ssh", "use_ssh", is_flag=True, help="Push over SSH (add a key with `dockyard keys:add`).")
def git_remote(app, remote, use_ssh):
    """Add (or update) the git remote for an app in the current repo."""
    data = call("GET", f"/apps/{resolve_app(app)}")
    if use_ssh:   # ssh://git@HOST:PORT/APP.git, where the platform's sshd listens
        url = call("GET", "/ssh")["url_template"].replace("APP", data["name"])
        click.echo(url)
        _add_or_update_remote(remote, url)
        click.echo(f"Git remote {remote} set to {url}")
        return
    _set_remote(remote, data["git_url"])


COMMANDS = [apps, apps_create, apps_info, apps_rename, apps_destroy, git_credentials, git_remote]
