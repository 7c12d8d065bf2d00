"""Apps and what makes them run: builds, releases (numbered, immutable; the version and the
current-release pointer move only by compare-and-swap whose result is checked), formation,
resource limits, health checks and the instances that passed theirs."""
from __future__ import annotations

import json
import sqlite3
import time
import uuid
from datetime import datetime

from core import prom
from core.errors import AppNotFound, Conflict, NotFound, QuotaExceeded
from core.models import App, Build, Release

from controller.store.base import now
from controller.store.prom import upsert_series


def _app(row: sqlite3.Row) -> App:
    return App(id=row["id"], name=row["name"], owner_id=row["owner_id"], created_at=row["created_at"],
               current_version=row["current_version"], last_version=row["last_version"],
               live_version=row["live_version"] or row["current_version"])


def _build(row: sqlite3.Row) -> Build:
    return Build(id=row["id"], app_id=row["app_id"], status=row["status"],
                 source_commit=row["source_commit"], method=row["method"], image=row["image"],
                 process_types=json.loads(row["process_types"]), created_at=row["created_at"],
                 finished_at=row["finished_at"], error=row["error"])


def _release(row: sqlite3.Row) -> Release:
    keys = row.keys()
    return Release(app_id=row["app_id"], version=row["version"], build_id=row["build_id"],
                   config=json.loads(row["config"]), description=row["description"],
                   status=row["status"], created_at=row["created_at"], created_by=row["created_by"],
                   image=row["image"] if "image" in keys else None,
                   process_types=json.loads(row["process_types"]) if "process_types" in keys and row["process_types"] else {},
                   healthchecks=json.loads(row["healthchecks"]) if "healthchecks" in keys and row["healthchecks"] else {},
                   manifest=json.loads(row["manifest"]) if "manifest" in keys and row["manifest"] else {})


_RELEASE_SELECT = """
    SELECT r.*, b.image AS image, b.process_types AS process_types, b.healthchecks AS healthchecks,
           b.manifest AS manifest
    FROM releases r LEFT JOIN builds b ON b.id = r.build_id
"""


