"""Log drains: an app's lines (its output, the router's, the platform's) forwarded as
RFC 5424 syslog messages to `syslog://host:port` (TCP), `syslog+tls://host:port` or to an
`https://` endpoint (one POST per batch, Heroku's application/logplex-1 framing).

Each drain has its own bounded buffer and sender thread: `offer` never blocks, and when the
buffer is full the oldest line is dropped and counted, so a dead or slow drain never slows
the app, the platform or another drain. The sender retries with backoff up to RETRY_MAX s."""
from __future__ import annotations

import collections
import http.client
import socket
import ssl
import threading
import time
from urllib.parse import urlsplit

from core.errors import BadRequest

SCHEMES = ("syslog", "syslog+tls", "https")
BUFFER_LINES = 10000
BATCH = 500
RETRY_MAX = 30.0
TIMEOUT = 5.0


def check_url(url: str) -> str:
    """A drain URL as given, or BadRequest naming the accepted forms."""
    parts = urlsplit(url.strip())
    if parts.scheme not in SCHEMES or not parts.hostname or (parts.scheme != "https" and not parts.port):
        raise BadRequest(f"Drain URL {url[:200]!r} is not one of syslog://HOST:PORT, "
                         "syslog+tls://HOST:PORT or https://HOST[:PORT]/PATH.")
    if parts.username or parts.password:
        # the URL is shown by `drains` and kept in the audit log: no secrets in it
        raise BadRequest("Put no credentials in a drain URL: it is listed by `dockyard drains`; "
                         "use a token in the path your endpoint accepts instead.")
    return url.strip()


def _field(text: str, default: str = "-") -> str:
    clean = "".join(ch for ch in text if 33 <= ord(ch) <= 126)
    return clean[:48] or default


def rfc5424(at: str, host: str, app: str, process: str, message: str, severity: int = 6) -> str:
    """One RFC 5424 message: facility user (1), the app as APP-NAME, the process as PROCID."""
    pri = 8 + severity
    return f"<{pri}>1 {at or '-'} {_field(host)} {_field(app)} {_field(process)} - - {message}"


def octet_frame(msg: str) -> bytes:
    """RFC 6587 octet counting: `LEN SP MSG`, so a message may hold any byte."""
    data = msg.encode("utf-8", "replace")
    return str(len(data)).encode() + b" " + data


class Drain:
    def __init__(self, drain_id: int, url: str, capacity: int = BUFFER_LINES,
                 tls: ssl.SSLContext | None = None):
        self.id, self.url = drain_id, url
        # the system's CAs verify the drain's certificate and name (a context may add a private CA)
        self.tls = tls or ssl.create_default_context()
        self.buffer: collections.deque[str] = collections.deque()
        self.capacity = capacity
        self.dropped = self.sent = 0
        self.error = ""
        self._cond = threading.Condition()
        self._stop = False
        self._conn = None
        self._thread = threading.Thread(target=self._run, name=f"drain-{drain_id}", daemon=True)
        self._thread.start()

    def offer(self, msg: str) -> None:
        """Queue one message; never blocks. A full buffer drops its oldest line."""
        with self._cond:
            if len(self.buffer) >= self.capacity:
                self.buffer.popleft()
                self.dropped += 1
            self.buffer.append(msg)
            self._cond.notify()

    def take_counts(self) -> tuple[int, int, str]:
        with self._cond:
            counts = (self.sent, self.dropped, self.error)
            self.sent = self.dropped = 0
            return counts

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()

    def _run(self) -> None:
        backoff = 0.5
        while True:
            with self._cond:
                while not self.buffer and not self._stop:
                    self._cond.wait()
                if self._stop:
                    break
                batch = [self.buffer[i] for i in range(min(BATCH, len(self.buffer)))]
            try:
                self._send(batch)
            except (OSError, http.client.HTTPException, ValueError) as e:
                self._disconnect()
                with self._cond:
                    self.error = f"{e.__class__.__name__}: {str(e)[:200]}"
                time.sleep(backoff)
                backoff = min(RETRY_MAX, backoff * 2)
                continue
            backoff = 0.5
            with self._cond:
                for _ in batch:
                    if self.buffer:
                        self.buffer.popleft()
                self.sent += len(batch)
                self.error = ""
        self._disconnect()

    def _disconnect(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except OSError:
                pass
            self._conn = None

    def _send(self, batch: list[str]) -> None:
        parts = urlsplit(self.url)
        if parts.scheme == "https":
            self._post(parts, batch)
            return
        if self._conn is None:
            sock = socket.create_connection((parts.hostname, parts.port), timeout=TIMEOUT)
            if parts.scheme == "syslog+tls":
                sock = self.tls.wrap_socket(sock, server_hostname=parts.hostname)
            self._conn = sock
        self._conn.sendall(b"".join(octet_frame(m) for m in batch))

    def _post(self, parts, batch: list[str]) -> None:
        conn = http.client.HTTPSConnection(parts.hostname, parts.port or 443, timeout=TIMEOUT,
                                           context=self.tls)
        try:
            conn.request("POST", parts.path or "/", body=b"".join(octet_frame(m) for m in batch),
                         headers={"Content-Type": "application/logplex-1", "Logplex-Msg-Count": str(len(batch))})
            status = conn.getresponse().status
        finally:
            conn.close()
        if status >= 300:
            raise ValueError(f"the drain answered HTTP {status}")
