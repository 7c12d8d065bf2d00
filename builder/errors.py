"""The builder's exception tree; each class carries its HTTP status. A BuildError's
message is what the `git push` shows after `[remote rejected]`: short, one line,
and it names the fix."""
from __future__ import annotations


class BuildError(Exception):
    status = 422
    code = "build_failed"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NoBuildMethod(BuildError):
    code = "no_build_method"


class BaseImageMissing(BuildError):
    code = "base_image_missing"


class InvalidAppJson(BuildError):
    code = "invalid_app_json"


class BuildTimeout(BuildError):
    code = "build_timeout"


class PushRefused(BuildError):
    """The push itself is not acceptable (branch, deletion, moved ref)."""
    status = 400
    code = "push_refused"
