"""The use cases: every change to an app's existence, releases and processes. Each takes the
app's lock itself, so no caller can forget it and race a push; views and the git receiver
only parse, call one of these, and render.

A release is an immutable record (build + config + version). Deploying a push or an image,
changing config and rolling back each make a new one through `_release`, the one place that
does; rollout.py then puts it into service."""
from __future__ import annotations

import contextlib
import errno
import shutil
import time
from typing import Callable, Iterator

from builder.build import build_commit
from builder.job import BuildJob
from core.errors import BadRequest, DeployFailed, DockyardError, Locked, NotFound
from core.durations import format_duration
from core.models import App, Build, Release, User
from core.names import validate_process_type

from controller.apps import manifest as app_json
from controller.runtime import repos, sleep, standby
from controller.accounts import tenancy
from controller.runtime.locks import app_lock, formation_lock
from controller.runtime.reconcile import converge
from controller.runtime.rollout import RELEASE_PHASE, collect_images, deploy_release
from controller.runtime.sweep import interrupted_push_note
from controller.routing.table import apply_routes, forget_cert_files
from controller.scheduler import tenant_key
from controller.services import Out, Services


# ---- apps ------------------------------------------------------------------------------
def create_app(svc: Services, name: str, user: User, asleep_after: int | None = None) -> App:
    """A new app. `asleep_after` (seconds): its web sleeps from the start with that autosleep
    window, so its first deploy releases without starting anything and the first request wakes
    it (many rarely used apps are put on a host without running each once); otherwise web gets
    the admin's DOCKYARD_AUTOSLEEP_DEFAULT, if any, and its first deploy starts it."""
    app = svc.store.create_app(name, user.id, tenancy.app_quota(svc, user))
    try:
        # a repository left by a destroyed app of the same name (a destroy killed half-way) is
        # not this app's: it starts empty
        shutil.rmtree(repos.repo_path(svc.settings, name), ignore_errors=True)
        repos.init_repo(svc.settings, name)
    except OSError as e:
        with contextlib.suppress(DockyardError):   # no half-made app stays (a push makes a missing repository)
            svc.store.delete_app(app)
        if e.errno == errno.ENOSPC:
            raise svc.store.storage_full_error() from e
        raise
    svc.store.add_event(app, "dockyard", "api", f"App created by {user.name}")
    if asleep_after:
        svc.store.set_autosleep(app, "web", asleep_after)
        svc.store.mark_sleeping(app, ["web"], time.time())
        svc.store.add_event(app, "dockyard", "api", f"web sleeps from the start (autosleep after "
                            f"{format_duration(asleep_after)}): the first request after a deploy starts it")
    elif svc.settings.autosleep_default:    # the admin's default for new apps (ps:autosleep changes it)
        svc.store.set_autosleep(app, "web", svc.settings.autosleep_default)
    try:
        apply_routes(svc)        # its host answers with how to deploy it at once
    except DockyardError:
        pass                      # the router process adds the route on its next pass
    return app


def destroy_app(svc: Services, app: App) -> None:
    """Stop every instance, forget the app, and remove its routes, certificate files, images,
    repo and cache. Its add-ons' backups stay under its id, for its owner and admins only."""
    with app_lock(svc.settings, app.name, "destroy"), formation_lock(svc.settings, app.name, "destroy"):
        for inst in svc.scheduler.instances(app.name):
            svc.store.forget_instance(inst.container_id)
            svc.scheduler.stop(inst.container_id, 0)
        standby.remove_all(svc, app.name)          # the containers made ahead for its next wake
        backups = svc.settings.backups_dir(app.id)
        svc.store.delete_app(app, keep_backups=backups.is_dir() and any(backups.iterdir()))
        apply_routes(svc)
        forget_cert_files(svc.settings, app.id)   # the config just applied no longer names them
        svc.scheduler.remove_leftovers(app.name)   # build and release-phase containers of killed deploys
        svc.scheduler.remove_images(app.name)
        svc.scheduler.collect_pulled_images()      # base images only this app built on
        shutil.rmtree(repos.repo_path(svc.settings, app.name), ignore_errors=True)
        shutil.rmtree(svc.settings.cache_dir(app.id), ignore_errors=True)   # buildpack CACHE_DIR


