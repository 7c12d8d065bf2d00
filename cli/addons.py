"""Backing services: addons, addons:create/info/attach/detach/destroy/limits, pg:psql,
pg:info, pg:backups (list, capture, restore, download, schedule) and redis:cli."""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import click
import requests

from .client import api_url, app_option, call, resolve_app, token
from .attach import attach
from .text import echo_output


def _size(n) -> str:
    if n is None:
        return "?"
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return "?"


def _echo_lines(data: dict) -> None:
    for line in data.get("output") or []:
        echo_output(line)


# ---- addons ------------------------------------------------------------------------------
@click.command()
@app_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def addons(app, as_json):
    """List the app's add-ons with plan, state, size and config var."""
    name = resolve_app(app)
    rows = call("GET", f"/apps/{name}/addons")
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(f"{name} has no add-ons. Create one with `dockyard addons:create postgres -a {name}`.")
        return
    click.echo(f"=== {name} add-ons")
    for r in rows:
        owner = "" if r["app"] == name else f" (from {r['app']})"
        click.echo(f"{r['name']:<24} {r['service']:<9} {r['plan']:<8} {r['state']:<10} "
                   f"{_size(r.get('size_bytes')):>9}  as {r['var']}{owner}")
        for line in r.get("last_output") or []:
            echo_output(f"    {line}")


@click.command("addons:create")
@click.argument("service")
@app_option
@click.option("--as", "as_name", help="Attach as NAME_URL instead of DATABASE_URL / REDIS_URL.")
@click.option("--memory", type=int, help="Memory limit in MB (default DOCKYARD_ADDON_MEMORY_MB).")
def addons_create(service, app, as_name, memory):
    """Provision postgres or redis for the app; sets its URL var as a new release."""
    name = resolve_app(app)
    body = {"service": service, "as": as_name}
    if memory is not None:
        body["memory_mb"] = memory
    data = call("POST", f"/apps/{name}/addons", body)
    _echo_lines(data)
    click.echo(f"Created {data['name']} ({data['service']}, {data['plan']}) as {data['var']} on {name}")


@click.command("addons:info")
@click.argument("addon")
@app_option
def addons_info(addon, app):
    """Show an add-on: version, state, size, memory, attachments, backup schedule."""
    name = resolve_app(app)
    d = call("GET", f"/apps/{name}/addons/{addon}")
    click.echo(f"=== {d['name']}")
    rows = [("Service", f"{d['service']} ({d.get('version', '?')}; Debian package {d.get('package_version', '?')})"),
            ("State", d["state"]), ("Plan", f"{d['memory_mb']} MB memory limit"),
            ("Memory used", _size(d.get("memory_bytes"))), ("Data size", _size(d.get("size_bytes"))),
            ("Connections", d.get("connections", "?")), ("Owner", d["app"]), ("Node", d.get("node")),
            ("Backups", d.get("backup_schedule") or "manual only (pg:backups:schedule)"),
            ("Attached", ", ".join(f"{t['app']} as {t['var']}" for t in d.get("attachments", [])))]
    for key, value in rows:
        click.echo(f"{key + ':':<13} {value}")
    for line in d.get("last_output") or []:
        echo_output(f"    {line}")


@click.command("addons:attach")
@click.argument("addon")
@app_option
@click.option("--as", "as_name", help="Attach as NAME_URL.")
def addons_attach(addon, app, as_name):
    """Share an add-on with another app (its own credentials and var; a new release)."""
    name = resolve_app(app)
    data = call("PUT", f"/apps/{name}/addons/{addon}/attachment", {"as": as_name})
    _echo_lines(data)
    click.echo(f"Attached {addon} to {name} as {data['var']}")


@click.command("addons:detach")
@click.argument("addon")
@app_option
def addons_detach(addon, app):
    """Detach a shared add-on from the app (its var is unset: a new release)."""
    name = resolve_app(app)
    _echo_lines(call("DELETE", f"/apps/{name}/addons/{addon}/attachment"))
    click.echo(f"Detached {addon} from {name}")


@click.command("addons:destroy")
@click.argument("addon")
@app_option
@click.option("--confirm", help="The owning app's name again, to confirm.")
def addons_destroy(addon, app, confirm):
    """Delete an add-on and its data (a final backup is kept)."""
    name = resolve_app(app)
    if confirm != name:
        raise click.ClickException(f"This deletes {addon} and its data. Run again with --confirm {name}.")
    data = call("DELETE", f"/apps/{name}/addons/{addon}", params={"confirm": confirm})
    _echo_lines(data)
    kept = f" (final backup {data['final_backup']})" if data.get("final_backup") else ""
    click.echo(f"Destroyed {addon}{kept}")


@click.command("addons:limits")
@click.argument("addon")
@app_option
@click.option("--memory", type=int, required=True, help="Memory limit in MB.")
def addons_limits(addon, app, memory):
    """Set an add-on's memory limit (applied at once)."""
    name = resolve_app(app)
    d = call("PATCH", f"/apps/{name}/addons/{addon}", {"memory_mb": memory})
    click.echo(f"{d['name']}: memory limit {d['memory_mb']} MB")


# ---- pg:* --------------------------------------------------------------------------------
@click.command("pg:info")
@click.argument("addon", required=False)
@app_option
def pg_info(addon, app):
    """Show the app's Postgres database (or the one named)."""
    name = resolve_app(app)
    ctx = click.get_current_context()
    target = addon or _only(name, "postgres")
    ctx.invoke(addons_info, addon=target, app=name)


def _only(app: str, service: str) -> str:
    rows = [r for r in call("GET", f"/apps/{app}/addons") if r["service"] == service]
    if not rows:
        raise click.ClickException(f"{app} has no {service} add-on: `dockyard addons:create {service} -a {app}`.")
    default = [r for r in rows if r["var"] in ("DATABASE_URL", "REDIS_URL")]
    return (default or rows)[0]["name"]


