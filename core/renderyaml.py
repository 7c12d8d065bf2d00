"""Render's blueprint (`render.yaml`), read the way app.json is read. Pure: text in, the same
validated manifest shape as core/appjson.py out, plus a `render` part only Render has.

    services:
      - type: web                      # -> the `web` process (its startCommand / dockerCommand)
        name: shop
        buildCommand: ./build.sh       # run in the build container after the buildpacks
        startCommand: gunicorn app:app
        preDeployCommand: python manage.py migrate      # -> like app.json scripts.predeploy
        numInstances: 2                # -> the first deploy's formation
        healthCheckPath: /health       # -> a startup check of `web`
        envVars:
          - {key: MODE, value: prod}                    # a default, as app.json's value
          - {key: SECRET_KEY, generateValue: true}      # a generated secret
          - {key: API_TOKEN, sync: false}               # set by hand: named in the output
          - key: DATABASE_URL
            fromDatabase: {name: shopdb, property: connectionString}   # -> a Postgres add-on
          - key: REDIS_URL
            fromService: {type: redis, name: cache, property: connectionString}
          - fromGroup: shared          # envVarGroups' vars, inlined
      - {type: worker, name: queue, startCommand: python worker.py}     # -> process type `queue`, 1 running
      - {type: cron, name: nightly, schedule: "0 5 * * *", startCommand: python report.py}
      - {type: redis, name: cache}     # (or keyvalue) -> a Redis add-on
    databases:
      - name: shopdb                   # -> a Postgres add-on
    envVarGroups:
      - {name: shared, envVars: [{key: LOG_LEVEL, value: info}]}

One repository is one Dockyard app: the first `web` service is the app, workers of the same
repository become its process types, cron jobs its cron. What has no meaning here (regions,
plans, disks, other repositories) is named in a note and ignored."""
from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

import yaml

from .appjson import AppJsonError, cron_key
from .names import PROCESS_TYPE_RE

MAX_FILE = 1 << 20
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DB_PROPERTIES = ("connectionString", "host", "port", "user", "password", "database", "hostport")
ADDON_SERVICE_TYPES = {"redis": "redis", "keyvalue": "redis"}
PROCESS_SERVICE_TYPES = ("web", "worker", "pserv")
IGNORED_SERVICE_KEYS = ("rootDir", "disk", "domains", "region", "plan", "repo", "branch")


class RenderYamlError(AppJsonError):
    code = "invalid_render_yaml"


def _fail(message: str) -> RenderYamlError:
    return RenderYamlError(f"render.yaml: {message}")


def load(text: str) -> dict:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise _fail(f"not valid YAML{where} ({getattr(e, 'problem', None) or e}): fix it or remove it.") from None
    if not isinstance(doc, dict):
        raise _fail("must be a mapping with `services:` (and optionally `databases:`).")
    return doc


def _text(value: object, where: str) -> str:
    if not isinstance(value, (str, int, float)) or isinstance(value, bool) or not str(value).strip() \
            or any(c in str(value) for c in "\r\x00"):
        raise _fail(f"{where} must be a non-empty string.")
    return str(value).strip()


def _command(value: object, where: str) -> str:
    """A command on one line: Render runs it with a shell, so a multi-line block becomes `&&`s."""
    lines = [ln.strip() for ln in _text(value, where).split("\n") if ln.strip()]
    return " && ".join(lines)


def _list(doc: dict, key: str, where: str = "") -> list:
    value = doc.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _fail(f"{where}{key} must be a list.")
    return value


def process_type(name: str) -> str:
    """A Render service name -> a process type (lowercase, `-` for anything else, 30 chars)."""
    ptype = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-")[:30] or "worker"
    return ptype


def addon_var(kind: str, name: str, first: bool) -> str:
    """The config var an add-on is attached as: Heroku's DATABASE_URL / REDIS_URL for the first
    of its kind, NAME_URL for the others."""
    if first:
        return "DATABASE_URL" if kind == "postgres" else "REDIS_URL"
    return re.sub(r"[^A-Z0-9_]+", "_", name.upper()).strip("_")[:36] + "_URL"


def _addons(doc: dict, notes: list[str]) -> dict[tuple[str, str], dict]:
    """{(kind, render name): {"kind", "name", "var"}} for databases and redis services."""
    found: dict[tuple[str, str], dict] = {}
    entries = [("postgres", db, f"databases[{i}]") for i, db in enumerate(_list(doc, "databases"))]
    entries += [(ADDON_SERVICE_TYPES[s.get("type")], s, f"services[{i}]")
                for i, s in enumerate(_list(doc, "services"))
                if isinstance(s, dict) and s.get("type") in ADDON_SERVICE_TYPES]
    for kind, entry, where in entries:
        if not isinstance(entry, dict):
            raise _fail(f"{where} must be a mapping with a `name`.")
        name = _text(entry.get("name"), f"{where}.name")
        if (kind, name) in found:
            raise _fail(f"{where}: two {kind} entries are named {name[:40]!r}.")
        first = not any(a["kind"] == kind for a in found.values())
        found[(kind, name)] = {"kind": kind, "name": name, "var": addon_var(kind, name, first)}
        for key in ("plan", "region", "postgresMajorVersion", "diskSizeGB"):
            if key in entry:
                notes.append(f"{where}.{key} is ignored: add-ons here run the platform's version and size")
    return found