def purge_build_cache(svc: Services, app: App) -> tuple[bool, int]:
    """Clear the app's buildpack CACHE_DIR: (it existed, bytes freed)."""
    cache = svc.settings.cache_dir(app.id)
    with app_lock(svc.settings, app.name, "cache purge"):
        if not cache.exists():
            return False, 0
        size = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file() and not f.is_symlink())
        shutil.rmtree(cache)
    return True, size


# ---- releases ----------------------------------------------------------------------------
# (svc, app, render.yaml's part of the manifest, config, user, out) -> (config, keys set)
AttachAddons = Callable[[Services, App, dict, dict, str, Out], tuple[dict, list[str]]]


class Push:
    """A `git push` of the deploy branch, inside the app's lock: the lock is held from before
    the build until the request ends, so the ref moves inside the lock that deployed it."""

    def __init__(self, svc: Services, app_name: str, attach_addons: AttachAddons | None = None,
                 environment: dict | None = None):
        self.svc = svc
        self.app_name = app_name
        self.attach_addons = attach_addons   # render.yaml's add-ons (controller/addons/blueprint.py)
        self.environment = environment or {}   # app.json's environments.review, for a review app

    def deploy(self, repo, sha: bytes, user: str, out: Out, cancelled: Callable[[], bool]) -> Release:
        svc = self.svc
        app = svc.store.get_app(self.app_name)
        note = interrupted_push_note(svc, app)
        if note:
            out(note)
        current = svc.store.current_release(app)
        config = current.config if current else {}
        # app.json's (and render.yaml's) env defaults and generated secrets: in the build's environment too
        env, render_service = app_json.env_in_commit(repo, sha)
        env = {**env, **self.environment.get("env", {})}
        config, added = app_json.apply_env(env, config, out)
        config, render_vars = app_json.apply_render_variables(svc, app, render_service, config, out)
        build, manifest = _build(svc, app, repo, sha.decode(), config, out, cancelled,
                                 svc.store.get_user(user))
        if cancelled():
            raise BadRequest("The push was interrupted; nothing was released.")
        if self.environment:
            manifest = app_json.with_environment(svc, build.id, manifest, self.environment)
        if manifest.get("render", {}).get("addons"):
            if self.attach_addons is None:
                out("       render.yaml: its databases are not created by this kind of deploy: create them "
                    "with `dockyard addons:create`")
            else:
                config, from_addons = self.attach_addons(svc, app, manifest["render"], config, user, out)
                added += [k for k in from_addons if k not in added]
        added += render_vars
        first = app_json.is_first_deploy(svc, app)
        if first and manifest.get("formation"):
            app_json.apply_formation(svc, app, manifest["formation"], build.process_types, out)
        stopped = sorted(svc.store.stopped_types(app))
        if stopped:   # like Dokku: a deploy starts what `ps:stop` stopped
            out(f"-----> Starting {', '.join(stopped)} (stopped with ps:stop)")
            svc.store.set_stopped(app, stopped, False)
        description = f"Deploy {sha.decode()[:8]}" + (f"; set {', '.join(added)} from {'render.yaml' if render_service else 'app.json'}"
                                                      if added else "")
        try:
            release = _release(svc, app, build, config, description, user, out)
        except BaseException:
            if stopped:
                svc.store.set_stopped(app, stopped, True)   # nothing changed: it stays stopped
            raise
        if first:
            app_json.run_postdeploy(svc, app, release, out)
        return release


@contextlib.contextmanager
def receiving_push(svc: Services, app_name: str, on_wait: Out, attach_addons: AttachAddons | None = None,
                   environment: dict | None = None) -> Iterator[Push]:
    with app_lock(svc.settings, app_name, "deploy", on_wait=on_wait):
        yield Push(svc, app_name, attach_addons, environment)


