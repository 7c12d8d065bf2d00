from flask import Blueprint, jsonify, request

from core.numbers import whole_number
from controller.observe import applogs
from controller.web.common import load_app, svc

bp = Blueprint("logs", __name__)


@bp.get("/apps/<name>/logs")
def get_logs(name):
    """Heroku-style lines: platform events and app output, kept across containers.
    `lines` bounds the answer; `since` (an ISO time from a previous answer) follows."""
    app = load_app(name)
    s = svc()
    lines = min(whole_number(request.args.get("lines", 100), "lines", 1), 5000)
    since = request.args.get("since", "")
    source = request.args.get("source", "")
    source = "dockyard" if source == "platform" else source   # Heroku's name for platform lines
    ps = request.args.get("ps", "")
    return jsonify(applogs.lines(s, app, lines, since, source, ps))
