"""The platform's own state in one file, and back: `dockyard admin:backup FILE` while it runs,
`dockyard admin:restore FILE` onto a stopped (or fresh) machine, then `make up` brings every
app back. The archive (tar.gz, mode 0600: it holds secrets) contains:

- state.db         a consistent copy of the store (SQLite's online backup): apps, releases and
                   their config, users and token hashes, keys, domains, certificates, audit
- repos/<app>.git  each app's repository, copied under its upload lock (never mid-push)
- home/            the sshd host key, certificate files, the local CA (users trust it), the admin token,
                   the add-ons' backups
- images.tar       the images of each app's current and live release (there is no registry to
                   pull them from on a new machine)
- addons/<name>.*  every add-on's data, dumped consistently at backup time (pg_dump, Redis RDB);
                   a restore onto a machine without the add-on's volume loads it into a new one
- manifest.json    what is inside, and which platform instance it came from"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

from core.errors import BadRequest, Conflict

from controller.addons import snapshot
from controller.runtime import repos
from controller.services import Services
from controller.settings import Settings

HOME_FILES = ("admin.token", "ssh", "certs", "tls", "backups")   # backups: the add-ons' pg_dump / RDB files
FORMAT = 1


def release_images(svc: Services) -> list[str]:
    """The image tags an app needs to run again: its current and live releases'."""
    refs = []
    for app in svc.store.list_apps():
        for version in sorted({app.current_version, app.live_version} - {0}):
            release = svc.store.get_release(app, version)
            if release.build_id:
                refs.append(f"{svc.settings.image_repo(app.name)}:v{version}")
    return [r for r in refs if svc.scheduler.image_exists(r)]


def create(svc: Services, dest: Path) -> dict:
    """Write the archive to `dest` (atomically); returns the manifest."""
    with tempfile.TemporaryDirectory(prefix="dockyard-backup-", dir=dest.parent) as tmp:
        work = Path(tmp)
        svc.store.backup_to(work / "state.db")
        apps = [a.name for a in svc.store.list_apps()]
        for name in apps:
            repos.copy_repo(svc.settings, name, work / "repos" / f"{name}.git")
        addons = snapshot.dump_all(svc, work / "addons")
        images = release_images(svc)
        if images:
            with open(work / "images.tar", "wb") as f:
                svc.scheduler.save_images(images, f)
        manifest = {"format": FORMAT, "instance": svc.settings.name, "created": time.time(),
                    "apps": apps, "images": images, "addons": addons}
        (work / "manifest.json").write_text(json.dumps(manifest, indent=1))
        partial = dest.with_name(f".{dest.name}.partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            for entry in ("manifest.json", "state.db", "repos", "images.tar", "addons"):
                if (work / entry).exists():
                    tar.add(work / entry, arcname=entry)
            for entry in HOME_FILES:
                if (svc.settings.home / entry).exists():
                    tar.add(svc.settings.home / entry, arcname=f"home/{entry}")
        os.replace(partial, dest)
    return manifest


def _safe_members(tar: tarfile.TarFile):
    for member in tar.getmembers():
        if member.name.startswith("/") or ".." in Path(member.name).parts or not (member.isfile() or member.isdir()):
            raise BadRequest(f"The backup holds an unsafe entry {member.name[:80]!r}: it was not made by "
                             "`dockyard admin:backup`.")
        yield member


def restore(settings: Settings, src: Path, load_images, force: bool = False, restore_addons=None) -> dict:
    """Unpack an archive into settings.home (the platform must not run there), load its
    images with `load_images(fileobj)` and give the add-ons' dumps to
    `restore_addons(dumps_dir, entries)`. Refuses a home that already has state unless `force`."""
    if (settings.db_path.exists() or any(settings.repos_dir.glob("*.git"))) and not force:
        raise Conflict(f"{settings.home} already holds a platform's state: restore into an empty "
                       "DOCKYARD_HOME, or pass --force to replace it.")
    settings.ensure_dirs()
    with tempfile.TemporaryDirectory(prefix="dockyard-restore-", dir=settings.home) as tmp:
        work = Path(tmp)
        with tarfile.open(src, "r:gz") as tar:
            tar.extractall(work, members=list(_safe_members(tar)))
        manifest = json.loads((work / "manifest.json").read_text())
        if manifest.get("format") != FORMAT:
            raise BadRequest(f"This backup's format is {manifest.get('format')!r}; this Dockyard reads {FORMAT}.")
        if manifest.get("instance") != settings.name:
            raise BadRequest(f"The backup is of platform instance {manifest.get('instance')!r}: set "
                             f"DOCKYARD_NAME={manifest.get('instance')} (the apps' images and labels carry it).")
        os.replace(work / "state.db", settings.db_path)
        for repo in (work / "repos").glob("*.git") if (work / "repos").exists() else ():
            target = settings.repos_dir / repo.name
            shutil.rmtree(target, ignore_errors=True)
            os.replace(repo, target)
        for entry in HOME_FILES:
            if (work / "home" / entry).exists():
                target = settings.home / entry
                if target.is_dir():
                    shutil.rmtree(target)
                os.replace(work / "home" / entry, target)
        if (work / "images.tar").exists():
            with open(work / "images.tar", "rb") as f:
                load_images(f)
        if manifest.get("addons") and restore_addons is not None:
            manifest["addons_restored"] = restore_addons(work / "addons", manifest["addons"])
    with contextlib.suppress(OSError):
        os.chmod(settings.home, 0o700)
    return manifest