def _build(svc: Services, app: App, repo, sha: str, config: dict, out: Out,
           cancelled: Callable[[], bool], pusher: User | None = None) -> tuple[Build, dict]:
    """Build the commit, recording the build (pending, then its outcome and output); returns
    it with what the build read from app.json besides checks."""
    tag = f"{svc.settings.image_repo(app.name)}:build-{sha[:12]}-{int(time.time())}"
    build = svc.store.create_build(app, sha, "unknown", tag)
    log: list[str] = []

    def say(line: str) -> None:
        log.append(line)
        out(line)

    job = BuildJob(app=app.name, build_id=build.id, commit=sha, tag=tag, config=config, cache_key=app.id,
                   may_use_image=(lambda ref: tenancy.image_allowed(svc, pusher, ref)) if pusher else None,
                   may_pull=lambda ref: tenancy.pull_admitted(svc, ref))
    try:
        engine = svc.scheduler.build_engine(tenant_key(pusher.id if pusher else None))
        result = engine.building(lambda: build_commit(job, repo, engine, svc.build_config, say, cancelled), say,
                                 cancelled, app.name)
    except DockyardError as e:
        say(f" !     {e.message}")
        svc.store.finish_build(build.id, "failed", "\n".join(log), e.message)
        raise
    except BaseException as e:
        svc.store.finish_build(build.id, "failed", "\n".join(log), f"{e.__class__.__name__}")
        raise
    if result.healthchecks:
        svc.store.set_build_healthchecks(build.id, result.healthchecks)
    if result.manifest:
        svc.store.set_build_manifest(build.id, result.manifest)
    method = f"{result.method} on {engine.node}" if engine.node else result.method
    svc.store.finish_build(build.id, "succeeded", "\n".join(log), None, result.process_types, method)
    return svc.store.get_build(build.id), result.manifest


def deploy_image(svc: Services, app: App, image: str, process_types: dict, user: str, out: Out
                 ) -> tuple[Build, Release]:
    """Release an image that is already in the engine (there is no registry), like Deis's
    builds:create."""
    with app_lock(svc.settings, app.name, "image deploy"):
        app = svc.store.get_app(app.name)
        if not svc.scheduler.image_exists(image):
            raise NotFound(f"The image {image} is not in this machine's Docker engine (there is no registry to "
                           "pull from): build or `docker load` it first, then deploy again.",
                           fix="give the image as `docker images` lists it on the platform's machine (REPOSITORY:TAG "
                               "or IMAGE ID), or build or `docker load` it there first")
        deployer = svc.store.get_user(user)
        if deployer is None or not tenancy.image_allowed(svc, deployer, image):
            raise tenancy.refuse_image(image)
        build = svc.store.create_build(app, image, f"image:{image}", image)
        build = svc.store.finish_build(build.id, "succeeded", f"-----> Deploying image {image}", None,
                                       process_types, f"image:{image}")
        current = svc.store.current_release(app)
        release = _release(svc, app, build, current.config if current else {}, f"Deploy image {image}", user, out)
    return build, release


def promote_release(svc: Services, app: App, source: Release, description: str, user: str, out: Out) -> Release:
    """A pipeline promotion: another app's release put into this one, the same image (tagged in
    this app's repo; nothing is rebuilt) with this app's own config. Release phase, health
    checks and the automatic rollback are a push's; a failure leaves this app's live release
    serving and the source untouched."""
    with app_lock(svc.settings, app.name, "promotion"):
        app = svc.store.get_app(app.name)
        source_build = svc.store.get_build(source.build_id) if source.build_id else None
        if source_build is None or not svc.scheduler.image_exists(source_build.image):
            raise DeployFailed(f"The image of the release to promote (v{source.version}) is gone: push the code "
                               "to the upstream app again, then promote.")
        image = svc.scheduler.tag(source_build.image, svc.settings.image_repo(app.name), f"promoted-{source_build.id}")
        build = svc.store.create_build(app, source_build.source_commit, source_build.method, image)
        if source.healthchecks:
            svc.store.set_build_healthchecks(build.id, source.healthchecks)
        if source.manifest:
            svc.store.set_build_manifest(build.id, source.manifest)
        build = svc.store.finish_build(build.id, "succeeded", f"-----> {description} (image {image})", None,
                                       source_build.process_types, source_build.method)
        current = svc.store.current_release(app)
        return _release(svc, app, build, current.config if current else {}, description, user, out)


