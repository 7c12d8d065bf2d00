"""The cluster's nodes (admin): nodes, nodes:join-command, nodes:drain, nodes:activate,
nodes:remove."""
from __future__ import annotations

import click

from .client import call


def _table(rows: list[dict]) -> None:
    cols = ("hostname", "address", "state", "availability", "role", "instances")
    widths = {c: max([len(c)] + [len(str(r.get(c, ""))) for r in rows]) for c in cols}
    click.echo("  ".join(c.upper().ljust(widths[c]) for c in cols).rstrip())
    for r in rows:
        click.echo("  ".join(str(r.get(c, "")).ljust(widths[c]) for c in cols).rstrip())


@click.command()
def nodes():
    """List the cluster's nodes and the instances on each."""
    rows = call("GET", "/nodes")
    if not rows:
        click.echo("The platform runs on a single host (no cluster): `make cluster NODES=3` starts one.")
        return
    _table(rows)


@click.command("nodes:join-command")
def nodes_join_command():
    """Print what to run (as root) on a new host to join the cluster."""
    for line in call("GET", "/nodes/join-command")["commands"]:
        click.echo(line)


@click.command("nodes:drain")
@click.argument("node")
def nodes_drain(node):
    """Move every instance off NODE (no failed request), then keep it empty."""
    row = call("POST", f"/nodes/{node}/drain")
    for line in row.get("output") or []:
        click.echo(line)
    click.echo(f"{row.get('hostname', node)}: {row.get('availability', 'drain')} ({row.get('moved', 0)} moved)")


@click.command("nodes:activate")
@click.argument("node")
def nodes_activate(node):
    """Let NODE take instances again."""
    row = call("POST", f"/nodes/{node}/activate")
    click.echo(f"{row.get('hostname', node)}: {row.get('availability', 'active')}")


@click.command("nodes:remove")
@click.argument("node")
def nodes_remove(node):
    """Remove a drained or lost NODE from the cluster."""
    call("DELETE", f"/nodes/{node}")
    click.echo(f"Removed {node}")


COMMANDS = (nodes, nodes_join_command, nodes_drain, nodes_activate, nodes_remove)
