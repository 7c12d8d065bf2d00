"""The root side of git over SSH: a Unix-socket server in the sshd process. For each
connection from the forced command (ssh_command.py, as user `git`, checked by SO_PEERCRED)
it reads one JSON line {"key": id, "command": SSH_ORIGINAL_COMMAND}, resolves the key to a
user, applies the same access check as HTTP (authorize_git) and then serves dulwich's
receive-pack (the same DeployingReceivePackHandler: build, deploy, output, checks) or
upload-pack over the socket."""
from __future__ import annotations

import contextlib
import json
import os
import socket
import socketserver
import struct
from pathlib import Path

from dulwich.protocol import Protocol

from core.errors import BadRequest

from controller.accounts import users as accounts
from controller.services import Services
from controller.settings import Settings
from controller.git.http import GuardedUploadPackHandler, authorize_git, handler_factory
from controller.runtime.repos import AppReposBackend
from controller.accounts.sshkeys import parse_git_command


def peer_uid(sock: socket.socket) -> int:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


def _reply(sock: socket.socket, ok: bool, message: str = "") -> None:
    text = " ".join(message.split())
    sock.sendall((("ok" if ok else "err") + (" " + text if text else "") + "\n").encode("utf-8", "replace"))


def handle_connection(svc: Services, sock: socket.socket, rfile) -> None:
    line = rfile.readline(4096)
    try:
        req = json.loads(line)
        key_id, original = int(req["key"]), str(req["command"])
        service, app = parse_git_command(original)
    except BadRequest as e:
        return _reply(sock, False, e.message)
    except (ValueError, KeyError, TypeError):
        return _reply(sock, False, "Dockyard: malformed request from the forced command.")
    found = accounts.user_for_key(svc, key_id)
    if found is None:
        return _reply(sock, False, "Permission denied: this key was removed from Dockyard. Add one with "
                                   "`dockyard keys:add ~/.ssh/id_ed25519.pub`.")
    user, _fp = found
    pushing = service == "git-receive-pack"
    refused = authorize_git(svc, user, app, pushing)
    if refused:
        return _reply(sock, False, refused[1])
    _reply(sock, True)

    def write(data: bytes) -> None:
        sock.sendall(data)

    proto = Protocol(rfile.read, write)
    args = [f"/{app}.git".encode()]
    with contextlib.closing(AppReposBackend(svc.settings.repos_dir)) as backend:
        if pushing:
            handler = handler_factory(svc, user.name, via="ssh")(backend, args, proto)
        else:
            handler = GuardedUploadPackHandler(backend, args, proto)
        handler.handle()


class _Handler(socketserver.StreamRequestHandler):
    timeout = 600   # seconds a read or write may block (a silent client is dropped)
    def handle(self):
        server: GatewayServer = self.server   # type: ignore[assignment]
        try:
            uid = peer_uid(self.connection)
        except OSError:
            return
        if uid not in server.allowed_uids:
            _reply(self.connection, False, "Dockyard: only sshd's git sessions may use this socket.")
            return
        try:
            handle_connection(server.svc, self.connection, self.rfile)
        except (BrokenPipeError, ConnectionResetError):
            pass   # the client went away: nothing moved unless the ref update had completed
        finally:
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class GatewayServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, svc: Services, allowed_uids: set[int]):
        self.svc = svc
        self.allowed_uids = allowed_uids
        super().__init__(path, _Handler)


def serve(settings: Settings, path: Path, allowed_uids: set[int], gid: int) -> GatewayServer:
    path.unlink(missing_ok=True)
    svc = Services(settings)
    old = os.umask(0o117)
    try:
        server = GatewayServer(str(path), svc, allowed_uids)
    finally:
        os.umask(old)
    os.chown(path, 0, gid)
    os.chmod(path, 0o660)
    return server
