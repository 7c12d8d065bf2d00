"""Source -> image. The commit's tree is exported into a private temp dir (never a path
outside it), the build method is detected, and the image is built by the engine with
each line streamed back to the push as it happens. Returns what was built; recording it
is the controller's business."""
from __future__ import annotations

import dataclasses
import os
import re
import shutil
import stat
import tempfile
import time
from pathlib import Path

from core.errors import DockyardError
from core.piku import PikuError, serve_types
from core.procfile import parse_procfile

from .buildpack_build import build_with_buildpacks
from .checkout import check_tree
from .buildpacks import merge_process_types, procfile_example
from .dockerfile import referenced_images
from .herokuyml import parse_heroku_yml
from .errors import BaseImageMissing, BuildError, BuildTimeout, ImageBuildFailed, ImageNotAllowed, NoBuildMethod
from .job import BuildConfig, BuildEngine, BuildJob, BuildResult, Cancelled, CheckoutLimits, DiskCheck, Out
from .manifest import exposed_port, read_manifest

_STEP = re.compile(r"^Step (\d+/\d+) : (.*)$")
_EXIT = re.compile(r"returned a non-zero code: (\d+)")


def export_commit(repo, commit_sha: bytes, dest: Path, limits: CheckoutLimits | None = None) -> int:
    """Write the commit's tree into dest (files, executables, symlinks; submodules are
    skipped). Returns the number of files. The tree's total size and file count are checked
    against `limits` first, from the tree objects, before anything is written. Refuses any path
    that would leave dest: `..`, and a path through a symlink the tree itself made (a crafted
    tree may hold both `a -> /etc` and `a/x`). Files are created with O_EXCL|O_NOFOLLOW, so
    nothing is written through a link."""
    commit = repo[commit_sha]
    if limits is not None:
        check_tree(repo.object_store, commit.tree, limits)
    count = 0
    links: set[tuple[str, ...]] = set()
    for entry in repo.object_store.iter_tree_contents(commit.tree):
        rel = entry.path.decode("utf-8", "surrogateescape")
        parts = rel.split("/")
        if rel.startswith("/") or any(p in ("", ".", "..", ".git") for p in parts):
            raise BuildError(f"The commit contains an unsafe path {rel[:80]!r}: rename it and push again.")
        if any(tuple(parts[:i]) in links for i in range(1, len(parts))):
            raise BuildError(f"The commit has {rel[:80]!r} inside a symlink: commit real directories and push again.")
        target = dest.joinpath(*parts)
        mode = entry.mode
        if stat.S_ISDIR(mode) or mode == 0o160000:   # submodule (gitlink): not fetched
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        data = repo[entry.sha].data
        try:
            if stat.S_ISLNK(mode):
                os.symlink(data.decode("utf-8", "surrogateescape"), target)
                links.add(tuple(parts))
            else:
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                             0o755 if mode & 0o111 else 0o644)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.chmod(target, 0o755 if mode & 0o111 else 0o644, follow_symlinks=False)
        except FileExistsError:
            raise BuildError(f"The commit has {rel[:80]!r} twice: repair the tree and push again.") from None
        count += 1
    return count


def detect_method(src: Path) -> str:
    """Which way this source is built: heroku.yml, then a Dockerfile, else buildpacks.
    Pure apart from reading the directory listing."""
    if (src / "heroku.yml").is_file():
        return "heroku.yml"
    if (src / "Dockerfile").is_file():
        return "dockerfile"
    return "buildpack"


def tree_file(src: Path, rel: str) -> Path | None:
    """src/rel if it is a regular file inside the pushed tree, else None. A symlink is refused:
    the platform reads (and for a Dockerfile, appends to) these files as root on the host, so a
    committed `Dockerfile -> /etc/passwd` must never be followed."""
    path = src / rel
    if not path.exists() and not path.is_symlink():
        return None
    real = path.resolve()
    if path.is_symlink() or not real.is_relative_to(src.resolve()) or not real.is_file():
        raise BuildError(f"{rel[:80]} is a symlink or not a regular file: commit the file itself and push again.")
    return path


def process_types_for(src: Path) -> dict[str, str]:
    """Procfile process types, or the image's own command as `web`."""
    procfile = tree_file(src, "Procfile")
    if procfile is not None:
        types = parse_procfile(procfile.read_bytes())
        if types:
            return types
    return {"web": ""}


def check_disk(checks: tuple[DiskCheck, ...], min_free_mb: int) -> None:
    """Refuse a build early, naming the filesystem that is short of room and what frees it."""
    for check in checks:
        if os.path.exists(check.path):
            free_mb = shutil.disk_usage(check.path).free >> 20
            if free_mb < min_free_mb:
                raise BuildError(
                    f"Only {free_mb} MB free on {check.what} ({check.path}); a build needs at least {min_free_mb} MB "
                    f"(DOCKYARD_MIN_FREE_MB). {check.hint}, then push again.")


