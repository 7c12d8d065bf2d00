"""Pipelines and the apps in them: create, couple an app at a stage, change its stage, remove
it, destroy the pipeline, turn review apps on and off. Who may do what:

- a pipeline is seen by its owner, admins, and whoever may read one of its apps;
- its owner (or an admin) couples apps they own, changes stages, destroys it and sets review
  apps; an app's owner may also take their app out of it.

A pipeline nobody may see answers like one that does not exist."""
from __future__ import annotations

from core.errors import AppNotFound, Forbidden, NotFound
from core.models import App, Coupling, Pipeline, User

from controller.accounts import access
from controller.accounts import users as accounts
from controller.pipelines.stages import validate_pipeline_name, validate_stage
from controller.services import Services
from controller.store.pipelines import pipeline_not_found


def _readable(svc: Services, user: User, app: App) -> bool:
    return access.can_read(user, app, accounts.collaborator_ids(svc, app))


def may_see(svc: Services, user: User, pipeline: Pipeline) -> bool:
    if user.is_admin or pipeline.owner_id == user.id:
        return True
    return any(_readable(svc, user, svc.store.get_app(c.app)) for c in svc.store.couplings(pipeline))


def get(svc: Services, user: User, ident: str) -> Pipeline:
    """A pipeline by id or name that the user may see."""
    pipeline = svc.store.find_pipeline(ident)
    if pipeline is None or not may_see(svc, user, pipeline):
        raise pipeline_not_found(ident)
    return pipeline


def _owned(svc: Services, user: User, ident: str) -> Pipeline:
    pipeline = get(svc, user, ident)
    if not (user.is_admin or pipeline.owner_id == user.id):
        raise Forbidden(f"Only the owner of the pipeline {pipeline.name} may change it: ask them.")
    return pipeline


def visible(svc: Services, user: User, name: str | None = None) -> list[Pipeline]:
    return [p for p in svc.store.list_pipelines()
            if (name is None or p.name == name) and may_see(svc, user, p)]


def app_for(svc: Services, user: User, name: str) -> App:
    """An app by name or id as the user may read it (else: not found, as for any app)."""
    app = svc.store.find_app(name) or next((a for a in svc.store.list_apps() if a.id == name), None)
    if app is None or not _readable(svc, user, app):
        raise AppNotFound(f"App {name[:40]!r} not found: check the name with `dockyard apps`.")
    return app


def _own_app(svc: Services, user: User, name: str) -> App:
    app = app_for(svc, user, name)
    if not access.can_admin(user, app, accounts.collaborator_ids(svc, app)):
        raise Forbidden(f"Only the owner of {app.name} may put it in a pipeline or take it out: ask them.")
    return app


def create(svc: Services, user: User, name: str, app_name: str | None = None, stage: str | None = None
           ) -> tuple[Pipeline, Coupling | None]:
    """pipelines:create NAME [-a APP --stage STAGE]: the pipeline, owned by the user, with its first app."""
    name = validate_pipeline_name(name)
    app = _own_app(svc, user, app_name) if app_name else None
    if app is not None:
        validate_stage(stage)
    pipeline = svc.store.create_pipeline(name, user.id)
    coupling = couple(svc, user, pipeline.id, app.name, stage) if app is not None else None
    return pipeline, coupling


def couple(svc: Services, user: User, pipeline_ident: str, app_name: str, stage: str) -> Coupling:
    """pipelines:add NAME -a APP --stage STAGE."""
    pipeline = _owned(svc, user, pipeline_ident)
    app = _own_app(svc, user, app_name)
    coupling = svc.store.couple(pipeline, app, validate_stage(stage))
    svc.store.add_event(app, "dockyard", "api", f"Added to the pipeline {pipeline.name} as {stage} by {user.name}")
    return coupling


def coupling_of(svc: Services, user: User, app_name: str) -> Coupling:
    app = app_for(svc, user, app_name)
    coupling = svc.store.coupling_of(app)
    if coupling is None:
        raise NotFound(f"{app.name} is in no pipeline: add it with `dockyard pipelines:add PIPELINE -a {app.name} --stage staging`.")
    return coupling


def get_coupling(svc: Services, user: User, ident: str) -> Coupling:
    coupling = svc.store.find_coupling(ident)
    if coupling is None:
        raise pipeline_not_found(ident)
    app_for(svc, user, coupling.app)
    return coupling


def couplings(svc: Services, user: User, pipeline_ident: str) -> list[Coupling]:
    """A pipeline's apps (those the user may read) with their stages."""
    pipeline = get(svc, user, pipeline_ident)
    return [c for c in svc.store.couplings(pipeline) if _readable(svc, user, svc.store.get_app(c.app))]


def set_stage(svc: Services, user: User, coupling_id: str, stage: str) -> Coupling:
    coupling = get_coupling(svc, user, coupling_id)
    _owned(svc, user, coupling.pipeline_id)
    return svc.store.set_stage(coupling, validate_stage(stage))


def remove(svc: Services, user: User, coupling: Coupling) -> Coupling:
    """pipelines:remove -a APP: the app stays, outside the pipeline (its owner or the pipeline's may)."""
    pipeline = get(svc, user, coupling.pipeline_id)
    app = svc.store.get_app(coupling.app)
    if not (user.is_admin or pipeline.owner_id == user.id
            or access.can_admin(user, app, accounts.collaborator_ids(svc, app))):
        raise Forbidden(f"Only the owner of {app.name} or of the pipeline {pipeline.name} may take it out.")
    svc.store.uncouple(coupling)
    svc.store.add_event(app, "dockyard", "api", f"Removed from the pipeline {pipeline.name} by {user.name}")
    return coupling


def destroy(svc: Services, user: User, ident: str) -> Pipeline:
    """pipelines:destroy NAME: the pipeline goes; its apps (review apps too) stay, uncoupled."""
    pipeline = _owned(svc, user, ident)
    svc.store.delete_pipeline(pipeline)
    return pipeline


def set_review_apps(svc: Services, user: User, ident: str, enabled: bool) -> Pipeline:
    """reviewapps:enable / reviewapps:disable -p NAME."""
    return svc.store.set_review_apps(_owned(svc, user, ident), enabled)
