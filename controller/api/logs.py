from flask import Blueprint, jsonify, request

from core.errors import BadRequest
from .common import load_app, svc

bp = Blueprint("logs", __name__)


@bp.get("/apps/<name>/logs")
def get_logs(name):
    """Heroku-style lines: platform events and app output, kept across containers.
    `lines` bounds the answer; `since` (an ISO time from a previous answer) follows."""
    app = load_app(name)
    s = svc()
    try:
        lines = min(int(request.args.get("lines", 100)), 5000)
    except ValueError:
        raise BadRequest("lines must be a number.") from None
    since = request.args.get("since", "")
    source = request.args.get("source", "")
    source = "dockyard" if source == "platform" else source   # Heroku's name for platform lines
    ps = request.args.get("ps", "")
    rows = [e for e in s.store.events(app, limit=5000)]
    live = s.scheduler.instances(name) + [o for o in s.scheduler.oneoffs(name) if o.detached]
    for inst in live:
        for line in s.scheduler.logs(inst.container_id, tail=lines):
            rows.append({"at": line.at, "source": "app", "process": inst.label, "message": line.text})
    rows = [r for r in rows if (not since or r["at"] > since) and (not source or r["source"] == source)
            and (not ps or r["process"] == ps)]
    rows.sort(key=lambda r: r["at"])
    rows = rows[-lines:]
    return jsonify([{"at": r["at"], "source": r["source"], "process": r["process"], "message": r["message"]}
                    for r in rows])
