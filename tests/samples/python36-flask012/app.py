"""A 2017 Flask app: Flask 0.12 and gunicorn 19.6, written for Python 3.6 (both crash on 3.11), with
its other dependencies unpinned (today's Werkzeug and Jinja2 break Flask 0.12)."""
import sys

from flask import Flask

app = Flask(__name__)


@app.route("/")
def index():
    return "flask 0.12 on python %d.%d\n" % sys.version_info[:2]
