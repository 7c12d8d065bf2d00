"""Pipelines, promotion and review apps, with the Heroku CLI's syntax: pipelines,
pipelines:create/add/info/remove/destroy/promote/diff, reviewapps:enable/disable."""
from __future__ import annotations

import sys
from datetime import datetime, timezone

import click

from .client import app_option, call, resolve_app
from .text import echo_output

STAGE_ORDER = ("development", "review", "staging", "production")   # as `heroku pipelines:info` lists them
stage_option = click.option("-s", "--stage", "stage", required=True,
                            type=click.Choice(["review", "development", "staging", "production"]),
                            help="The app's stage in the pipeline.")


@click.command()
def pipelines():
    """List the pipelines you can see."""
    for p in call("GET", "/pipelines"):
        click.echo(f"{p['name']}{'  (review apps on)' if p.get('review_apps') else ''}")


@click.command("pipelines:create")
@click.argument("name")
@app_option
@stage_option
def pipelines_create(name, app, stage):
    """Create a pipeline with APP as its first app."""
    app = resolve_app(app)
    p = call("POST", "/pipelines", {"name": name, "app": app, "stage": stage})
    click.echo(f"Created the pipeline {p['name']} with {app} as {stage}")


@click.command("pipelines:add")
@click.argument("pipeline")
@app_option
@stage_option
def pipelines_add(pipeline, app, stage):
    """Add APP to PIPELINE at STAGE."""
    app = resolve_app(app)
    call("POST", "/pipeline-couplings", {"pipeline": pipeline, "app": app, "stage": stage})
    click.echo(f"Added {app} to {pipeline} as {stage}")


@click.command("pipelines:info")
@click.argument("pipeline")
def pipelines_info(pipeline):
    """Show the apps of PIPELINE by stage."""
    p = call("GET", f"/pipelines/{pipeline}")
    rows = call("GET", f"/pipelines/{p['id']}/pipeline-couplings")
    click.echo(f"=== {p['name']}" + ("  (review apps on)" if p.get("review_apps") else ""))
    for c in sorted(rows, key=lambda c: (STAGE_ORDER.index(c["stage"]), c["app"]["name"])):
        branch = f"  (branch {c['branch']})" if c.get("branch") else ""
        click.echo(f"{c['app']['name']:<32} {c['stage']}{branch}")


@click.command("pipelines:remove")
@app_option
def pipelines_remove(app):
    """Take APP out of its pipeline (the app stays)."""
    app = resolve_app(app)
    c = call("DELETE", f"/apps/{app}/pipeline-couplings")
    click.echo(f"Removed {app} from {c['pipeline']['name']}")


@click.command("pipelines:destroy")
@click.argument("pipeline")
def pipelines_destroy(pipeline):
    """Destroy PIPELINE (its apps stay, outside any pipeline)."""
    p = call("DELETE", f"/pipelines/{pipeline}")
    click.echo(f"Destroyed the pipeline {p['name']}")


@click.command("pipelines:promote")
@app_option
@click.option("-t", "--to", "to", help="Comma-separated apps to promote to (default: the next stage's apps).")
def pipelines_promote(app, to):
    """Release APP's live build in the next stage's apps (or --to), with their own config."""
    app = resolve_app(app)
    body = {"source": {"app": {"id": app}}}
    if to:
        body["targets"] = [{"app": {"id": t.strip()}} for t in to.split(",") if t.strip()]
    r = call("POST", "/pipeline-promotions", body)
    echo_output("\n".join(r.get("output", [])), False)
    failed = [t for t in r["targets"] if t["status"] != "succeeded"]
    for t in r["targets"]:
        shown = f"v{t['release']['version']}" if t.get("release") else t.get("error_message") or ""
        click.echo(f"{t['app']['name']}: {t['status']} {shown}")
    if failed:
        click.echo("Promotion to some apps failed", err=True)
        sys.exit(1)
    click.echo("Promotion successful")


@click.command("pipelines:diff")
@app_option
def pipelines_diff(app):
    """List the commits APP runs that the next stage's apps do not."""
    app = resolve_app(app)
    for d in call("GET", f"/apps/{app}/pipeline-diff"):
        if d["up_to_date"]:
            click.echo(f"{app} is up to date with {d['app']}")
            continue
        n = len(d["commits"])
        click.echo(f"=== {app} is ahead of {d['app']} by {n} commit{'s' if n != 1 else ''}")
        for c in d["commits"]:
            when = datetime.fromtimestamp(c["date"], timezone.utc).strftime("%Y-%m-%d %H:%M")
            click.echo(f"{c['sha'][:7]}  {when}  {c['author'][:30]:<30}  {c['message']}")


@click.command("reviewapps:enable")
@click.option("-p", "--pipeline", required=True, help="The pipeline.")
def reviewapps_enable(pipeline):
    """Turn review apps on: a branch pushed to an app of PIPELINE gets its own app."""
    call("POST", f"/pipelines/{pipeline}/review-app-config", {})
    click.echo(f"Review apps on for {pipeline}: `git push dockyard BRANCH` makes {pipeline}-BRANCH")


@click.command("reviewapps:disable")
@click.option("-p", "--pipeline", required=True, help="The pipeline.")
def reviewapps_disable(pipeline):
    """Turn review apps off (existing ones stay until their branch is deleted)."""
    call("DELETE", f"/pipelines/{pipeline}/review-app-config")
    click.echo(f"Review apps off for {pipeline}")


COMMANDS = [pipelines, pipelines_create, pipelines_add, pipelines_info, pipelines_remove, pipelines_destroy,
            pipelines_promote, pipelines_diff, reviewapps_enable, reviewapps_disable]
