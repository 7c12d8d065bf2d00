"""A piku app: no dependencies, a WSGI callable served by whatever piku provides (uWSGI there)."""
import os


def application(environ, start_response):
    body = f"{os.environ.get('GREETING', 'no ENV')} via {environ.get('SERVER_SOFTWARE', '?').split('/')[0]}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
