"""Processes: ps, ps:autosleep, ps:scale, ps:restart, ps:stop, ps:start, ps:limits and health checks
(checks, checks:set, checks:unset)."""
from __future__ import annotations

from datetime import datetime, timezone

import click

from .client import app_option, call, resolve_app
from .text import echo_output, format_age


def _print_dyno(d: dict) -> None:
    extra = f" exit {d['exit_code']}" if d["exit_code"] not in (None, 0) else ""
    detail = f" ({d['state_detail']})" if d.get("state_detail") else ""   # why it crashed, how often
    click.echo(f"{d['name']}: {d['state']}{detail}{extra} v{d['release']['version']} "
               f"(container {d['container']}{' on ' + d['node'] if d.get('node') else ''}) "
               f"{format_age(d['created_at'])}".rstrip())
    for text in d.get("last_output") or []:
        echo_output(f"    | {text}")


@click.command()
@app_option
def ps(app):
    """List an app's processes."""
    name = resolve_app(app)
    dynos = call("GET", f"/apps/{name}/dynos")
    formation = call("GET", f"/apps/{name}/formation")
    stopped = [f["type"] for f in formation if f.get("stopped")]
    if not dynos:
        click.echo(f"No processes are running for {name}.")
    if stopped:
        click.echo(f"Stopped (ps:stop): {', '.join(stopped)}; start with `dockyard ps:start -a {name}`")
    for f in formation:
        sleep = f.get("autosleep") or {}
        if sleep.get("sleeping_since") is not None:
            click.echo(f"=== {f['type']}: sleeping since {_clock(sleep['sleeping_since'])} (autosleep after "
                       f"{sleep['after']}; {f['quantity']} instance{'s' if f['quantity'] != 1 else ''} "
                       "start on the next request)")
    by_type: dict[str, list] = {}
    for d in dynos:
        by_type.setdefault(d["type"], []).append(d)
    for ptype, items in sorted(by_type.items()):
        click.echo(f"=== {ptype} ({len(items)})")
        for d in items:
            _print_dyno(d)


def _clock(epoch: float) -> str:
    return format_age(datetime.fromtimestamp(epoch, timezone.utc).isoformat())


@click.command("ps:autosleep")
@click.argument("ptype", required=False)
@click.option("--after", help="Sleep after this long without a request: 30m, 90s, 2h.")
@click.option("--off", is_flag=True, help="Never sleep (a sleeping type starts now).")
@app_option
def ps_autosleep(ptype, after, off, app):
    """Show autosleep, or make a type sleep after a time without requests (woken by the next one)."""
    name = resolve_app(app)
    if after is not None or off:
        if not ptype or (after is not None) == off:
            raise click.ClickException("Name the type and one of --after or --off: "
                                       "`dockyard ps:autosleep web --after 30m`.")
        done = call("DELETE" if off else "PUT", f"/apps/{name}/autosleep/{ptype}", None if off else {"after": after})
        for line in done["output"]:
            click.echo(line)
        rows = done["autosleep"]
    else:
        rows = call("GET", f"/apps/{name}/autosleep")
    if not rows:
        click.echo(f"No process type of {name} sleeps.")
    for ptype_, row in sorted(rows.items()):
        state = f"sleeping since {_clock(row['sleeping_since'])}" if row["sleeping_since"] is not None else "awake"
        click.echo(f"{ptype_}: sleeps after {row['after']} without a request; {state}")


@click.command("ps:scale")
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


@click.command("ps:restart")
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


@click.command("ps:stop")
@click.argument("ptype", required=False)
@app_option
def ps_stop(ptype, app):
    """Stop all processes (or one type); the formation is kept for ps:start."""
    _stop_or_start("stop", ptype, app)


@click.command("ps:start")
@click.argument("ptype", required=False)
@app_option
def ps_start(ptype, app):
    """Start what ps:stop stopped."""
    _stop_or_start("start", ptype, app)


def _limits_update(memory: str | None, cpu: str | None) -> dict:
    update = {}
    for key, raw, cast in (("memory_mb", memory, int), ("cpus", cpu, float)):
        if raw is None:
            continue
        try:
            update[key] = None if raw == "default" else cast(raw)
        except ValueError:
            raise click.ClickException(f"{raw!r} is not a number for --{'memory' if key == 'memory_mb' else 'cpu'}.")
    return update


@click.command("ps:limits")
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
        rows = call("PATCH", f"/apps/{name}/limits/{ptype}", _limits_update(memory, cpu))["limits"]
    for r in rows:
        cpus = "unlimited" if r["cpus"] is None else f"{r['cpus']:g}"
        click.echo(f"{r['type']}: memory {r['memory_mb']} MB{' (default)' if r['memory_default'] else ''}, "
                   f"cpus {cpus}{' (default)' if r['cpus_default'] else ''}")


# ---- health checks -----------------------------------------------------------------------
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


@click.command("checks")
@app_option
def checks(app):
    """Health checks each process type must pass before it gets traffic."""
    _print_checks(call("GET", f"/apps/{resolve_app(app)}/checks"))


@click.command("checks:set")
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


@click.command("checks:unset")
@click.argument("ptype")
@app_option
def checks_unset(ptype, app):
    """Back to app.json's checks (or the default) for a type."""
    _print_checks(call("DELETE", f"/apps/{resolve_app(app)}/checks/{ptype}"))


COMMANDS = [ps, ps_autosleep, ps_scale, ps_restart, ps_stop, ps_start, ps_limits, checks, checks_set, checks_unset]
