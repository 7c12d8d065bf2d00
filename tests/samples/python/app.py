"""The Python sample app: a plain WSGI callable served by gunicorn (found by the buildpack)."""
import os


def app(environ, start_response):
    body = f"hello from python {os.environ.get('GREETING', 'v1')}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
