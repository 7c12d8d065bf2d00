"""Source -> image with Heroku classic buildpacks (the I/O shell around builder/buildpacks.py).

The buildpacks' bin/detect, bin/compile and bin/release run inside ONE limited build container
of the build image (DOCKYARD_BUILD_IMAGE), never on the host: the source is mounted at /app
(BUILD_DIR), the app's cache at /cache (CACHE_DIR, kept between builds), its config vars at /env
(ENV_DIR, one file per var, read-only). The compiled /app (the slug) then becomes an image:
the run stack + the slug, with dependency directories in their own cached layer."""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable

from controller.errors import SchedulerError
from controller.models import App, Build
from controller.scheduler import LABEL_APP, LABEL_BUILD, LABEL_INSTANCE, BuildTimedOut, ImageBuildFailed
from controller.services import Out, Services

from .buildpacks import (DEPS_DIRS, LAUNCHER, BuildpackError, BuildpackRef, format_output_line,
                         no_match_message, parse_marker, parse_release_yaml, safe_env_files,
                         select_buildpacks, slug_dockerfile)
from .errors import BuildError, BuildTimeout, NoBuildMethod

ROOT = Path(__file__).resolve().parent.parent
BUILTIN_DIR = ROOT / "buildpacks"
RUNNER = Path(__file__).resolve().parent / "runner.sh"
APP_UID = 1000
CA_IN_CONTAINER = "/etc/ssl/certs/ca-certificates.crt"


@functools.lru_cache(maxsize=1)
def host_registry_settings() -> tuple[tuple[str, str], ...]:
    """The index URLs the host itself uses (pip's global.index-url, npm's registry), passed to
    builds so they reach the same registries. Asked once per process."""
    found = []
    for env_key, cmd in (("PIP_INDEX_URL", ["python3", "-m", "pip", "config", "get", "global.index-url"]),
                         ("NPM_CONFIG_REGISTRY", ["npm", "config", "get", "registry"])):
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        value = proc.stdout.strip()
        if proc.returncode == 0 and value.startswith(("http://", "https://")):
            found.append((env_key, value))
    return tuple(found)


def _chown_tree(path: Path) -> None:
    os.chown(path, APP_UID, APP_UID)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), APP_UID, APP_UID)


