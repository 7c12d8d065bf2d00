"""Git over smart HTTP at /<app>.git, served in-process by dulwich.

A push of `main` or `master` is built and deployed inside the receive-pack request,
before the ref moves: each output line reaches `git push` at once (side band), and a
failure rejects the ref with the reason (`! [remote rejected] main (...)`), so the
branch stays where it was and the previous release keeps serving."""
from __future__ import annotations

import contextlib
import select
import socket
import traceback
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs

from dulwich.errors import GitProtocolError
from dulwich.protocol import SIDE_BAND_CHANNEL_PROGRESS
from dulwich.server import ReceivePackHandler, UploadPackHandler
from dulwich.web import make_wsgi_chain

from core.errors import DockyardError
from core.names import APP_NAME_RE, DEPLOY_BRANCHES
from core.terminal import escape_control

from controller.accounts import access
from controller.accounts import users as accounts
from controller.apps import queries
from controller.addons import blueprint
from controller.apps import releases
from controller.accounts.auth import token_from_header
from controller.services import Services
from controller.git.packguard import PackGuard
from controller.runtime.repos import GIT_PATH, ZERO, AppReposBackend, ClosingResponse, init_repo, receiving, repo_path


@contextlib.contextmanager
def guarded_reads(proto, guard: PackGuard):
    """dulwich reads the pack through proto.read / proto.recv: while the pack streams in, every
    byte also passes the guard, which raises once a bound is crossed."""
    read, recv = proto.read, getattr(proto, "recv", None)
    proto.read = guard.wrap(read)
    if recv is not None:
        proto.recv = guard.wrap(recv)
    try:
        yield
    finally:
        proto.read = read
        if recv is not None:
            proto.recv = recv


def _one_line(message: str, limit: int = 300) -> bytes:
    text = escape_control(" ".join(message.split()))
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text.encode("utf-8", "replace")


class Guarded:
    """Mixed into dulwich's handlers: a malformed, truncated or cut-off request (hostile or
    not) ends with a git `ERR` line instead of an exception (a 500 over HTTP)."""

    def handle(self):
        try:
            super().handle()
        except GitProtocolError as e:   # bad pkt-lines, hangups
            self._refuse(f"malformed git request ({e.__class__.__name__}): use a git client")
        except (OSError, ValueError, TypeError, IndexError, KeyError, AssertionError) as e:
            traceback.print_exc()
            self._refuse(f"the git request could not be read ({e.__class__.__name__}); nothing changed")

    def _refuse(self, message: str) -> None:
        try:
            self.proto.write_pkt_line(b"ERR " + _one_line(message))
        except (OSError, GitProtocolError):
            pass


class GuardedUploadPackHandler(Guarded, UploadPackHandler):
    pass


def peer_closed(sock) -> bool:
    """Has the client hung up? (Ctrl-C on `git push` mid-build.) After the pack has been read
    nothing more comes from a live client, so a readable socket with no data is a closed one."""
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


