"""Source -> image with Heroku classic buildpacks (the I/O shell around builder/buildpacks.py).

The buildpacks' bin/detect, bin/compile and bin/release run inside ONE limited build container
of the build image (DOCKYARD_BUILD_IMAGE), never on the host: the source is mounted at /app
(BUILD_DIR), the app's cache at /cache (CACHE_DIR, kept between builds), its config vars at /env
(ENV_DIR, one file per var, read-only). The compiled /app (the slug) then becomes an image:
the run stack + the slug, with dependency directories in their own cached layer."""
from __future__ import annotations

import configparser
import contextlib
import dataclasses
import functools
import hashlib
import os
import shutil
import stat
import threading
from datetime import datetime, timezone
from pathlib import Path

from .buildpacks import (DEPS_DIRS, DEPS_KEY_TAG, DEPS_MARKER, LAUNCHER, STACK_MARKER, BuildpackError, BuildpackRef,
                         deps_dockerfile, deps_layer_marker, format_output_line, found_languages, no_match_message,
                         parse_marker, parse_release_yaml, redact, redact_url_credentials, safe_env_files,
                         select_buildpacks, slug_dockerfile)
from .slug import read_no_follow, safe_dockyard_dir
from .errors import BuildError, BuildTimeout, ImageBuildFailed, NoBuildMethod
from .job import BuildConfig, BuildEngine, BuildJob, Cancelled, Out
from .runtime_setup import prepare

ROOT = Path(__file__).resolve().parent.parent
BUILTIN_DIR = ROOT / "buildpacks"
RUNNER = Path(__file__).resolve().parent / "runner.sh"
APP_UID = 1000
CA_IN_CONTAINER = "/etc/ssl/certs/ca-certificates.crt"


PIP_CONFIG_FILES = ("/etc/pip.conf", "/etc/xdg/pip/pip.conf", "~/.pip/pip.conf", "~/.config/pip/pip.conf")
NPM_CONFIG_FILES = ("/etc/npmrc", "/usr/etc/npmrc", "~/.npmrc")


@functools.lru_cache(maxsize=4)
def host_registry_settings(pip_index_url: str = "", npm_registry: str = "") -> tuple[tuple[str, str], ...]:
    """The index URLs the host itself is configured with (pip's global index-url, npm's registry:
    the operator's settings, BuildConfig.pip_index_url / npm_registry, else their config files;
    later files win, like pip and npm), passed to builds so they use the same registries. Read
    once per process."""
    found = {}
    pip_url = pip_index_url
    if not pip_url:
        parser = configparser.RawConfigParser()
        try:
            parser.read([os.path.expanduser(f) for f in PIP_CONFIG_FILES])
            pip_url = parser.get("global", "index-url", fallback="")
        except configparser.Error:
            pip_url = ""
    npm_url = npm_registry
    if not npm_url:
        for f in NPM_CONFIG_FILES:
            try:
                text = Path(os.path.expanduser(f)).read_text(errors="replace")
            except OSError:
                continue
            for line in text.splitlines():
                key, sep, value = line.partition("=")
                if sep and key.strip() == "registry":
                    npm_url = value.strip()
    for key, value in (("PIP_INDEX_URL", pip_url.split()[0] if pip_url.split() else ""), ("NPM_CONFIG_REGISTRY", npm_url)):
        if value.startswith(("http://", "https://")):
            found[key] = value
    return tuple(found.items())


def _chown_tree(path: Path) -> None:
    os.chown(path, APP_UID, APP_UID)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), APP_UID, APP_UID)


CLONE_TIMEOUT = 120
# The clone runs `git` inside the build image as the unprivileged build user, with no mounts but
# its own empty output dir: no host credentials (~/.netrc, keys), no platform state. A URL's
# credentials reach git through this helper from the environment, never on a command line
# (`ps` on the host shows every container's processes).
_CREDENTIAL_HELPER = ('!f() { test "$1" = get || exit 0; [ -n "$BP_USER$BP_PASSWORD" ] || exit 0; '
                      'printf "username=%s\\npassword=%s\\n" "$BP_USER" "$BP_PASSWORD"; }; f')


