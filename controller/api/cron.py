"""Scheduled jobs (app.json `cron` of the live release): each job with its next run and its
last run's state and exit code. Jobs change only by a deploy."""
from flask import Blueprint, jsonify

from controller.runtime import cron
from controller.web.common import load_app, svc

bp = Blueprint("cron", __name__)


@bp.get("/apps/<name>/cron")
def list_cron(name):
    app = load_app(name)
    return jsonify(cron.list_jobs(svc(), app))