def build_copy_prefix(instance: str, app: str) -> str:
    """The temporary directory of a build's source copy: dockyard-build.<instance>.<app>.XXXXXXXX
    (names hold no dots, so an instance or app whose name starts like another's never matches)."""
    return f"dockyard-build.{instance}.{app}."


def build_commit(job: BuildJob, repo, engine: BuildEngine, config: BuildConfig, say: Out,
                 cancelled: Cancelled = lambda: False) -> BuildResult:
    """Build `job.commit` of `repo` into the image `job.tag`."""
    started = time.monotonic()
    check_disk(config.disk_checks, config.min_free_mb)
    job = dataclasses.replace(job, commit_time=repo[job.commit.encode()].commit_time)
    # named after the platform instance too: another instance's sweep never takes this copy
    with tempfile.TemporaryDirectory(prefix=build_copy_prefix(config.image_namespace, job.app)) as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        if export_commit(repo, job.commit.encode(), src, config.checkout_limits) == 0:
            raise NoBuildMethod("The pushed commit has no files: add your app's source (with a "
                                "Dockerfile, heroku.yml, or files a buildpack detects, e.g. "
                                "requirements.txt or package.json), commit, and push again.")
        method = detect_method(src)
        for rel in ("heroku.yml", "Dockerfile", "Procfile", ".buildpacks", "app.json", "render.yaml", "CHECKS"):
            tree_file(src, rel)   # refuses symlinks before anything reads them
        # a bad app.json (or CHECKS, or a required env var not set) fails before building
        healthchecks, manifest = read_manifest(src, config.app_port, job.config, job.app, say)
        head = f"-----> Building {job.app} ({job.commit[:8]})"
        if method == "heroku.yml":
            yml = parse_heroku_yml((src / "heroku.yml").read_text(errors="replace"))
        if method == "heroku.yml" and yml.languages:
            say(f"{head} with buildpacks (heroku.yml build.languages: {', '.join(yml.languages)})")
            port = None
            process_types, method = _build_buildpacks(engine, config, job, src, Path(tmp), say, cancelled,
                                                      manifest.get("render", {}), yml)
        elif method == "heroku.yml":
            process_types = yml.process_types
            method = f"heroku.yml ({yml.dockerfile})"
            say(f"{head} with heroku.yml: {yml.dockerfile}")
            _build_dockerfile(engine, config, job, src, say, cancelled, yml.dockerfile)
            port = _routed_port(engine, job, config, say)
        elif method == "dockerfile":
            process_types = process_types_for(src)
            render_types = manifest.get("render", {}).get("process_types")
            if render_types and tree_file(src, "Procfile") is None:
                process_types = {"web": "", **render_types}
            say(f"{head} with Dockerfile")
            _build_dockerfile(engine, config, job, src, say, cancelled)
            port = _routed_port(engine, job, config, say)
        else:
            say(f"{head} with buildpacks")
            port = None
            process_types, method = _build_buildpacks(engine, config, job, src, Path(tmp), say, cancelled,
                                                      manifest.get("render", {}))
    size = engine.image_size(job.tag)
    say(f"-----> Build succeeded in {time.monotonic() - started:.1f} s; "
        + (f"image {size / 1e6:.1f} MB; " if size else "")
        + f"process types: {', '.join(sorted(process_types))}")
    if port is not None:
        manifest = {**manifest, "port": port}
    return BuildResult(method=method, process_types=process_types, healthchecks=healthchecks, manifest=manifest)


def _routed_port(engine: BuildEngine, job: BuildJob, config: BuildConfig, say: Out) -> int | None:
    """Like Deis and Dokku: an image that EXPOSEs one port is routed to it, with $PORT set to
    it, so an app that ignores $PORT works; otherwise processes listen on $PORT."""
    port = exposed_port(engine.image_config(job.tag))
    if port is not None and port != config.app_port:
        say(f"-----> The image EXPOSEs port {port}: the router sends traffic there ($PORT is {port})")
    return port


def _build_buildpacks(engine: BuildEngine, config: BuildConfig, job: BuildJob, src: Path, workdir: Path,
                      say: Out, cancelled: Cancelled, render: dict, yml=None) -> tuple[dict, str]:
    """Process types: heroku.yml's `run` (a `build.languages` build) wins, then the Procfile, then
    render.yaml's commands, then the buildpacks' defaults."""
    procfile = parse_procfile((src / "Procfile").read_bytes()) if (src / "Procfile").is_file() else {}
    try:
        procfile, served = serve_types(procfile)
    except PikuError as e:
        raise BuildError(e.message) from None
    for line in served:
        say(f"-----> Procfile {line} (piku's convention)")
    if yml is not None and yml.process_types:
        say("-----> heroku.yml run declares types: " + ", ".join(sorted(yml.process_types)))
        procfile = {**procfile, **yml.process_types}
    web_declared = "render.yaml" if "web" in render.get("process_types", {}) and "web" not in procfile else ""
    defaults, method = build_with_buildpacks(engine, config, job, src, workdir, say, cancelled,
                                             render.get("build_command", ""), web_declared,
                                             yml.languages if yml is not None else ())
    render_types = {k: v for k, v in render.get("process_types", {}).items() if k not in procfile}
    if render_types:
        say("-----> render.yaml declares types: " + ", ".join(sorted(render_types)))
    process_types = merge_process_types({**defaults, **render_types}, procfile)
    if not process_types:
        used = method.partition(":")[2].partition(" (")[0].split(",")
        raise BuildError("The app has no process types: no Procfile, and the buildpack gave no default "
                         f"(see its message above). Add a Procfile, e.g. `{procfile_example(used)}`.")
    if procfile:
        say("-----> Procfile declares types: " + ", ".join(sorted(procfile)))
    extra = sorted(set(defaults) - set(procfile) - set(render_types))
    if extra:
        say("-----> Default types for buildpack: " + ", ".join(extra))
    return process_types, method


