"""One-offs and log sessions in the Platform API's shapes (`heroku run`, `run:detached`,
`heroku logs`); `dockyard run --detach` uses the same dyno create."""
from flask import Blueprint, Response, g, jsonify, request

from core.errors import NotFound

from controller.observe import heroku_logs
from controller.runtime import heroku_run
from controller.runtime.rendezvous_tls import bundle_path, certificates
from controller.web.common import body, load_app, svc

bp = Blueprint("heroku_run", __name__)
STREAM_PREFIX = "/log-streams/"     # authenticated by the secret in the path, not a token (app.py)


@bp.post("/apps/<name>/dynos")
def create_dyno(name):
    """A one-off: attach true answers an attach_url for the rendezvous listener; otherwise it
    runs detached with its output in the logs."""
    return jsonify(heroku_run.create_dyno(svc(), load_app(name), g.user, body())), 201


@bp.post("/apps/<name>/log-sessions")
def create_log_session(name):
    return jsonify(heroku_logs.open_session(svc(), load_app(name), g.user, body(), request.host_url)), 201


@bp.get(STREAM_PREFIX + "<secret>")
def log_stream(secret):
    events = heroku_logs.stream(svc(), secret, request.headers.get("Last-Event-ID", ""))
    if events is None:
        raise NotFound("This log session is unknown, expired, or its app is no longer yours: "
                       "run `heroku logs` again.", fix="open a new log session")
    return Response(events, mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@bp.get("/rendezvous/certificate")
def rendezvous_certificate():
    """The listener's certificate (no key), for NODE_EXTRA_CA_CERTS when it is self-signed."""
    try:
        pem = certificates(bundle_path(svc().settings).read_text())
    except OSError:
        pem = ""
    if not pem:
        raise heroku_run.RendezvousUnavailable("The rendezvous listener has not made its certificate yet: check "
                                 "`make status` (the rendezvous process) and try again.")
    return Response(pem, mimetype="application/x-pem-file")