class AppsMixin:
    # ---- apps -------------------------------------------------------------
    def create_app(self, name: str, owner_id: int | None, max_owned: int | None = None) -> App:
        """A new app; with `max_owned`, refused when its owner already owns that many (counted
        in the same write transaction, so concurrent creates cannot all pass the count)."""
        with self.tx() as db:
            if max_owned is not None and db.execute("SELECT count(*) FROM apps WHERE owner_id = ?",
                                                    (owner_id,)).fetchone()[0] >= max_owned:
                raise QuotaExceeded(f"You own {max_owned} apps, your quota: destroy one (`dockyard apps:destroy`) "
                                    "or ask an admin to raise it.")
            try:
                db.execute("INSERT INTO apps (id, name, owner_id, created_at) VALUES (?, ?, ?, ?)",
                           (str(uuid.uuid4()), name, owner_id, now()))
            except sqlite3.IntegrityError:
                raise Conflict(f"App {name!r} already exists: pick another name, or use it with -a {name}.") from None
            return _app(db.execute("SELECT * FROM apps WHERE name = ?", (name,)).fetchone())

    def find_app(self, name: str) -> App | None:
        with self.read() as db:
            row = db.execute("SELECT * FROM apps WHERE name = ?", (name,)).fetchone()
        return _app(row) if row else None

    def get_app(self, name: str) -> App:
        app = self.find_app(name)
        if app is None:
            raise AppNotFound(f"App {name!r} not found: check the name with `dockyard apps`, "
                              f"or create it with `dockyard apps:create {name}`.")
        return app

    def list_apps(self) -> list[App]:
        with self.read() as db:
            return [_app(r) for r in db.execute("SELECT * FROM apps ORDER BY name")]

    def deployed_apps(self) -> set[str]:
        """Names of the apps that ever had a release with code go live."""
        with self.read() as db:
            return {r[0] for r in db.execute(
                "SELECT DISTINCT a.name FROM apps a JOIN releases r ON r.app_id = a.id"
                " WHERE r.status = 'succeeded' AND r.build_id IS NOT NULL")}

    def web_scaled_apps(self) -> set[str]:
        """Names of the apps whose formation runs web instances (scaled up, not stopped)."""
        with self.read() as db:
            return {r[0] for r in db.execute(
                "SELECT a.name FROM apps a JOIN formation f ON f.app_id = a.id"
                " WHERE f.type = 'web' AND f.quantity > 0 AND f.stopped = 0")}

    def rename_unbuilt_app(self, app: App, new_name: str) -> bool:
        """Rename an app that has no build and no add-on (so no image, container or service
        carries its name), checked in the same transaction; False (and no change) otherwise."""
        with self.tx() as db:
            if (db.execute("SELECT 1 FROM builds WHERE app_id = ?", (app.id,)).fetchone()
                    or db.execute("SELECT 1 FROM addons WHERE app_id = ?", (app.id,)).fetchone()
                    or db.execute("SELECT 1 FROM addon_attachments WHERE app_id = ?", (app.id,)).fetchone()):
                return False
            try:
                db.execute("UPDATE apps SET name = ? WHERE id = ?", (new_name, app.id))
            except sqlite3.IntegrityError:
                raise Conflict(f"App {new_name!r} already exists: pick another name.") from None
        return True

    def delete_app(self, app: App, keep_backups: bool = False) -> None:
        """Forget the app; with `keep_backups`, remember it (id, name, owner) so its owner and
        admins can still reach its add-ons' backups."""
        with self.tx() as db:
            if keep_backups:
                db.execute("INSERT OR REPLACE INTO destroyed_apps (id, name, owner_id, destroyed_at) VALUES (?, ?, ?, ?)",
                           (app.id, app.name, app.owner_id, now()))
            db.execute("DELETE FROM apps WHERE id = ?", (app.id,))

    def destroyed_apps(self, owner_id: int | None = None) -> list[dict]:
        """Destroyed apps with kept backups, oldest first; only `owner_id`'s when given."""
        q = "SELECT d.*, u.name AS owner FROM destroyed_apps d LEFT JOIN users u ON u.id = d.owner_id"
        with self.read() as db:
            rows = db.execute(q + (" WHERE d.owner_id = ?" if owner_id is not None else "") + " ORDER BY d.destroyed_at",
                              (owner_id,) if owner_id is not None else ()).fetchall()
        return [dict(r) for r in rows]

    def retire_destroyed(self, app_id: str, name: str, owner_id: int | None, at: str | None = None) -> None:
        """Record (or keep) a destroyed app's backups entry: `at` defaults to now."""
        with self.tx() as db:
            db.execute("INSERT OR IGNORE INTO destroyed_apps (id, name, owner_id, destroyed_at) VALUES (?, ?, ?, ?)",
                       (app_id, name, owner_id, at or now()))

    def forget_destroyed(self, app_id: str) -> None:
        with self.tx() as db:
            db.execute("DELETE FROM destroyed_apps WHERE id = ?", (app_id,))

    # ---- builds -----------------------------------------------------------
    def create_build(self, app: App, source_commit: str, method: str, image: str) -> Build:
        build_id = uuid.uuid4().hex[:12]
        with self.tx() as db:
            db.execute("INSERT INTO builds (id, app_id, status, source_commit, method, image, created_at)"
                       " VALUES (?, ?, 'pending', ?, ?, ?, ?)",
                       (build_id, app.id, source_commit, method, image, now()))
            return _build(db.execute("SELECT * FROM builds WHERE id = ?", (build_id,)).fetchone())

    def finish_build(self, build_id: str, status: str, output: str, error: str | None = None,
                     process_types: dict | None = None, method: str | None = None) -> Build:
        with self.tx() as db:
            cur = db.execute(
                "UPDATE builds SET status = ?, output = ?, error = ?, finished_at = ?,"
                " process_types = COALESCE(?, process_types), method = COALESCE(?, method)"
                " WHERE id = ? AND status = 'pending'",
                (status, output, error, now(),
                 json.dumps(process_types) if process_types is not None else None, method, build_id))
            if cur.rowcount != 1:
                raise Conflict(f"Build {build_id} is already finished.")
            build = _build(db.execute("SELECT * FROM builds WHERE id = ?", (build_id,)).fetchone())
            took = time.time() - datetime.fromisoformat(build.created_at).timestamp()
            upsert_series(db, prom.observe("dockyard_build_duration_seconds", {"result": status}, took))
            return build

    def get_build(self, build_id: str) -> Build | None:
        with self.read() as db:
            row = db.execute("SELECT * FROM builds WHERE id = ?", (build_id,)).fetchone()
        return _build(row) if row else None

    def list_builds(self, app: App) -> list[Build]:
        with self.read() as db:
            return [_build(r) for r in db.execute(
                "SELECT * FROM builds WHERE app_id = ? ORDER BY created_at", (app.id,))]

    def build_output(self, build_id: str) -> str:
        with self.read() as db:
            row = db.execute("SELECT output FROM builds WHERE id = ?", (build_id,)).fetchone()
        return row["output"] if row else ""

    # ---- releases ---------------------------------------------------------
    def create_release(self, app: App, build_id: str | None, config: dict, description: str,
                       created_by: str | None, status: str = "pending", live: bool = True) -> Release:
        """Allocate the next version by compare-and-swap on apps.last_version and insert the
        (immutable) release. Raises Conflict when another writer won the race. A release made
        "succeeded" at once becomes current, and live unless `live` is False (--no-restart)."""
        with self.tx() as db:
            row = db.execute("SELECT last_version FROM apps WHERE id = ?", (app.id,)).fetchone()
            if row is None:
                raise NotFound(f"App {app.name!r} was deleted.")
            old = row["last_version"]
            cur = db.execute("UPDATE apps SET last_version = ? WHERE id = ? AND last_version = ?",
                             (old + 1, app.id, old))
            if cur.rowcount != 1:
                raise Conflict(f"Another release of {app.name} was created at the same time; try again.",
                               fix="send the request again: another change of the app came first")
            db.execute("INSERT INTO releases (app_id, version, build_id, config, description, status,"
                       " created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (app.id, old + 1, build_id, json.dumps(config, sort_keys=True), description,
                        status, now(), created_by))
            if status == "succeeded":
                self._swap_current(db, app, old + 1)
                if live:
                    db.execute("UPDATE apps SET live_version = ? WHERE id = ?", (old + 1, app.id))
            return _release(db.execute(_RELEASE_SELECT + " WHERE r.app_id = ? AND r.version = ?",
                                       (app.id, old + 1)).fetchone())

    @staticmethod
    def _swap_current(db: sqlite3.Connection, app: App, version: int) -> None:
        old = db.execute("SELECT current_version FROM apps WHERE id = ?", (app.id,)).fetchone()[0]
        if old >= version:
            raise Conflict(f"{app.name} already runs v{old}, newer than v{version}.")
        cur = db.execute("UPDATE apps SET current_version = ? WHERE id = ? AND current_version = ?",
                         (version, app.id, old))
        if cur.rowcount != 1:
            raise Conflict(f"The current release of {app.name} changed during the deploy; try again.",
                           fix="deploy again: another change of the app came first")

    def finish_release(self, release: Release, status: str) -> None:
        """pending -> succeeded (and make it current) or failed. Content never changes."""
        with self.tx() as db:
            cur = db.execute("UPDATE releases SET status = ? WHERE app_id = ? AND version = ? AND status = 'pending'",
                             (status, release.app_id, release.version))
            if cur.rowcount != 1:
                raise Conflict(f"Release v{release.version} is not pending.")
            if status == "succeeded":
                app = _app(db.execute("SELECT * FROM apps WHERE id = ?", (release.app_id,)).fetchone())
                self._swap_current(db, app, release.version)
                db.execute("UPDATE apps SET live_version = ? WHERE id = ?", (release.version, release.app_id))

    def fail_release(self, release: Release) -> bool:
        """A release that went live and then crash-looped: succeeded -> failed, so it is never
        a rollback target. False when it was not succeeded."""
        with self.tx() as db:
            return db.execute("UPDATE releases SET status = 'failed' WHERE app_id = ? AND version = ?"
                              " AND status = 'succeeded'", (release.app_id, release.version)).rowcount == 1

    def record_release_phase(self, release: Release, exit_code: int) -> None:
        with self.tx() as db:
            db.execute("UPDATE releases SET release_phase_exit = ? WHERE app_id = ? AND version = ?",
                       (exit_code, release.app_id, release.version))

    def release_phase_exit(self, release: Release) -> int | None:
        with self.read() as db:
            row = db.execute("SELECT release_phase_exit FROM releases WHERE app_id = ? AND version = ?",
                             (release.app_id, release.version)).fetchone()
            return row[0] if row else None

    def pending_builds(self, app: App) -> list[Build]:
        with self.read() as db:
            return [_build(r) for r in db.execute("SELECT * FROM builds WHERE app_id = ? AND status = 'pending'",
                                                  (app.id,))]

    def get_release(self, app: App, version: int) -> Release:
        with self.read() as db:
            row = db.execute(_RELEASE_SELECT + " WHERE r.app_id = ? AND r.version = ?",
                             (app.id, version)).fetchone()
        if row is None:
            raise NotFound(f"{app.name} has no release v{version}: see `dockyard releases -a {app.name}`.")
        return _release(row)

    def current_release(self, app: App) -> Release | None:
        fresh = self.find_app(app.name)
        if fresh is None or fresh.current_version == 0:
            return None
        return self.get_release(fresh, fresh.current_version)

    def live_release(self, app: App) -> Release | None:
        """The release the app's processes run: the current one, unless a config change was
        made with --no-restart (then the one before it, until the next restart or deploy)."""
        fresh = self.find_app(app.name)
        if fresh is None or fresh.current_version == 0:
            return None
        return self.get_release(fresh, fresh.live_version or fresh.current_version)

    def set_live(self, app: App, version: int) -> None:
        with self.tx() as db:
            db.execute("UPDATE apps SET live_version = ? WHERE id = ?", (version, app.id))

    def list_releases(self, app: App) -> list[Release]:
        with self.read() as db:
            return [_release(r) for r in db.execute(
                _RELEASE_SELECT + " WHERE r.app_id = ? ORDER BY r.version", (app.id,))]

    # ---- formation --------------------------------------------------------
    def formation(self, app: App) -> dict[str, int]:
        with self.read() as db:
            return {r["type"]: r["quantity"] for r in db.execute(
                "SELECT type, quantity FROM formation WHERE app_id = ? ORDER BY type", (app.id,))}

    def set_formation(self, app: App, quantities: dict[str, int], only_missing: bool = False) -> None:
        with self.tx() as db:
            for ptype, qty in quantities.items():
                if only_missing:
                    db.execute("INSERT OR IGNORE INTO formation (app_id, type, quantity) VALUES (?, ?, ?)",
                               (app.id, ptype, qty))
                else:
                    db.execute("INSERT INTO formation (app_id, type, quantity) VALUES (?, ?, ?)"
                               " ON CONFLICT (app_id, type) DO UPDATE SET quantity = excluded.quantity",
                               (app.id, ptype, qty))

    def stopped_types(self, app: App) -> set[str]:
        with self.read() as db:
            return {r[0] for r in db.execute("SELECT type FROM formation WHERE app_id = ? AND stopped = 1",
                                             (app.id,))}

    def set_stopped(self, app: App, types: list[str], stopped: bool) -> None:
        """ps:stop / ps:start: a stopped type keeps its quantity but runs no instance."""
        with self.tx() as db:
            for ptype in types:
                db.execute("INSERT INTO formation (app_id, type, quantity, stopped) VALUES (?, ?, 0, ?)"
                           " ON CONFLICT (app_id, type) DO UPDATE SET stopped = excluded.stopped",
                           (app.id, ptype, int(stopped)))

    def desired_formation(self, app: App) -> dict[str, int]:
        """Quantities to run: the formation, with stopped and sleeping types at zero."""
        stopped = self.stopped_types(app) | self.sleeping_types(app)
        return {t: 0 if t in stopped else q for t, q in self.formation(app).items()}

    # ---- resource limits and health checks (per process type) -------------
    def limits(self, app: App) -> dict[str, dict]:
        with self.read() as db:
            return {r["type"]: {"memory_mb": r["memory_mb"], "cpus": r["cpus"]} for r in db.execute(
                "SELECT type, memory_mb, cpus FROM limits WHERE app_id = ? ORDER BY type", (app.id,))}

    def set_limits(self, app: App, ptype: str, memory_mb: int | None, cpus: float | None) -> None:
        with self.tx() as db:
            write_limit(db, app.id, ptype, memory_mb, cpus)

    def checks(self, app: App) -> dict[str, list[dict]]:
        """Health checks set with checks:set (they override app.json's), by process type."""
        with self.read() as db:
            return {r["type"]: json.loads(r["spec"]) for r in db.execute(
                "SELECT type, spec FROM checks WHERE app_id = ? ORDER BY type", (app.id,))}

    def set_checks(self, app: App, ptype: str, checks: list[dict] | None) -> None:
        with self.tx() as db:
            if checks is None:
                db.execute("DELETE FROM checks WHERE app_id = ? AND type = ?", (app.id, ptype))
            else:
                db.execute("INSERT INTO checks (app_id, type, spec) VALUES (?, ?, ?)"
                           " ON CONFLICT (app_id, type) DO UPDATE SET spec = excluded.spec",
                           (app.id, ptype, json.dumps(checks, sort_keys=True)))

    def set_build_manifest(self, build_id: str, manifest: dict) -> None:
        """What the build read from app.json besides checks, and the port its image EXPOSEs."""
        with self.tx() as db:
            db.execute("UPDATE builds SET manifest = ? WHERE id = ?", (json.dumps(manifest, sort_keys=True), build_id))

    def set_build_healthchecks(self, build_id: str, healthchecks: dict) -> None:
        """app.json's `healthchecks` of the build's source (validated by the build)."""
        with self.tx() as db:
            db.execute("UPDATE builds SET healthchecks = ? WHERE id = ?",
                       (json.dumps(healthchecks, sort_keys=True), build_id))

    # ---- instances that passed their health check -------------------------
    def mark_healthy(self, app: App, container_id: str, version: int, ptype: str) -> None:
        with self.tx() as db:
            db.execute("INSERT OR REPLACE INTO instances (container_id, app_id, version, type, healthy_at)"
                       " VALUES (?, ?, ?, ?, ?)", (container_id, app.id, version, ptype, now()))

    def forget_instance(self, container_id: str) -> None:
        """The instance serves no more (it is being stopped): routes leave it, crashes no longer
        count, and `ps` says it is stopping until drop_instance."""
        with self.tx() as db:
            db.execute("UPDATE instances SET stopping_at = ? WHERE container_id = ? AND stopping_at IS NULL",
                       (now(), container_id))

    def drop_instance(self, container_id: str) -> None:
        """Its container is gone."""
        with self.tx() as db:
            db.execute("DELETE FROM instances WHERE container_id = ?", (container_id,))

    def record_crash(self, container_id: str, exit_code: int | None, oom: bool) -> dict | None:
        """Count a crash of a serving instance; None when the instance is not one (a retired or
        stopped one). Returns the instance's row with its app's name and restart count."""
        with self.tx() as db:
            cur = db.execute("UPDATE instances SET restarts = restarts + 1, last_exit = ?, oom = ?, crashed_at = ?"
                             " WHERE container_id = ? AND stopping_at IS NULL", (exit_code, int(oom), now(), container_id))
            if cur.rowcount == 0:
                return None
            row = db.execute("SELECT i.container_id, i.version, i.type, i.restarts, i.healthy_at, a.name AS app"
                             " FROM instances i JOIN apps a ON a.id = i.app_id WHERE i.container_id = ?",
                             (container_id,)).fetchone()
            return dict(row)

    def instance_health(self, app: App) -> dict[str, dict]:
        """container id -> {restarts, last_exit, oom, crashed_at, stopping} of the app's serving
        instances and of those being stopped."""
        with self.read() as db:
            return {r["container_id"]: {"restarts": r["restarts"], "last_exit": r["last_exit"], "oom": bool(r["oom"]),
                                        "crashed_at": r["crashed_at"], "stopping": r["stopping_at"] is not None}
                    for r in db.execute("SELECT container_id, restarts, last_exit, oom, crashed_at, stopping_at"
                                        " FROM instances WHERE app_id = ?", (app.id,))}

    def healthy_ids(self) -> set[str]:
        with self.read() as db:
            return {r[0] for r in db.execute("SELECT container_id FROM instances WHERE stopping_at IS NULL")}


def write_limit(db: sqlite3.Connection, app_id: str, ptype: str, memory_mb: int | None, cpus: float | None) -> None:
    """Set a process type's limits inside the caller's transaction; (None, None) resets them."""
    if memory_mb is None and cpus is None:
        db.execute("DELETE FROM limits WHERE app_id = ? AND type = ?", (app_id, ptype))
    else:
        db.execute("INSERT INTO limits (app_id, type, memory_mb, cpus) VALUES (?, ?, ?, ?)"
                   " ON CONFLICT (app_id, type) DO UPDATE SET memory_mb = excluded.memory_mb,"
                   " cpus = excluded.cpus", (app_id, ptype, memory_mb, cpus))