def resolve_buildpack(ref: BuildpackRef, workdir: Path, say: Out, clone=None) -> Path:
    """A host directory holding the buildpack (bin/detect, bin/compile, bin/release).
    `clone(ref, dest)` fetches a git buildpack into the empty directory `dest`, in a container."""
    if ref.kind == "builtin":
        return BUILTIN_DIR / ref.value
    if ref.kind == "path":
        path = Path(ref.value)
        if not (path / "bin").is_dir():
            raise BuildpackError(f"The buildpack {ref.value[:80]!r} has no bin/ directory on the Dockyard machine: "
                                 "give the absolute path of a directory with bin/detect, bin/compile and bin/release.")
        return path
    dest = workdir / f"bp-{len(list(workdir.glob('bp-*')))}"
    dest.mkdir(mode=0o755)
    os.chown(dest, APP_UID, APP_UID)
    say(f"-----> Fetching buildpack {ref.label}")
    if clone is None:
        raise BuildpackError(f"Git buildpacks cannot be fetched here: use a shipped buildpack instead of {ref.label[:80]}.")
    clone(ref, dest)
    bin_dir = dest / "bin"
    if bin_dir.is_symlink() or not bin_dir.is_dir():
        raise BuildpackError(f"The buildpack {ref.label[:80]} has no bin/ directory: it must hold bin/detect, "
                             "bin/compile and bin/release.")
    return dest


def container_clone(engine: BuildEngine, config: BuildConfig, job: BuildJob, cancelled: Cancelled):
    """The `clone` for resolve_buildpack: `git clone` in a build container of its own."""
    def clone(ref: BuildpackRef, dest: Path) -> None:
        lines: list[str] = []
        cmd = ["git", "-c", "credential.helper=", "-c", f"credential.helper={_CREDENTIAL_HELPER}",
               "clone", "-q", "--depth", "1"] + (["--branch", ref.ref] if ref.ref else []) + ["--", ref.value, "/out"]
        user, password = ref.auth or ("", "")
        env = {"HOME": "/tmp", "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1",
               "GIT_ALLOW_PROTOCOL": "http:https:git", "BP_USER": user, "BP_PASSWORD": password}
        binds = {"/out": (str(dest), False)}
        if config.ca_bundle and os.path.isfile(config.ca_bundle):
            binds[CA_IN_CONTAINER] = (config.ca_bundle, True)
            env["GIT_SSL_CAINFO"] = CA_IN_CONTAINER
        try:
            run = engine.run_build_container(job.app, job.build_id, config.build_image, cmd, binds, env,
                                             lines.append, CLONE_TIMEOUT, cancelled)
        except ImageBuildFailed as e:
            raise BuildError(e.message) from None
        if run.timed_out:
            raise BuildpackError(f"Fetching the buildpack {ref.label[:80]} took longer than {CLONE_TIMEOUT} s: "
                                 "check the URL.")
        if run.exit_code != 0:
            detail = " ".join(" ".join(lines).split())
            for secret in (password, user):
                if len(secret) >= 3:
                    detail = detail.replace(secret, "***")
            detail = redact_url_credentials(detail)[:200]
            raise BuildpackError(f"Could not fetch the buildpack {ref.label[:80]} (git clone exited {run.exit_code}: "
                                 f"{detail}): check the URL and ref in BUILDPACK_URL or .buildpacks. Builds reach "
                                 "only the outside network, never the platform itself.")
    return clone


