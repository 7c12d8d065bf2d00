"""What a build reads from the pushed tree besides the code: app.json (health checks and the
deploy manifest: formation, scripts, env, cron), Dokku's CHECKS file, and the port a
Dockerfile EXPOSEs. All of it is validated here, before the image is built, so a bad
manifest rejects the push with nothing released."""
from __future__ import annotations

from pathlib import Path

from core.appjson import AppJsonError, missing_env, parse_checks_file, parse_manifest
from core.checkspec import CheckSpecError, parse_app_json, parse_check
from core.renderyaml import merge, parse_render_yaml

from .errors import InvalidAppJson
from .job import Out


def read_manifest(src: Path, app_port: int, config: dict, app: str, say: Out) -> tuple[dict, dict]:
    """(healthchecks, manifest) of the tree at src. app.json's checks win; without a `web`
    check there, render.yaml's healthCheckPath, then a CHECKS file, checks `web`. Required env
    missing from config fails here."""
    healthchecks: dict = {}
    manifest: dict = {}
    path = src / "app.json"
    if path.is_file():
        data = path.read_bytes()
        try:
            healthchecks = parse_app_json(data, app_port)
            manifest, notes = parse_manifest(data)
        except (CheckSpecError, AppJsonError) as e:
            raise InvalidAppJson(f"{e.message} (nothing was released)") from None
        for note in notes:
            say(f"       app.json: {note}")
    healthchecks, manifest = _with_render_yaml(src, app_port, healthchecks, manifest, say)
    if manifest.get("env"):
        missing = missing_env(manifest.get("env", {}), config)
        if missing:
            raise InvalidAppJson(
                f"app.json requires {', '.join(missing)}, which {'has' if len(missing) == 1 else 'have'} no "
                f"value: set {'it' if len(missing) == 1 else 'them'} with `dockyard config:set "
                + " ".join(f"{k}=..." for k in missing) + f" -a {app}` and push again (nothing was built).")
    checks = src / "CHECKS"
    if checks.is_file() and not checks.is_symlink():
        if "web" in healthchecks:
            say("       CHECKS is ignored: app.json's or render.yaml's health checks set the web checks")
        else:
            try:
                from_file = parse_checks_file(checks.read_text(errors="replace"), app_port)
            except CheckSpecError as e:
                raise InvalidAppJson(f"{e.message} (nothing was released)") from None
            if from_file:
                say(f"       CHECKS: {len(from_file['web'])} web check(s)")
                healthchecks = {**healthchecks, **from_file}
                manifest = {**manifest, "checks_from": {"web": "CHECKS"}}
    return healthchecks, manifest


def _with_render_yaml(src: Path, app_port: int, healthchecks: dict, manifest: dict, say: Out) -> tuple[dict, dict]:
    """render.yaml (Render's blueprint) read like app.json; app.json wins where both say something."""
    path = src / "render.yaml"
    if not path.is_file() or path.is_symlink():
        return healthchecks, manifest
    try:
        render, notes = parse_render_yaml(path.read_text(errors="replace"))
        health = render["render"].get("health_path")
        if health and "web" not in healthchecks:
            check = parse_check({"name": "render.yaml healthCheckPath", "path": health}, "render.yaml", app_port)
            healthchecks = {**healthchecks, "web": [check.to_spec()]}
    except (CheckSpecError, AppJsonError) as e:
        raise InvalidAppJson(f"{e.message} (nothing was released)") from None
    info = render["render"]
    say(f"-----> render.yaml: service {info['service']}"
        + (f"; processes {', '.join(sorted(info['process_types']))}" if info["process_types"] else "")
        + (f"; {len(render['cron'])} cron job(s)" if render.get("cron") else "")
        + (f"; add-ons {', '.join(a['name'] + ' (' + a['kind'] + ')' for a in info['addons'])}" if info["addons"] else ""))
    for note in notes:
        say(f"       render.yaml: {note}")
    return healthchecks, merge(manifest, render)


def exposed_port(image_config: dict) -> int | None:
    """The one TCP port an image EXPOSEs, else None (none, several, or UDP only)."""
    ports = [p for p in (image_config.get("ExposedPorts") or {}) if p.endswith("/tcp") or "/" not in p]
    if len(ports) != 1:
        return None
    try:
        port = int(ports[0].split("/")[0])
    except ValueError:
        return None
    return port if 1 <= port <= 65535 else None
