"""Pure rules of pipelines: stage names and their order, pipeline names, the names of review
apps, and when a review app is stale. No I/O."""
from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta

from core.errors import BadRequest
from core.names import APP_NAME_RE, validate_app_name

STAGES = ("review", "development", "staging", "production")
PROMOTION_ORDER = ("development", "staging", "production")   # as the Heroku CLI promotes


def validate_stage(stage: object) -> str:
    if stage not in STAGES:
        shown = str(stage)[:30] if stage is not None else "(missing)"
        raise BadRequest(f"Unknown stage {shown!r}: use one of {', '.join(STAGES)} (e.g. --stage staging).")
    return stage


def validate_pipeline_name(name: object) -> str:
    """A pipeline's name follows the app-name rule: review apps are named after it."""
    try:
        return validate_app_name(name)
    except BadRequest as e:
        raise e.__class__(e.message.replace("app name", "pipeline name").replace("'myapp'", "'shop'")) from None


def downstream(stage: str) -> str | None:
    """The stage a promotion from `stage` goes to (None: nothing is downstream of it)."""
    if stage not in PROMOTION_ORDER or stage == PROMOTION_ORDER[-1]:
        return None
    return PROMOTION_ORDER[PROMOTION_ORDER.index(stage) + 1]


def branch_of(ref: bytes) -> str | None:
    """refs/heads/NAME -> NAME (None for tags and other refs)."""
    text = ref.decode("utf-8", "replace")
    return text[len("refs/heads/"):] if text.startswith("refs/heads/") and len(text) > len("refs/heads/") else None


def review_app_name(pipeline: str, branch: str) -> str:
    """`<pipeline>-<branch>` made a valid app name: lower case, other characters as dashes; too
    long, it is cut and ends with a short hash of both, so two branches never share an app."""
    slug = re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", branch.lower())).strip("-") or "branch"
    name = f"{pipeline}-{slug}"
    if APP_NAME_RE.fullmatch(name) and len(name) <= 30 and slug == branch:
        return name
    digest = hashlib.sha256(f"{pipeline}\n{branch}".encode()).hexdigest()[:6]
    head = f"{pipeline}-{slug}"[:23].rstrip("-")
    return f"{head}-{digest}"


def is_stale(pushed_at: str | None, now: datetime, days: int) -> bool:
    """A review app whose branch has had no push for `days` days."""
    if not pushed_at:
        return False
    at = datetime.fromisoformat(pushed_at)
    return now - at >= timedelta(days=days)
