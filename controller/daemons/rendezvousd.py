"""The rendezvous listener, a loop of the platform process (controller/daemons/platformd.py): where the
Heroku CLI's `heroku run` attaches. Its protocol: TLS to the attach URL's host and port; the
client sends the URL's path (the secret) and CRLF; the server sends one line (which the client
drops), then the process's output; the client's input goes to the process, a Ctrl-D (0x04)
ending it (the CLI sends one when its stdin ends); the server closes when the process ends.

Apart from the API: a one-off lives as long as its client, which a gunicorn request thread
should not hold (a worker restart would cut it, and two workers cannot share one listener);
here one listener serves every session, its guard restarts it, and the API
hands sessions over as single-use tickets (tickets.py). It binds DOCKYARD_RENDEZVOUS_HOST
(127.0.0.1 unless the operator opens it) on DOCKYARD_RENDEZVOUS_PORT."""
from __future__ import annotations

import logging
import select
import socket
import ssl
import threading
import time

from core.errors import DockyardError

from controller.runtime import oneoffs
from controller.runtime.heroku_run import holder, run_tickets
from controller.runtime.rendezvous_tls import ensure_bundle
from controller.services import Services
from controller.settings import Settings

log = logging.getLogger("dockyard.rendezvous")
MAX_SESSIONS = 64          # sessions at once (each holds two threads and a one-off)
HELLO_TIMEOUT = 10.0       # seconds for the TLS handshake and the secret
FIRST_LINE = b"rendezvous\r\n"
_attached: set[tuple[str, str]] = set()     # (app, run.N) of each one-off a client is attached to now
_attached_lock = threading.Lock()
REFUSED = (b"Dockyard: this rendezvous secret is unknown, used, expired, or its app is no longer yours: "
           b"run `heroku run` again.\r\n")


def split_eot(data: bytes) -> tuple[bytes, bool]:
    """Pure: the input before a Ctrl-D (0x04), and whether one came (the end of the input)."""
    head, eot, _ = data.partition(b"\x04")
    return head, bool(eot)


class ClientGone(Exception):
    """Not an OSError: the stdin feeder stops the one-off on it (an OSError only ends its input)."""


class Channel:
    """One client's TLS connection, read by the one-off's stdin feeder and written by its
    output relay: OpenSSL allows one call at a time on a connection, so both take the lock."""

    def __init__(self, conn: ssl.SSLSocket):
        self.conn = conn
        self.tty = False     # with a pseudo-terminal, Ctrl-D is the terminal's to read
        self.lock = threading.Lock()
        self.buffer = b""
        self.ended = False

    def send(self, data: bytes) -> None:
        with self.lock:
            self.conn.settimeout(30.0)
            self.conn.sendall(data)

    def _recv(self, wait: float) -> bytes | None | bool:
        if not self.conn.pending() and not select.select([self.conn], [], [], wait)[0]:
            return False
        with self.lock:
            self.conn.settimeout(0.2)    # a record that has only partly arrived: try again later
            try:
                data = self.conn.recv(65536)
            except (TimeoutError, ssl.SSLWantReadError):
                return False
            except (OSError, ssl.SSLError):
                return None
        return data or None

    def gone(self) -> bool:
        """Has the client closed the connection? (Only once the input has ended: what it sends
        after that is dropped.)"""
        return self._recv(0) is None

    def line(self, limit: int = 512) -> str | None:
        """The client's first line (the secret), or None when it sends none in time."""
        deadline = time.monotonic() + HELLO_TIMEOUT
        while b"\n" not in self.buffer and len(self.buffer) < limit and time.monotonic() < deadline:
            data = self._recv(0.5)
            if data is None:
                return None
            if data:
                self.buffer += data
        head, nl, rest = self.buffer.partition(b"\n")
        if not nl:
            return None
        self.buffer = rest
        return head.rstrip(b"\r").decode("utf-8", "replace")

    def stdin(self, wait: float) -> bytes | None | bool:
        """The one-off's input: bytes, None at its end (Ctrl-D), or False when none came. The
        client closing the connection (Ctrl-C) raises ClientGone: the one-off is stopped."""
        if self.ended:
            return None
        if self.buffer:
            data, self.buffer = self.buffer, b""
        else:
            data = self._recv(wait)
            if data is False:
                return False
            if data is None:
                raise ClientGone("the client closed the connection")
        if self.tty:
            return data
        data, self.ended = split_eot(data)
        return data or (None if self.ended else False)


