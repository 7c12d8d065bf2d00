"""The builder's errors: subclasses of the build area of core.errors. A message is what
`git push` shows after `[remote rejected]`: short, one line, and it names the fix."""
from __future__ import annotations

from core.errors import BuildError, BuildTimeout, ImageBuildFailed

__all__ = ["BuildError", "BuildTimeout", "ImageBuildFailed", "NoBuildMethod", "BaseImageMissing",
           "InvalidAppJson", "PushRefused", "ImageNotAllowed", "RuntimeUnavailable", "CheckoutTooBig"]


class NoBuildMethod(BuildError):
    code = "no_build_method"
    fix = "add a Dockerfile, a heroku.yml, or the files a buildpack looks for"


class BaseImageMissing(BuildError):
    code = "base_image_missing"
    fix = "build FROM the stack image or an image your apps built"


class InvalidAppJson(BuildError):
    code = "invalid_app_json"
    fix = "correct app.json"


class PushRefused(BuildError):
    """The push itself is not acceptable (branch, deletion, moved ref)."""
    status = 400
    code = "push_refused"
    fix = "push the main branch again"


class ImageNotAllowed(BuildError):
    """An image that is not the stack, the user's own apps' or an admin-allowed one."""
    status = 403
    code = "image_not_allowed"
    fix = "use the stack image, an image your apps built, or ask an admin to allow the image"


class RuntimeUnavailable(BuildError):
    """The language runtime an app asks for cannot be provided."""
    code = "runtime_unavailable"
    fix = "ask for one of the versions the message names"


class CheckoutTooBig(BuildError):
    """The pushed tree would check out to more bytes or files than the operator allows."""
    status = 413
    code = "checkout_too_big"
    fix = "push a smaller tree, or ask the operator to raise DOCKYARD_MAX_CHECKOUT_MB / DOCKYARD_MAX_CHECKOUT_FILES"