def build_with_buildpacks(engine: BuildEngine, config: BuildConfig, job: BuildJob, src: Path, workdir: Path,
                          say: Out, cancelled: Cancelled, build_command: str = "", web_declared: str = "",
                          languages: tuple[str, ...] = ()) -> tuple[dict, str]:
    """Compile `src` with buildpacks and build the image `job.tag`. `build_command` (render.yaml's
    buildCommand) runs after them in the same container, with the app's config in its
    environment. `web_declared` names the file that gives the web command (render.yaml). Returns (process type defaults from bin/release, the method string recorded
    with the build)."""
    bp_file = src / ".buildpacks"
    refs, source = select_buildpacks(job.config, bp_file.read_text(errors="replace") if bp_file.is_file() else None,
                                     config.buildpack_paths, languages)
    if source != "detect":
        say(f"-----> Buildpacks from {source}: {', '.join(r.alias or r.label for r in refs)}")
    for r in refs:
        if r.alias:
            say(f"       {redact_url_credentials(r.alias)[:80]} is Dockyard's shipped {r.value} buildpack (nothing is fetched)")
    for r in refs:   # the operator's dir, not a link from it to elsewhere
        real = os.path.realpath(r.value) if r.kind == "path" else ""
        if r.kind == "path" and not any(real == p or real.startswith(p + "/") for p in config.buildpack_paths):
            raise BuildpackError(f"The buildpack path {r.value[:80]!r} leads outside DOCKYARD_BUILDPACK_PATHS: "
                                 "use a directory the operator allowed.")
    clone = container_clone(engine, config, job, cancelled)
    dirs = [resolve_buildpack(r, workdir, say, clone) for r in refs]
    order = tuple(r.value if r.kind == "builtin" else "" for r in refs)
    prepared = prepare(config, engine, job, src, say, cancelled, order, detect=source == "detect")
    config = prepared.config     # the stack the app's Python asks for, when it is not the default
    meta = workdir / "meta"
    binds, env = _container_spec(config, job, src, workdir, meta, dirs, source)
    binds.update(prepared.binds)
    env.update(prepared.env)
    if build_command:
        env["DOCKYARD_BUILD_COMMAND"] = build_command
    elif source == "detect" or len(refs) == 1:
        # One buildpack and nothing after it: it may leave its unchanged dependencies out of the
        # slug and name the image layer that holds them (deps_layer_marker)
        env["DOCKYARD_DEPS_LAYERS"] = " ".join(
            t[len(DEPS_KEY_TAG):] for t in engine.image_tags(config.image_repo(job.app), DEPS_KEY_TAG))
    if web_declared:   # the buildpacks neither propose a default web nor ask for a Procfile
        env["DOCKYARD_WEB_DECLARED"] = web_declared
    if source == "detect":
        say("-----> Detecting buildpack (in order: " + ", ".join(r.label for r in refs) + ")")
    found = found_languages(set(os.listdir(src)))     # named when nothing detects the app
    detected = _run_buildpacks(engine, config, job, refs, binds, env, source, say, cancelled, found)
    chosen = [i for i, rc, _ in detected if rc == 0]
    defaults: dict[str, str] = {}
    for i in chosen:
        text = read_no_follow(meta / f"release-{i}.yml")
        defaults.update(parse_release_yaml(text, refs[i].label))
    names = [name for i, rc, name in detected if rc == 0]
    method = "buildpack:" + ",".join(refs[i].label for i in chosen)
    if names:
        method += f" ({', '.join(names)})"
    _image_from_slug(engine, config, job, src, workdir, say, cancelled, "DOCKYARD_DEPS_LAYERS" in env)
    return defaults, method


