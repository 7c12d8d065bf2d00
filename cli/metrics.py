"""`dockyard metrics` and log drains (`drains`, `drains:add`, `drains:remove`)."""
from __future__ import annotations

import json

import click

from .client import app_option, call, resolve_app
from .text import escape_line


def _mb(n) -> str:
    return f"{(n or 0) / 1048576:.1f}"


def _ms(v) -> str:
    return "-" if v is None else f"{v:g}"


@click.command("metrics")
@app_option
@click.option("--type", "ptype", help="Only this process type's instances, e.g. web.")
@click.option("--since", default="1h", show_default=True, help="Window: 15m, 1h, 24h, 7d.")
@click.option("--json", "as_json", is_flag=True, help="Everything (series included) as JSON.")
def metrics_cmd(app, ptype, since, as_json):
    """An app's resource use per instance and its requests (from the router), per release."""
    name = resolve_app(app)
    m = call("GET", f"/apps/{name}/metrics", params={"since": since, "type": ptype or ""})
    if as_json:
        click.echo(json.dumps(m, indent=2))
        return
    s = m["summary"]
    click.echo(f"=== {name} instances (latest reading)")
    click.echo(f"{'instance':<12} {'cpu%':>6} {'mem MB':>8} {'limit MB':>9} {'restarts':>8} {'uptime s':>9}")
    for i in s["instances"]:
        click.echo(f"{i['instance']:<12} {i['cpu_percent']:>6.1f} {_mb(i['memory_bytes']):>8} "
                   f"{_mb(i['memory_limit_bytes']):>9} {i['restarts']:>8} {i['uptime_s']:>9}")
    if not s["instances"]:
        click.echo("(no readings yet: the metrics process samples every few seconds)")
    click.echo(f"=== {name} requests since {since}: {s['requests']} ({s['requests_per_minute']}/min), "
               f"2xx {s['s2xx']} 3xx {s['s3xx']} 4xx {s['s4xx']} 5xx {s['s5xx']}, "
               f"p50 {_ms(s['p50_ms'])} ms p95 {_ms(s['p95_ms'])} ms p99 {_ms(s['p99_ms'])} ms")
    by_release: dict[int, list] = {}
    for r in m["requests"]:
        by_release.setdefault(r["version"], []).append(r)
    for version, rows in sorted(by_release.items()):
        n = sum(r["requests"] for r in rows)
        errors = sum(r["s5xx"] for r in rows)
        worst = max((r["p95_ms"] or 0) for r in rows)
        click.echo(f"  v{version}: {n} requests over {len(rows)} min, 5xx {errors}, worst minute p95 {worst:g} ms")


@click.command("drains")
@app_option
def drains_list(app):
    """The app's log drains, with lines sent and dropped."""
    name = resolve_app(app)
    rows = call("GET", f"/apps/{name}/drains")
    if not rows:
        click.echo(f"{name} has no drains: add one with `dockyard drains:add -a {name} syslog+tls://HOST:PORT`.")
    for d in rows:
        err = f" last error: {escape_line(d['last_error'])}" if d["last_error"] else ""
        click.echo(f"{escape_line(d['url'])}  sent {d['sent']} dropped {d['dropped']}{err}")


@click.command("drains:add")
@click.argument("url")
@app_option
def drains_add(url, app):
    """Forward the app's lines (app, router, platform) as RFC 5424 syslog to URL:
    syslog+tls://HOST:PORT, syslog://HOST:PORT or https://HOST/PATH."""
    name = resolve_app(app)
    call("POST", f"/apps/{name}/drains", {"url": url})
    click.echo(f"Draining {name}'s logs to {escape_line(url)}.")


@click.command("drains:remove")
@click.argument("url")
@app_option
def drains_remove(url, app):
    """Stop forwarding the app's lines to URL."""
    name = resolve_app(app)
    call("DELETE", f"/apps/{name}/drains", {"url": url})
    click.echo(f"Removed drain {escape_line(url)} from {name}.")


COMMANDS = [metrics_cmd, drains_list, drains_add, drains_remove]
