"""Log drains: an app's lines (its output, the router's, the platform's) forwarded as
RFC 5424 syslog messages to `syslog://host:port` (TCP), `syslog+tls://host:port` or to an
`https://` endpoint (one POST per batch, Heroku's application/logplex-1 framing).

Each drain has its own bounded buffer and sender thread: `offer` never blocks, and when the
buffer is full the oldest line is dropped and counted, so a dead or slow drain never slows
the app, the platform or another drain. The sender retries with backoff up to RETRY_MAX s."""
from __future__ import annotations

import collections
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from typing import Callable
from urllib.parse import urlsplit

from core.errors import BadRequest, DockyardError, NotFound
from core.netguard import Allowed, parse_allowed, refusal

SCHEMES = ("syslog", "syslog+tls", "https")
BUFFER_LINES = 10000
BATCH = 500
RETRY_MAX = 30.0
TIMEOUT = 5.0
MAX_URL = 2048
NETWORKS_TTL = 30.0   # seconds the engine's network list is reused before it is asked again


class DrainRefused(BadRequest):
    code = "drain_refused"
    fix = ("drain to a collector on a public address, or ask an admin to name your private collector "
           "in DOCKYARD_DRAIN_PRIVATE_HOSTS")


def check_url(url: str) -> str:
    """A drain URL as given, or BadRequest naming the accepted forms. The URL is shown by
    `drains` on terminals: no control characters or spaces, and a port that exists."""
    url = url.strip()
    shown = url[:200].encode("unicode_escape").decode("ascii")
    forms = "syslog://HOST:PORT, syslog+tls://HOST:PORT or https://HOST[:PORT]/PATH"
    if len(url) > MAX_URL or any(ch.isspace() or ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in url):
        raise BadRequest(f"Drain URL {shown!r} holds spaces or control characters (or is over {MAX_URL} "
                         f"characters): give one of {forms}.")
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        raise BadRequest(f"Drain URL {shown!r} has no valid port: give a port from 1 to 65535.")
    if parts.scheme not in SCHEMES or not parts.hostname or (parts.scheme != "https" and not port):
        raise BadRequest(f"Drain URL {shown!r} is not one of {forms}.")
    if parts.username or parts.password:
        # the URL is shown by `drains` and kept in the audit log: no secrets in it
        raise BadRequest("Put no credentials in a drain URL: it is listed by `dockyard drains`; "
                         "use a token in the path your endpoint accepts instead.")
    return url


def add(svc, app, url: str) -> str:
    """drains:add: a well-formed URL whose host resolves only to addresses drains may reach."""
    url = check_url(url)
    Targets(svc.settings.drain_private_hosts, svc.scheduler.network_subnets).check(url)
    if not svc.store.add_drain(app, url):
        raise BadRequest(f"{app.name} already drains to {url}: see `dockyard drains -a {app.name}`.")
    return url


def target(url: str) -> tuple[str, int]:
    """The host and port a checked drain URL connects to."""
    parts = urlsplit(url)
    return parts.hostname, parts.port or 443


class Targets:
    """Where drains may connect: every address a drain's host resolves to is judged by
    core.netguard (loopback, link-local, the engine's networks and, unless the operator named
    the collector, private ranges are refused), when the drain is added and again at every
    connect, which then uses the very address judged (a name that resolves elsewhere later
    cannot slip through between the check and the connect)."""

    def __init__(self, allowed: tuple[str, ...] | Allowed = (), networks: Callable[[], list[str]] = list,
                 resolve=socket.getaddrinfo):
        self.allowed = allowed if isinstance(allowed, Allowed) else parse_allowed(allowed)
        self._networks, self._resolve = networks, resolve
        self._own: tuple = ()
        self._own_at = -NETWORKS_TTL
        self._lock = threading.Lock()

    def own(self) -> tuple:
        with self._lock:
            if time.monotonic() - self._own_at >= NETWORKS_TTL:
                self._own = tuple(ipaddress.ip_network(n, strict=False) for n in self._networks())
                self._own_at = time.monotonic()
            return self._own

    def addresses(self, host: str, port: int) -> list[tuple]:
        """(family, sockaddr) of every address `host` resolves to, each allowed; DrainRefused otherwise."""
        try:
            infos = self._resolve(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as e:
            raise DrainRefused(f"The drain host {host[:100]!r} does not resolve ({e}): check the name.") from None
        own, found = self.own(), []
        for family, _, _, _, sockaddr in infos:
            ip = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
            why = refusal(ip, host, own, self.allowed)
            if why is not None:
                raise DrainRefused(f"The drain host {host[:100]!r} resolves to {ip}, {why}: the platform does not "
                                   "send logs there.")
            found.append((family, sockaddr))
        if not found:
            raise DrainRefused(f"The drain host {host[:100]!r} has no address: check the name.")
        return found

    def check(self, url: str) -> None:
        self.addresses(*target(url))

    def connect(self, host: str, port: int, timeout: float = TIMEOUT) -> socket.socket:
        """A TCP connection to the first allowed address of `host` that answers."""
        last: OSError | None = None
        for family, sockaddr in self.addresses(host, port):
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.settimeout(timeout)
                sock.connect(sockaddr)
                return sock
            except OSError as e:
                sock.close()
                last = e
        raise last or OSError(f"could not connect to {host}")


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
                 tls: ssl.SSLContext | None = None, targets: Targets | None = None):
        self.id, self.url = drain_id, url
        self.targets = targets or Targets()
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
            except (OSError, http.client.HTTPException, ValueError, DockyardError) as e:
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
            sock = self.targets.connect(parts.hostname, parts.port)
            if parts.scheme == "syslog+tls":
                sock = self.tls.wrap_socket(sock, server_hostname=parts.hostname)
            self._conn = sock
        self._conn.sendall(b"".join(octet_frame(m) for m in batch))

    def _post(self, parts, batch: list[str]) -> None:
        conn = http.client.HTTPSConnection(parts.hostname, parts.port or 443, timeout=TIMEOUT,
                                           context=self.tls)
        try:   # the connection goes to the address just judged, never to a fresh resolution
            conn.sock = self.tls.wrap_socket(self.targets.connect(parts.hostname, parts.port or 443),
                                             server_hostname=parts.hostname)
            conn.request("POST", parts.path or "/", body=b"".join(octet_frame(m) for m in batch),
                         headers={"Content-Type": "application/logplex-1", "Logplex-Msg-Count": str(len(batch))})
            status = conn.getresponse().status
        finally:
            conn.close()
        if status >= 300:
            raise ValueError(f"the drain answered HTTP {status}")


def of_app(svc, app) -> list[dict]:
    """The app's drains, each with what was sent and dropped and the last error."""
    return svc.store.drains(app)


def remove(svc, app, url: str) -> None:
    if not svc.store.remove_drain(app, url.strip()):
        raise NotFound(f"{app.name} has no drain {url[:200]!r}: see `dockyard drains -a {app.name}`.")
