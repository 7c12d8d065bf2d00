"""Health checks per process type, in Dokku's app.json format so Dokku apps move over:

    {"healthchecks": {"web": [{"type": "startup", "name": "ready", "path": "/health",
                               "content": "ok", "attempts": 5, "timeout": 5, "wait": 5,
                               "initialDelay": 0}]}}

A check is an HTTP GET of `path` on $PORT (2xx/3xx, and `content` in the body when given),
a `command` run inside the container (exit 0), or `listening: true` (the port accepts TCP).
`checks:set` stores checks for a type that override app.json's. Without any, a `web`
instance must answer HTTP on $PORT (any status) within DOCKYARD_HEALTH_TIMEOUT.

Parsing and validation are pure (here); controller/runtime/health.py runs the checks."""
from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field

from .errors import BadRequest
from .names import PROCESS_TYPE_RE

KNOWN_TYPES = ("startup", "liveness", "readiness")
DEFAULTS = {"attempts": 5, "timeout": 5, "wait": 5, "initialDelay": 0}
_INT_KEYS = ("attempts", "timeout", "wait", "initialDelay", "port")
_ALLOWED = {"type", "name", "description", "path", "content", "attempts", "timeout", "wait",
            "initialDelay", "command", "listening", "port", "scheme", "httpHeaders", "warn",
            "uptime"}
_LIMITS = {"attempts": (1, 100), "timeout": (1, 600), "wait": (0, 600), "initialDelay": (0, 600),
           "port": (1, 65535)}


class CheckSpecError(BadRequest):
    code = "invalid_healthcheck"


@dataclass(frozen=True)
class Check:
    name: str
    path: str | None = None
    content: str | None = None
    command: str | None = None
    listening: bool = False
    attempts: int = DEFAULTS["attempts"]
    timeout: int = DEFAULTS["timeout"]
    wait: int = DEFAULTS["wait"]
    initial_delay: int = DEFAULTS["initialDelay"]
    headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    warn: bool = False

    def describe(self) -> str:
        if self.command:
            what = f"command {self.command!r}"
        elif self.listening:
            what = "port listening"
        else:
            what = f"GET {self.path}" + (f" containing {self.content!r}" if self.content else "")
        return f"{self.name!r} ({what})"

    def to_spec(self) -> dict:
        """Back to app.json form (what `checks` shows and checks:set stores)."""
        spec = {"type": "startup", "name": self.name, "attempts": self.attempts, "timeout": self.timeout,
                "wait": self.wait, "initialDelay": self.initial_delay}
        for key, value in (("path", self.path), ("content", self.content), ("command", self.command)):
            if value is not None:
                spec[key] = value
        if self.listening:
            spec["listening"] = True
        if self.warn:
            spec["warn"] = True
        if self.headers:
            spec["httpHeaders"] = [{"name": k, "value": v} for k, v in self.headers]
        return spec


def parse_check(spec: object, where: str, app_port: int) -> Check | None:
    """One check from its app.json dict; None for types Dockyard does not run at deploy time
    (liveness/readiness), which the caller reports. Errors name the key and how to fix it."""
    if not isinstance(spec, dict):
        raise CheckSpecError(f"{where} must be an object like {{\"path\": \"/health\"}}.")
    unknown = sorted(set(spec) - _ALLOWED)
    if unknown:
        raise CheckSpecError(f"{where} has unknown key {unknown[0]!r}; known keys are: {', '.join(sorted(_ALLOWED))}.")
    ctype = spec.get("type", "startup")
    if ctype not in KNOWN_TYPES:
        raise CheckSpecError(f"{where}.type is {ctype!r}; use one of: {', '.join(KNOWN_TYPES)}.")
    if ctype != "startup":
        return None
    values = dict(DEFAULTS)
    for key in _INT_KEYS:
        if key in spec:
            v = spec[key]
            lo, hi = _LIMITS[key]
            if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
                raise CheckSpecError(f"{where}.{key} must be a whole number from {lo} to {hi}, not {v!r}.")
            values[key] = v
    if "port" in spec and spec["port"] != app_port:
        raise CheckSpecError(f"{where}.port is {spec['port']}, but processes listen on $PORT ({app_port}): "
                             "remove `port` (checks use $PORT).")
    if spec.get("scheme", "http") != "http":
        raise CheckSpecError(f"{where}.scheme must be \"http\": the check talks to the container directly, "
                             "TLS ends at the router.")
    path, command, content = spec.get("path"), spec.get("command"), spec.get("content")
    for key, v in (("path", path), ("content", content), ("name", spec.get("name")),
                   ("description", spec.get("description"))):
        if v is not None and (not isinstance(v, str) or any(c in v for c in "\r\n\x00")):
            raise CheckSpecError(f"{where}.{key} must be a one-line string.")
    if path is not None and not path.startswith("/"):
        raise CheckSpecError(f"{where}.path must start with '/', e.g. \"/health\".")
    if isinstance(command, list):
        if not command or not all(isinstance(c, str) for c in command):
            raise CheckSpecError(f"{where}.command must be a string or a list of strings.")
        command = shlex.join(command)
    elif command is not None and (not isinstance(command, str) or not command.strip()):
        raise CheckSpecError(f"{where}.command must be a non-empty string or a list of strings.")
    listening = spec.get("listening", False)
    for key in ("listening", "warn", "uptime"):
        if key in spec and not isinstance(spec[key], (bool, int)):
            raise CheckSpecError(f"{where}.{key} must be true or false.")
    kinds = [k for k, v in (("path", path), ("command", command), ("listening", listening)) if v]
    if len(kinds) > 1:
        raise CheckSpecError(f"{where} sets both {kinds[0]!r} and {kinds[1]!r}: a check is one of path, "
                             "command or listening.")
    if not kinds:
        if content is not None:
            raise CheckSpecError(f"{where}.content needs a `path` (or a `command`) to look in.")
        if "uptime" in spec:
            raise CheckSpecError(f"{where}: uptime checks are not supported; use a path, a command or "
                                 "`listening: true`.")
        path = "/"
    headers = spec.get("httpHeaders") or []
    if not isinstance(headers, list) or not all(
            isinstance(h, dict) and isinstance(h.get("name"), str) and isinstance(h.get("value"), str)
            and not any(c in h["name"] + h["value"] for c in "\r\n\x00") and h["name"].strip()
            for h in headers):
        raise CheckSpecError(f"{where}.httpHeaders must be a list of {{\"name\": ..., \"value\": ...}} "
                             "one-line strings.")
    name = spec.get("name") or (f"GET {path}" if path else ("command" if command else "listening"))
    return Check(name=name, path=path if not (command or listening) else None, content=content,
                 command=command, listening=bool(listening), attempts=values["attempts"],
                 timeout=values["timeout"], wait=values["wait"], initial_delay=values["initialDelay"],
                 headers=tuple((h["name"], h["value"]) for h in headers), warn=bool(spec.get("warn", False)))