class DeployingReceivePackHandler(Guarded, ReceivePackHandler):
    """receive-pack that builds and deploys the deploy branch before its ref moves. Bound to a
    request's services and user by `handler_factory`."""
    svc: Services
    user: str
    via: str = "http"

    @staticmethod
    def peer_gone() -> bool:
        return False

    def __init__(self, backend, args, proto, stateless_rpc=False, advertise_refs=False):
        super().__init__(backend, args, proto, stateless_rpc=stateless_rpc, advertise_refs=advertise_refs)
        path = args[0].decode() if isinstance(args[0], bytes) else args[0]
        self.app_name = GIT_PATH.fullmatch(path).group(1)
        self.client_gone = False
        self._held = contextlib.ExitStack()
        self.new_packs: set = set()     # the pack files this push added
        self.ref_moved = False

    def progress(self, line: str) -> None:
        if self.client_gone or not self.has_capability(b"side-band-64k"):
            return
        try:
            # build output is the tenant's: escaped, it cannot drive the pusher's terminal
            self.proto.write_sideband(SIDE_BAND_CHANNEL_PROGRESS,
                                      escape_control(line).encode("utf-8", "replace") + b"\n")
        except OSError:
            self.client_gone = True

    def _on_update(self, ref, old_sha, new_sha):
        if ref not in DEPLOY_BRANCHES:
            name = ref.decode("utf-8", "replace")[:80]
            return _one_line(f"only main or master deploy, not {name}: push with "
                             "`git push dockyard HEAD:main`")
        if new_sha == ZERO:
            return b"deleting the deploy branch is refused: the app keeps running its last release"
        # Hold the app's lock until the whole request ends, so the ref moves (in dulwich,
        # right after this returns) inside the same lock that built and deployed it.
        try:
            push = self._held.enter_context(releases.receiving_push(self.svc, self.app_name, self.progress,
                                                                    blueprint.attach_render_addons))
        except DockyardError as e:
            return _one_line(e.message)
        current = self.repo.refs.as_dict().get(ref, ZERO)
        if current != old_sha:
            return b"the branch moved while you pushed (another push?): git pull, then push again"
        try:
            push.deploy(self.repo, new_sha, self.user, self.progress, lambda: self.client_gone or self.peer_gone())
        except DockyardError as e:
            self._audit(new_sha, "failed")
            return _one_line(e.message)
        except Exception as e:  # noqa: BLE001 - an internal failure still rejects, with its kind
            self.progress(f" !     Internal error: {e.__class__.__name__}: {e}")
            self._audit(new_sha, "failed")
            return _one_line(f"internal error ({e.__class__.__name__}); nothing was released")
        self._audit(new_sha, "succeeded")
        self.ref_moved = True
        return None

    def _receive_max_input_size(self):
        return self.svc.settings.max_push_bytes

    def _apply_pack(self, refs):
        """dulwich's, with two fixes: a pack over the limit says which limit and how to
        raise it, and a malformed pack that makes dulwich raise something other than
        its usual errors (e.g. TypeError on a pack cut right after its header) is an
        `unpack` failure for the client instead of a 500; no ref moves either way."""
        results = super()._apply_pack(refs)
        s = self.svc.settings
        guard = PackGuard(s.max_push_objects, s.max_push_unpacked_mb << 20)
        pack_dir = Path(self.repo.object_store.path) / "pack"
        with receiving(s, self.app_name, self.repo) as failed, guarded_reads(self.proto, guard):
            before = set(pack_dir.glob("pack-*"))
            try:
                name, status = next(results)
            except StopIteration:
                return
            except Exception as e:  # noqa: BLE001 - hostile input must not crash the request
                failed.append(True)
                yield b"unpack", _one_line(f"the pack is malformed ({e.__class__.__name__}): push again with git")
                return
            if name == b"unpack" and status != b"ok":
                failed.append(True)
            self.new_packs = set(pack_dir.glob("pack-*")) - before
        if name == b"unpack" and b"DOCKYARD_MAX_PUSH_" in status:
            self._drain(s.max_push_bytes * 4 + (16 << 20))
            reason = status.decode("utf-8", "replace")
            self.progress(f" !     Push refused: {reason}; nothing was stored.")
            status = _one_line(f"{reason}: remove large or generated files from the history (or ask the "
                               "operator to raise the setting)")
        if name == b"unpack" and b"maximum input size" in status:
            limit = self.svc.settings.max_push_bytes >> 20
            # Let the client finish sending (bounded), so that it reads the reason.
            self._drain(self.svc.settings.max_push_bytes * 4 + (16 << 20))
            self.progress(f" !     Push refused: the pack is larger than {limit} MB.")
            status = _one_line(f"the push is larger than the {limit} MB limit: remove large files "
                               "from the history (or ask the operator to raise DOCKYARD_MAX_PUSH_MB)")
        yield name, status
        yield from results

    def _drain(self, cap: int) -> None:
        seen = 0
        try:
            while seen < cap:
                chunk = self.proto.read(1 << 16)
                if not chunk:
                    return
                seen += len(chunk)
        except (OSError, ValueError, GitProtocolError):
            return

    def _drop_rejected_packs(self) -> None:
        """A push whose refs all were refused leaves nothing behind: its pack is referenced by no
        ref (objects of other pushes are in their own packs: uploads are one at a time)."""
        if self.ref_moved:
            return
        for path in self.new_packs:
            path.unlink(missing_ok=True)

    def _audit(self, sha: bytes, result: str) -> None:
        accounts.audit(self.svc, self.user, "deploy", self.app_name,
                       {"commit": sha.decode()[:12], "via": self.via, "result": result})

    def handle(self):
        with self._held:    # the app's lock, when a deploy took it, is released only after both
            super().handle()
            self._drop_rejected_packs()


