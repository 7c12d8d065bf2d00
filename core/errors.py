"""The one exception tree. Every error Dockyard raises on purpose is a DockyardError: it
carries its HTTP status, a machine-readable code, a user-facing message that says what went
wrong and how to fix it (never a config value), and `fix`, the area's generic next step.
Areas subclass the root here; packages add their own subclasses of an area (builder/errors.py,
router/errors.py). One Flask handler (controller/daemons/webapp.py) renders them all."""
from __future__ import annotations


class DockyardError(Exception):
    status = 500
    code = "error"
    fix = "see the platform's logs (`dockyard logs -a APP`) and try again"

    def __init__(self, message: str, fix: str | None = None):
        super().__init__(message)
        self.message = message
        if fix is not None:
            self.fix = fix

    def to_json(self) -> dict:
        return {"id": self.code, "message": self.message, "fix": self.fix}


# ---- requests: the caller can fix them -------------------------------------------------
class BadRequest(DockyardError):
    status = 400
    code = "bad_request"
    fix = "correct the request as the message says"


class InvalidName(BadRequest):
    code = "invalid_name"


class TooLarge(BadRequest):
    status = 413
    code = "too_large"
    fix = "send a smaller request"


class Unauthorized(DockyardError):
    status = 401
    code = "unauthorized"
    fix = "log in with `dockyard login`"


class Forbidden(DockyardError):
    status = 403
    code = "forbidden"
    fix = "ask the app's owner"


class QuotaExceeded(Forbidden):
    """A change that would take a user over a quota an admin set (or the platform's default)."""
    code = "quota_exceeded"
    fix = "ask an admin to raise your quota (`dockyard users:quota USER ...`)"


class AdminOnly(Forbidden):
    """Something only a platform admin may do: no app's owner can grant it."""
    fix = "ask an admin of this Dockyard (whoever runs the platform) to do it for you"


class NotFound(DockyardError):
    status = 404
    code = "not_found"
    fix = "check the name, or create it first: the message says how"


class AppNotFound(NotFound):
    fix = "check the name with `dockyard apps`"


class Conflict(DockyardError):
    status = 409
    code = "conflict"
    fix = "change what the message says is in the way, then send the request again"


class DomainTaken(Conflict):
    """A hostname, or a name under it, that another app holds (or that belongs to the platform)."""
    code = "domain_taken"
    fix = ("use another hostname, or have the app that holds it give it up (`dockyard domains:remove HOST -a APP`, "
           "by that app's owner or an admin)")


class Locked(Conflict):
    code = "locked"
    fix = "wait for the running operation to finish, then try again"


# ---- deploys: the previous release keeps serving -----------------------------------------
class DeployFailed(DockyardError):
    """The new release did not become healthy; the previous one keeps serving."""
    status = 422
    code = "deploy_failed"
    fix = "read the deploy output above, fix the app, and push again"


# ---- builds (builder/) -----------------------------------------------------------------
class WakeFailed(DockyardError):
    """A sleeping app could not be woken: its instances did not start or pass their checks."""
    status = 503
    code = "wake_failed"
    fix = "see `dockyard logs -a APP` for why the instance did not start; fix and deploy, the next request wakes it"


class BuildError(DockyardError):
    """A build failed. The message is what `git push` shows after `[remote rejected]`:
    short, one line, and it names the fix."""
    status = 422
    code = "build_failed"
    fix = "fix the build error shown in the push output and push again"


class BuildTimeout(BuildError):
    code = "build_timeout"
    fix = "make the build faster, or ask the operator to raise DOCKYARD_BUILD_TIMEOUT"


# ---- the container engine (controller/scheduler) -----------------------------------------
class SchedulerError(DockyardError):
    """The container engine refused or failed an operation."""
    status = 503
    code = "scheduler_error"
    fix = "check that the Docker engine is running (`make status`), then try again"


class ImageBuildFailed(BuildError):
    """The engine failed an image build (a Dockerfile step, or the build container)."""
    code = "image_build_failed"


# ---- the platform's own state (controller/store) -----------------------------------------
class StorageFull(DockyardError):
    """The filesystem holding the platform's state has no room left: changes wait until it is freed
    (reads go on where SQLite allows; nothing already stored is lost)."""
    status = 507
    code = "storage_full"
    fix = "free space on the filesystem holding DOCKYARD_HOME; Dockyard resumes by itself"


# ---- the router (router/) --------------------------------------------------------------
class RouterError(DockyardError):
    """Something in the router failed. ``str(err)`` is user-facing."""
    status = 500
    code = "router_error"
    fix = "check the router's log (`make status`); the last good routes keep serving"