def set_config(svc: Services, app: App, changes: dict, user: str, restart: bool, out: Out) -> dict:
    """Set (str) and unset (None) config vars: one new release and one rolling restart for all
    of them; with restart=False the processes pick it up at their next restart."""
    with app_lock(svc.settings, app.name, "config change"):
        app = svc.store.get_app(app.name)
        current = svc.store.current_release(app)
        config = dict(current.config) if current else {}
        for key, value in changes.items():
            if value is not None and "\x00" in value:   # never echoed: it is a secret
                raise BadRequest(f"The value of {key} contains a NUL character, which no environment variable "
                                 "can hold: remove it and set the value again (the value is not shown).")
        for key, value in changes.items():
            if value is None:
                config.pop(key, None)
            else:
                config[key] = value
        if current is not None and config == current.config:
            return config
        set_keys = sorted(k for k, v in changes.items() if v is not None)
        unset_keys = sorted(k for k, v in changes.items() if v is None)
        desc = "; ".join(filter(None, [f"Set {', '.join(set_keys)}" if set_keys else "",
                                       f"Unset {', '.join(unset_keys)}" if unset_keys else ""]))
        build = svc.store.get_build(current.build_id) if current and current.build_id else None
        _release(svc, app, build, config, desc + " config vars", user, out, restart=restart)
    return config


def rollback(svc: Services, app: App, version: int | None, user: str, out: Out) -> Release:
    """Heroku's rollback: a new release from an old release's build and config."""
    with app_lock(svc.settings, app.name, "rollback"):
        app = svc.store.get_app(app.name)
        if version is not None:
            target = svc.store.get_release(app, version)
        else:
            older = [r for r in svc.store.list_releases(app)
                     if r.status == "succeeded" and r.build_id and r.version < app.current_version]
            if not older:
                raise BadRequest(f"{app.name} has no earlier release to roll back to.")
            target = older[-1]
        if target.build_id is None:
            raise BadRequest(f"v{target.version} has no build to run; pick a release that deployed code.")
        build = svc.store.get_build(target.build_id)
        return _release(svc, app, build, target.config, f"Rollback to v{target.version}", user, out)


def roll_back_crash_loop(svc: Services, app: App, bad: int, reason: str, out: Out) -> Release | None:
    """A live release whose instances crash-loop in their first minute: mark it failed and
    roll back to the newest earlier release that succeeded, as a failed health check does.
    Skipped (None) while another change of the app runs: the next crash tries again."""
    try:
        with app_lock(svc.settings, app.name, "automatic rollback", wait=0):
            app = svc.store.get_app(app.name)
            if app.live_version != bad:
                return None
            failing = svc.store.get_release(app, bad)
            if not svc.store.fail_release(failing):
                return None
            older = [r for r in svc.store.list_releases(app)
                     if r.status == "succeeded" and r.build_id and r.version < bad]
            svc.store.add_event(app, "dockyard", "reconciler", f"Release v{bad} crash-loops in its first minute "
                                f"({reason}): marked failed" + ("" if older else "; no earlier release to roll back to"))
            if not older:
                return None
            target = older[-1]
            build = svc.store.get_build(target.build_id)
            return _release(svc, app, build, target.config, f"Rollback to v{target.version} (v{bad} crash-looped)",
                            "dockyard", out)
    except Locked:
        return None


