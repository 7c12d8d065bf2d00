"""An older Heroku app: gunicorn 19 imports pkg_resources (setuptools) at start."""
import sys


def app(environ, start_response):
    body = f"gunicorn 19 on python {sys.version.split()[0]}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
