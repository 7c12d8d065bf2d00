"""Before a buildpack build: pick the stack and the language runtimes the app asks for.

- Python: .python-version / runtime.txt picks the stack (a Debian suite) that ships that
  Python; the build runs on that suite's build image and the app on its run stack. A stack
  that is not in the engine yet is built once, here, with its progress in the push output.
- Go / Node.js: the toolchain the app asks for is installed once into the machine-wide runtime
  cache and mounted read-only at /dockyard/go or /dockyard/node in the build container."""
from __future__ import annotations

import dataclasses
import fcntl
import os
import queue
import signal
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import languages, runtimes
from .errors import BuildError, BuildTimeout, RuntimeUnavailable
from .job import BuildConfig, BuildEngine, BuildJob, Cancelled, Out
from .runtime_cache import GO, NODE, RuntimeCache

ROOT = Path(__file__).resolve().parent.parent
PYTHON_FILES = ("requirements.txt", "pyproject.toml", "setup.py", "Pipfile.lock", "uv.lock")
DEFAULT_NODE_MAJOR = 24
STACK_BUILD_TIMEOUT = 1800


@dataclass
class Prepared:
    config: BuildConfig
    binds: dict[str, tuple[str, bool]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)


def _text(src: Path, rel: str, limit: int = 1 << 20) -> str | None:
    """A regular file of the pushed tree (never a symlink: read as root on the host)."""
    path = src / rel
    try:
        if path.is_symlink() or not path.is_file() or not path.resolve().is_relative_to(src.resolve()):
            return None
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read(limit)
    except OSError:
        return None


def prepare(config: BuildConfig, engine: BuildEngine, job: BuildJob, src: Path, say: Out,
            cancelled: Cancelled, order: tuple[str, ...] = (), detect: bool = True) -> Prepared:
    """order: the shipped buildpacks to run ('' for another), detect: whether the first that
    detects is used (else all run)."""
    out = Prepared(config)
    present = {p.name + ("/" if p.is_dir() else "") for p in src.iterdir() if not p.is_symlink()}
    present |= {"*.go"} if any(n.endswith(".go") for n in present) else set()
    language = languages.language_of(list(order), present, detect)
    if language is not None:
        _language(out, engine, language, src, say, cancelled)
    if any(_text(src, f) is not None for f in PYTHON_FILES):
        _python(out, engine, src, say, cancelled)
    cache = RuntimeCache(config.runtimes_root) if config.runtimes_root else None
    go_files = {f: _text(src, f) for f in ("go.mod", "Godeps/Godeps.json", "vendor/vendor.json")}
    go_files["*.go"] = "" if any(p.suffix == ".go" and p.is_file() and not p.is_symlink() for p in src.iterdir()) else None
    go_app = runtimes.go_request(go_files)
    if go_app is not None and cache is not None:
        pick = runtimes.pick_go(go_app.want, go_app.source, cache.available(GO))
        goroot = cache.ensure(GO, pick.version, say)
        out.binds["/dockyard/go"] = (str(goroot), True)
        seed = go_std_cache(engine, config, job, goroot, say, cancelled)
        if seed is not None:
            out.binds["/dockyard/go-std-cache"] = (str(seed), True)
        out.env.update(DOCKYARD_GO_VERSION=pick.version, DOCKYARD_GO_NOTE=pick.note, DOCKYARD_GO_KIND=go_app.kind)
    package_json = _text(src, "package.json")
    if package_json is not None and cache is not None:
        pick = runtimes.pick_node(runtimes.node_request(package_json), cache.available(NODE), DEFAULT_NODE_MAJOR)
        out.binds["/dockyard/node"] = (str(cache.ensure(NODE, pick.version, say)), True)
        out.env.update(DOCKYARD_NODE_VERSION=pick.version, DOCKYARD_NODE_NOTE=pick.note)
    return out


MIRROR_IN_CONTAINER = "/dockyard/mirror"