def session(svc: Services, channel: Channel, peer: str) -> None:
    """One attach: claim the ticket its secret names, then run the one-off it allows."""
    secret = channel.line()
    ticket = run_tickets(svc).claim(secret) if secret else None
    who = holder(svc, ticket) if ticket else None
    channel.send(FIRST_LINE)
    if who is None:
        log.warning("refused an attach from %s: %s", peer, "no secret" if not secret else "no such live ticket")
        time.sleep(0.3)    # the client drops the first chunk it reads: keep the reason out of it
        channel.send(REFUSED)
        return
    user, app = who
    done = threading.Event()
    terminal = ticket.get("terminal")
    channel.tty = bool(terminal)
    labels: list[str] = []

    def started(label: str, version: int) -> None:
        log.info("%s: %s (v%s) attached for %s from %s", app.name, label, version, user.name, peer)
        labels.append(label)
        with _attached_lock:
            _attached.add((app.name, label))
        threading.Thread(target=_stop_when_gone, args=(svc, channel, app.name, label, done),
                         name="rendezvous-watch", daemon=True).start()

    try:
        code = oneoffs.run_attached(svc, app, ticket["command"], user.name, channel.stdin,
                                    lambda _stream, data: channel.send(data), started,
                                    env=ticket.get("env") or None, index=ticket.get("index"),
                                    terminal=tuple(terminal) if terminal else None)
        log.info("%s: run.%s exited with code %s", app.name, ticket.get("index"), code)
    except DockyardError as e:
        channel.send(f"Dockyard: {e.message}\r\n".encode())
    finally:
        done.set()
        with _attached_lock:
            _attached.difference_update((app.name, label) for label in labels)


def _stop_oneoff(svc: Services, app: str, label: str, remove: bool) -> None:
    for one in svc.scheduler.oneoffs(app):
        if one.label == label:
            svc.scheduler.stop(one.container_id, 0, remove=remove)


def _stop_when_gone(svc: Services, channel: Channel, app: str, label: str, done: threading.Event) -> None:
    """Once the input has ended nothing reads the connection, so a client that leaves (Ctrl-C)
    while the one-off prints nothing would go unnoticed: look, and stop the one-off then."""
    while not done.wait(1.0):
        if channel.ended and channel.gone():
            log.info("%s: the client of %s left: stopping it", app, label)
            _stop_oneoff(svc, app, label, remove=False)    # run_attached removes it
            return


def _serve(svc: Services, ctx: ssl.SSLContext, conn: socket.socket, peer: str, slots: threading.Semaphore) -> None:
    try:
        conn.settimeout(HELLO_TIMEOUT)
        with ctx.wrap_socket(conn, server_side=True) as tls:
            session(svc, Channel(tls), peer)
            try:
                tls.settimeout(2.0)
                tls.unwrap()      # a clean TLS close: the client sees the end, not an error
            except (OSError, ssl.SSLError):
                pass
    except (OSError, ssl.SSLError) as e:
        log.info("attach from %s ended: %s", peer, e)
    except Exception:  # noqa: BLE001 - one session's failure must not end the listener
        log.exception("attach from %s failed", peer)
    finally:
        conn.close()
        slots.release()


def serve(settings: Settings, stop: threading.Event) -> None:
    """Listen until `stop` is set (a loop of the platform process)."""
    svc = Services(settings)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(ensure_bundle(settings))
    slots = threading.BoundedSemaphore(MAX_SESSIONS)
    with socket.create_server((settings.rendezvous_host, settings.rendezvous_port)) as listener:
        listener.settimeout(1.0)
        log.info("listening on %s:%s (attach URLs name %s)", settings.rendezvous_host, settings.rendezvous_port,
                 settings.rendezvous_address)
        next_sweep = 0.0
        while not stop.is_set():
            if time.monotonic() > next_sweep:
                run_tickets(svc).sweep()
                next_sweep = time.monotonic() + 30
            try:
                conn, addr = listener.accept()
            except TimeoutError:
                continue
            if not slots.acquire(blocking=False):
                log.warning("refused an attach from %s: %d sessions already", addr[0], MAX_SESSIONS)
                conn.close()
                continue
            threading.Thread(target=_serve, args=(svc, ctx, conn, f"{addr[0]}:{addr[1]}", slots),
                             name="rendezvous-session", daemon=True).start()
    with _attached_lock:
        attached = sorted(_attached)
    for app, label in attached:     # their clients lose them with this process: none runs on unattached
        log.info("%s: stopping %s: the listener stops", app, label)
        _stop_oneoff(svc, app, label, remove=True)
