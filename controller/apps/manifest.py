"""What a push applies from the build's app.json (validated by the builder): env defaults and
generated secrets, the first deploy's formation and sizes, and the postdeploy script that runs
once, after the first successful deploy. Callers hold the app's lock."""
from __future__ import annotations

import secrets
import stat

from core.appjson import AppJsonError, load, parse_env, parse_review_environment
from core.models import App, Release
from core.piku import parse_env_file
from core.renderyaml import parse_render_yaml, render_variables

from controller.accounts import tenancy
from controller.runtime.rollout import default_quantities
from controller.services import Out, Services


# Where a default value came from, as the push output says it.
SOURCES = {"render.yaml": "render.yaml's value", "ENV": "piku's ENV file"}


def is_first_deploy(svc: Services, app: App) -> bool:
    """No release of the app ever ran code successfully."""
    return not any(r.status == "succeeded" and r.build_id for r in svc.store.list_releases(app))


def _blob(repo, sha: bytes, name: bytes) -> bytes | None:
    """A regular file at the root of the commit (at most 1 MB), else None."""
    try:
        mode, blob = repo[repo[sha].tree][name]
    except KeyError:
        return None
    if not stat.S_ISREG(mode):
        return None
    data = repo[blob].data
    return data if len(data) <= 1 << 20 else None


def env_in_commit(repo, sha: bytes) -> tuple[dict, str | None]:
    """(app.json's `env` merged over render.yaml's envVars and piku's ENV file, the render.yaml
    web service's name or None) in the pushed commit, read before the build so generated
    secrets and defaults are in the build's environment too; empty when absent or unreadable
    (the build then reports what is wrong with the file)."""
    env: dict = {}
    service = None
    piku = _blob(repo, sha, b"ENV")
    if piku is not None:
        env = {k: {"required": False, "value": v, "from": "ENV"}
               for k, v in parse_env_file(piku.decode("utf-8", "replace")).items()}
    render = _blob(repo, sha, b"render.yaml")
    if render is not None:
        try:
            manifest, _ = parse_render_yaml(render.decode("utf-8", "replace"))
            env = {**env, **{k: {**v, "from": "render.yaml"} for k, v in manifest.get("env", {}).items()}}
            service = manifest["render"]["service"]
        except AppJsonError:
            pass
    data = _blob(repo, sha, b"app.json")
    if data is not None:
        try:
            env = {**env, **parse_env(load(data).get("env"))}
        except AppJsonError:
            pass
    return env, service


def review_environment_in_commit(repo, sha: bytes) -> dict:
    """app.json's `environments.review` in the pushed commit ({} without app.json); an invalid
    one is refused before anything is created, with what to fix."""
    data = _blob(repo, sha, b"app.json")
    return parse_review_environment(load(data)) if data is not None else {}


def with_environment(svc: Services, build_id: str, manifest: dict, environment: dict) -> dict:
    """The build's manifest with an app.json environment's formation and scripts over the
    top-level ones, recorded on the build (its releases run them: postdeploy once, and
    pr-predestroy before a review app goes)."""
    merged = dict(manifest)
    if environment.get("formation"):
        merged["formation"] = environment["formation"]
    if environment.get("scripts"):
        merged["scripts"] = {**manifest.get("scripts", {}), **environment["scripts"]}
    if merged != manifest:
        svc.store.set_build_manifest(build_id, merged)
    return merged


def apply_render_variables(svc: Services, app: App, service: str | None, config: dict, out: Out) -> tuple[dict, list[str]]:
    """The variables Render sets in every service (RENDER=true, ...), for an app with a
    render.yaml: apps bind to 0.0.0.0, or set STATIC_ROOT, only when they see them. A value the
    app's config already has is kept."""
    if service is None:
        return config, []
    host = svc.settings.app_host(app.name)
    wanted = render_variables(service, host, svc.settings.router_url.replace("<app>", app.name))
    added = sorted(k for k in wanted if k not in config)
    if added:
        out(f"-----> Setting Render's variables: {', '.join(added)}")
    return {**{k: wanted[k] for k in added}, **config}, added


def apply_env(env: dict, config: dict, out: Out) -> tuple[dict, list[str]]:
    """Pure apart from `out`: config plus app.json's defaults and generated secrets for keys it
    lacks; (new config, keys added). Values are never printed, only names."""
    new = dict(config)
    added = []
    for key, spec in sorted(env.items()):
        if key in new:
            continue
        if "value" in spec:
            new[key] = spec["value"]
            source = SOURCES.get(spec.get("from", ""), "app.json's default")
            out(f"-----> Setting {key} from {source}")
        elif spec.get("generator") == "secret":
            new[key] = secrets.token_hex(32)        # 64 hex characters, as Heroku generates
            how = "generateValue" if spec.get("from") == "render.yaml" else "generator: secret"
            out(f"-----> Generated a secret value for {key} ({spec.get('from', 'app.json')} {how})")
        else:
            continue
        added.append(key)
    return new, added


def apply_formation(svc: Services, app: App, formation: dict, process_types: dict, out: Out) -> None:
    """The first deploy's quantities and memory sizes for the types the build has, within the
    owner's quota and the host's memory (checked before anything is written)."""
    quantities, memory = {}, {}
    for ptype, spec in sorted(formation.items()):
        if ptype not in process_types:
            out(f"       app.json formation.{ptype}: the build has no such process type; ignored")
            continue
        if "quantity" in spec:
            quantities[ptype] = spec["quantity"]
        if "memory_mb" in spec:
            memory[ptype] = spec["memory_mb"]
    # with the quantities a deploy gives the types app.json does not name (web=1): judged and
    # written in one step, so concurrent first deploys of one owner's apps cannot all fit
    limits = svc.store.limits(app)
    tenancy.reserve_app_change(svc, app, {**default_quantities(process_types, svc.store.formation(app)), **quantities},
                               {t: (mb, limits.get(t, {}).get("cpus")) for t, mb in memory.items()},
                               context="app.json formation: ")
    for ptype, mb in memory.items():
        out(f"-----> {ptype}: memory limit {mb} MB (app.json formation size)")
    for ptype, seconds in sorted((t, s.get("autosleep")) for t, s in formation.items() if t in process_types):
        if seconds:
            svc.store.set_autosleep(app, ptype, seconds)
            out(f"-----> {ptype}: sleeps after {seconds} s without a request (app.json formation autosleep)")
    if quantities:
        out("-----> Formation from app.json: " + " ".join(f"{k}={v}" for k, v in quantities.items()))


def run_postdeploy(svc: Services, app: App, release: Release, out: Out) -> None:
    """app.json's postdeploy script, once, after the first successful deploy. The release is
    live whatever it does: a failure is reported with how to run it again by hand."""
    command = release.manifest.get("scripts", {}).get("postdeploy")
    if not command:
        return
    out(f"-----> Running app.json postdeploy script (once, after the first deploy): {command}")
    image = f"{svc.settings.image_repo(app.name)}:v{release.version}"
    code = svc.scheduler.run_once(app.name, release, "postdeploy", command, image,
                                  lambda line: out(f"       {line}"), svc.settings.build_timeout)
    if code == 0:
        out("       Postdeploy script succeeded")
        svc.store.add_event(app, "dockyard", "api", "app.json postdeploy script succeeded")
    else:
        out(f"       Postdeploy script exited with code {code}; v{release.version} stays live. Run it "
            f"again with: dockyard run -a {app.name} -- {command}")
        svc.store.add_event(app, "dockyard", "api", f"app.json postdeploy script exited with code {code}")
