"""Dashboard sessions: log in with an API token; a random session id in an HttpOnly,
SameSite=Strict cookie that expires; the session is tied to the token (revoking the token
with `auth:logout` ends it). Each session has a CSRF token that every POST must carry; the login
form itself, before any session, is accepted only from the dashboard's own pages."""
from __future__ import annotations

import hmac
import secrets
import time
from urllib.parse import urlsplit

from flask import g, redirect, render_template, request, url_for

from core.errors import DockyardError, Forbidden

from controller.accounts import users as accounts
from controller.web.common import svc
from controller.dashboard import bp

COOKIE = "dockyard_session"
OPEN = ("dashboard.login", "dashboard.static")


@bp.before_request
def require_session():
    g.dashboard = True
    if request.endpoint in OPEN:
        return None
    sid = request.cookies.get(COOKIE, "")
    found = accounts.session(svc(), sid)
    if found is None:
        return redirect(url_for("dashboard.login", next=request.path if request.method == "GET" else None))
    g.user, g.csrf = found
    if request.method == "POST" and not hmac.compare_digest(request.form.get("csrf", ""), g.csrf):
        raise Forbidden("This form is stale or was not sent by the dashboard (no valid CSRF token): "
                        "reload the page and try again.", fix="reload the dashboard's page and send its form again")
    return None


@bp.after_request
def headers(response):
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Content-Security-Policy",
                                "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                                "frame-ancestors 'none'")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.endpoint != "dashboard.static":
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.errorhandler(DockyardError)
def error_page(e: DockyardError):
    return render_template("error.html", error=e), e.status


def _sent_from_here() -> bool:
    """Was this form sent from a page of this dashboard? A browser names the page a POST comes
    from (Origin, or at least Referer); another site's page cannot post a token to the login and
    so log a visitor's browser into the attacker's account (login CSRF). A client that sends
    neither header is not a browser posting someone else's form."""
    sent = request.headers.get("Origin") or request.headers.get("Referer")
    if not sent:
        return True
    try:
        return urlsplit(sent).netloc.lower() == request.host.lower()
    except ValueError:      # not a URL (say, a broken IPv6 literal): not from here either
        return False


@bp.route("/login", methods=["GET", "POST"])
def login():
    error = None
    if request.method == "POST":
        if not _sent_from_here():
            raise Forbidden("This login was sent from another site's page, not from the dashboard: nobody was "
                            "logged in.", fix=f"open {request.host_url}dashboard/login yourself and log in there")
        token = request.form.get("token", "").strip()
        user = accounts.user_for_token(svc(), token)
        if user is not None:
            sid = secrets.token_urlsafe(32)
            hours = svc().settings.session_hours
            accounts.start_session(svc(), token, sid, secrets.token_urlsafe(32), int(time.time()) + hours * 3600)
            nxt = request.args.get("next") or ""
            target = nxt if nxt.startswith("/dashboard/") and not nxt.startswith("//") else url_for("dashboard.apps")
            response = redirect(target)
            response.set_cookie(COOKIE, sid, max_age=hours * 3600, httponly=True, samesite="Strict",
                                path="/dashboard", secure=request.is_secure)
            return response
        error = "That token is not valid: print yours with `dockyard auth:token`."
    return render_template("login.html", error=error), 401 if error else 200


@bp.post("/logout")
def logout():
    accounts.end_session(svc(), request.cookies.get(COOKIE, ""))
    response = redirect(url_for("dashboard.login"))
    response.delete_cookie(COOKIE, path="/dashboard")
    return response
