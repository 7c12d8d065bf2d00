"""What tenants share: images everyone may deploy or build on (`images:allow`, admins), and
per-user quotas (`users:quota`, admins set; a user reads their own)."""
from flask import Blueprint, g, jsonify

from core.errors import BadRequest, NotFound
from core.names import IMAGE_REF, image_ref
from core.numbers import whole_number

from controller.accounts import tenancy
from controller.accounts.tenancy import QUOTA_FIELDS
from controller.accounts import users as accounts
from controller.web.common import audit, body, svc
from controller.api.users import require_admin

bp = Blueprint("tenancy", __name__)


def _image(value) -> str:
    if not isinstance(value, str) or not IMAGE_REF.fullmatch(value):
        raise BadRequest("Give the image as IMAGE[:TAG] (as `docker images` lists it), e.g. python:3.12-slim.")
    return image_ref(value)


@bp.get("/images/allowed")
def list_allowed():
    s = svc()
    rows = [{"image": s.settings.stack_image, "source": "stack"}]
    rows += [{"image": i, "source": "DOCKYARD_ALLOWED_IMAGES"} for i in s.settings.allowed_images]
    rows += [{"image": r["image"], "source": f"images:allow by {r['created_by']}"} for r in tenancy.allowed_by_admins(s)]
    return jsonify(rows)


@bp.post("/images/allowed")
def allow_image():
    require_admin("allow images for every user")
    image = _image(body().get("image"))
    tenancy.allow_image(svc(), image, g.user)
    audit("images:allow", image=image)
    return jsonify({"image": image}), 201


@bp.delete("/images/allowed/<path:image>")
def disallow_image(image):
    require_admin("change the allowed images")
    image = _image(image)
    tenancy.disallow_image(svc(), image)
    audit("images:disallow", image=image)
    return jsonify({"image": image})


def _user(name: str):
    user = accounts.find_by_name(svc(), name)
    if user is None or (not g.user.is_admin and user.id != g.user.id):
        raise NotFound(f"No user {name[:40]!r}: see `dockyard users`.")
    return user


def _quota_json(user) -> dict:
    s = svc()
    return {"user": user.name, "quota": tenancy.quota_of(s, user), "set": tenancy.quota_set(s, user),
            "usage": tenancy.usage_of(s, user), "exempt": user.is_admin}


@bp.get("/users/<name>/quota")
def get_quota(name):
    return jsonify(_quota_json(_user(name)))


@bp.patch("/users/<name>/quota")
def set_quota(name):
    """{"max_apps": 5, "max_instances": 10, "max_memory_mb": 4096} (null: back to the default)."""
    require_admin("set quotas")
    user = _user(name)
    data = body()
    unknown = sorted(set(data) - set(QUOTA_FIELDS))
    if unknown:
        raise BadRequest(f"Unknown quota {unknown[0][:40]!r}: set {', '.join(QUOTA_FIELDS)}.")
    values = dict(tenancy.quota_set(svc(), user))
    for key in QUOTA_FIELDS:
        if key in data:
            v = data[key]
            values[key] = None if v is None else whole_number(
                v if not isinstance(v, str) else None, key, 0, 1_000_000,
                f"{key} must be a whole number from 0 to 1000000, or null for the default.")
    tenancy.set_quota(svc(), user, values)
    audit("users:quota", user=user.name, **{k: values.get(k) for k in QUOTA_FIELDS})
    return jsonify(_quota_json(user))
