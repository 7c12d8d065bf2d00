"""Review apps: with review apps on, a branch pushed to an app of a pipeline is deployed to
its own app, `<pipeline>-<branch>`, created on the first push with app.json's
`environments.review` (env, add-ons, formation, postdeploy once) and updated by each push;
deleting the branch, or leaving it without a push for DOCKYARD_REVIEW_APP_STALE_DAYS,
destroys it with its add-ons (after `pr-predestroy`). The app belongs to the owner of the
app pushed to, so that owner's quotas apply; a pusher who is not the owner is made a
collaborator of it."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable

from core.errors import Conflict, DockyardError
from core.models import App, Coupling, Pipeline, Release

from controller.accounts import users as accounts
from controller.addons import blueprint, lifecycle
from controller.addons.kinds import kind_of
from controller.apps import manifest as app_json
from controller.apps import releases
from controller.pipelines.stages import is_stale, review_app_name
from controller.services import Out, Services


def pipeline_for_push(svc: Services, app_name: str) -> Pipeline | None:
    """The pipeline whose review apps a branch pushed to `app_name` makes (None: that app is in
    no pipeline, its pipeline has review apps off, or it is itself a review app)."""
    app = svc.store.find_app(app_name)
    coupling = svc.store.coupling_of(app) if app else None
    if coupling is None or coupling.stage == "review":
        return None
    pipeline = svc.store.find_pipeline(coupling.pipeline_id)
    return pipeline if pipeline is not None and pipeline.review_apps else None


def _existing(svc: Services, pipeline: Pipeline | None, branch: str) -> tuple[App | None, Coupling | None]:
    if pipeline is None:
        raise Conflict("Review apps were turned off for this pipeline while you pushed: turn them on again "
                       "(`dockyard reviewapps:enable -p PIPELINE`) and push again.")
    name = review_app_name(pipeline.name, branch)
    app = svc.store.find_app(name)
    if app is None:
        return None, None
    coupling = svc.store.coupling_of(app)
    if coupling is None or coupling.pipeline_id != pipeline.id or coupling.stage != "review" or coupling.branch != branch:
        raise Conflict(f"An app named {name} already exists and is not the review app of {branch}: rename the "
                       f"branch, or destroy or rename that app (`dockyard apps:rename {name} NEW`).")
    return app, coupling


def _create(svc: Services, pipeline: Pipeline, parent: App, branch: str, pusher: str, out: Out) -> tuple[App, Coupling]:
    owner = next((u for u in accounts.all_users(svc) if u.id == parent.owner_id), None)
    if owner is None:
        raise Conflict(f"{parent.name} has no owner, so no review app can be made for it: ask an admin.")
    app = releases.create_app(svc, review_app_name(pipeline.name, branch), owner)   # the owner's app quota
    try:
        coupling = svc.store.couple(pipeline, app, "review", branch)
    except DockyardError:
        releases.destroy_app(svc, app)
        raise
    if pusher != owner.name:
        accounts.add_collaborator(svc, app, accounts.get_user(svc, pusher))
    out(f"-----> Created the review app {app.name} for the branch {branch} (pipeline {pipeline.name})")
    return app, coupling


def _ensure_addons(svc: Services, app: App, environment: dict, user: str, out: Out) -> None:
    """environments.review's add-ons, each made once (a push after a failed one adds those missing)."""
    vars_ = {a.var for a in svc.store.attachments(app=app)}
    for service in environment.get("addons", []):
        if kind_of(service).var not in vars_:
            lifecycle.create(svc, app, service, None, user, out)
            vars_.add(kind_of(service).var)


def deploy_branch(svc: Services, parent_name: str, branch: str, repo, sha: bytes, user: str, out: Out,
                  cancelled: Callable[[], bool]) -> Release:
    """A push of `branch` to `parent_name`: its review app made (first push) or updated."""
    parent = svc.store.get_app(parent_name)
    pipeline = pipeline_for_push(svc, parent_name)
    environment = app_json.review_environment_in_commit(repo, sha)
    app, coupling = _existing(svc, pipeline, branch)
    if app is None:
        try:
            app, coupling = _create(svc, pipeline, parent, branch, user, out)
        except Conflict:
            app, coupling = _existing(svc, pipeline, branch)   # a push of the same branch made it meanwhile
            if app is None:
                raise
        else:
            accounts.audit(svc, user, "reviewapps:create", app.name, {"branch": branch[:80], "from": parent.name})
    _ensure_addons(svc, app, environment, user, out)
    with releases.receiving_push(svc, app.name, out, blueprint.attach_render_addons, environment) as push:
        try:
            release = push.deploy(repo, sha, user, out, cancelled)
        except BaseException:
            accounts.audit(svc, user, "deploy", app.name, {"commit": sha.decode()[:12], "branch": branch[:80],
                                                                  "result": "failed"})
            raise
    accounts.audit(svc, user, "deploy", app.name, {"commit": sha.decode()[:12], "branch": branch[:80],
                                                          "result": "succeeded"})
    svc.store.touch_review_app(coupling)
    url = f"http://{svc.settings.app_host(app.name)}:{svc.settings.router_port}/"
    out(f"-----> Review app for {branch}: {url}")
    return release


def destroy_branch(svc: Services, parent_name: str, branch: str, user: str, out: Out) -> str | None:
    """The branch was deleted: its review app goes with its add-ons (None: it had none)."""
    pipeline = pipeline_for_push(svc, parent_name)
    app, coupling = _existing(svc, pipeline, branch)
    if app is None:
        return None
    destroy(svc, app, user, out)
    return app.name


def destroy(svc: Services, app: App, user: str, out: Out) -> None:
    """app.json's pr-predestroy (its failure is reported, and the app goes anyway), then the
    app's add-ons (no final backup: a review app's data is disposable) and the app."""
    release = svc.store.live_release(app)
    command = release.manifest.get("scripts", {}).get("pr-predestroy") if release and release.build_id else None
    if command:
        out(f"-----> Running app.json pr-predestroy script of {app.name}: {command}")
        image = f"{svc.settings.image_repo(app.name)}:v{release.version}"
        try:
            code = svc.scheduler.run_once(app.name, release, "pr-predestroy", command, image,
                                          lambda line: out(f"       {line}"), svc.settings.build_timeout)
            out("       pr-predestroy script succeeded" if code == 0 else
                f"       pr-predestroy script exited with code {code}; the review app is destroyed anyway")
        except DockyardError as e:
            out(f"       pr-predestroy script could not run ({e.message}); the review app is destroyed anyway")
    for addon in svc.store.owned_addons(app):
        lifecycle.destroy(svc, addon, app.name, user, out, final_backup=False, skip_app=app.name)
    lifecycle.destroy_app(svc, svc.store.get_app(app.name), user, True, out)
    accounts.audit(svc, user, "reviewapps:destroy", app.name, {})
    out(f"-----> Destroyed the review app {app.name} and its add-ons")


def destroy_stale(svc: Services, out: Out, now: datetime | None = None) -> list[str]:
    """Review apps whose branch had no push for DOCKYARD_REVIEW_APP_STALE_DAYS (the reconciler's sweep)."""
    now = now or datetime.now(timezone.utc)
    gone = []
    for c in svc.store.couplings():
        if c.stage == "review" and is_stale(c.pushed_at, now, svc.settings.review_app_stale_days):
            destroy(svc, svc.store.get_app(c.app), "dockyard", out)
            gone.append(c.app)
    return gone
