"""The authorized_keys forced command (runs as the unprivileged `git` user):

    python3 -I controller/git/ssh_command.py SOCKET KEY_ID        a registered key
    python3 -I controller/git/ssh_command.py SOCKET --unknown FP  any other key: "Permission denied" + how to add one

It validates SSH_ORIGINAL_COMMAND, hands it with the key id to the gateway on SOCKET, and
then copies bytes both ways between ssh's stdin/stdout and the gateway. Messages for the
user go to stderr (git prints them), and a refusal exits non-zero."""
from __future__ import annotations

import json
import os
import socket
import sys
import threading

if __package__ in (None, ""):   # run by path (python3 -I .../controller/git/ssh_command.py): find the repo
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from core.errors import BadRequest  # noqa: E402
from controller.accounts.sshkeys import parse_git_command, unknown_key_message  # noqa: E402


def fail(message: str) -> int:
    sys.stderr.write(message.rstrip("\n") + "\n")
    sys.stderr.flush()
    return 1


def pump_stdin(sock: socket.socket) -> None:
    try:
        while True:
            data = os.read(0, 65536)
            if not data:
                break
            sock.sendall(data)
    except OSError:
        pass
    finally:
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[1] == "--unknown":
        return fail(unknown_key_message(argv[2][:100]))
    if len(argv) != 2 or not argv[1].isdigit():
        return fail("Dockyard: this key's entry is broken; ask the operator to restart the sshd process.")
    sock_path, key_id = argv[0], int(argv[1])
    original = os.environ.get("SSH_ORIGINAL_COMMAND")
    if not original:
        return fail("Hi! Dockyard does not give shells. Push with "
                    "`git push ssh://git@HOST:PORT/APP.git main` (`dockyard git:remote -a APP --ssh`).")
    try:
        parse_git_command(original)
    except BadRequest as e:
        return fail(e.message)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(sock_path)
    except OSError as e:
        return fail(f"Dockyard's git gateway is not answering ({e.strerror}): is the platform running (`make up`)?")
    sock.sendall(json.dumps({"key": key_id, "command": original}).encode() + b"\n")
    head = b""
    while not head.endswith(b"\n") and len(head) < 4096:
        chunk = sock.recv(1)
        if not chunk:
            break
        head += chunk
    status, _, message = head.decode("utf-8", "replace").rstrip("\n").partition(" ")
    if status != "ok":
        return fail(message or "Dockyard's git gateway closed the connection.")
    threading.Thread(target=pump_stdin, args=(sock,), daemon=True).start()
    while True:
        data = sock.recv(65536)
        if not data:
            break
        view = memoryview(data)
        while view:
            view = view[os.write(1, view):]
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
