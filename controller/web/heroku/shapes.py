"""Pure: Dockyard's records in the shapes of the Heroku Platform API v3 (what the official CLI
reads: apps, account, releases, formation, dynos, domains, collaborators, keys), and the
request details Heroku's tools send (Accept, Range, quantities as strings, sizes)."""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from core.errors import BadRequest

HEROKU_MEDIA_TYPE = "application/vnd.heroku+json"
REGION = {"id": "00000000-0000-0000-0000-000000000001", "name": "local"}   # one platform, one place
_NS = uuid.UUID("6f1f6a4e-5d1b-4c3e-9d59-2b8e0c7c4a10")                    # Dockyard's ids for Heroku's tools
# Heroku's size names, in MB of memory, for `ps:scale web=2:standard-2x` (Dockyard sizes are its limits)
SIZES_MB = {"eco": 512, "basic": 512, "free": 512, "hobby": 512, "standard-1x": 512, "standard-2x": 1024,
            "performance-m": 2560, "performance-l": 14336}


def wants_heroku(accept: str | None) -> bool:
    """A request from Heroku's tools: they all send `Accept: application/vnd.heroku+json; version=3…`."""
    return HEROKU_MEDIA_TYPE in (accept or "").lower()


def stable_id(*parts: object) -> str:
    """A UUID for a Dockyard record that has none (a release, a formation entry): the same each time."""
    return str(uuid.uuid5(_NS, "/".join(str(p) for p in parts)))