def parse_healthchecks(data: object, where: str, app_port: int) -> dict[str, list[dict]]:
    """Validate a `healthchecks` object ({type: [check, ...]}); returns it normalised to
    startup checks in app.json form (what the store keeps)."""
    if not isinstance(data, dict):
        raise CheckSpecError(f"{where} must be an object mapping process types to lists of checks, "
                             "e.g. {\"web\": [{\"path\": \"/health\"}]}.")
    out: dict[str, list[dict]] = {}
    for ptype, checks in data.items():
        if not isinstance(ptype, str) or not PROCESS_TYPE_RE.match(ptype):
            raise CheckSpecError(f"{where} has an invalid process type {str(ptype)[:40]!r}: use lowercase "
                                 "letters, digits, '-' and '_'.")
        if not isinstance(checks, list):
            raise CheckSpecError(f"{where}.{ptype} must be a list of checks.")
        parsed = [parse_check(c, f"{where}.{ptype}[{i}]", app_port) for i, c in enumerate(checks)]
        out[ptype] = [c.to_spec() for c in parsed if c is not None]
    return out


def parse_app_json(data: bytes, app_port: int) -> dict[str, list[dict]]:
    """app.json bytes -> its validated healthchecks ({} when it has none)."""
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckSpecError(f"app.json is not valid JSON ({e}): fix it or remove it.") from None
    if not isinstance(doc, dict):
        raise CheckSpecError("app.json must be a JSON object.")
    if "healthchecks" not in doc:
        return {}
    return parse_healthchecks(doc["healthchecks"], "app.json healthchecks", app_port)


def spec_from_pairs(pairs: dict[str, str], app_port: int) -> dict:
    """checks:set's KEY=VALUE pairs -> one validated check in app.json form."""
    spec: dict = {}
    for key, raw in pairs.items():
        if key in _INT_KEYS:
            try:
                spec[key] = int(raw)
            except ValueError:
                raise CheckSpecError(f"{key} must be a whole number, not {raw!r}.") from None
        elif key in ("listening", "warn"):
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise CheckSpecError(f"{key} must be true or false, not {raw!r}.")
            spec[key] = raw.lower() in ("true", "1", "yes")
        else:
            spec[key] = raw
    check = parse_check(spec, "the check", app_port)
    if check is None:
        raise CheckSpecError("Only startup checks run at deploy time: drop `type` or set type=startup.")
    return check.to_spec()


def effective(overrides: dict[str, list[dict]], from_app_json: dict[str, list[dict]], app_port: int,
              build_sources: dict[str, str] | None = None) -> dict[str, tuple[str, list[Check]]]:
    """Pure: per process type, (source, checks): checks:set beats the build's checks, which come
    from app.json unless `build_sources` names another file for the type (Dokku's CHECKS)."""
    out: dict[str, tuple[str, list[Check]]] = {}
    for source, table in (("app.json", from_app_json), ("checks:set", overrides)):
        for ptype, specs in table.items():
            said = (build_sources or {}).get(ptype, source) if source == "app.json" else source
            checks = [parse_check(s, f"{said} {ptype}", app_port) for s in specs]
            out[ptype] = (said, [c for c in checks if c is not None])
    return out