def _release(svc: Services, app: App, build: Build | None, config: dict, description: str,
             user: str | None, out: Out, restart: bool = True) -> Release:
    """Make a new release and, if it has a build, roll it out. With restart=False the release
    becomes current but the processes keep running the live one until the next restart or
    deploy. A failed rollout leaves the previous release serving. Caller holds the lock."""
    if build is None or not restart:
        live = svc.store.live_release(app)
        release = svc.store.create_release(app, build.id if build else None, config, description, user,
                                           status="succeeded", live=build is None)
        if build is not None:
            svc.scheduler.tag(build.image, svc.settings.image_repo(app.name), f"v{release.version}")
            out(f"-----> Released v{release.version} without restarting: v{live.version if live else 0} keeps "
                f"running until `dockyard ps:restart -a {app.name}` (or the next deploy) applies it")
        svc.store.add_event(app, "dockyard", "api", f"Release v{release.version} created by {user}: {description}"
                            + ("" if restart or build is None else " (not restarted)"))
        return svc.store.get_release(app, release.version)
    if not svc.scheduler.image_exists(build.image):
        raise DeployFailed(f"The image of build {build.id} is gone (older releases' images are removed; "
                            "raise DOCKYARD_KEEP_RELEASES to keep more): push the code again instead.")
    # The reconciler marks a pending release of a dead deploy failed: the formation lock keeps
    # it off this one from its creation to its end.
    with formation_lock(svc.settings, app.name, f"rollout of {description}"):
        release = svc.store.create_release(app, build.id, config, description, user)
        image = svc.scheduler.tag(build.image, svc.settings.image_repo(app.name), f"v{release.version}")
        release = svc.store.get_release(app, release.version)
        out(f"-----> Releasing v{release.version} ({image})")
        _roll_out(svc, app, release, out)
        svc.store.finish_release(release, "succeeded")
        if svc.store.sleeping_types(app):   # released while asleep: the next wake starts this release
            standby.sync(svc, app)
            apply_routes(svc)               # a first release of an app asleep: its route goes to the wake listener
    svc.store.add_event(app, "dockyard", "api", f"Deployed v{release.version} by {user}: {description}")
    try:
        removed = collect_images(svc, app)
        if removed:
            out(f"       Removed {removed} image{'s' if removed != 1 else ''} no release needs any more "
                f"(keeping the last {svc.settings.keep_releases}: DOCKYARD_KEEP_RELEASES)")
    except DockyardError as e:   # a cleanup problem never fails a deploy that is live
        out(f"       Image cleanup skipped: {e.message}")
    out(f"-----> v{release.version} is live at http://{svc.settings.app_host(app.name)}:{svc.settings.router_port}/")
    return svc.store.get_release(app, release.version)


def _roll_out(svc: Services, app: App, release: Release, out: Out) -> None:
    try:
        deploy_release(svc, app, release, out)
    except DockyardError as e:
        svc.store.finish_release(release, "failed")
        live = svc.store.live_release(app)
        kept = f"v{live.version} keeps serving" if live else "nothing was running before"
        out(f"-----> Release v{release.version} failed; rolled back automatically: {kept}")
        svc.store.add_event(app, "dockyard", "api", f"Deploy of v{release.version} failed: {e.message} "
                            f"Rolled back automatically: {kept}.")
        raise
    except BaseException:
        svc.store.finish_release(release, "failed")
        raise


# ---- processes ---------------------------------------------------------------------------
def process_types(release: Release | None) -> dict:
    """The release's scalable process types (the release phase is not one)."""
    return {t: c for t, c in (release.process_types if release else {}).items() if t != RELEASE_PHASE}


def formation(svc: Services, app: App) -> list[dict]:
    """Each process type of the app with its quantity, its command in the current release,
    whether `ps:stop` stopped it and its autosleep (what `ps:scale` and the dashboard show)."""
    types = process_types(svc.store.current_release(app))
    quantities = svc.store.formation(app)
    stopped = svc.store.stopped_types(app)
    sleeping = sleep.describe(svc.store.sleep_rows(app))
    return [{"type": t, "quantity": quantities.get(t, 0), "command": types.get(t, ""), "stopped": t in stopped,
             "autosleep": sleeping.get(t)}
            for t in sorted(set(types) | set(quantities)) if t != RELEASE_PHASE]


def require_process_type(app_name: str, types: dict | set, ptype: str) -> None:
    if ptype not in types:
        known = ", ".join(sorted(types)) or "none yet (deploy first)"
        raise BadRequest(f"{app_name} has no process type {ptype!r}; its types are: {known}.")


def scale(svc: Services, app: App, updates: list, user: str, out: Out, max_quantity: int) -> None:
    """ps:scale: set quantities, start scaled-up types that were stopped, converge."""
    with app_lock(svc.settings, app.name, "scale"):
        app = svc.store.get_app(app.name)
        types = svc.store.current_release(app)
        types = types.process_types if types else {}
        quantities = {}
        for u in updates:
            ptype = validate_process_type((u or {}).get("type"))
            qty = u.get("quantity")
            if not isinstance(qty, int) or isinstance(qty, bool) or not 0 <= qty <= max_quantity:
                raise BadRequest(f"Quantity for {ptype} must be a whole number from 0 to {max_quantity}.")
            require_process_type(app.name, types, ptype)
            quantities[ptype] = qty
        tenancy.reserve_app_change(svc, app, quantities, {})
        svc.store.set_stopped(app, [t for t, q in quantities.items() if q > 0], False)   # scaling up starts it
        svc.store.add_event(app, "dockyard", "api", "Scaled " + " ".join(f"{k}={v}" for k, v in quantities.items()))
        with formation_lock(svc.settings, app.name, "scale"):
            converge(svc, app, out, background=True)
            standby.sync(svc, app)     # a sleeping type's next wake starts the new quantity


