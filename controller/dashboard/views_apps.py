"""The apps list."""
from __future__ import annotations

from flask import g, redirect, render_template, url_for

from ..api.common import svc
from . import bp, pages


@bp.get("")
def root():
    return redirect(url_for("dashboard.apps"))


@bp.get("/")
def apps():
    rows = [pages.app_row(svc(), a) for a in pages.visible_apps(svc(), g.user)]
    return render_template("apps.html", apps=rows)
