"""What tenants share (admin): images every user may deploy or build on, and per-user quotas."""
from __future__ import annotations

import click

from .client import call

QUOTAS = (("apps", "max_apps"), ("instances", "max_instances"), ("memory", "max_memory_mb"))


@click.command("images:allowed")
def images_allowed():
    """List the images every user may deploy (`deploy --image`) and build on (Dockerfile FROM)."""
    click.echo("=== Allowed images (besides each user's own apps' images)")
    for row in call("GET", "/images/allowed"):
        click.echo(f"{row['image']:<48} {row['source']}")


@click.command("images:allow")
@click.argument("image")
def images_allow(image):
    """(admin) Let every user deploy and build on IMAGE (IMAGE[:TAG])."""
    data = call("POST", "/images/allowed", {"image": image})
    click.echo(f"Allowed {data['image']} for every user")


@click.command("images:disallow")
@click.argument("image")
def images_disallow(image):
    """(admin) Take IMAGE off the allowed images (running apps keep running)."""
    data = call("DELETE", f"/images/allowed/{image}")
    click.echo(f"Removed {data['image']} from the allowed images")


@click.command("users:quota")
@click.argument("name")
@click.option("--apps", type=int, help="Apps the user may own.")
@click.option("--instances", type=int, help="Instances over all the user's apps.")
@click.option("--memory", type=int, help="MB of instance memory over all the user's apps.")
@click.option("--reset", is_flag=True, help="Back to the platform defaults (DOCKYARD_QUOTA_*).")
def users_quota(name, apps, instances, memory, reset):
    """Show a user's quota and usage; (admin) set it with --apps/--instances/--memory."""
    given = {"apps": apps, "instances": instances, "memory": memory}
    changes = {key: given[opt] for opt, key in QUOTAS if given[opt] is not None}
    if reset:
        changes = {key: None for _, key in QUOTAS}
    data = call("PATCH", f"/users/{name}/quota", changes) if changes else call("GET", f"/users/{name}/quota")
    click.echo(f"=== Quota of {data['user']}" + (" (admin: not limited)" if data["exempt"] else ""))
    for opt, key in QUOTAS:
        used = data["usage"][opt if opt != "memory" else "memory_mb"]
        origin = "set" if key in data["set"] else "default"
        unit = " MB" if opt == "memory" else ""
        click.echo(f"{opt:<10} {used}{unit} of {data['quota'][key]}{unit} ({origin})")


COMMANDS = (images_allowed, images_allow, images_disallow, users_quota)
