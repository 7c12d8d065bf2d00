"""Pure: the rest of an app's resources in Heroku's shapes: domains, collaborators, SSH keys,
buildpack installations (Dockyard's BUILDPACK_URL) and add-ons with their attachments
(Dockyard's postgres and redis under Heroku's service names)."""
from __future__ import annotations

from core.errors import BadRequest

from controller.web.heroku.shapes import stable_id, timestamp, user_ref

# Heroku's service names for Dockyard's add-on kinds (and back: addon_kinds.ALIASES reads them)
SERVICES = {"postgres": "heroku-postgresql", "redis": "heroku-redis"}
# Heroku's shipped buildpacks by the name Dockyard ships them under (builder/buildpacks.BUILTIN_ORDER)
BUILDPACK_PREFIX = "heroku/"
ADDON_STATES = {"available": "provisioned", "starting": "provisioning", "missing": "deprovisioned"}


def domain(*, app_id: str, app_name: str, hostname: str, kind: str, default_host: str,
           created_at: str | None) -> dict:
    """kind: Dockyard's `default` is Heroku's `heroku`; a custom domain's DNS target is the app's name."""
    return {"id": stable_id("domain", app_id, hostname), "hostname": hostname,
            "kind": "heroku" if kind == "default" else "custom",
            "cname": None if kind == "default" else default_host, "status": "none", "acm_status": None,
            "acm_status_reason": None, "sni_endpoint": None, "app": {"id": app_id, "name": app_name},
            "created_at": timestamp(created_at), "updated_at": timestamp(created_at)}


def collaborator(*, app_id: str, app_name: str, user_id: int | None, login: str, role: str,
                 since: str | None) -> dict:
    return {"id": stable_id("collaborator", app_id, login), "user": user_ref(user_id, login), "role": role,
            "app": {"id": app_id, "name": app_name}, "created_at": timestamp(since),
            "updated_at": timestamp(since)}


def key(*, row: dict, login: str) -> dict:
    """A Dockyard key row. Its id is the fingerprint (what Dockyard deletes by); its comment is the
    key line's comment, else its Dockyard name (what `heroku keys:remove COMMENT` matches)."""
    parts = (row.get("public_key") or "").split(None, 2)
    return {"id": row["fingerprint"], "comment": parts[2].strip() if len(parts) > 2 else row["name"],
            "email": login, "fingerprint": row["fingerprint"], "public_key": row.get("public_key"),
            "created_at": timestamp(row.get("created_at")), "updated_at": timestamp(row.get("created_at"))}


# ---- buildpacks ------------------------------------------------------------------------------
def buildpack_for_dockyard(url: object, shipped: tuple[str, ...]) -> str:
    """What BUILDPACK_URL holds for a buildpack Heroku's CLI names: `heroku/python` (or its
    `urn:buildpack:` form) is Dockyard's shipped `python`; a git URL stays as it is."""
    if not isinstance(url, str) or not url.strip():
        raise BadRequest('Each update needs a buildpack: {"buildpack": "heroku/python"}.')
    text = url.strip().removeprefix("urn:buildpack:")
    if text.startswith(BUILDPACK_PREFIX) and text[len(BUILDPACK_PREFIX):] in shipped:
        return text[len(BUILDPACK_PREFIX):]
    if text.startswith(BUILDPACK_PREFIX):
        names = ", ".join(BUILDPACK_PREFIX + n for n in shipped)
        raise BadRequest(f"Dockyard does not ship {text[:60]!r}: its buildpacks are {names}, or give a git URL.")
    return text


def buildpack_url_for(updates: object, shipped: tuple[str, ...]) -> str | None:
    """PUT /apps/X/buildpack-installations {"updates": [...]}: the BUILDPACK_URL to set (None: unset).
    Dockyard runs one buildpack from BUILDPACK_URL; several run from a .buildpacks file in the repository."""
    if not isinstance(updates, list):
        raise BadRequest('Send {"updates": [{"buildpack": "heroku/python"}]}.')
    urls = [buildpack_for_dockyard((u or {}).get("buildpack") if isinstance(u, dict) else None, shipped)
            for u in updates]
    if len(urls) > 1:
        raise BadRequest("Dockyard runs one buildpack from BUILDPACK_URL: to run several in order, list them "
                         "one per line in a .buildpacks file at the root of the repository and clear this one "
                         "(`heroku buildpacks:clear`).")
    return urls[0] if urls else None


def buildpack_installations(buildpack_url: str | None, shipped: tuple[str, ...]) -> list[dict]:
    if not buildpack_url:
        return []
    url = BUILDPACK_PREFIX + buildpack_url if buildpack_url in shipped else buildpack_url
    return [{"ordinal": 0, "buildpack": {"url": url, "name": url}}]


def registry_entry(slug: str, shipped: tuple[str, ...]) -> dict | None:
    """The CLI's buildpack registry lookup (`heroku/python` -> where to get it): Dockyard's shipped ones."""
    if slug.startswith(BUILDPACK_PREFIX) and slug[len(BUILDPACK_PREFIX):] in shipped:
        return {"name": slug, "namespace": "heroku", "blob_url": slug}
    return None


# ---- add-ons -----------------------------------------------------------------------------------
def service_from_plan(plan: object) -> str:
    """`heroku-postgresql:essential-0` / `heroku-redis` / {"name": ...} -> the service name."""
    if isinstance(plan, dict):
        plan = plan.get("name")
    if not isinstance(plan, str) or not plan.strip():
        raise BadRequest('Name the add-on: {"plan": {"name": "heroku-postgresql"}} (or heroku-redis).')
    return plan.split(":", 1)[0].strip()


def addon(*, addon_id: str, name: str, service: str, memory_mb: int, state: str, app_id: str, app_name: str,
          config_vars: list[str], created_at: str) -> dict:
    heroku_service = SERVICES.get(service, service)
    plan_name = f"{heroku_service}:{memory_mb}mb"
    return {"id": addon_id, "name": name,
            "addon_service": {"id": stable_id("service", service), "name": heroku_service,
                              "human_name": service.capitalize()},
            "plan": {"id": stable_id("plan", plan_name), "name": plan_name, "price": {"cents": 0, "unit": "month"}},
            "app": {"id": app_id, "name": app_name}, "billing_entity": {"id": app_id, "name": app_name, "type": "app"},
            "billed_price": {"cents": 0, "contract": False, "unit": "month"},
            "config_vars": config_vars, "state": ADDON_STATES.get(state, "provisioning" if state == "creating"
                                                                  else "deprovisioned" if state == "deleted"
                                                                  else "provisioned"),
            "provider_id": name, "web_url": None,
            "created_at": timestamp(created_at), "updated_at": timestamp(created_at)}


def attachment(*, addon_json: dict, app_id: str, app_name: str, var: str) -> dict:
    """An app's use of an add-on: Heroku names it by the config var's prefix (DATABASE for DATABASE_URL)."""
    name = var[:-4] if var.endswith("_URL") else var
    return {"id": stable_id("attachment", addon_json["id"], app_id), "name": name, "namespace": None,
            "addon": {"id": addon_json["id"], "name": addon_json["name"], "app": addon_json["app"],
                      "plan": addon_json["plan"]},
            "app": {"id": app_id, "name": app_name}, "config_vars": [var], "web_url": None,
            "created_at": addon_json["created_at"], "updated_at": addon_json["updated_at"]}