def stop_or_start(svc: Services, app: App, action: str, ptype: str | None, user: str, out: Out) -> list[str]:
    """ps:stop / ps:start (Dokku's verbs): stop all process types (or one) without losing their
    quantities, or start them again. Returns the types acted on."""
    if action not in ("stop", "start"):
        raise BadRequest(f"Unknown action {action!r}: use stop or start.")
    with app_lock(svc.settings, app.name, f"ps:{action}"):
        app = svc.store.get_app(app.name)
        types = set(process_types(svc.store.live_release(app)))
        if ptype is not None:
            validate_process_type(ptype)
            require_process_type(app.name, types, ptype)
        chosen = sorted(types if ptype is None else {ptype})
        if not chosen:
            raise BadRequest(f"{app.name} has no processes yet: deploy it with `git push dockyard main`.")
        svc.store.set_stopped(app, chosen, action == "stop")
        svc.store.add_event(app, "dockyard", "api", f"{'Stopped' if action == 'stop' else 'Started'} "
                            f"{', '.join(chosen)} by {user}")
        with formation_lock(svc.settings, app.name, f"ps:{action}"):
            converge(svc, app, out, background=False)
    return chosen


def restart(svc: Services, app: App, ptype: str | None, out: Out) -> None:
    """Rolling restart of all processes (or one type): new instances pass their checks before
    the old ones are stopped. All processes restart on the current release (which applies a
    config set with --no-restart); one type restarts on the release the others run."""
    if ptype is not None:
        validate_process_type(ptype)
    with app_lock(svc.settings, app.name, "restart"):
        app = svc.store.get_app(app.name)
        release = svc.store.current_release(app) if ptype is None else svc.store.live_release(app)
        if release is None or release.build_id is None:
            raise BadRequest(f"{app.name} has nothing running yet: deploy it with `git push dockyard main`.")
        if ptype is not None:
            require_process_type(app.name, release.process_types, ptype)
        with formation_lock(svc.settings, app.name, "restart"):
            deploy_release(svc, app, release, out, only=ptype, release_phase=False)
        svc.store.add_event(app, "dockyard", "api", f"Restarted {ptype or 'all processes'}")


def set_limits(svc: Services, app: App, ptype: str, parse: Callable[[dict], tuple], user: str, out: Out) -> None:
    """ps:limits: `parse(current limits of the type)` gives (memory_mb, cpus); running
    instances of the type are replaced, one rolling restart."""
    validate_process_type(ptype)
    with app_lock(svc.settings, app.name, "ps:limits"):
        app = svc.store.get_app(app.name)
        release = svc.store.live_release(app)
        require_process_type(app.name, process_types(release), ptype)
        memory, cpus = parse(svc.store.limits(app).get(ptype, {}))
        tenancy.reserve_app_change(svc, app, {}, {ptype: (memory, cpus)})
        svc.store.add_event(app, "dockyard", "api", f"Limits of {ptype} set by {user}: "
                            f"memory {memory or 'default'} MB, cpus {cpus if cpus is not None else 'default'}")
        if release is not None and release.build_id is not None:
            with formation_lock(svc.settings, app.name, "ps:limits"):
                deploy_release(svc, app, release, out, only=ptype, release_phase=False)


def set_checks(svc: Services, app: App, ptype: str, specs: list[dict] | None, user: str) -> None:
    """checks:set / checks:unset (None): used from the next deploy or restart."""
    with app_lock(svc.settings, app.name, "checks"):
        svc.store.set_checks(app, ptype, specs)
        said = (f"set by {user} (used from the next deploy or restart)" if specs is not None
                else f"reset to app.json/default by {user}")
        svc.store.add_event(app, "dockyard", "api", f"Health checks of {ptype} {said}")
