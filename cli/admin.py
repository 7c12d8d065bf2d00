"""Platform administration: admin:backup (through the API, while the platform runs) and
admin:restore (on the platform host, into a stopped platform's DOCKYARD_HOME)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import requests

from .client import api_url, token


@click.command("admin:backup")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def backup(file):
    """Save the platform's state (database, git repos, keys, certificates, release images) to FILE."""
    partial = file.with_name(f".{file.name}.partial")
    with requests.Session() as session:
        session.trust_env = False
        try:
            resp = session.get(f"{api_url()}/admin/backup", headers={"Authorization": f"Bearer {token()}"},
                               stream=True, timeout=3600)
        except requests.ConnectionError:
            raise click.ClickException(f"Cannot reach the Dockyard API at {api_url()}: is the platform running?") from None
        with resp:
            if resp.status_code >= 400:
                raise click.ClickException((resp.json() or {}).get("message", f"HTTP {resp.status_code}"))
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)   # it holds secrets
            with os.fdopen(fd, "wb") as out:
                for chunk in resp.iter_content(1 << 20):
                    out.write(chunk)
    os.replace(partial, file)
    click.echo(f"Backed up the platform to {file} ({file.stat().st_size / 1e6:.1f} MB)")


@click.command("admin:restore")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace the state already in DOCKYARD_HOME.")
def restore(file, force):
    """On the platform host, with the platform stopped: restore FILE into DOCKYARD_HOME, then `make up`."""
    cmd = [sys.executable, "-m", "controller.daemons.manage", "restore", str(file.resolve())] + (["--force"] if force else [])
    proc = subprocess.run(cmd, cwd=Path(__file__).resolve().parent.parent, check=False)
    if proc.returncode != 0:
        raise click.ClickException("The restore failed (see above); nothing was started.")


COMMANDS = [backup, restore]