def _container_spec(config: BuildConfig, job: BuildJob, src: Path, workdir: Path, meta: Path, dirs: list[Path],
                    source: str) -> tuple[dict[str, tuple[str, bool]], dict[str, str]]:
    """The build container's mounts (host path, read-only) and environment."""
    env_dir = workdir / "env"
    env_dir.mkdir(mode=0o700)
    meta.mkdir()
    for key, value in safe_env_files(job.config).items():
        (env_dir / key).write_text(value)
    cache = config.cache_dir(job.cache_key or job.app)
    cache.mkdir(parents=True, exist_ok=True)
    for d in (src, env_dir, meta):
        _chown_tree(d)
    os.chown(cache, APP_UID, APP_UID)   # what is inside was written by the build user already
    binds: dict[str, tuple[str, bool]] = {
        "/app": (str(src), False), "/cache": (str(cache), False), "/env": (str(env_dir), True),
        "/meta": (str(meta), False), "/dockyard/runner.sh": (str(RUNNER), True)}
    for i, d in enumerate(dirs):
        binds[f"/buildpacks/{i}"] = (str(d), True)
    env = {"DOCKYARD_MODE": "detect" if source == "detect" else "all", "HOME": "/home/app",
           "STACK": config.stack_image.rpartition(":")[2] or "bookworm", "DOCKYARD_APP": job.app, "SOURCE_VERSION": job.commit,
           "LANG": "C.UTF-8"}
    if job.commit_time:   # e.g. for resolving unpinned dependencies as of the commit's date
        env["DOCKYARD_COMMIT_DATE"] = datetime.fromtimestamp(job.commit_time, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    env.update(dict(host_registry_settings(config.pip_index_url, config.npm_registry)))
    if config.ca_bundle:
        if not os.path.isfile(config.ca_bundle):
            raise BuildError(f"DOCKYARD_BUILD_CA_BUNDLE={config.ca_bundle} is not a file: point it at a "
                             "CA bundle (e.g. /etc/ssl/certs/ca-certificates.crt) or set it to 'none'.")
        binds[CA_IN_CONTAINER] = (config.ca_bundle, True)
        env.update(PIP_CERT=CA_IN_CONTAINER, REQUESTS_CA_BUNDLE=CA_IN_CONTAINER, SSL_CERT_FILE=CA_IN_CONTAINER,
                   NODE_EXTRA_CA_CERTS=CA_IN_CONTAINER, NPM_CONFIG_CAFILE=CA_IN_CONTAINER)
    return binds, env


def _run_buildpacks(engine: BuildEngine, config: BuildConfig, job: BuildJob, refs: list[BuildpackRef],
                    binds: dict, env: dict, source: str, say: Out, cancelled: Cancelled,
                    found: list[str]) -> list[tuple[int, int, str]]:
    """Run detect/compile/release in the build container, following the runner's markers.
    Returns the detect results [(buildpack index, exit code, name)]; raises on any failure."""
    detected: list[tuple[int, int, str]] = []
    state = {"compiling": None, "failed": None, "done": None, "missing": None}
    finished = threading.Event()

    def on_line(line: str) -> None:
        marker = parse_marker(line)
        if marker is None:
            say(redact(format_output_line(line), job.config))
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
        elif event == "build-command":
            say(f"-----> Running render.yaml buildCommand: {' '.join(args)}")
        elif event == "build-command-failed":
            state["failed"] = (event, -1, int(args[0]))
        elif event == "done":
            state["done"] = True
            finished.set()     # the runner's last line: the slug and release YAML are complete

    try:
        run = engine.run_build_container(
            job.app, job.build_id, config.build_image, ["/bin/bash", "/dockyard/runner.sh"], binds, env, on_line,
            config.timeout, cancelled, finished=finished)
    except ImageBuildFailed as e:
        raise BuildError(e.message) from None
    _raise_for_outcome(run, config, refs, state, detected, source, found)
    return detected


def _raise_for_outcome(run, config: BuildConfig, refs: list[BuildpackRef], state: dict,
                       detected: list[tuple[int, int, str]], source: str, found: list[str]) -> None:
    if run.timed_out:
        stage = f" in {refs[state['compiling']].label}'s bin/compile" if state["compiling"] is not None else ""
        raise BuildTimeout(f"The build ran longer than {config.timeout} s{stage} and was stopped (its "
                           "container was killed): make it faster, or raise DOCKYARD_BUILD_TIMEOUT.")
    if run.oom_killed or run.exit_code == 137:
        raise BuildError(f"The build ran out of memory (limit {config.memory_mb} MB, raise "
                         "DOCKYARD_BUILD_MEMORY_MB) and was stopped.")
    if run.exit_code == 0 and state["done"]:
        return
    if state["missing"]:
        idx, what = state["missing"]
        raise BuildpackError(f"The buildpack {refs[idx].label} has no {what}: a buildpack needs bin/detect, "
                             "bin/compile and bin/release.")
    if state["failed"] and state["failed"][0] == "build-command-failed":
        raise BuildError(f"render.yaml's buildCommand failed (exit {state['failed'][2]}); its output is above. "
                         "Fix the command (it runs after the buildpacks, in /app, with the app's config vars "
                         "set) and push again.")
    if state["failed"] and state["failed"][2] == 137:
        event, idx, rc = state["failed"]
        raise BuildError(f"The {refs[idx].label} buildpack was killed (exit 137): out of memory (limit "
                         f"{config.memory_mb} MB, raise DOCKYARD_BUILD_MEMORY_MB).")
    if state["failed"]:
        event, idx, rc = state["failed"]
        step = "bin/compile" if event == "compile-failed" else "bin/release"
        raise BuildpackError(f"The {refs[idx].label} buildpack's {step} failed (exit {rc}); its output is above. "
                             "Fix the problem it reports and push again.")
    if run.exit_code == 100:
        if source == "detect":
            raise NoBuildMethod(no_match_message([(r, "") for r in refs], found))
        bad = next((refs[i].label for i, rc, _ in detected if rc != 0), refs[len(detected) - 1].label
                   if detected else refs[0].label)
        raise BuildpackError(f"The app is not compatible with the buildpack {bad} (its bin/detect exited "
                             f"non-zero): check BUILDPACK_URL / .buildpacks, or unset it to use detection.")
    raise BuildError(f"The build container exited with code {run.exit_code} before finishing; its output is above.")


def _image_from_slug(engine: BuildEngine, config: BuildConfig, job: BuildJob, slug: Path, workdir: Path,
                     say: Out, cancelled: Cancelled, deps_layers: bool) -> None:
    """stack + slug -> image. The dependency directories (.heroku, node_modules) become their own
    image, reused as long as it exists, so a push that changes only code sends and copies only
    the code. `deps_layers`: the buildpack was told which of those images exist and may name
    one in .dockyard/deps-layer instead of leaving its dependencies in the slug."""
    # The slug was written by the build (tenant code): nothing in it is followed on the host.
    has_rootfs = safe_dockyard_dir(slug, LAUNCHER)
    (slug / ".dockerignore").unlink(missing_ok=True)   # the slug is copied whole (a link goes, not its target)
    ctx = workdir / "image"
    ctx.mkdir()
    app_dir = ctx / "app"
    os.replace(slug, app_dir)
    rootfs = app_dir / ".dockyard" / "rootfs"
    if has_rootfs:
        os.replace(rootfs, ctx / "rootfs")
    deps_ctx = workdir / "deps-image"
    stack_marker = app_dir / ".dockyard" / STACK_MARKER
    if read_no_follow(stack_marker, 100).strip() == "scratch":
        # a slug that brings everything it runs (a static site with busybox in .dockyard/rootfs)
        config = dataclasses.replace(config, stack_image="scratch")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(stack_marker)
    marker = app_dir / ".dockyard" / DEPS_MARKER
    key, reused = deps_layer_marker(read_no_follow(marker, 200)) if deps_layers else ("", False)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(marker)   # the link itself, never a target
    if key and reused:
        base = _reuse_deps_layer(engine, config, job, app_dir, key, say)
    else:
        base = _deps_layer(engine, config, job, app_dir, deps_ctx, workdir, key, say, cancelled)
    deps = base != config.stack_image
    (workdir / "Dockerfile.slug").write_text(slug_dockerfile(base, from_stack=not deps, rootfs=has_rootfs))
    say(f"-----> Importing the slug ({_size(ctx) / 1e6:.1f} MB) onto {base}")
    _engine_build(engine, job, ctx, job.tag, workdir / "Dockerfile.slug", cancelled, build_id=job.build_id)


def _reuse_deps_layer(engine: BuildEngine, config: BuildConfig, job: BuildJob, app_dir: Path, key: str,
                      say: Out) -> str:
    """The buildpack found its dependencies unchanged and left them out of the slug (their
    directories hold at most links into its cache): the image layer made from them before."""
    for name in DEPS_DIRS:
        path = app_dir / name
        if path.is_symlink():
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path)   # removes links inside, never follows them
    base = f"{config.image_repo(job.app)}:{DEPS_KEY_TAG}{key[:16]}"
    if not engine.image_exists(base):
        raise BuildError("The image layer of the app's unchanged dependencies went away during the build: push "
                         "again (the next build installs them into a new one).")
    say("-----> Dependencies unchanged: reusing their image layer (nothing copied)")
    return base


