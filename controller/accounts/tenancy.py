"""What one tenant may take from what all share: images (deploy --image, Dockerfile FROM) and
resources (apps, instances, memory). Admins are exempt: they set the rules.

Images: a user may deploy or build on the stack image, images their own apps built (this
platform's labels say which app; the user must be able to deploy that app) and images an admin
allowed (DOCKYARD_ALLOWED_IMAGES or `images:allow`), compared by image id, so a tag or an id of
an allowed image both work. Any other image in the engine may hold another tenant's source.

Quotas: per owner, over all the apps they own: how many apps, how many instances (the sum of the
formation), how much memory (instances x their memory limit). An admin sets them per user; the
DOCKYARD_QUOTA_* settings are the defaults. No memory limit may exceed the host's memory."""
from __future__ import annotations

from core import imagerefs
from core.errors import Forbidden, NotFound, QuotaExceeded
from core.models import App, User

from controller.accounts import access
from controller.accounts import users as accounts
from controller.services import Services
from controller.store.tenancy import QUOTA_FIELDS  # noqa: F401 - the API validates quota bodies by it


# ---- images -----------------------------------------------------------------------------
def image_allowed(svc: Services, user: User, ref: str) -> bool:
    if user.is_admin:
        return True
    ident = svc.scheduler.image_identity(ref)
    if ident is None:
        return False
    image_id, app_name = ident
    if app_name:
        app = svc.store.find_app(app_name)
        if app is not None and access.can_deploy(user, app, accounts.collaborator_ids(svc, app)):
            return True
    for allowed in allowed_refs(svc):
        other = svc.scheduler.image_identity(allowed)
        if other is not None and other[0] == image_id:
            return True
    return False


def pull_admitted(svc: Services, ref: str) -> bool:
    """Whether a Dockerfile may build on `ref` from its registry: an admin's pattern admits it
    (DOCKYARD_PULL_ALLOW) and, when the engine has an image by that name, it is not an app's
    build (another tenant's image never passes for a public one)."""
    if not imagerefs.admitted(ref, svc.settings.pull_allow):
        return False
    return not (svc.scheduler.image_exists(ref) and svc.scheduler.image_is_app_build(ref))


def allowed_refs(svc: Services) -> list[str]:
    s = svc.settings
    return [s.stack_image, *s.allowed_images, *(r["image"] for r in svc.store.allowed_images())]


def refuse_image(image: str) -> Forbidden:
    e = Forbidden(f"The image {image[:80]} is not one you may deploy: use the stack image, an image one of your "
                  "apps built, or an image an admin allowed (`dockyard images:allow IMAGE`).",
                  fix="deploy the stack image or an image one of your apps built, or ask an admin to allow this "
                      "one for everyone (`dockyard images:allow IMAGE`)")
    e.code = "image_not_allowed"
    return e


# ---- quotas -----------------------------------------------------------------------------
def quota_of(svc: Services, user: User) -> dict:
    s = svc.settings
    q = {"max_apps": s.quota_apps, "max_instances": s.quota_instances, "max_memory_mb": s.quota_memory_mb}
    q.update(svc.store.quota(user))
    return q


def usage_of(svc: Services, user: User, change: tuple[App, dict, dict] | None = None) -> dict:
    """{apps, instances, memory_mb} over the user's apps; `change` = (app, its quantities, its
    memory per type) replaces what that app has, to judge a change before making it."""
    return svc.store.usage(user.id, svc.settings.app_memory_mb,
                           None if change is None else (change[0].id, change[1], change[2]))


def _owner(svc: Services, app: App) -> User | None:
    name, _ = svc.store.app_members(app)
    return svc.store.get_user(name) if name else None


def app_quota(svc: Services, user: User) -> int | None:
    """How many apps `user` may own (None: no limit); the store counts and creates in one step."""
    return None if user.is_admin else quota_of(svc, user)["max_apps"]


def check_app_change(svc: Services, app: App, quantities: dict, memory: dict) -> None:
    """Refuse a formation or limits change of `app` that would take its owner over quota (an
    early answer: reserve_app_change judges again as it writes)."""
    _check_host(svc, memory)
    owner = _owner(svc, app)
    if owner is None or owner.is_admin:
        return
    _judge(owner, quota_of(svc, owner), usage_of(svc, owner, (app, quantities, memory)))


def reserve_app_change(svc: Services, app: App, quantities: dict[str, int],
                       limits: dict[str, tuple[int | None, float | None]], only_missing: bool = False,
                       judged: bool = True, context: str = "") -> None:
    """Write a formation/limits change of `app`, judged against its owner's quota in the same
    store transaction (so concurrent changes of one owner's apps cannot all fit in the room
    one of them had). `judged=False` writes without judging; `context` prefixes the refusal."""
    default = svc.settings.app_memory_mb
    _check_host(svc, {t: mb or default for t, (mb, _) in limits.items()})
    owner = _owner(svc, app) if judged else None
    quota = quota_of(svc, owner) if owner is not None and not owner.is_admin else None

    def judge(used: dict) -> None:
        try:
            _judge(owner, quota, used)
        except QuotaExceeded as e:
            raise QuotaExceeded(context + e.message) from None
    svc.store.reserve(app, default, judge if quota is not None else None, quantities, limits, only_missing)


def _check_host(svc: Services, memory: dict) -> None:
    host = svc.scheduler.host_memory_mb() if memory else 0
    for ptype, mb in memory.items():
        if mb and host and mb > host:
            raise QuotaExceeded(f"memory_mb {mb} for {ptype} is more than this machine has ({host} MB): "
                                f"choose at most {host}.")


def _judge(owner: User, quota: dict, used: dict) -> None:
    if used["instances"] > quota["max_instances"]:
        raise QuotaExceeded(f"That makes {used['instances']} instances over {owner.name}'s apps; the quota is "
                            f"{quota['max_instances']}: scale something down or ask an admin to raise it.")
    if used["memory_mb"] > quota["max_memory_mb"]:
        raise QuotaExceeded(f"That makes {used['memory_mb']} MB of instance memory over {owner.name}'s apps; the "
                            f"quota is {quota['max_memory_mb']} MB: lower a limit, scale down, or ask an admin.")


# ---- what an admin sets --------------------------------------------------------------------
def allowed_by_admins(svc: Services) -> list[dict]:
    """The images admins allowed with images:allow, each {image, created_by, ...}."""
    return svc.store.allowed_images()


def allow_image(svc: Services, image: str, by: User) -> None:
    svc.store.allow_image(image, by.name)


def disallow_image(svc: Services, image: str) -> None:
    if not svc.store.disallow_image(image):
        raise NotFound(f"{image} is not in the allowed images (see `dockyard images:allowed`).")


def quota_set(svc: Services, user: User) -> dict:
    """Only what an admin set for the user (the rest is the default)."""
    return svc.store.quota(user)


def set_quota(svc: Services, user: User, values: dict) -> None:
    svc.store.set_quota(user, values)
