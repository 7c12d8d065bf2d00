"""`dockyard`: the command-line client. Heroku's command names; every command is a call
to the JSON API. The app comes from -a/--app or from the `dockyard` git remote. This module
holds the command group, logging in and out, and the entry point; each topic's commands
live in a module of their own."""
from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import click

from . import access, addons, admin, apps, config, cron, logs, metrics, nodes, pipelines, ps, releases, routing, tenancy
from .client import Group, api_url, call, netrc_path, remember_api_url, remove_netrc, token, write_netrc


@click.group(cls=Group)
def cli():
    """Dockyard: git push to deploy, Heroku-style."""


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
    remember_api_url(api_url())
    path = write_netrc(urlparse(api_url()).hostname, account["name"], tok)
    click.echo(f"Logged in to {api_url()} as {account['name']} (token stored in {path})")


@cli.command("auth:whoami")
def whoami():
    """Show who you are logged in as."""
    click.echo(call("GET", "/account")["name"])


@cli.command("account:email")
@click.argument("email", required=False)
@click.option("--clear", is_flag=True, help="Remove your email (your name is shown instead).")
def account_email(email, clear):
    """Show or set your email: Heroku's tools (the `heroku` CLI) know users by it."""
    if email or clear:
        data = call("PATCH", "/account", {"email": None if clear else email})
    else:
        data = call("GET", "/account")
    click.echo(data.get("email") or f"(none: you are known as {data['name']})")


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
            click.echo(f"Token rotated; the new one is in {netrc_path()} (the old one no longer works).", err=True)
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
    removed = remove_netrc(host)
    if not revoked and not removed:
        raise click.ClickException(f"Not logged in to {api_url()}.")
    click.echo(f"Logged out of {api_url()}" + (" (token revoked)" if revoked else "")
               + (f"; removed from {netrc_path()}" if removed else ""))


for _module in (apps, config, releases, ps, routing, access, logs, admin, metrics, tenancy, nodes, addons, cron, pipelines):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def main():
    cli()


if __name__ == "__main__":
    main()
