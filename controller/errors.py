"""The controller's exception tree. Each class carries its HTTP status; one Flask
error handler (controller/app.py) turns any of them into a JSON error. Messages are
user-facing: they say what went wrong and how to fix it, and never contain config values."""
from __future__ import annotations


class DockyardError(Exception):
    status = 500
    code = "error"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class BadRequest(DockyardError):
    status = 400
    code = "bad_request"


class InvalidName(BadRequest):
    code = "invalid_name"


class Unauthorized(DockyardError):
    status = 401
    code = "unauthorized"


class Forbidden(DockyardError):
    status = 403
    code = "forbidden"


class NotFound(DockyardError):
    status = 404
    code = "not_found"


class Conflict(DockyardError):
    status = 409
    code = "conflict"


class Locked(Conflict):
    code = "locked"


class DeployFailed(DockyardError):
    """The new release did not become healthy; the previous one keeps serving."""
    status = 422
    code = "deploy_failed"


class SchedulerError(DockyardError):
    """The container engine refused or failed an operation."""
    status = 503
    code = "scheduler_error"