@click.command("pg:backups")
@app_option
def pg_backups(app):
    """List the app's backups (Postgres and Redis) with size and time."""
    name = resolve_app(app)
    rows = call("GET", f"/apps/{name}/addons/backups")
    if not rows:
        click.echo(f"{name} has no backups. Capture one with `dockyard pg:backups:capture -a {name}`.")
        return
    click.echo(f"=== {name} backups")
    for b in rows:
        click.echo(f"{b['name']:<60} {_size(b['size']):>9}  {b['created_at']}  {b['kind']}")


@click.command("pg:backups:capture")
@click.argument("addon", required=False)
@app_option
def pg_backups_capture(addon, app):
    """Back up the app's database now (pg_dump custom format; an RDB for Redis)."""
    name = resolve_app(app)
    d = call("POST", f"/apps/{name}/addons/{addon or _only(name, 'postgres')}/backups")
    _echo_lines(d)
    click.echo(f"Backup {d['name']} ({_size(d['size'])})")


@click.command("pg:backups:restore")
@click.argument("backup")
@app_option
@click.option("--confirm", help="The app's name again, to confirm.")
@click.option("--as", "as_name", help="Attach the restored add-on as NAME_URL (default: take over the var).")
def pg_backups_restore(backup, app, confirm, as_name):
    """Restore a backup into a fresh add-on attached to the app."""
    name = resolve_app(app)
    if confirm != name:
        raise click.ClickException(f"This points {name} at a new database. Run again with --confirm {name}.")
    d = call("POST", f"/apps/{name}/addons/backups/{backup}/restore", {"confirm": confirm, "as": as_name})
    _echo_lines(d)
    click.echo(f"Restored {backup} into {d['name']} as {d['var']}")


@click.command("backups:destroyed")
def backups_destroyed():
    """Backups of your destroyed apps' add-ons (an admin sees everyone's), kept for a while."""
    rows = call("GET", "/backups/destroyed")
    if not rows:
        click.echo("No destroyed app of yours has backups kept.")
    for d in rows:
        click.echo(f"=== {d['app']} (id {d['id']}), destroyed {d['destroyed_at']}, kept until {d['deleted_after']}")
        for b in d["backups"]:
            click.echo(f"{b['name']:<60} {_size(b['size']):>9}  {b['created_at']}  {b['kind']}")
        click.echo(f"Download with: dockyard pg:backups:download BACKUP --destroyed {d['id']}")


@click.command("pg:backups:download")
@click.argument("backup")
@app_option
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="File to write (default: the backup's name).")
@click.option("--destroyed", "app_id", help="The id of a destroyed app of yours (see `dockyard backups:destroyed`).")
def pg_backups_download(backup, app, output, app_id):
    """Download a backup (a pg_dump custom-format file, or a Redis RDB)."""
    path = f"/backups/destroyed/{app_id}/{backup}" if app_id else f"/apps/{resolve_app(app)}/addons/backups/{backup}"
    with requests.Session() as session:
        session.trust_env = False
        try:
            resp = session.get(f"{api_url()}{path}", stream=True, timeout=3600,
                               headers={"Authorization": f"Bearer {token()}"})
        except requests.ConnectionError:
            raise click.ClickException(f"Cannot reach the Dockyard API at {api_url()}: is it running?") from None
        if resp.status_code >= 400:
            try:
                message = resp.json().get("message")
            except ValueError:
                message = resp.text[:300]
            raise click.ClickException(message or f"HTTP {resp.status_code}")
        target = Path(output or backup)
        fd, tmp = tempfile.mkstemp(dir=target.parent.resolve(), prefix=f".{target.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in resp.iter_content(1 << 16):
                    f.write(chunk)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    click.echo(f"Downloaded {backup} to {target} ({_size(target.stat().st_size)})")


@click.command("pg:backups:schedule")
@click.argument("addon", required=False)
@app_option
@click.option("--at", "at", required=True, help="Daily time, HH:MM UTC, e.g. 02:00; 'off' to stop.")
def pg_backups_schedule(addon, app, at):
    """Daily automatic backups (the newest DOCKYARD_BACKUP_RETENTION are kept)."""
    name = resolve_app(app)
    d = call("PATCH", f"/apps/{name}/addons/{addon or _only(name, 'postgres')}",
             {"backup_at": None if at == "off" else at})
    click.echo(f"{d['name']}: backups {d['backup_schedule'] or 'not scheduled'}")


# ---- interactive clients -------------------------------------------------------------------
def _shell(app: str, addon: str | None, service: str) -> int:
    target = addon or _only(app, service)
    return attach(f"/apps/{app}/addons/{target}/shell", {}, target, lambda e: f"--> Connecting to {e['started']}")


@click.command("pg:psql")
@click.argument("addon", required=False)
@app_option
def pg_psql(addon, app):
    """psql in the app's database, as the app's own user (stdin and exit code pass through)."""
    name = resolve_app(app)
    sys.exit(_shell(name, addon, "postgres"))


@click.command("redis:cli")
@click.argument("addon", required=False)
@app_option
def redis_cli(addon, app):
    """redis-cli in the app's Redis, as the app's own user."""
    name = resolve_app(app)
    sys.exit(_shell(name, addon, "redis"))


COMMANDS = [addons, addons_create, addons_info, addons_attach, addons_detach, addons_destroy, addons_limits,
            pg_info, pg_backups, pg_backups_capture, pg_backups_restore, pg_backups_download, pg_backups_schedule,
            backups_destroyed,
            pg_psql, redis_cli]
