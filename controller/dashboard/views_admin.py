"""Admin pages: users, the audit log, the platform's metrics."""
from __future__ import annotations

from flask import g, render_template

from core.errors import AdminOnly

from controller.accounts import users as accounts
from controller.observe import metrics
from controller.web.common import svc
from controller.dashboard import bp


def _admin() -> None:
    if not g.user.is_admin:
        raise AdminOnly("Only an admin may see this page: ask your Dockyard admin.")


@bp.get("/admin/")
def admin():
    _admin()
    return render_template("admin.html", users=accounts.list_users(svc()),
                           audit=accounts.audit_entries(svc(), limit=100),
                           platform=metrics.platform_metrics(svc()))
