"""Operator commands run on the platform host: `python -m controller.daemons.manage migrate|bootstrap|restore`."""
from __future__ import annotations

import socket
import sys
from pathlib import Path

import click

from core.errors import DockyardError
from core.fsutil import atomic_write

from controller.accounts.users import mint_token
from controller.addons import snapshot
from controller.admin import backup
from controller.admin.artifacts import adopt_name_keyed
from controller.daemons.pidfiles import supervisor_pid
from controller.routing import platform_tls
from controller.runtime.rendezvous_tls import ensure_bundle
from controller.scheduler import make_scheduler
from controller.services import Services, migrated, scheduler_config
from controller.settings import from_env
from controller.store import Store


@click.group()
def cli():
    """Dockyard platform administration (on the platform host)."""


@cli.command()
def migrate():
    """Create or upgrade the state database."""
    s = from_env()
    s.ensure_dirs()
    click.echo(f"schema version {Store(s.db_path).migrate()} at {s.db_path}")


@cli.command()
@click.option("--name", default="admin", show_default=True)
def bootstrap(name):
    """Create the admin user and token once; print where the token is kept."""
    s = from_env()
    s.ensure_dirs()
    svc = migrated(s)
    store = svc.store
    for line in adopt_name_keyed(svc):   # what older versions kept by app name
        click.echo(f"moved: {line}")
    _platform_certificate(s)
    if not s.rendezvous_cert:
        ensure_bundle(s)    # the `heroku run` listener's certificate, made here rather than in the platform process
    token_file = s.home / "admin.token"
    user = store.get_user(name)
    if user is not None and token_file.exists() and store.user_for_token(token_file.read_text().strip()):
        click.echo(f"admin user {name!r} already exists; token in {token_file}")
        return
    if user is None:
        user = store.create_user(name, is_admin=True)
    token = mint_token(svc, user)
    atomic_write(token_file, token + "\n")
    click.echo(f"created admin user {name!r}; token in {token_file}")


def _platform_certificate(s) -> None:
    """HTTPS for every app's default hostname: the operator's certificate, checked, or the local
    CA's (created once; a new leaf when the domain changed or it nears its end)."""
    try:
        if s.tls_cert or s.tls_key:
            info = platform_tls.operator_bundle(s.tls_cert, s.tls_key, s.domain).info
            click.echo(f"HTTPS for *.{s.domain}: the operator's certificate (DOCKYARD_TLS_CERT, until {info.not_after})")
            return
        said = platform_tls.ensure_local_ca(s.tls_dir, s.domain, f"{s.name} on {socket.gethostname()}")
    except DockyardError as e:
        raise click.ClickException(e.message) from None
    for line in said or [f"HTTPS for *.{s.domain}: the local CA's certificate in {s.tls_dir} is current"]:
        click.echo(line)


@cli.command()
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace the state already in DOCKYARD_HOME.")
def restore(archive, force):
    """Restore a `dockyard admin:backup` archive into DOCKYARD_HOME; then `make up`."""
    s = from_env()
    if supervisor_pid(s):
        raise click.ClickException(f"The platform runs from {s.home}: stop it first with `make down`.")
    scheduler = make_scheduler(scheduler_config(s))

    def restore_addons(dumps: Path, entries: list[dict]) -> list[str]:
        svc = Services(s, scheduler=scheduler)     # on the store just restored
        svc.store.migrate()
        return snapshot.restore_all(svc, dumps, entries, click.echo)

    try:
        manifest = backup.restore(s, archive, scheduler.load_images, force=force, restore_addons=restore_addons)
    except DockyardError as e:
        raise click.ClickException(e.message) from None
    click.echo(f"restored {len(manifest['apps'])} app(s), {len(manifest['images'])} image(s) and "
               f"{len(manifest.get('addons') or [])} add-on(s) into {s.home}; start the platform with `make up`")


if __name__ == "__main__":
    sys.exit(cli())
