"""The apps list."""
from __future__ import annotations

from flask import g, redirect, render_template, url_for

from controller.web.common import svc
from controller.dashboard import bp, pages


@bp.get("")
def root():
    return redirect(url_for("dashboard.apps"))


@bp.get("/")
def apps():
    rows = [pages.app_row(svc(), a) for a in pages.visible_apps(svc(), g.user)]
    return render_template("apps.html", apps=rows)