def _env_var(spec: object, where: str, addons: dict, groups: dict, env: dict, env_from: dict,
             notes: list[str]) -> None:
    if not isinstance(spec, dict):
        raise _fail(f"{where} must be a mapping like {{key: MODE, value: prod}}.")
    if "fromGroup" in spec:
        group = _text(spec["fromGroup"], f"{where}.fromGroup")
        if group not in groups:
            raise _fail(f"{where}.fromGroup names {group[:40]!r}, which envVarGroups does not define.")
        for i, inner in enumerate(groups[group]):
            _env_var(inner, f"envVarGroups.{group}.envVars[{i}]", addons, groups, env, env_from, notes)
        return
    key = _text(spec.get("key"), f"{where}.key")
    if not _KEY.match(key):
        raise _fail(f"{where}.key {key[:40]!r} is not a variable name: use letters, digits and _.")
    if "value" in spec and spec["value"] is not None:
        value = spec["value"]
        env[key] = {"required": False, "value": str(value).lower() if isinstance(value, bool) else str(value)}
    elif spec.get("generateValue"):
        env[key] = {"required": False, "generator": "secret"}
    elif "fromDatabase" in spec or "fromService" in spec:
        ref = spec.get("fromDatabase") or spec.get("fromService")
        source = "fromDatabase" if "fromDatabase" in spec else "fromService"
        if not isinstance(ref, dict):
            raise _fail(f"{where}.{source} must be a mapping with `name` and `property`.")
        kind = "postgres" if source == "fromDatabase" else ADDON_SERVICE_TYPES.get(str(ref.get("type")))
        name = _text(ref.get("name"), f"{where}.{source}.name")
        if kind is None:
            notes.append(f"{where}: {key} comes from the {str(ref.get('type'))[:20]} service {name[:40]}, which "
                         "is not an add-on here; set it with config:set")
            return
        if (kind, name) not in addons:
            raise _fail(f"{where}.{source} names the {kind} {name[:40]!r}, which render.yaml does not define "
                        f"(add it under {'databases' if kind == 'postgres' else 'services with type: redis'}).")
        prop = str(ref.get("property") or "connectionString")
        if prop not in DB_PROPERTIES:
            raise _fail(f"{where}.{source}.property is {prop[:40]!r}; the properties are {', '.join(DB_PROPERTIES)}.")
        env_from[key] = {"kind": kind, "name": name, "property": prop}
    elif spec.get("sync") is False:
        notes.append(f"{key} is set by hand on Render (sync: false): set it with `dockyard config:set {key}=...`")
    else:
        raise _fail(f"{where} ({key}) needs `value`, `generateValue: true`, `fromDatabase`, `fromService` "
                    "or `sync: false`.")


def _service_env(service: dict, where: str, addons: dict, groups: dict, notes: list[str]) -> tuple[dict, dict]:
    env: dict = {}
    env_from: dict = {}
    for i, spec in enumerate(_list(service, "envVars", f"{where}.")):
        _env_var(spec, f"{where}.envVars[{i}]", addons, groups, env, env_from, notes)
    return env, env_from


def _groups(doc: dict) -> dict[str, list]:
    groups = {}
    for i, group in enumerate(_list(doc, "envVarGroups")):
        if not isinstance(group, dict):
            raise _fail(f"envVarGroups[{i}] must be a mapping with `name` and `envVars`.")
        groups[_text(group.get("name"), f"envVarGroups[{i}].name")] = _list(group, "envVars", f"envVarGroups[{i}].")
    return groups


def _start(service: dict, where: str) -> str | None:
    for key in ("startCommand", "dockerCommand"):
        if service.get(key) is not None:
            return _command(service[key], f"{where}.{key}")
    return None


def _instances(service: dict, where: str) -> int:
    n = service.get("numInstances", 1)
    if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= 50:
        raise _fail(f"{where}.numInstances must be a whole number from 0 to 50, not {n!r}.")
    return n


def _web(service: dict, where: str, manifest: dict, render: dict, notes: list[str]) -> None:
    render["service"] = _text(service.get("name"), f"{where}.name")
    start = _start(service, where)
    if start:
        render["process_types"]["web"] = start
    if service.get("buildCommand") is not None:
        render["build_command"] = _command(service["buildCommand"], f"{where}.buildCommand")
    if service.get("preDeployCommand") is not None:
        manifest["scripts"]["predeploy"] = _command(service["preDeployCommand"], f"{where}.preDeployCommand")
    if "numInstances" in service:
        manifest["formation"]["web"] = {"quantity": _instances(service, where)}
    if service.get("healthCheckPath") is not None:
        path = _text(service["healthCheckPath"], f"{where}.healthCheckPath")
        if not path.startswith("/"):
            raise _fail(f"{where}.healthCheckPath must start with /, not {path[:40]!r}.")
        render["health_path"] = path
    if service.get("runtime", service.get("env")) == "static":
        publish = service.get("staticPublishPath")
        render["static_publish"] = _text(publish, f"{where}.staticPublishPath") if publish is not None else "."
    for key in IGNORED_SERVICE_KEYS:
        if key in service:
            notes.append(f"{where}.{key} is ignored: one repository root is one app here")


