"""Binds to localhost unless RENDER is set, as Render apps (Fastify's defaults) do."""
import os
from http.server import BaseHTTPRequestHandler, HTTPServer

import psycopg

HOST = "0.0.0.0" if os.environ.get("RENDER") else "127.0.0.1"


class Page(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            body = "ok"
        else:
            with psycopg.connect(os.environ["DATABASE_URL"], connect_timeout=5) as conn:
                visits = conn.execute("SELECT count(*) FROM visits").fetchone()[0]
            with open("built.txt") as f:
                built = f.read()
            body = (f"{os.environ['GREETING']}; service={os.environ['RENDER_SERVICE_NAME']} "
                    f"host={os.environ['RENDER_EXTERNAL_HOSTNAME']} secret={len(os.environ['SECRET_KEY'])} "
                    f"db_host={os.environ['DB_HOST'] != ''} migrations={visits}; {built}\n")
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


HTTPServer((HOST, int(os.environ.get("PORT", "10000"))), Page).serve_forever()
