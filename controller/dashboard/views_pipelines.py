"""The pipelines list and a pipeline's page (stages side by side, review apps) with its Promote
button: a CSRF-checked form (dashboard/session.py), confirmed in the browser, that calls the
same promotion use case as the API under the same rules."""
from __future__ import annotations

from flask import g, render_template, request

from controller.pipelines import overview, promote
from controller.web.common import svc
from controller.dashboard import bp


@bp.get("/pipelines")
def pipelines():
    return render_template("pipelines.html", pipelines=overview.listing(svc(), g.user))


@bp.get("/pipelines/<name>")
def pipeline_page(name):
    return render_template("pipeline.html", **overview.overview(svc(), g.user, name))


@bp.post("/pipelines/<name>/promote")
def promote_app(name):
    lines: list[str] = []
    done = promote.promote(svc(), g.user, request.form.get("app", ""), None, lines.append)
    g.audited = True     # one audit entry per target, written by the use case
    summary = [f"{t['app']}: {t['status']}" + (f" (v{t['version']})" if t["version"] else "") for t in done.targets]
    return render_template("pipeline.html", message="\n".join(lines[-6:] + summary),
                           **overview.overview(svc(), g.user, name))
