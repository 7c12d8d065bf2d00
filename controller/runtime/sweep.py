"""What a killed process leaves behind, swept when nothing of the app runs (its app lock is
free): builds recorded as pending, build source copies in the temp dir, temporary pack files
of an upload, build and release-phase containers, and a deploy branch that did not move
although its release went live (the kill came between the two)."""
from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from builder.build import build_copy_prefix
from core.errors import Locked
from core.models import App

from controller.runtime import repos
from controller.runtime.locks import app_lock
from controller.services import Services


def stale_build_dirs(tmp: Path, instance: str, app: str) -> list[Path]:
    """The source copies of this platform instance's builds of the app (builder.build names them
    dockyard-build.<instance>.<app>.XXXXXXXX): never another instance's on the same machine,
    nor another app's whose name starts with this one's."""
    prefix = build_copy_prefix(instance, app)
    pattern = re.compile(re.escape(prefix) + r"[a-z0-9_]{8}")
    return [p for p in tmp.glob(f"{prefix}*") if pattern.fullmatch(p.name)]


INTERRUPTED = "The build was interrupted (its process ended): push again."


def fail_interrupted_builds(svc: Services, app: App) -> list[str]:
    """Builds still pending while the app's lock is free (the caller holds it) belong to a process
    that died: they are failed, saying so."""
    done = []
    for build in svc.store.pending_builds(app):
        svc.store.finish_build(build.id, "failed", "", INTERRUPTED)
        done.append(f"build {build.id} was interrupted: marked failed")
    return done


def interrupted_push_note(svc: Services, app: App) -> str | None:
    """What the next push says when the one before it died mid-way (git itself said only
    `Everything up-to-date`): the build that was cut off and what serves now. Caller holds the
    app's lock."""
    fail_interrupted_builds(svc, app)
    builds = svc.store.list_builds(app)
    last = builds[-1] if builds else None
    if last is None or last.status != "failed" or last.error != INTERRUPTED:
        return None
    live = svc.store.live_release(app)
    serving = f"v{live.version} kept serving" if live else "the app has no release yet"
    return (f"-----> The previous push (build {last.id}, commit {last.source_commit[:8]}, started {last.created_at[:19]} "
            f"UTC) was interrupted before it finished: nothing of it was released, {serving}. Building this push now.")


def sweep_app(svc: Services, app_name: str, engine: bool = True) -> list[str]:
    """Sweep one app; returns what was done (for the log). Skips an app that is busy. With
    `engine` false the engine is not asked for the app's leftover containers (a look at every
    app's found none)."""
    done: list[str] = []
    try:
        with app_lock(svc.settings, app_name, "sweep", wait=0):
            app = svc.store.find_app(app_name)
            if app is None:
                return done
            done.extend(fail_interrupted_builds(svc, app))
            for path in stale_build_dirs(Path(tempfile.gettempdir()), svc.settings.name, app_name):
                shutil.rmtree(path, ignore_errors=True)
                done.append(f"removed the build copy {path}")
            if (n := repos.sweep_uploads(svc.settings, app_name)):
                done.append(f"removed {n} temporary pack file{'s' if n != 1 else ''} of an interrupted push")
            if engine and (n := svc.scheduler.remove_leftovers(app_name)):
                done.append(f"removed {n} build or release-phase container{'s' if n != 1 else ''}")
            done.extend(_align_ref(svc, app))
    except Locked:
        pass
    for line in done:
        svc.store.add_event(svc.store.get_app(app_name), "dockyard", "reconciler", f"Cleanup: {line}")
    return done


_SHA = re.compile(r"[0-9a-f]{40}")


def _align_ref(svc: Services, app) -> list[str]:
    release = svc.store.current_release(app)
    build = svc.store.get_build(release.build_id) if release and release.build_id else None
    if build is None or not _SHA.fullmatch(build.source_commit):
        return []
    moved = repos.fast_forward(svc.settings, app.name, build.source_commit)
    if moved is None:
        return []
    return [f"{moved} moved to {build.source_commit[:8]}, the commit v{release.version} runs (the push that "
            "deployed it was cut off before its branch moved)"]