def timestamp(value: str | None) -> str | None:
    """Any ISO time Dockyard or the engine writes (or epoch seconds, as the engine's container
    listing gives them) -> Heroku's `2026-01-02T03:04:05Z` (UTC)."""
    if not value or value.startswith("0001-"):
        return None
    if value.strip().isdigit():
        return datetime.fromtimestamp(int(value), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = re.sub(r"(\.\d{1,6})\d*", r"\1", value.strip()).replace("Z", "+00:00")
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- Range: Heroku's pagination header ------------------------------------------------------
@dataclass(frozen=True)
class Range:
    field: str | None = None
    order: str = "asc"
    max: int | None = None


def parse_range(header: str | None) -> Range:
    """`version ..; max=10, order=desc` -> Range("version", "desc", 10). Anything unreadable is
    no range (the whole list, as Heroku answers a request without one)."""
    text = (header or "").strip()
    if not text:
        return Range()
    field, _, params = text.partition(";")
    field = field.split()[0] if field.split() else None
    order, most = "asc", None
    for part in re.split(r"[,;]", params):
        key, _, value = part.strip().partition("=")
        if key == "order" and value in ("asc", "desc"):
            order = value
        elif key == "max" and value.isdigit():
            most = max(1, min(int(value), 1000))
    return Range(field, order, most)


def apply_range(rows: list[dict], spec: Range) -> list[dict]:
    """Sort by the range's field (when the rows have it) in its order, then keep at most `max`."""
    if spec.field and rows and all(spec.field in r for r in rows):
        rows = sorted(rows, key=lambda r: (r[spec.field] is None, r[spec.field]), reverse=spec.order == "desc")
    elif spec.order == "desc":
        rows = list(reversed(rows))
    return rows[:spec.max] if spec.max else rows


# ---- users, apps -------------------------------------------------------------------------
def user_ref(user_id: int | None, login: str | None) -> dict:
    return {"id": stable_id("user", user_id) if user_id is not None else None, "email": login}


def account(user_id: int, login: str, name: str, is_admin: bool, created_at: str | None = None) -> dict:
    return {**user_ref(user_id, login), "name": name, "created_at": timestamp(created_at),
            "updated_at": timestamp(created_at), "verified": True, "two_factor_authentication": False,
            "beta": False, "default_organization": None, "default_team": None, "delinquent_at": None,
            "suspended_at": None, "allow_tracking": False, "sms_number": None, "federated": False,
            "identity_provider": None, "last_login": None, "is_admin": is_admin}


def app(*, app_id: str, name: str, created_at: str, released_at: str | None, owner_id: int | None,
        owner_login: str | None, web_url: str, git_url: str, stack: str, maintenance: bool) -> dict:
    stack_ref = {"id": stable_id("stack", stack), "name": stack}
    return {"id": app_id, "name": name, "created_at": timestamp(created_at),
            "updated_at": timestamp(released_at or created_at), "released_at": timestamp(released_at),
            "web_url": web_url, "git_url": git_url, "owner": user_ref(owner_id, owner_login),
            "region": REGION, "stack": stack_ref, "build_stack": stack_ref, "maintenance": maintenance,
            "acm": False, "archived_at": None, "buildpack_provided_description": None, "create_status": "complete",
            "internal_routing": None, "locked": False, "organization": None, "team": None, "space": None,
            "repo_size": None, "slug_size": None, "generation": {"name": "cedar"}}


NAME_WORDS = ("amber", "brisk", "calm", "deep", "eager", "fair", "glad", "keen", "lucid", "mellow", "noble",
              "quiet", "rapid", "solid", "tidy", "vivid", "warm", "young")
HARBOUR_WORDS = ("anchor", "berth", "buoy", "dock", "ferry", "harbor", "jetty", "keel", "mast", "pier", "quay",
                 "sail", "tide", "wharf")


def new_app_name(pick, number: int) -> str:
    """A name for `heroku apps:create` without one, as Heroku makes them: `calm-jetty-4821`
    (`pick` chooses one of a sequence; `number` is in 1000..9999)."""
    return f"{pick(NAME_WORDS)}-{pick(HARBOUR_WORDS)}-{number}"


def app_changes(data: dict) -> tuple[str | None, bool | None]:
    """PATCH /apps/X: (new name or None, maintenance or None); refuses what Dockyard cannot change."""
    unknown = sorted(set(data) - {"name", "maintenance", "build_stack"})
    if unknown:
        raise BadRequest(f"Dockyard cannot change {', '.join(unknown)} of an app: it changes name and maintenance.")
    maintenance = data.get("maintenance")
    if maintenance is not None and not isinstance(maintenance, bool):
        raise BadRequest("maintenance must be true or false.")
    name = data.get("name")
    if name is not None and not isinstance(name, str):
        raise BadRequest("name must be a string.")
    return name, maintenance


# ---- releases ----------------------------------------------------------------------------
def release(*, app_id: str, app_name: str, version: int, status: str, description: str, created_at: str,
            current: bool, user_id: int | None, user_login: str | None, build_id: str | None) -> dict:
    return {"id": stable_id("release", app_id, version), "version": version, "status": status,
            "description": description, "created_at": timestamp(created_at), "updated_at": timestamp(created_at),
            "current": current, "user": user_ref(user_id, user_login), "app": {"id": app_id, "name": app_name},
            "slug": {"id": build_id} if build_id else None, "addon_plan_names": [], "output_stream_url": None,
            "eligible_for_rollback": status == "succeeded" and build_id is not None}


def release_version(raw: object, app_id: str, versions: list[int]) -> int:
    """The version a rollback names: Heroku's tools send the release's id; people send v3 or 3."""
    text = str(raw).strip().lower()
    if text.lstrip("v").isdigit():
        return int(text.lstrip("v"))
    for version in versions:
        if stable_id("release", app_id, version) == text:
            return version
    raise BadRequest(f"No release {str(raw)[:40]!r}: name it by version (v3) or by its id from `heroku releases --json`.")


# ---- formation and dynos ---------------------------------------------------------------------
def size(memory_mb: int, cpus: float | None) -> str:
    """Dockyard's limits as a size: `512MB`, or `1024MB/1.5CPU` when the CPUs are limited too."""
    return f"{memory_mb}MB" + (f"/{cpus:g}CPU" if cpus else "")


def size_mb(text: object) -> int:
    """A size to scale to: Heroku's names (standard-2x = 1024 MB) or Dockyard's own (`1024MB`, `1GB`)."""
    raw = str(text).strip().lower()
    if raw in SIZES_MB:
        return SIZES_MB[raw]
    m = re.fullmatch(r"(\d{1,6})\s*(mb|m|gb|g)?(/[\d.]+cpu)?", raw)
    if not m:
        known = ", ".join(SIZES_MB)
        raise BadRequest(f"Unknown size {str(text)[:30]!r}: give memory like 512MB or 1GB, or one of {known}.")
    return int(m.group(1)) * (1024 if m.group(2) in ("gb", "g") else 1)


def quantity(value: object) -> int | None:
    """Heroku's CLI sends quantities as strings ("2"); relative ones ("+1") need the current count."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def scale_updates(updates: object, current: dict[str, int]) -> list[dict]:
    """Heroku's `{"updates": [{"type": "web", "quantity": "2", "size": "standard-2x"}]}` ->
    Dockyard's `[{"type": "web", "quantity": 2, "size_mb": 1024?}]`; `+1`/`-1` are relative."""
    if not isinstance(updates, list) or not updates:
        raise BadRequest('Send {"updates": [{"type": "web", "quantity": 2}]}, e.g. `heroku ps:scale web=2`.')
    out = []
    for u in updates:
        if not isinstance(u, dict) or not isinstance(u.get("type"), str):
            raise BadRequest('Each update needs a process type: {"type": "web", "quantity": 2}.')
        row: dict = {"type": u["type"]}
        raw = u.get("quantity")
        if isinstance(raw, str) and re.fullmatch(r"\s*[+-]\d+\s*", raw):
            row["quantity"] = max(0, current.get(u["type"], 0) + int(raw))
        elif raw is not None:
            row["quantity"] = quantity(raw)
            if row["quantity"] is None:
                raise BadRequest(f"Quantity for {u['type']} must be a whole number, not {str(raw)[:20]!r}.")
        if u.get("size"):
            row["size_mb"] = size_mb(u["size"])
        out.append(row)
    return out


def formation(*, app_id: str, app_name: str, ptype: str, quantity_: int, command: str, size_: str,
              created_at: str | None) -> dict:
    return {"id": stable_id("formation", app_id, ptype), "type": ptype, "quantity": quantity_, "size": size_,
            "command": command, "app": {"id": app_id, "name": app_name},
            "created_at": timestamp(created_at), "updated_at": timestamp(created_at)}


def dyno_state(dockyard_state: str) -> str:
    """Dockyard's states -> Heroku's (up, starting, crashed, down, idle)."""
    return {"up": "up", "starting": "starting", "crashed": "crashed", "created": "starting",
            "running": "up", "restarting": "crashed"}.get(dockyard_state, "down")


def dyno(*, app_id: str, app_name: str, container_id: str, label: str, ptype: str, state: str, size_: str,
         command: str, started_at: str | None, version: int) -> dict:
    return {"id": stable_id("dyno", container_id), "name": label, "type": ptype, "state": dyno_state(state),
            "size": size_, "command": command, "created_at": timestamp(started_at),
            "updated_at": timestamp(started_at), "release": {"id": stable_id("release", app_id, version),
                                                             "version": version},
            "app": {"id": app_id, "name": app_name}, "attach_url": None}
