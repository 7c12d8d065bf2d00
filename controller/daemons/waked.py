"""The wake listener (a loop of the platform process; `python -m controller.daemons.waked` runs it alone), on 127.0.0.1 at
DOCKYARD_WAKE_PORT. The router sends a sleeping app's requests here, naming the app in
X-Dockyard-Wake. Each request waits for the app's one wake (single flight per app: twenty
requests, one start), then its bytes go on to the first healthy web instance and the answer
comes back, both ways as a byte stream: a request body, a long response or a WebSocket passes
through unchanged. A wake that takes longer than DOCKYARD_WAKE_TIMEOUT answers 503 with
Retry-After (the wake goes on); a wake that fails answers 503 with its reason."""
from __future__ import annotations

import asyncio
import logging
import re
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from core.errors import DockyardError
from router.table import Upstream
from router.wake import APP_HEADER

from controller.runtime import sleep
from controller.services import Services
from controller.settings import Settings, from_env

log = logging.getLogger("dockyard.waker")

MAX_HEAD = 64 * 1024
CHUNK = 64 * 1024
RETRY_AFTER = 5
_APP_LINE = re.compile(rb"^" + APP_HEADER.encode() + rb":[ \t]*([a-z][a-z0-9-]{0,62})[ \t]*\r\n",
                       re.IGNORECASE | re.MULTILINE)


def app_of(head: bytes) -> tuple[str | None, bytes]:
    """Pure: (the app the router named, the request head without that header)."""
    m = _APP_LINE.search(head)
    if m is None:
        return None, head
    return m.group(1).decode(), head[:m.start()] + head[m.end():]


def answer(status: str, text: str, retry_after: int | None = None) -> bytes:
    """Pure: a whole plain-text HTTP/1.1 response that closes the connection."""
    body = (text.rstrip("\n") + "\n").encode()
    extra = f"Retry-After: {retry_after}\r\n" if retry_after is not None else ""
    return (f"HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
            f"X-Content-Type-Options: nosniff\r\n{extra}Connection: close\r\n\r\n").encode() + body


class Waker:
    """One wake per app at a time: requests that come during a wake wait for the same one."""

    def __init__(self, svc: Services, pool: ThreadPoolExecutor):
        self.svc, self.pool = svc, pool
        self.flights: dict[str, asyncio.Future] = {}
        self.lock_wait = float(svc.settings.wake_timeout + svc.settings.health_timeout)

    def wake(self, app: str) -> asyncio.Future:
        flight = self.flights.get(app)
        if flight is None:
            loop = asyncio.get_running_loop()
            flight = loop.run_in_executor(self.pool, sleep.wake, self.svc, app, self.lock_wait)
            self.flights[app] = flight
            flight.add_done_callback(lambda _f: self.flights.pop(app, None))
        return flight


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


async def _reply(writer: asyncio.StreamWriter, data: bytes) -> None:
    try:
        writer.write(data)
        await writer.drain()
    except (ConnectionError, OSError):
        pass


async def handle(waker: Waker, timeout: float, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            return
        app, head = app_of(head)
        if app is None:
            await _reply(writer, answer("400 Bad Request", f"The router names the app in {APP_HEADER}."))
            return
        try:
            target: Upstream = await asyncio.wait_for(asyncio.shield(waker.wake(app)), timeout)
        except asyncio.TimeoutError:
            await _reply(writer, answer("503 Service Unavailable", f"App {app} is waking up and was not ready "
                                        f"within {timeout:g} s (DOCKYARD_WAKE_TIMEOUT); try again in a few "
                                        "seconds.", RETRY_AFTER))
            return
        except DockyardError as e:
            await _reply(writer, answer("503 Service Unavailable", e.message, RETRY_AFTER))
            return
        await _forward(app, target, head, reader, writer)
    except Exception:  # noqa: BLE001 - one bad request must not stop the listener
        log.exception("request for a sleeping app failed")
    finally:
        writer.close()


async def _forward(app: str, target: Upstream, head: bytes, reader: asyncio.StreamReader,
                   writer: asyncio.StreamWriter) -> None:
    try:
        up_reader, up_writer = await asyncio.open_connection(target.host, target.port)
    except OSError as e:
        await _reply(writer, answer("502 Bad Gateway", f"App {app} woke but its instance at {target} refused "
                                    f"the request ({e.strerror or e}); try again."))
        return
    try:
        up_writer.write(head)
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
    finally:
        up_writer.close()


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="wake") as pool:
        waker = Waker(Services(settings), pool)
        server = await asyncio.start_server(lambda r, w: handle(waker, float(settings.wake_timeout), r, w),
                                            "127.0.0.1", settings.wake_port, limit=MAX_HEAD)
        log.info("waking sleeping apps on 127.0.0.1:%d", settings.wake_port)
        async with server:
            await stop.wait()


def serve_loop(settings: Settings, stop: threading.Event) -> None:
    """A loop of the platform process: the listener runs on its own event loop in this thread
    until `stop` is set."""
    async def run() -> None:
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        threading.Thread(target=lambda: (stop.wait(), loop.call_soon_threadsafe(done.set)),
                         name="waker-stop", daemon=True).start()
        await serve(settings, done)

    asyncio.run(run())


def main(settings: Settings | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s waker %(levelname)s %(message)s", stream=sys.stdout)
    settings = settings or from_env()

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, stop)

    asyncio.run(run())
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
