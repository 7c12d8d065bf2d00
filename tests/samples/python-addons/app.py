"""A sample app that uses its add-ons: rows in Postgres (psycopg) through DATABASE_URL, a
counter in Redis through REDIS_URL, and a probe of whether it can reach a host at all."""
import hashlib
import json
import os
import socket
from urllib.parse import parse_qs

import psycopg
import redis


def _db(var="DATABASE_URL"):
    return psycopg.connect(os.environ[var], connect_timeout=5)


def _write(n: int, size: int) -> str:
    with _db() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS items (id bigserial PRIMARY KEY, payload text NOT NULL)")
        with conn.cursor().copy("COPY items (payload) FROM STDIN") as copy:
            for _ in range(n):
                copy.write_row((os.urandom(size // 2).hex(),))
    return f"wrote {n}"


def _rows(var: str) -> str:
    digest, count = hashlib.sha256(), 0
    with _db(var) as conn:
        for row_id, payload in conn.execute("SELECT id, payload FROM items ORDER BY id"):
            digest.update(f"{row_id}\t{payload}\n".encode())
            count += 1
    return json.dumps({"count": count, "sha256": digest.hexdigest()})


def _reach(host: str, port: int) -> str:
    try:
        socket.create_connection((host, port), timeout=3).close()
        return "open"
    except OSError as e:
        return f"closed: {e}"


def app(environ, start_response):
    path, query = environ["PATH_INFO"], parse_qs(environ.get("QUERY_STRING", ""))
    status = "200 OK"
    try:
        if path == "/write":
            body = _write(int(query.get("n", ["10"])[0]), int(query.get("size", ["32"])[0]))
        elif path == "/rows":
            body = _rows(query.get("var", ["DATABASE_URL"])[0])
        elif path == "/incr":
            body = str(redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=5).incr("counter"))
        elif path == "/connect":   # POST a database URL: can this app log in with it?
            url = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)).decode()
            with psycopg.connect(url, connect_timeout=5) as conn:
                body = "connected as " + conn.execute("SELECT current_user").fetchone()[0]
        elif path == "/reach":
            body = _reach(query["host"][0], int(query["port"][0]))
        else:
            body = "ok " + os.environ.get("GREETING", "v1")
    except Exception as e:  # noqa: BLE001 - the test reads what went wrong
        status, body = "500 Internal Server Error", f"{e.__class__.__name__}: {e}"
    data = body.encode()
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]
