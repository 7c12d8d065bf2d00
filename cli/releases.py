"""Releases and the builds behind them: releases, releases:info, rollback, builds,
builds:info, builds:output, repo:purge-cache and deploy --image. Build output is the app's
own text: its control characters are shown escaped unless --raw asks for them as they are."""
from __future__ import annotations

import sys

import click

from .client import app_option, call, resolve_app
from .text import echo_output

raw_option = click.option("--raw", is_flag=True,
                          help="Print control characters (terminal escape sequences) as they are, unescaped.")


@click.command()
@app_option
def releases(app):
    """List an app's releases."""
    name = resolve_app(app)
    click.echo(f"=== {name} Releases")
    for r in reversed(call("GET", f"/apps/{name}/releases")):
        mark = " (current)" if r["current"] else ""
        click.echo(f"v{r['version']:<4} {r['status']:<9} {r['description']:<40} {r['user'] or '':<10} "
                   f"{r['created_at'][:19]}{mark}")


@click.command("releases:info")
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


@click.command()
@click.argument("version", required=False)
@app_option
def rollback(version, app):
    """Roll back to a release (default: the one before the current)."""
    name = resolve_app(app)
    r = call("POST", f"/apps/{name}/releases", {"release": version} if version else {})
    click.echo(f"Rolled back {name}: {r['description']} is v{r['version']}")


# ---- builds ------------------------------------------------------------------------------
@click.command()
@app_option
def builds(app):
    """List an app's builds."""
    name = resolve_app(app)
    for b in reversed(call("GET", f"/apps/{name}/builds")):
        click.echo(f"{b['id']}  {b['status']:<9} {b['method']:<10} {b['source_commit'][:8]}  {b['created_at'][:19]}")


@click.command("builds:info")
@click.argument("build_id")
@app_option
@raw_option
def builds_info(build_id, app, raw):
    """Show one build with its full output."""
    b = call("GET", f"/apps/{resolve_app(app)}/builds/{build_id}")
    click.echo(f"=== Build {b['id']} ({b['status']})")
    click.echo(f"Method:   {b['method']}")
    click.echo(f"Commit:   {b['source_commit']}")
    if b.get("duration_seconds") is not None:
        click.echo(f"Duration: {b['duration_seconds']} s")
    click.echo(f"Image:    {b['image']}")
    if b["error"]:
        echo_output(f"Error: {b['error']}", raw)
    echo_output(b["output"], raw)


@click.command("builds:output")
@click.argument("build_id")
@app_option
@raw_option
def builds_output(build_id, app, raw):
    """Print a build's full output (as the `git push` showed it)."""
    b = call("GET", f"/apps/{resolve_app(app)}/builds/{build_id}")
    echo_output(b["output"], raw)
    if b["status"] == "failed":
        sys.exit(1)


@click.command("repo:purge-cache")
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


@click.command()
@app_option
@click.option("--image", required=True, help="IMAGE[:TAG] already in this machine's Docker engine.")
@click.option("--procfile", "procfile", default=None,
              help="Process types, as a Procfile's text (e.g. 'web: ./server'); default: the image's command as web.")
def deploy(app, image, procfile):
    """Release an image that is already in the local engine (no registry)."""
    name = resolve_app(app)
    r = call("POST", f"/apps/{name}/builds", {"image": image, "procfile": procfile})
    for line in r["output"]:
        echo_output(line)
    click.echo(f"Deployed {image} to {name} as v{r['release']} (build {r['build']['id']}).")


COMMANDS = [releases, releases_info, rollback, builds, builds_info, builds_output, repo_purge_cache, deploy]