def parse_render_yaml(text: str) -> tuple[dict, list[str]]:
    """render.yaml text -> (manifest in app.json's shape plus `render`, notes). `render` holds
    service (the web service's name), process_types, build_command, addons [{kind, name, var}],
    env_from {KEY: {kind, name, property}}, and health_path / static_publish when given."""
    if len(text) > MAX_FILE:
        raise _fail("is larger than 1 MB.")
    doc = load(text)
    notes: list[str] = []
    addons = _addons(doc, notes)
    groups = _groups(doc)
    manifest: dict = {"formation": {}, "scripts": {}, "env": {}, "cron": []}
    render: dict = {"process_types": {}, "addons": sorted(addons.values(), key=lambda a: (a["kind"], a["var"])),
                    "env_from": {}}
    services = [s for s in _list(doc, "services") if not (isinstance(s, dict) and s.get("type") in ADDON_SERVICE_TYPES)]
    webs = 0
    for i, service in enumerate(services):
        where = f"services[{i}]"
        if not isinstance(service, dict):
            raise _fail(f"{where} must be a mapping with `type` and `name`.")
        stype = service.get("type")
        name = _text(service.get("name"), f"{where}.name")
        if stype == "web":
            webs += 1
            if webs > 1:
                notes.append(f"{where} ({name}) is a second web service: deploy it as an app of its own")
                continue
            _web(service, where, manifest, render, notes)
        elif stype in ("worker", "pserv"):
            start = _start(service, where)
            if start is None:
                raise _fail(f"{where} ({name}) needs a startCommand: a {stype} has no default command here.")
            ptype = process_type(name)
            if ptype == "web" or ptype in render["process_types"] or not PROCESS_TYPE_RE.fullmatch(ptype):
                raise _fail(f"{where}.name {name[:40]!r} gives the process type {ptype!r}, which is taken or invalid: "
                            "rename the service.")
            render["process_types"][ptype] = start
            # every Render service runs (numInstances, default 1); Heroku's formation starts workers at 0
            manifest["formation"][ptype] = {"quantity": _instances(service, where)}
        elif stype == "cron":
            schedule = _text(service.get("schedule"), f"{where}.schedule")
            command = _start(service, where)
            if command is None:
                raise _fail(f"{where} ({name}) needs a startCommand: the command the cron job runs.")
            manifest["cron"].append({"command": command, "schedule": schedule, "key": cron_key(schedule, command)})
        else:
            raise _fail(f"{where}.type is {str(stype)[:20]!r}; the types are web, worker, pserv, cron, redis "
                        "and keyvalue.")
        env, env_from = _service_env(service, where, addons, groups, notes)
        for key, spec in env.items():
            manifest["env"].setdefault(key, spec)
        for key, spec in env_from.items():
            render["env_from"].setdefault(key, spec)
    if not services and not addons:
        raise _fail("defines no services: add a `type: web` service with a startCommand.")
    if "service" not in render:
        render["service"] = next((s["name"] for s in services if isinstance(s, dict) and s.get("name")), "app")
    manifest["render"] = render
    return manifest, notes


def property_value(url: str, prop: str) -> str:
    """One of Render's connection properties of an add-on, from its URL."""
    if prop == "connectionString":
        return url
    parts = urlsplit(url)
    values = {"host": parts.hostname or "", "port": str(parts.port or ""), "user": unquote(parts.username or ""),
              "password": unquote(parts.password or ""), "database": parts.path.lstrip("/"),
              "hostport": f"{parts.hostname}:{parts.port}"}
    return values[prop]


def render_variables(service: str, hostname: str, url: str) -> dict[str, str]:
    """The variables Render sets in every service; apps check them (bind 0.0.0.0 only when
    RENDER is set, STATIC_ROOT only then...)."""
    return {"RENDER": "true", "RENDER_SERVICE_NAME": service, "RENDER_EXTERNAL_HOSTNAME": hostname,
            "RENDER_EXTERNAL_URL": url, "IS_PULL_REQUEST": "false"}


def merge(app_json: dict, render: dict) -> dict:
    """app.json's manifest and render.yaml's: app.json wins for what both set."""
    merged = dict(render)
    for key in ("formation", "scripts", "env"):
        if key in app_json or key in render:
            merged[key] = {**render.get(key, {}), **app_json.get(key, {})}
    if app_json.get("cron"):
        merged["cron"] = app_json["cron"]
    for key, value in app_json.items():
        merged.setdefault(key, value)
    return {k: v for k, v in merged.items() if v}