def resolve_buildpack(ref: BuildpackRef, workdir: Path, say: Out) -> Path:
    """A host directory holding the buildpack (bin/detect, bin/compile, bin/release)."""
    if ref.kind == "builtin":
        return BUILTIN_DIR / ref.value
    if ref.kind == "path":
        path = Path(ref.value)
        if not (path / "bin").is_dir():
            raise BuildpackError(f"The buildpack {ref.value[:80]!r} has no bin/ directory on the Dockyard machine: "
                                 "give the absolute path of a directory with bin/detect, bin/compile and bin/release.")
        return path
    dest = workdir / f"bp-{len(list(workdir.glob('bp-*')))}"
    say(f"-----> Fetching buildpack {ref.label}")
    cmd = ["git", "clone", "-q", "--depth", "1"] + (["--branch", ref.ref] if ref.ref else []) + [ref.value, str(dest)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False,
                              env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
    except subprocess.TimeoutExpired:
        raise BuildpackError(f"Fetching the buildpack {ref.label[:80]} took longer than 120 s: check the URL.") from None
    if proc.returncode != 0:
        detail = " ".join(proc.stderr.split())[:200]
        raise BuildpackError(f"Could not fetch the buildpack {ref.label[:80]} (git clone exited {proc.returncode}: "
                             f"{detail}): check the URL and ref in BUILDPACK_URL or .buildpacks.")
    if not (dest / "bin").is_dir():
        raise BuildpackError(f"The buildpack {ref.label[:80]} has no bin/ directory: it must hold bin/detect, "
                             "bin/compile and bin/release.")
    return dest


def build_with_buildpacks(svc: Services, app: App, build: Build, src: Path, workdir: Path, tag: str,
                          config: dict[str, str], say: Out, cancelled: Callable[[], bool]) -> tuple[dict, str]:
    """Compile `src` with buildpacks and build the image `tag`. Returns (process type defaults
    from bin/release, the method string recorded with the build)."""
    settings = svc.settings
    bp_file = src / ".buildpacks"
    refs, source = select_buildpacks(config, bp_file.read_text(errors="replace") if bp_file.is_file() else None)
    if source != "detect":
        say(f"-----> Buildpacks from {source}: {', '.join(r.label for r in refs)}")
    dirs = [resolve_buildpack(r, workdir, say) for r in refs]

    env_dir = workdir / "env"
    meta = workdir / "meta"
    env_dir.mkdir(mode=0o700)
    meta.mkdir()
    for key, value in safe_env_files(config).items():
        (env_dir / key).write_text(value)
    cache = settings.cache_dir(app.name)
    cache.mkdir(parents=True, exist_ok=True)
    for d in (src, env_dir, meta, cache):
        _chown_tree(d)
    os.chown(cache.parent, 0, 0)

    binds: dict[str, tuple[str, bool]] = {
        "/app": (str(src), False), "/cache": (str(cache), False), "/env": (str(env_dir), True),
        "/meta": (str(meta), False), "/dockyard/runner.sh": (str(RUNNER), True)}
    for i, d in enumerate(dirs):
        binds[f"/buildpacks/{i}"] = (str(d), True)
    env = {"DOCKYARD_MODE": "detect" if source == "detect" else "all", "HOME": "/home/app",
           "STACK": "bookworm", "DOCKYARD_APP": app.name, "SOURCE_VERSION": build.source_commit,
           "LANG": "C.UTF-8"}
    env.update(dict(host_registry_settings()))
    if settings.build_ca_bundle:
        if not os.path.isfile(settings.build_ca_bundle):
            raise BuildError(f"DOCKYARD_BUILD_CA_BUNDLE={settings.build_ca_bundle} is not a file: point it at a "
                             "CA bundle (e.g. /etc/ssl/certs/ca-certificates.crt) or set it to 'none'.")
        binds[CA_IN_CONTAINER] = (settings.build_ca_bundle, True)
        env.update(PIP_CERT=CA_IN_CONTAINER, REQUESTS_CA_BUNDLE=CA_IN_CONTAINER, SSL_CERT_FILE=CA_IN_CONTAINER,
                   NODE_EXTRA_CA_CERTS=CA_IN_CONTAINER, NPM_CONFIG_CAFILE=CA_IN_CONTAINER)

    detected: list[tuple[int, int, str]] = []
    state = {"compiling": None, "failed": None, "done": None, "missing": None}

    def on_line(line: str) -> None:
        marker = parse_marker(line)
        if marker is None:
            say(format_output_line(line))
            return
        event, args = marker
        if event == "detect" and len(args) >= 2:
            idx, rc, name = int(args[0]), int(args[1]), " ".join(args[2:]) or "?"
            detected.append((idx, rc, name))
            if rc == 0:
                say(f"-----> {name} app detected (buildpack {refs[idx].label})")
        elif event == "compile":
            state["compiling"] = int(args[0])
        elif event in ("compile-failed", "release-failed"):
            state["failed"] = (event, int(args[0]), int(args[1]))
        elif event == "missing":
            state["missing"] = (int(args[0]), " ".join(args[1:]))
        elif event == "done":
            state["done"] = True

    if source == "detect":
        say("-----> Detecting buildpack (in order: " + ", ".join(r.label for r in refs) + ")")
    try:
        run = svc.scheduler.run_build_container(
            app.name, build.id, settings.build_image, ["/bin/bash", "/dockyard/runner.sh"], binds, env, on_line,
            settings.build_timeout, cancelled)
    except ImageBuildFailed as e:
        raise BuildError(e.message) from None
    if run.timed_out:
        stage = f" in {refs[state['compiling']].label}'s bin/compile" if state["compiling"] is not None else ""
        raise BuildTimeout(f"The build ran longer than {settings.build_timeout} s{stage} and was stopped (its "
                           "container was killed): make it faster, or raise DOCKYARD_BUILD_TIMEOUT.")
    if run.oom_killed or run.exit_code == 137:
        raise BuildError(f"The build ran out of memory (limit {settings.build_memory_mb} MB, raise "
                         "DOCKYARD_BUILD_MEMORY_MB) and was stopped.")
    if run.exit_code != 0 or not state["done"]:
        if state["missing"]:
            idx, what = state["missing"]
            raise BuildpackError(f"The buildpack {refs[idx].label} has no {what}: a buildpack needs bin/detect, "
                                 "bin/compile and bin/release.")
        if state["failed"]:
            event, idx, rc = state["failed"]
            step = "bin/compile" if event == "compile-failed" else "bin/release"
            raise BuildpackError(f"The {refs[idx].label} buildpack's {step} failed (exit {rc}); its output is above. "
                                 "Fix the problem it reports and push again.")
        if run.exit_code == 100:
            if source == "detect":
                raise NoBuildMethod(no_match_message([(r, "") for r in refs]))
            bad = next((refs[i].label for i, rc, _ in detected if rc != 0), refs[len(detected) - 1].label
                       if detected else refs[0].label)
            raise BuildpackError(f"The app is not compatible with the buildpack {bad} (its bin/detect exited "
                                 f"non-zero): check BUILDPACK_URL / .buildpacks, or unset it to use detection.")
        raise BuildError(f"The build container exited with code {run.exit_code} before finishing; its output is above.")

    chosen = [i for i, rc, _ in detected if rc == 0]
    defaults: dict[str, str] = {}
    for i in chosen:
        text = (meta / f"release-{i}.yml").read_text(errors="replace") if (meta / f"release-{i}.yml").exists() else ""
        defaults.update(parse_release_yaml(text, refs[i].label))
    names = [name for i, rc, name in detected if rc == 0]
    method = "buildpack:" + ",".join(refs[i].label for i in chosen)
    if names:
        method += f" ({', '.join(names)})"

    _image_from_slug(svc, app, build, src, workdir, tag, say, cancelled)
    return defaults, method


def _image_from_slug(svc: Services, app: App, build: Build, slug: Path, workdir: Path, tag: str, say: Out,
                     cancelled: Callable[[], bool]) -> None:
    """stack + slug -> image. Dependency directories go into their own layer (reused by the
    engine's build cache when a push changes only code)."""
    settings = svc.settings
    ctx = workdir / "image"
    ctx.mkdir()
    (slug / ".dockyard").mkdir(exist_ok=True)
    (slug / ".dockyard" / "launch").write_text(LAUNCHER)
    (slug / ".dockerignore").unlink(missing_ok=True)   # the slug is copied whole
    app_dir = ctx / "app"
    os.replace(slug, app_dir)
    deps = []
    for name in DEPS_DIRS:
        if (app_dir / name).is_dir() and not (app_dir / name).is_symlink():
            (ctx / "deps").mkdir(exist_ok=True)
            os.replace(app_dir / name, ctx / "deps" / name)
            deps.append(name)
    rootfs = app_dir / ".dockyard" / "rootfs"
    has_rootfs = rootfs.is_dir() and not rootfs.is_symlink()
    if has_rootfs:
        os.replace(rootfs, ctx / "rootfs")
    labels = {LABEL_INSTANCE: settings.name, LABEL_APP: app.name, LABEL_BUILD: build.id}
    dockerfile = workdir / "Dockerfile.slug"
    dockerfile.write_text(slug_dockerfile(settings.stack_image, labels, {}, deps, has_rootfs))
    size = sum(f.stat().st_size for f in ctx.rglob("*") if f.is_file() and not f.is_symlink())
    say(f"-----> Compressing and importing the slug ({size / 1e6:.1f} MB) onto {settings.stack_image}")
    try:
        svc.scheduler.build(str(ctx), tag, {}, lambda line: None, dockerfile=str(dockerfile), cancelled=cancelled)
    except BuildTimedOut as e:
        raise BuildTimeout(e.message) from None
    except ImageBuildFailed as e:
        raise BuildError(f"Making the image from the slug failed: {e.message}") from None
    except SchedulerError:
        raise