def _deps_layer(engine: BuildEngine, config: BuildConfig, job: BuildJob, app_dir: Path, deps_ctx: Path,
                workdir: Path, key: str, say: Out, cancelled: Cancelled) -> str:
    """The image with the slug's dependency directories, made once: tagged by the buildpack's key
    of them when it gave one (a later build that finds them unchanged names it), else by a
    digest of their content (reused while it exists). The stack when there are none."""
    deps = [n for n in DEPS_DIRS if (app_dir / n).is_dir() and not (app_dir / n).is_symlink()]
    base = config.stack_image
    if deps:
        (deps_ctx / "deps").mkdir(parents=True)
        for name in deps:
            os.replace(app_dir / name, deps_ctx / "deps" / name)
        if key:   # the buildpacks put the stack and the runtime's version in their key
            base = f"{config.image_repo(job.app)}:{DEPS_KEY_TAG}{key[:16]}"
        else:     # the stack is part of the key: the same files on another stack are another image
            digest = hashlib.sha256(f"{base}\0{tree_digest(deps_ctx / 'deps')}".encode()).hexdigest()
            base = f"{config.image_repo(job.app)}:deps-{digest[:16]}"
        if not key and engine.image_exists(base):
            say("-----> Dependencies unchanged since an earlier build: reusing their image layer")
        else:
            size = _size(deps_ctx)
            say(f"-----> Importing the dependencies ({size / 1e6:.1f} MB) onto {config.stack_image}")
            (workdir / "Dockerfile.deps").write_text(deps_dockerfile(config.stack_image))
            _engine_build(engine, job, deps_ctx, base, workdir / "Dockerfile.deps", cancelled, build_id=None)
            # older dependency images of the app: untagged (an image a release still builds on
            # keeps its layers; the engine deletes only what nothing uses)
            repo, _, keep = base.rpartition(":")
            engine.untag_images(repo, "deps-", keep)
    return base


