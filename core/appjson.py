"""The parts of app.json (Heroku's manifest, with Dokku's `cron`) that shape a deploy, and
Dokku's CHECKS file. Pure: bytes in, validated plain dicts out (what a build records).

    {"formation": {"web": {"quantity": 2, "size": "standard-2x"}},
     "scripts": {"predeploy": "python manage.py migrate", "postdeploy": "python seed.py"},
     "env": {"SECRET_KEY": {"generator": "secret"}, "MODE": {"value": "prod"},
             "API_TOKEN": {"description": "needed", "required": true}},
     "cron": [{"command": "python report.py", "schedule": "0 5 * * *"}]}

- formation: quantities (and sizes that map to a memory limit) applied on an app's first deploy.
- scripts.predeploy runs before each release goes live, like the Procfile's `release`;
  scripts.postdeploy runs once, after the first successful deploy.
- env: a `value` is a default set on the first deploy that lacks the key; `"generator":
  "secret"` gets a random value; a key that is `required` (Heroku's default) with neither
  must be set with config:set before the build starts.
- cron: one-off processes of the current release, on a cron schedule (UTC)."""
from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime

from croniter import croniter

from .checkspec import DEFAULTS, CheckSpecError, parse_check
from .durations import parse_duration
from .errors import BadRequest
from .names import PROCESS_TYPE_RE

# Heroku's dyno sizes -> memory limit (MB); other sizes are reported and ignored.
SIZES_MB = {"free": 512, "hobby": 512, "eco": 512, "basic": 512, "standard-1x": 512, "standard-2x": 1024,
            "performance-m": 2560, "performance-l": 14336, "private-s": 1024, "private-m": 2560,
            "private-l": 14336, "shield-s": 1024, "shield-m": 2560, "shield-l": 14336}
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_QUANTITY = 50          # as ps:scale allows
MAX_CRON_JOBS = 50


class AppJsonError(BadRequest):
    code = "invalid_app_json"


def load(data: bytes) -> dict:
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AppJsonError(f"app.json is not valid JSON ({e}): fix it or remove it.") from None
    if not isinstance(doc, dict):
        raise AppJsonError("app.json must be a JSON object.")
    return doc


