"""The shape of Heroku's Python getting-started: on Heroku (DYNO is set) every plain-HTTP request
is redirected to https, built from the Host header as Django's SECURE_SSL_REDIRECT builds it,
and the router's X-Forwarded-Proto says which one a request came over."""
import os
from http.server import BaseHTTPRequestHandler, HTTPServer


class Page(BaseHTTPRequestHandler):
    def do_GET(self):
        proto = self.headers.get("X-Forwarded-Proto", "http")
        if os.environ.get("DYNO") and proto != "https":
            self.send_response(301)
            self.send_header("Location", f"https://{self.headers['Host']}{self.path}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = f"getting started, over {proto}, on dyno {os.environ.get('DYNO')}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


HTTPServer(("0.0.0.0", int(os.environ["PORT"])), Page).serve_forever()
