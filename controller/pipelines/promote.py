"""Promotion: the upstream app's live build released in each downstream app (the same image,
nothing rebuilt) with the target's own config, through the same release use case as a push
(the target's lock, release phase, health checks, automatic rollback). It needs deploy rights
on every target, checked before anything changes, and each target's outcome is audited.
Also `pipelines:diff`: the commits the upstream app runs that a downstream app does not."""
from __future__ import annotations

from core.errors import BadRequest, DockyardError, Forbidden
from core.models import App, Promotion, Release, User

from controller.accounts import access
from controller.accounts import users as accounts
from controller.apps import releases
from controller.pipelines import couplings
from controller.pipelines.stages import downstream
from controller.runtime import repos
from controller.services import Out, Services


def _deployable(svc: Services, user: User, app: App) -> None:
    if not access.can_deploy(user, app, accounts.collaborator_ids(svc, app)):
        raise Forbidden(f"You may not deploy {app.name}, so you may not promote to it: ask its owner for access.")


def _source_release(svc: Services, app: App) -> Release:
    release = svc.store.live_release(app)
    if release is None or release.build_id is None or release.status != "succeeded":
        raise BadRequest(f"{app.name} has no live release to promote: push to it first (`git push dockyard main`).")
    return release


def targets_of(svc: Services, user: User, source: App, names: list[str] | None) -> list[App]:
    """The apps a promotion from `source` goes to: the named ones (in its pipeline), or every app
    of the next stage (development -> staging -> production)."""
    coupling = couplings.coupling_of(svc, user, source.name)
    in_pipeline = {c.app: c for c in svc.store.couplings(svc.store.find_pipeline(coupling.pipeline_id))}
    if names:
        apps = []
        for name in names:
            app = couplings.app_for(svc, user, name)
            if app.name == source.name:
                raise BadRequest(f"Cannot promote {source.name} to itself: name another app of the pipeline.")
            if app.name not in in_pipeline:
                raise BadRequest(f"{app.name} is not in the pipeline {coupling.pipeline}: add it with "
                                 f"`dockyard pipelines:add {coupling.pipeline} -a {app.name} --stage production`.")
            apps.append(app)
        return apps
    stage = downstream(coupling.stage)
    if stage is None:
        raise BadRequest(f"Cannot promote {source.name} from the {coupling.stage} stage: promote from development "
                         "or staging, or name the targets with --to.")
    apps = [svc.store.get_app(c.app) for c in in_pipeline.values() if c.stage == stage]
    if any(not access.can_deploy(user, a, accounts.collaborator_ids(svc, a)) for a in apps):
        raise Forbidden(f"You may not deploy every {stage} app of the pipeline {coupling.pipeline}, so you may not "
                        "promote to it: ask its owner for access.")
    if not apps:
        raise BadRequest(f"Cannot promote {source.name}: the pipeline {coupling.pipeline} has no {stage} app "
                         f"(add one with `dockyard pipelines:add {coupling.pipeline} -a APP --stage {stage}`).")
    return apps


def promote(svc: Services, user: User, source_name: str, target_names: list[str] | None, out: Out) -> Promotion:
    """pipelines:promote -a SOURCE [--to A,B]: one release per target; a failed target keeps its
    live release and does not stop the others. Returns the promotion with each target's outcome."""
    source = couplings.app_for(svc, user, source_name)
    targets = targets_of(svc, user, source, target_names)
    for app in targets:
        _deployable(svc, user, app)
    release = _source_release(svc, source)
    coupling = svc.store.coupling_of(source)
    rows = [{"app_id": a.id, "app": a.name, "status": "pending", "version": None, "error_message": None}
            for a in targets]
    promotion = svc.store.create_promotion(svc.store.find_pipeline(coupling.pipeline_id), source, release.version,
                                           user.name, rows)
    sha = svc.store.get_build(release.build_id).source_commit[:8]
    for row, app in zip(rows, targets):
        out(f"-----> Promoting {source.name} v{release.version} ({sha}) to {app.name}")
        try:
            made = releases.promote_release(svc, app, release, f"Promote {source.name} v{release.version} ({sha})",
                                            user.name, out)
            row.update(status="succeeded", version=made.version)
        except DockyardError as e:
            row.update(status="failed", error_message=e.message)
            out(f" !     {app.name}: {e.message}")
        accounts.audit(svc, user.name, "pipelines:promote", app.name,
                       {"from": source.name, "release": f"v{release.version}", "commit": sha, "result": row["status"],
                        **({"version": f"v{row['version']}"} if row["version"] else {})})
    return svc.store.finish_promotion(promotion, rows)


def get(svc: Services, user: User, promotion_id: str) -> Promotion:
    promotion = svc.store.get_promotion(promotion_id)
    couplings.get(svc, user, promotion.pipeline_id)   # not found for whoever may not see its pipeline
    return promotion


def _live_commit(svc: Services, app: App) -> str | None:
    release = svc.store.live_release(app)
    build = svc.store.get_build(release.build_id) if release and release.build_id else None
    return build.source_commit if build else None


def diff(svc: Services, user: User, source_name: str) -> list[dict]:
    """pipelines:diff -a APP: per downstream app, the commits APP runs that it does not."""
    source = couplings.app_for(svc, user, source_name)
    new = _live_commit(svc, source)
    if new is None:
        raise BadRequest(f"{source.name} has no live release to compare: push to it first.")
    found = []
    for app in targets_of(svc, user, source, None):
        old = _live_commit(svc, app)
        commits = repos.commits_between(svc.settings, source.name, new, old)
        found.append({"app": app.name, "commit": old, "up_to_date": old == new, "commits": commits or []})
    return found