def _one_line(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip() or any(c in value for c in "\r\n\x00"):
        raise AppJsonError(f"app.json {where} must be a non-empty one-line string.")
    return value.strip()


def parse_formation(data: object) -> tuple[dict, list[str]]:
    """{type: {"quantity": n, "memory_mb": m, "autosleep": seconds}} and notes on what was ignored."""
    if data is None:
        return {}, []
    if not isinstance(data, dict):
        raise AppJsonError('app.json formation must be an object like {"web": {"quantity": 1}}.')
    out, notes = {}, []
    for ptype, spec in data.items():
        if not isinstance(ptype, str) or not PROCESS_TYPE_RE.match(ptype):
            raise AppJsonError(f"app.json formation has an invalid process type {str(ptype)[:40]!r}.")
        if not isinstance(spec, dict):
            raise AppJsonError(f'app.json formation.{ptype} must be an object like {{"quantity": 1}}.')
        entry = {}
        if "quantity" in spec:
            q = spec["quantity"]
            if not isinstance(q, int) or isinstance(q, bool) or not 0 <= q <= MAX_QUANTITY:
                raise AppJsonError(f"app.json formation.{ptype}.quantity must be a whole number from 0 to "
                                   f"{MAX_QUANTITY}, not {q!r}.")
            entry["quantity"] = q
        if spec.get("autosleep") not in (None, False):   # Dockyard's own key: sleep after this idle time
            try:
                entry["autosleep"] = parse_duration(spec["autosleep"])
            except ValueError as e:
                raise AppJsonError(f"app.json formation.{ptype}.autosleep: {e}") from None
        size = spec.get("size")
        if size is not None:
            mb = SIZES_MB.get(str(size).lower())
            if mb is None:
                notes.append(f"formation.{ptype}.size {str(size)[:40]!r} has no memory limit here (known: "
                             f"{', '.join(SIZES_MB)}); the default limit applies")
            else:
                entry["memory_mb"] = mb
        out[ptype] = entry
    return out, notes


def parse_scripts(data: object) -> dict:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise AppJsonError('app.json scripts must be an object like {"postdeploy": "python seed.py"}.')
    return {k: _one_line(data[k], f"scripts.{k}") for k in ("predeploy", "postdeploy") if data.get(k)}


def parse_env(data: object) -> dict:
    """{KEY: {"value"?: str, "generator"?: "secret", "required": bool}}."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise AppJsonError('app.json env must be an object like {"SECRET_KEY": {"generator": "secret"}}.')
    out = {}
    for key, spec in data.items():
        if not isinstance(key, str) or not _ENV_KEY.match(key):
            raise AppJsonError(f"app.json env has an invalid name {str(key)[:40]!r}: use letters, digits and _.")
        if isinstance(spec, str):                 # Heroku's shorthand: "KEY": "default value"
            spec = {"value": spec}
        if not isinstance(spec, dict):
            raise AppJsonError(f'app.json env.{key} must be a string or an object like {{"value": "..."}}.')
        entry: dict = {"required": bool(spec.get("required", True))}
        if "value" in spec and spec["value"] is not None:
            if not isinstance(spec["value"], (str, int, float, bool)):
                raise AppJsonError(f"app.json env.{key}.value must be a string.")
            entry["value"] = str(spec["value"]) if not isinstance(spec["value"], bool) else str(spec["value"]).lower()
        generator = spec.get("generator")
        if generator is not None:
            if generator != "secret":
                raise AppJsonError(f"app.json env.{key}.generator is {str(generator)[:40]!r}; the only generator "
                                   "is \"secret\".")
            entry["generator"] = "secret"
        out[key] = entry
    return out


def cron_key(schedule: str, command: str) -> str:
    """A job's identity across releases: its schedule and command."""
    return hashlib.sha256(f"{schedule}\n{command}".encode()).hexdigest()[:16]


def parse_cron(data: object) -> list[dict]:
    """Dokku's `cron`: [{"command": ..., "schedule": ...}]; a bad entry is named by position."""
    if data is None:
        return []
    if not isinstance(data, list):
        raise AppJsonError('app.json cron must be a list like [{"command": "python job.py", '
                           '"schedule": "0 5 * * *"}].')
    if len(data) > MAX_CRON_JOBS:
        raise AppJsonError(f"app.json cron has {len(data)} jobs; at most {MAX_CRON_JOBS} are allowed.")
    jobs = []
    for i, entry in enumerate(data):
        where = f"cron[{i}]"
        if not isinstance(entry, dict):
            raise AppJsonError(f"app.json {where} must be an object with `command` and `schedule`.")
        command = _one_line(entry.get("command"), f"{where}.command")
        schedule = _one_line(entry.get("schedule"), f"{where}.schedule")
        if len(schedule.split()) not in (1, 5) or not croniter.is_valid(schedule):
            raise AppJsonError(f"app.json {where}.schedule {schedule[:60]!r} (command {command[:60]!r}) is not "
                               "a valid cron schedule: use five fields, minute hour day month weekday, "
                               "e.g. \"0 5 * * *\" (05:00 UTC daily) or \"*/10 * * * *\".")
        jobs.append({"command": command, "schedule": schedule, "key": cron_key(schedule, command)})
    return jobs


def parse_manifest(data: bytes) -> tuple[dict, list[str]]:
    """app.json bytes -> ({"formation", "scripts", "env", "cron"} (empty ones left out), notes)."""
    doc = load(data)
    formation, notes = parse_formation(doc.get("formation"))
    manifest = {"formation": formation, "scripts": parse_scripts(doc.get("scripts")),
                "env": parse_env(doc.get("env")), "cron": parse_cron(doc.get("cron"))}
    return {k: v for k, v in manifest.items() if v}, notes


def missing_env(env: dict, config: dict) -> list[str]:
    """Pure: required keys that have no value in config, no default and no generator."""
    return sorted(k for k, e in env.items()
                  if k not in config and e.get("required", True) and "value" not in e and "generator" not in e)


def slot_due(schedule: str, now: datetime) -> datetime:
    """The most recent time at or before `now` the schedule fires (an aware UTC datetime);
    slots fall on whole minutes."""
    floor = now.replace(second=0, microsecond=0)
    return floor if croniter.match(schedule, floor) else croniter(schedule, floor).get_prev(datetime)


def next_run(schedule: str, now: datetime) -> datetime:
    return croniter(schedule, now).get_next(datetime)


# ---- Dokku's CHECKS file --------------------------------------------------------------------
_SETTINGS = {"WAIT": "wait", "TIMEOUT": "timeout", "ATTEMPTS": "attempts"}


def parse_checks_file(text: str, app_port: int) -> dict[str, list[dict]]:
    """Dokku's CHECKS: `WAIT=`, `TIMEOUT=`, `ATTEMPTS=` lines, then `PATH [EXPECTED CONTENT]`
    lines (`//host/path` and `http://host/path` check the path). Checks `web`; WAIT is both the
    delay before the first attempt and the pause between attempts, as in Dokku."""
    values = dict(DEFAULTS)
    specs = []
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, eq, value = line.partition("=")
        if eq and name.strip() in _SETTINGS and " " not in name.strip():
            try:
                values[_SETTINGS[name.strip()]] = int(value.split("#", 1)[0].strip())
            except ValueError:
                raise CheckSpecError(f"CHECKS line {n}: {name.strip()} must be a whole number of seconds "
                                     f"(or attempts), not {value.strip()[:40]!r}.") from None
            continue
        target, _, content = line.partition(" ")
        path = _check_path(target, n)
        spec = {"name": f"CHECKS {target[:60]}", "path": path}
        if content.strip():
            spec["content"] = content.strip()
        specs.append(spec)
    if not specs:
        return {}
    checks = []
    for i, spec in enumerate(specs):
        spec.update(attempts=values["attempts"], timeout=values["timeout"], wait=values["wait"],
                    initialDelay=values["wait"])
        check = parse_check(spec, f"CHECKS check {i + 1}", app_port)
        checks.append(check.to_spec())
    return {"web": checks}


def _check_path(target: str, line: int) -> str:
    if target.startswith(("http://", "https://")):
        target = "//" + target.split("://", 1)[1]
    if target.startswith("//"):
        rest = target[2:]
        target = "/" + rest.split("/", 1)[1] if "/" in rest else "/"
    if not target.startswith("/"):
        raise CheckSpecError(f"CHECKS line {line}: {target[:60]!r} is not a path: write `/path expected "
                             "content`, e.g. `/health ok`.")
    return target


def parse_review_environment(doc: dict) -> dict:
    """app.json's `environments.review` (Heroku's review apps): {"env", "formation", "scripts"
    (postdeploy, pr-predestroy), "addons" (service names, plans dropped)}, empty ones left out.
    Top-level `addons` apply too when the environment names none, as on Heroku."""
    envs = doc.get("environments")
    review = envs.get("review") if isinstance(envs, dict) else None
    if review is None:
        review = {}
    if not isinstance(review, dict):
        raise AppJsonError("app.json environments.review must be an object like "
                           '{"addons": ["heroku-postgresql"], "scripts": {"postdeploy": "python seed.py"}}.')
    formation, _ = parse_formation(review.get("formation"))
    scripts = review.get("scripts")
    if scripts is not None and not isinstance(scripts, dict):
        raise AppJsonError('app.json environments.review.scripts must be an object like {"postdeploy": "..."}.')
    scripts = {k: _one_line(scripts[k], f"environments.review.scripts.{k}")
               for k in ("postdeploy", "pr-predestroy") if (scripts or {}).get(k)}
    addons = []
    for entry in review.get("addons", doc.get("addons")) or []:
        plan = entry.get("plan") if isinstance(entry, dict) else entry
        if not isinstance(plan, str) or not plan.strip():
            raise AppJsonError('app.json addons entries must be names like "heroku-postgresql" or objects with a "plan".')
        addons.append(plan.split(":", 1)[0].strip())
    found = {"env": parse_env(review.get("env")), "formation": formation, "scripts": scripts, "addons": addons}
    return {k: v for k, v in found.items() if v}
