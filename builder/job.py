"""What the builder is given and what it returns. The builder turns a commit into an image
and knows nothing of apps' releases, the store or the API: the controller records builds."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

Out = Callable[[str], None]
Cancelled = Callable[[], bool]


@dataclass(frozen=True)
class CheckoutLimits:
    """The most a pushed commit's tree may check out to, checked before anything is written."""
    max_bytes: int = 2048 << 20     # DOCKYARD_MAX_CHECKOUT_MB, in bytes
    max_files: int = 200_000        # DOCKYARD_MAX_CHECKOUT_FILES


@dataclass(frozen=True)
class DiskCheck:
    """A filesystem a build writes to, what it is, and what frees room there (this platform's own
    data only)."""
    path: str
    what: str
    hint: str


@dataclass(frozen=True)
class BuildConfig:
    """The operator's build settings (the controller makes one from its Settings)."""
    stack_image: str                # the run stack: FROM for slugs, allowed as a Dockerfile base
    build_image: str                # where buildpacks run
    timeout: int                    # seconds before a build is stopped
    memory_mb: int                  # memory limit of a build
    app_port: int                   # $PORT, for app.json's health checks
    ca_bundle: str                  # CA bundle mounted into build containers ("" = none)
    cache_root: Path                # <cache_root>/<app id> is an app's buildpack CACHE_DIR
    image_namespace: str            # images are <namespace>/<app>:<tag>
    disk_checks: tuple[DiskCheck, ...] = ()   # filesystems that must have room before a build
    min_free_mb: int = 1024         # ... this much (DOCKYARD_MIN_FREE_MB)
    buildpack_paths: tuple[str, ...] = ()   # host dirs whose buildpacks builds may use (operator's list)
    runtimes_root: Path | None = None  # machine-wide Go/Node toolchains (builder/runtime_cache.py); None: none
    checkout_limits: CheckoutLimits = CheckoutLimits()   # what a pushed tree may check out to
    pip_index_url: str = ""         # the package index builds use ("" = the host's pip configuration)
    npm_registry: str = ""          # the npm registry builds use ("" = the host's npm configuration)
    # language -> where its dependencies come from: a URL, or a host directory mounted read-only
    # (ruby: a gem source, php: a Composer repository or a directory of package zips, java: a
    # Maven repository); a language not named uses its public registry
    dependency_sources: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    def cache_dir(self, app: str) -> Path:
        return self.cache_root / app

    def image_repo(self, app: str) -> str:
        return f"{self.image_namespace}/{app}"


@dataclass(frozen=True)
class BuildJob:
    app: str
    build_id: str
    commit: str                     # the pushed commit (hex)
    tag: str                        # the image to make
    config: dict = field(default_factory=dict)   # config vars: the buildpacks' ENV_DIR; never printed
    cache_key: str = ""             # the app's never-reused id: its CACHE_DIR under cache_root ("" = the name)
    # Whether the pusher may build on an image (Dockerfile FROM / COPY --from); None: the stack only.
    may_use_image: Callable[[str], bool] | None = field(default=None, repr=False, compare=False)
    # Whether a base image the engine lacks may be pulled from its registry (the admin's
    # allow-list of patterns); None: nothing is pulled.
    may_pull: Callable[[str], bool] | None = field(default=None, repr=False, compare=False)
    commit_time: int = 0            # the commit's date (Unix time); builds of old commits resolve as of then


@dataclass(frozen=True)
class BuildResult:
    method: str                     # dockerfile | heroku.yml (...) | buildpack:... (...)
    process_types: dict             # type -> command ("" = the image's own command)
    healthchecks: dict              # app.json `healthchecks` (or the CHECKS file's), validated
    manifest: dict = field(default_factory=dict)   # app.json formation/scripts/env/cron; `port` EXPOSEd


class BuildEngine(Protocol):
    """What a build needs of the container engine (the controller's scheduler provides it).
    The engine labels what it builds as the app's: the builder never names labels. `build` is
    for Dockerfiles the builder wrote; a Dockerfile from the pushed tree goes to
    `build_sandboxed`, which runs it where only the images `provide_image` put are in reach."""

    def image_exists(self, ref: str) -> bool: ...

    def image_config(self, ref: str) -> dict: ...

    def image_size(self, ref: str) -> int | None: ...   # bytes, every layer counted; None: unknown

    def build(self, context_dir: str, tag: str, on_line: Out, *, app: str, build_id: str | None = None,
              dockerfile: str | None = None, cancelled: Cancelled = lambda: False) -> str: ...

    def provide_image(self, ref: str) -> bool: ...   # into the sandbox of build_sandboxed; False: no such image

    def build_sandboxed(self, context_dir: str, tag: str, on_line: Out, *, app: str, build_id: str | None = None,
                        dockerfile: str | None = None, cancelled: Cancelled = lambda: False) -> str: ...

    def run_build_container(self, app: str, build_id: str, image: str, command: list[str],
                            binds: dict[str, tuple[str, bool]], env: dict[str, str], on_line: Out,
                            timeout: float, cancelled: Cancelled, finished=None): ...

    def untag_images(self, repo: str, prefix: str, keep: str) -> int: ...

    def image_tags(self, repo: str, prefix: str) -> list[str]: ...   # the tags repo:<prefix>* there are

    def pull_image(self, ref: str, on_line: Out, cancelled: Cancelled) -> str: ...
