"""What a build reads from the pushed tree besides the code: app.json (health checks and the
deploy manifest: formation, scripts, env, cron), Dokku's CHECKS file, and the port a
Dockerfile EXPOSEs. All of it is validated here, before the image is built, so a bad
manifest rejects the push with nothing released."""
from __future__ import annotations

from pathlib import Path

from core.appjson import AppJsonError, missing_env, parse_checks_file, parse_manifest
from core.checkspec import CheckSpecError, parse_app_json

from .errors import InvalidAppJson
from .job import Out


def read_manifest(src: Path, app_port: int, config: dict, app: str, say: Out) -> tuple[dict, dict]:
    """(healthchecks, manifest) of the tree at src. app.json's checks win; without a `web`
    check there, a CHECKS file checks `web`. Required env missing from config fails here."""
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
        missing = missing_env(manifest.get("env", {}), config)
        if missing:
            raise InvalidAppJson(
                f"app.json requires {', '.join(missing)}, which {'has' if len(missing) == 1 else 'have'} no "
                f"value: set {'it' if len(missing) == 1 else 'them'} with `dockyard config:set "
                + " ".join(f"{k}=..." for k in missing) + f" -a {app}` and push again (nothing was built).")
    checks = src / "CHECKS"
    if checks.is_file() and not checks.is_symlink():
        if "web" in healthchecks:
            say("       CHECKS is ignored: app.json's healthchecks set the web checks")
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