def _language(out: Prepared, engine: BuildEngine, language: str, src: Path, say: Out, cancelled: Cancelled) -> None:
    """Ruby, PHP, JVM: the runtime the app asks for (refused when the stack lacks it), the build on
    the language's build image and the app on its run stack, and where dependencies come from."""
    if language == "ruby":
        rt = languages.pick_ruby(_text(src, "Gemfile"), _text(src, ".ruby-version"))
    elif language == "php":
        rt, exts = languages.pick_php(_text(src, "composer.json"))
        out.env["DOCKYARD_PHP_EXTENSIONS"] = " ".join(exts)
    else:
        rt = languages.pick_java(_text(src, "system.properties"))
    out.env.update(DOCKYARD_RUNTIME_VERSION=rt.version, DOCKYARD_RUNTIME_NOTE=rt.note)
    tag = f"{out.config.stack_image.rpartition(':')[2] or 'bookworm'}-{language}"
    stack = languages.with_tag(out.config.stack_image, tag)
    build = languages.with_tag(out.config.build_image, tag)
    if not (engine.image_exists(stack) and engine.image_exists(build)):
        with open(f"/var/lock/dockyard-stack-{tag}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (engine.image_exists(stack) and engine.image_exists(build)):
                say(f"-----> Building the {language} stack images {stack} and {build} (once for every app)")
                env = {**os.environ, "DOCKYARD_STACK_IMAGE": out.config.stack_image,
                       "DOCKYARD_BUILD_IMAGE": out.config.build_image}
                _run_script(["bash", str(ROOT / "scripts" / "build-lang-stacks.sh"), language], env, say, cancelled)
    out.config = dataclasses.replace(out.config, stack_image=stack, build_image=build)
    source = out.config.dependency_sources.get(language, "")
    if source.startswith("/"):
        if not os.path.isdir(source):
            raise BuildError(f"The {language} dependency source {source} is not a directory on the Dockyard "
                             "machine: fix DOCKYARD_RUBYGEMS_URL / DOCKYARD_COMPOSER_REPO / DOCKYARD_MAVEN_MIRROR.")
        out.binds[MIRROR_IN_CONTAINER] = (source, True)
        source = "file://" + MIRROR_IN_CONTAINER
    if source:
        out.env["DOCKYARD_DEPENDENCY_SOURCE"] = source


def go_std_cache(engine: BuildEngine, config: BuildConfig, job: BuildJob, goroot: Path, say: Out,
                 cancelled: Cancelled) -> Path | None:
    """Go's standard library compiled once per toolchain (`go build std` into a GOCACHE), by the
    platform in a build container that runs nothing of the app's; mounted read-only into Go
    builds, which start their own cache from it instead of compiling the standard library.
    None when it cannot be made (the build then compiles it itself)."""
    seed = goroot.parent / "std-cache"
    if (seed / "README").is_file():
        return seed
    with open(goroot.parent / ".std-cache.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (seed / "README").is_file():
            return seed
        tmp = goroot.parent / ".std-cache.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        os.chown(tmp, 1000, 1000)
        say("-----> Compiling Go's standard library once for every app on this machine (go build std)")
        started = time.monotonic()
        run = engine.run_build_container(
            job.app, job.build_id, config.build_image, ["/dockyard/go/bin/go", "build", "std"],
            {"/dockyard/go": (str(goroot), True), "/seed": (str(tmp), False)},
            {"GOROOT": "/dockyard/go", "GOCACHE": "/seed", "CGO_ENABLED": "0", "GOTOOLCHAIN": "local",
             "GOFLAGS": "-buildvcs=false", "HOME": "/tmp"}, lambda line: None, config.timeout, cancelled)
        if run.exit_code != 0 or not (tmp / "README").is_file():
            say(f"       (could not precompile it: exit {run.exit_code}; this build compiles what it needs)")
            shutil.rmtree(tmp, ignore_errors=True)
            return None
        os.replace(tmp, seed)
        say(f"       Done in {time.monotonic() - started:.0f} s")
        return seed


def _python(out: Prepared, engine: BuildEngine, src: Path, say: Out, cancelled: Cancelled) -> None:
    minor = runtimes.requested_python(_text(src, ".python-version"), _text(src, "runtime.txt"))
    found = runtimes.python_stack(minor)
    nearest = runtimes.nearest_python(minor) if minor and found is None else None
    if nearest is not None:
        say(f"-----> Python {minor} is not available here: using the nearest, Python {nearest} (available: "
            f"{', '.join(runtimes.PYTHON_STACKS)}; pin one with .python-version)")
        out.env["DOCKYARD_PYTHON_NEAREST"] = nearest   # the buildpack accepts it for the request
        found = runtimes.python_stack(nearest)
        minor = nearest
    default_suite = out.config.stack_image.rpartition(":")[2]
    if found is None or found[0] == default_suite:
        return
    suite, interpreter = found
    stack = _with_tag(out.config.stack_image, suite)
    build = _with_tag(out.config.build_image, suite)
    say(f"-----> Python {minor} asked for: using the {suite} stack ({stack})")
    ensure_stack(engine, suite, stack, build, say, cancelled)
    out.config = dataclasses.replace(out.config, stack_image=stack, build_image=build)
    out.env.update(DOCKYARD_PYTHON=interpreter, STACK=suite)


def _with_tag(image: str, tag: str) -> str:
    repo = image.rpartition(":")[0] if ":" in image.rsplit("/", 1)[-1] else image
    return f"{repo}:{tag}"


def ensure_stack(engine: BuildEngine, suite: str, stack: str, build: str, say: Out, cancelled: Cancelled) -> None:
    """Build the suite's run stack and build image when the engine lacks them (once: a lock
    makes a second build wait for the first)."""
    if engine.image_exists(stack) and engine.image_exists(build):
        return
    with open(f"/var/lock/dockyard-stack-{suite}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        env = {**os.environ, "DOCKYARD_STACK_SUITE": suite, "DOCKYARD_STACK_IMAGE": stack,
               "DOCKYARD_BUILD_IMAGE": build}
        for image, script in ((stack, "build-stack.sh"), (build, "build-build-stack.sh")):
            if engine.image_exists(image):
                continue
            say(f"-----> Building the {suite} stack image {image} (once for every app; takes a few minutes)")
            _run_script(["bash", str(ROOT / "scripts" / script)], env, say, cancelled)


def _run_script(cmd: list[str], env: dict, say: Out, cancelled: Cancelled) -> None:
    """Run a platform script, its lines in the push output and a heartbeat while it is quiet."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(l) for l in proc.stdout] and None, daemon=True)
    reader.start()
    started = last = time.monotonic()
    while reader.is_alive() or not lines.empty():   # the reader ends at EOF: every line is queued
        try:
            say("       " + lines.get(timeout=1).rstrip())
            last = time.monotonic()
        except queue.Empty:
            if time.monotonic() - last >= 15:
                say(f"       ... still building ({time.monotonic() - started:.0f} s)")
                last = time.monotonic()
        if cancelled() or time.monotonic() - started > STACK_BUILD_TIMEOUT:
            os.killpg(proc.pid, signal.SIGKILL)   # the script's children (debootstrap, docker) too
            proc.wait()
            if cancelled():
                raise BuildError("The build was cancelled while the stack image was being built.")
            raise BuildTimeout(f"Building the stack image took longer than {STACK_BUILD_TIMEOUT} s: see "
                               "/var/log/dockyard-build-stack.log.")
    proc.wait()
    if proc.returncode != 0:
        raise RuntimeUnavailable(f"Building the stack image failed (exit {proc.returncode}); its output is above "
                                 "and in /var/log/dockyard-build-stack.log.")