def _engine_build(engine: BuildEngine, job: BuildJob, ctx: Path, tag: str, dockerfile: Path, cancelled: Cancelled,
                  build_id: str | None) -> None:
    try:
        engine.build(str(ctx), tag, lambda line: None, app=job.app, build_id=build_id, dockerfile=str(dockerfile),
                     cancelled=cancelled)
    except BuildTimeout:
        raise
    except ImageBuildFailed as e:
        raise BuildError(f"Making the image from the slug failed: {e.message}") from None


def _size(root: Path) -> int:
    """Bytes of the regular files below root (lstat: a link the build left is never followed)."""
    total = 0
    for parent, _dirs, files in os.walk(root):
        for name in files:
            st = os.lstat(os.path.join(parent, name))
            total += st.st_size if stat.S_ISREG(st.st_mode) else 0
    return total


def tree_digest(root: Path) -> str:
    """sha256 over every path, mode and content (or link target) below root, in sorted order."""
    h = hashlib.sha256()
    for parent, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files) + [d for d in dirs if os.path.islink(os.path.join(parent, d))]:
            path = os.path.join(parent, name)
            st = os.lstat(path)
            h.update(f"{os.path.relpath(path, root)}\0{st.st_mode:o}\0".encode("utf-8", "surrogateescape"))
            if stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(path).encode("utf-8", "surrogateescape"))
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
            h.update(b"\1")
    return h.hexdigest()