def handler_factory(svc: Services, user: str, via: str = "http", peer_gone: Callable[[], bool] = lambda: False):
    """A DeployingReceivePackHandler class bound to this request's services and user.
    `peer_gone` tells whether the client went away (checked while building: it cancels it)."""
    return type("BoundReceivePackHandler", (DeployingReceivePackHandler,),
                {"svc": svc, "user": user, "via": via, "peer_gone": staticmethod(peer_gone)})


def authorize_git(svc: Services, user, name: str, pushing: bool) -> tuple[str, str] | None:
    """The access check shared by git over HTTP and over SSH: None when allowed, else
    (HTTP status, message). A user without access is told the app does not exist."""
    app = queries.find_app(svc, name) if APP_NAME_RE.fullmatch(name) else None
    collaborators = accounts.collaborator_ids(svc, app) if app is not None else set()
    if app is None or not access.can_read(user, app, collaborators):
        return ("404 Not Found",
                f"No app named {name[:40]!r}. Create it with `dockyard apps:create {name[:40] or 'NAME'}`, "
                "then add the remote with `dockyard git:remote -a NAME`.")
    if pushing and not access.can_deploy(user, app, collaborators):
        return "403 Forbidden", f"You may read {name} but not deploy it: ask its owner."
    if not repo_path(svc.settings, name).exists():
        init_repo(svc.settings, name)
    return None


def _text(start_response, status: str, message: str, headers=()):
    body = (message.rstrip("\n") + "\n").encode()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(body))), *headers])
    return [body]


class GitApp:
    """WSGI: authenticates, resolves the app, then hands over to dulwich."""

    def __init__(self, svc: Services):
        self.svc = svc

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if any(part in (".", "..") for part in path.split("/")) or "//" in path or "\\" in path:
            return _text(start_response, "404 Not Found", "No such git path: paths with '.', '..' or empty "
                         "segments are not served; use a git client with the remote from `dockyard git:remote`.")
        m = GIT_PATH.fullmatch(path)
        name = m.group(1) if m else ""
        token = token_from_header(environ.get("HTTP_AUTHORIZATION", ""))
        user = accounts.user_for_token(self.svc, token)
        if user is None:
            why = "No Dockyard token was sent" if not token else "The Dockyard token was not accepted"
            return _text(start_response, "401 Unauthorized",
                         f"{why}. Log in with `dockyard login`: it stores your token in ~/.netrc, "
                         "which git uses for this remote.",
                         [("WWW-Authenticate", 'Basic realm="Dockyard"')])
        service = environ.get("QUERY_STRING", "")
        services = parse_qs(service, keep_blank_values=True).get("service", [])
        if any(sv not in ("git-upload-pack", "git-receive-pack") for sv in services):
            return _text(start_response, "400 Bad Request",
                         "Unknown git service: only git-upload-pack and git-receive-pack are served.")
        pushing = path.endswith("/git-receive-pack") or "service=git-receive-pack" in service
        refused = authorize_git(self.svc, user, name, pushing)
        if refused:
            return _text(start_response, *refused)
        if environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
            # gunicorn has already de-chunked wsgi.input (as WSGI requires); dulwich would
            # de-chunk it again and fail every push over 1 MB (git's http.postBuffer) with
            # "Invalid chunk size".
            environ = {k: v for k, v in environ.items() if k != "HTTP_TRANSFER_ENCODING"}
        peer = environ.get("gunicorn.socket")
        receive = handler_factory(self.svc, user.name, peer_gone=lambda: peer_closed(peer))
        backend = AppReposBackend(self.svc.settings.repos_dir)
        wsgi = make_wsgi_chain(backend, handlers={b"git-receive-pack": receive,
                                                  b"git-upload-pack": GuardedUploadPackHandler})
        try:
            return ClosingResponse(wsgi(environ, start_response), backend.close)
        except BaseException:
            backend.close()
            raise
