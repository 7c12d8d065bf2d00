"""Config vars: config, config:get, config:set, config:unset (one release, one rolling restart)."""
from __future__ import annotations

import json

import click

from .client import app_option, call, resolve_app


@click.command()
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


@click.command("config:get")
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
    current = next((r for r in call("GET", f"/apps/{name}/releases") if r.get("current")), None)
    if current is None or not current.get("build_id"):
        # nothing runs yet: there is nothing to restart
        click.echo(f"{verb} {', '.join(changes)} on {name}... done ({name} has no code deployed yet: "
                   "`git push dockyard main` deploys it with this config)")
    elif no_restart:
        click.echo(f"{verb} {', '.join(changes)} on {name}... done (not restarted: "
                   f"`dockyard ps:restart -a {name}` applies it)")
    else:
        click.echo(f"{verb} {', '.join(changes)} and restarting {name}... done")


@click.command("config:set")
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


@click.command("config:unset")
@click.argument("keys", nargs=-1, required=True)
@no_restart_option
@app_option
def config_unset(keys, no_restart, app):
    """Unset config vars."""
    _change_config(resolve_app(app), {k: None for k in keys}, no_restart, "Unsetting")


COMMANDS = [config, config_get, config_set, config_unset]