def _build_dockerfile(engine: BuildEngine, config: BuildConfig, job: BuildJob, src: Path, say: Out,
                      cancelled: Cancelled, name: str = "Dockerfile") -> None:
    if tree_file(src, name) is None:
        raise BuildError(f"heroku.yml names {name[:80]}, which is not a file in the repository: "
                         "fix the path under build.docker.")
    dockerfile = (src / name).read_text(errors="replace")
    # A second line, for clear early messages: the sandbox holds only what is loaded here, so
    # an image this parsing misses is simply absent from the build.
    for image in referenced_images(dockerfile):
        check_image_allowed(config, job, image)
        if engine.provide_image(image):   # from the platform's engine into the build's sandbox
            continue
        pull_base_image(engine, config, job, image, say, cancelled)   # into the platform's engine first
        if not engine.provide_image(image):
            raise BaseImageMissing(f"The Dockerfile builds FROM {image[:80]}, which went from this machine's "
                                   "Docker engine meanwhile: push again.")
    last_step = ["", ""]

    def on_line(line: str) -> None:
        m = _STEP.match(line)
        if m:
            last_step[:] = [m.group(1), m.group(2)]
        say(f"       {line}")

    try:
        engine.build_sandboxed(str(src), job.tag, on_line, app=job.app, build_id=job.build_id, dockerfile=name,
                               cancelled=cancelled)
    except BuildTimeout:
        raise
    except ImageBuildFailed as e:
        where = f"Dockerfile step {last_step[0]} ({last_step[1][:60]}) failed: " if last_step[0] else ""
        detail = e.message
        m = _EXIT.search(detail)
        if m and m.group(1) == "137":
            detail = (f"out of memory (the build limit is {config.memory_mb} MB; raise "
                      "DOCKYARD_BUILD_MEMORY_MB)")
        raise BuildError(f"{where}{detail}") from None


def pull_base_image(engine: BuildEngine, config: BuildConfig, job: BuildJob, image: str, say: Out,
                    cancelled: Cancelled) -> None:
    """A base image the engine lacks: pulled when the admin's allow-list admits it (shared by
    every app that builds on it), with the pull's progress in the push output."""
    if job.may_pull is None or not job.may_pull(image):
        raise BaseImageMissing(
            f"The Dockerfile builds FROM {image[:80]}, which is not in this machine's Docker engine, and no "
            "pull pattern admits it (DOCKYARD_PULL_ALLOW: an admin's list, Docker's official images by "
            "default): use an admitted image, the stack image or FROM scratch, or ask an admin to admit it.")
    say(f"-----> Pulling the base image {image[:80]} (shared by every app that builds on it)")
    try:
        engine.pull_image(image, lambda line: say(f"       {line}"), cancelled)
    except DockyardError as e:
        raise BaseImageMissing(
            f"The Dockerfile builds FROM {image[:80]}, which is not in this machine's Docker engine, and pulling it "
            f"failed ({e.message}). Where this machine has no registry to pull from, set DOCKYARD_REGISTRY_MIRROR "
            f"to a registry it reaches, or build FROM {config.stack_image} (the stack) or FROM scratch.") from None


def check_image_allowed(config: BuildConfig, job: BuildJob, image: str) -> None:
    """A build may read the stack image, images of the pusher's own apps and images the operator
    allowed (`job.may_use_image` says); any other image in the engine may be another tenant's."""
    if "$" in image:
        raise ImageNotAllowed(f"The Dockerfile names an image with a build ARG ({image[:80]}), which cannot be "
                              "checked before the build: write the image name itself.")
    if image == config.stack_image or (job.may_use_image is not None and job.may_use_image(image)):
        return
    if job.may_pull is not None and job.may_pull(image):
        return
    raise ImageNotAllowed(f"The Dockerfile uses the image {image[:80]}, which this build may not use: only "
                          f"{config.stack_image} (the stack), images your apps built and images an admin allowed "
                          "(`dockyard images:allow IMAGE`) may be built on, and images a pull pattern admits (DOCKYARD_PULL_ALLOW).")
