"""What a killed process leaves behind, swept when nothing of the app runs (its app lock is
free): builds recorded as pending, build source copies in the temp dir, temporary pack files
of an upload, build and release-phase containers, and a deploy branch that did not move
although its release went live (the kill came between the two)."""
from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from core.errors import Locked

from controller.runtime import repos
from controller.runtime.locks import app_lock
from controller.services import Services


def stale_build_dirs(tmp: Path, app: str) -> list[Path]:
    """The source copies of the app's builds (tempfile names them dockyard-build-<app>-XXXXXXXX;
    another app whose name starts with this one's does not match)."""
    pattern = re.compile(rf"dockyard-build-{re.escape(app)}-[a-z0-9_]{{8}}")
    return [p for p in tmp.glob(f"dockyard-build-{app}-*") if pattern.fullmatch(p.name)]


def sweep_app(svc: Services, app_name: str) -> list[str]:
    """Sweep one app; returns what was done (for the log). Skips an app that is busy."""
    done: list[str] = []
    try:
        with app_lock(svc.settings, app_name, "sweep", wait=0):
            app = svc.store.find_app(app_name)
            if app is None:
                return done
            for build in svc.store.pending_builds(app):
                svc.store.finish_build(build.id, "failed", "", "The build was interrupted (its process ended): "
                                                              "push again.")
                done.append(f"build {build.id} was interrupted: marked failed")
            for path in stale_build_dirs(Path(tempfile.gettempdir()), app_name):
                shutil.rmtree(path, ignore_errors=True)
                done.append(f"removed the build copy {path}")
            if (n := repos.sweep_uploads(svc.settings, app_name)):
                done.append(f"removed {n} temporary pack file{'s' if n != 1 else ''} of an interrupted push")
            if (n := svc.scheduler.remove_leftovers(app_name)):
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
