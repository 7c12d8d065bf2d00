"""Scheduled jobs: `cron` lists app.json's `cron` jobs of the live release with their next
run and their last run's state and exit code."""
from __future__ import annotations

import click

from .client import app_option, call, resolve_app


@click.command()
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
            f"last run {j['last_run']} ({j['process'] or 'starting'}): {j['state']}"
            + (f", exit code {j['exit_code']}" if j["exit_code"] is not None else ""))
        click.echo(f"{j['schedule']:<16} {j['command']}\n{'':<16} next run {j['next_run']}; {last}")


COMMANDS = (cron,)
