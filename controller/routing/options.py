"""Per-app router settings (`dockyard router:set`), pure: the settings and their defaults,
parsing what a user typed into typed values, and putting an app's settings, custom domains
and certificate onto its route."""
from __future__ import annotations

from dataclasses import replace

from router import render
from router.table import Route, RouteOptions, Tls

from core.errors import BadRequest
from core.numbers import whole_number

# CLI spelling -> (RouteOptions field or flag, kind)
SETTINGS: dict[str, tuple[str, str]] = {
    "client-max-body-size": ("client_max_body_size", "size"),
    "read-timeout": ("read_timeout", "seconds"),
    "send-timeout": ("send_timeout", "seconds"),
    "connect-timeout": ("connect_timeout", "seconds"),
    "force-https": ("force_https", "bool"),
    "maintenance": ("maintenance", "bool"),
}
_TRUE, _FALSE = {"true", "on", "yes", "1"}, {"false", "off", "no", "0"}


def defaults() -> dict:
    d = RouteOptions()
    return {"client-max-body-size": d.client_max_body_size, "read-timeout": d.read_timeout,
            "send-timeout": d.send_timeout, "connect-timeout": d.connect_timeout,
            "force-https": False, "maintenance": False}


def _parse_one(key: str, raw) -> object:
    _, kind = SETTINGS[key]
    value = str(raw).strip().lower() if not isinstance(raw, bool) else raw
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if value in _TRUE or value in _FALSE:
            return value in _TRUE
        raise BadRequest(f"{key}={str(raw)[:20]!r}: use true or false.")
    if kind == "seconds":
        text = value[:-1] if isinstance(value, str) and value.endswith("s") else value
        return whole_number(text if isinstance(text, str) else None, key,
                            message=f"{key}={str(raw)[:20]!r} is not a number of seconds: e.g. {key}=120.")
    return value


def parse_settings(app_name: str, changes: dict) -> dict:
    """{"read-timeout": "120", "client-max-body-size": "50m", "x": None (reset)} -> typed values.
    Raises BadRequest naming the setting and what it accepts."""
    out: dict = {}
    for key, raw in changes.items():
        if key not in SETTINGS:
            raise BadRequest(f"Unknown router setting {str(key)[:40]!r}: the settings are "
                             f"{', '.join(sorted(SETTINGS))}.")
        out[key] = None if raw is None else _parse_one(key, raw)
    merged = {**defaults(), **{k: v for k, v in out.items() if v is not None}}
    render.check_options(options_from(merged), app_name)   # RenderError (400) names the setting
    return out


def merge_settings(current: dict, parsed: dict) -> dict:
    """The app's own settings after parsed changes: None, or a default value, removes one."""
    merged = dict(current)
    for key, value in parsed.items():
        if value is None or value == defaults()[key]:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def options_from(values: dict) -> RouteOptions:
    d = {**defaults(), **values}
    return RouteOptions(client_max_body_size=d["client-max-body-size"], read_timeout=d["read-timeout"],
                        send_timeout=d["send-timeout"], connect_timeout=d["connect-timeout"])


def apply_extras(route: Route, settings: dict, tls: Tls | None, extra_hosts: list[str]) -> Route:
    """A Route with the app's domains, settings and certificate."""
    values = {**defaults(), **settings}
    return replace(route, hostnames=tuple(route.hostnames) + tuple(h for h in extra_hosts if h not in route.hostnames),
                   options=options_from(values), tls=tls, force_https=bool(values["force-https"]),
                   maintenance=bool(values["maintenance"]))
