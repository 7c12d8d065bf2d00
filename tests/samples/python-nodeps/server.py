"""Dokku's smoke-test shape: a Procfile and the standard library, no requirements file."""
import os
from http.server import BaseHTTPRequestHandler, HTTPServer


class Page(BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"python with no dependencies, venv={os.environ.get('VIRTUAL_ENV', 'none')}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


HTTPServer(("0.0.0.0", int(os.environ["PORT"])), Page).serve_forever()
