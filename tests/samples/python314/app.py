"""A WSGI app pinned to Python 3.14 with .python-version."""
import sys


def app(environ, start_response):
    body = f"python {sys.version.split()[0]}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
