"""Who may do what: users (admin), app collaborators (access), SSH keys for git push, and
the audit log."""
from __future__ import annotations

import json
from pathlib import Path

import click

from .client import app_option, call, resolve_app


# ---- users -------------------------------------------------------------------------------
@click.command("users")
def users_list():
    """(admin) List users."""
    click.echo("=== Users")
    for u in call("GET", "/users"):
        click.echo(f"{u['name']:<24} {'admin' if u['is_admin'] else 'user':<6} apps={u['apps']} keys={u['keys']} "
                   f"tokens={u['tokens']}")


@click.command("users:add")
@click.argument("name")
@click.option("--admin", is_flag=True, help="Make the user an admin.")
def users_add(name, admin):
    """(admin) Create a user; prints their first token on the last line."""
    data = call("POST", "/users", {"name": name, "admin": admin})
    click.echo(f"Created user {data['name']}{' (admin)' if data['is_admin'] else ''}. Their token (shown once; "
               f"they log in with `dockyard login --token TOKEN`):")
    click.echo(data["token"])


@click.command("users:remove")
@click.argument("name")
@click.option("--confirm", help="The user's name again, to confirm.")
def users_remove(name, confirm):
    """(admin) Remove a user, their tokens, keys and app access."""
    if confirm != name:
        raise click.ClickException(f"This removes {name} and revokes their tokens and keys. "
                                   f"Run again with --confirm {name}.")
    call("DELETE", f"/users/{name}")
    click.echo(f"Removed user {name}")


# ---- collaborators -----------------------------------------------------------------------
@click.command("access")
@app_option
def access_list(app):
    """List who has access to an app."""
    name = resolve_app(app)
    click.echo(f"=== {name} access")
    for row in call("GET", f"/apps/{name}/collaborators"):
        click.echo(f"{row['user']:<24} {row['role']}")


@click.command("access:add")
@click.argument("user")
@app_option
def access_add(user, app):
    """(owner) Give USER collaborator access to an app."""
    name = resolve_app(app)
    call("POST", f"/apps/{name}/collaborators", {"user": user})
    click.echo(f"Adding {user} to {name} collaborators... done")


@click.command("access:remove")
@click.argument("user")
@app_option
def access_remove(user, app):
    """(owner) Remove USER's access to an app."""
    name = resolve_app(app)
    call("DELETE", f"/apps/{name}/collaborators/{user}")
    click.echo(f"Removing {user} from {name} collaborators... done")


# ---- SSH keys ----------------------------------------------------------------------------
@click.command("keys")
@click.option("--all", "everyone", is_flag=True, help="(admin) Everyone's keys.")
def keys_list(everyone):
    """List your SSH keys (for git push over SSH)."""
    rows = call("GET", "/account/keys", params={"all": "1"} if everyone else None)
    click.echo("=== SSH keys")
    for k in rows:
        click.echo(f"{k['name']:<24} {k['fingerprint']}" + (f"  ({k['user']})" if everyone else ""))
    if not rows:
        click.echo("You have no keys. Add one with `dockyard keys:add ~/.ssh/id_ed25519.pub`.")


@click.command("keys:add")
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


@click.command("keys:remove")
@click.argument("which")
def keys_remove(which):
    """Remove an SSH key by name or fingerprint."""
    data = call("DELETE", f"/account/keys/{which}")
    click.echo(f"Removed key {data['name']} ({data['fingerprint']})")


# ---- audit -------------------------------------------------------------------------------
@click.command("audit")
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


COMMANDS = [users_list, users_add, users_remove, access_list, access_add, access_remove,
            keys_list, keys_add, keys_remove, audit_log]
