"""Buildpack selection, detection report, `bin/release` parsing and output formatting.

Pure: no I/O. The shell that runs buildpacks inside a build container is
builder/buildpack_build.py; the script that runs inside it is builder/runner.sh."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit, urlunsplit

import yaml

from core.names import PROCESS_TYPE_RE

from .errors import BuildError

# Detection order of the shipped buildpacks (buildpacks/<name>): deterministic, reported. A
# language's own files win over another's that often sit beside them (a Rails or Laravel app's
# package.json), and every language over a static site's public/.
BUILTIN_ORDER: tuple[str, ...] = ("ruby", "php", "java", "python", "nodejs", "go", "static")
LOOKS_FOR: dict[str, str] = {
    "ruby": "Gemfile",
    "php": "composer.json or index.php",
    "java": "pom.xml, build.gradle or build.gradle.kts",
    "python": "requirements.txt, pyproject.toml, setup.py, Pipfile.lock or uv.lock (or .py files with a Procfile)",
    "nodejs": "package.json",
    "go": "go.mod or *.go files",
    "static": "index.html, a public/ directory or static.json, without another language's files",
}
# Run only when chosen by name: it builds nothing (the Procfile runs on the stack as it is).
NULL = "null"
LOOKS_FOR[NULL] = "nothing (chosen by name only: it builds nothing)"
# Buildpacks other platforms name by owner/name or URL that are the shipped ones (forks are not).
_REGISTRY_NAME = re.compile(r"^(heroku|heroku-community)/([a-z0-9-]+)$")
_OFFICIAL_URL = re.compile(
    r"^(?:https?|git)://(?:github\.com/(?:heroku|heroku-community|dokku)/(?:heroku-)?buildpack-([a-z0-9-]+?)"
    r"|github\.com/ryandotsmith/(null)-buildpack"
    r"|buildpack-registry\.s3\.amazonaws\.com/buildpacks/(?:heroku|heroku-community)/([a-z0-9-]+)\.tgz)"
    r"(?:\.git)?/?$")
_ALIASES = {"node": "nodejs", "golang": "go"}
MARKER = "@@dockyard "
# Cloned inside an unprivileged container: network transports only (never file://, ext:: or a
# host path, which would reach the platform's own files).
_GIT_URL = re.compile(r"^(https?|git)://[^/\s]+/\S*$")


class BuildpackError(BuildError):
    code = "buildpack_failed"


@dataclass(frozen=True)
class BuildpackRef:
    """Where a buildpack comes from: a shipped one (kind 'builtin', value its name), a path on
    this machine the operator allowed ('path') or a git URL ('git', with an optional ref after
    '#'). A URL's credentials are kept apart from it (`auth`, user and password) and never shown:
    `value` and `label` carry the URL without them."""
    kind: str
    value: str
    ref: str = ""
    auth: tuple[str, str] | None = field(default=None, repr=False, compare=False)
    alias: str = field(default="", compare=False)    # how the app named a shipped one (heroku/python)

    @property
    def label(self) -> str:
        if self.kind == "builtin":
            return self.value
        return self.value + (f"#{self.ref}" if self.ref else "")

    @property
    def looks_for(self) -> str:
        if self.kind == "builtin":
            return LOOKS_FOR.get(self.value, "its bin/detect")
        return "what its bin/detect accepts"


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """(the URL without user:password@, (user, password) or None)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    return urlunsplit(parts._replace(netloc=host)), (unquote(user), unquote(password))


def redact_url_credentials(text: str) -> str:
    """Any scheme://user:password@ in free text (e.g. git's own messages) -> scheme://***@."""
    return re.sub(r"([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]*@", r"\1***@", text)


def _under(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == r.rstrip("/") or path.startswith(r.rstrip("/") + "/") for r in roots if r.startswith("/"))


def shipped_names() -> tuple[str, ...]:
    return (*BUILTIN_ORDER, NULL)


def well_known(text: str) -> tuple[str | None, str]:
    """(the shipped buildpack that a Heroku/Dokku name or official URL means, or None; the
    language it names). `heroku/python`, `https://github.com/heroku/heroku-buildpack-python.git`,
    `https://github.com/dokku/buildpack-null` ..."""
    url = text.strip().partition("#")[0].lower()
    m = _REGISTRY_NAME.match(url)
    name = m.group(2) if m else None
    if name is None:
        m = _OFFICIAL_URL.match(url)
        name = next((g for g in m.groups() if g), None) if m else None
    if name is None:
        return None, ""
    name = _ALIASES.get(name, name)
    return (name if name in shipped_names() else None), name


def parse_buildpack_ref(text: str, where: str, allowed_paths: tuple[str, ...] = ()) -> BuildpackRef:
    """One buildpack reference: a shipped name (`python`), a Heroku/Dokku name or official URL
    of one (`heroku/python`), a git URL (`https://host/repo.git#v1`), or an absolute path inside
    a directory the operator allowed (DOCKYARD_BUILDPACK_PATHS; none by default: a tenant's path
    would bind-mount the host into the build)."""
    text = text.strip()
    if text in shipped_names():
        return BuildpackRef("builtin", text)
    shipped, language = well_known(text)
    if shipped:
        return BuildpackRef("builtin", shipped, alias=text)
    shown = redact_url_credentials(text)[:80]
    if language and _REGISTRY_NAME.match(text.lower()):
        raise BuildpackError(
            f"{where}: {shown!r} is Heroku's {language} buildpack, which Dockyard does not ship (shipped: "
            f"{', '.join(shipped_names())}): give its git URL to fetch it (e.g. "
            f"https://github.com/heroku/heroku-buildpack-{language}), or use a Dockerfile.")
    if text.startswith("/"):
        if any(p == ".." for p in text.split("/")):
            raise BuildpackError(f"{where}: the buildpack path {shown!r} contains '..': give its absolute path.")
        path = text.rstrip("/") or "/"
        if not _under(path, allowed_paths):
            raise BuildpackError(f"{where}: the buildpack path {shown!r} is not allowed: builds may use only "
                                 "the shipped buildpacks, git URLs, and host directories the operator lists in "
                                 "DOCKYARD_BUILDPACK_PATHS.")
        return BuildpackRef("path", path)
    url, _, ref = text.partition("#")
    if _GIT_URL.match(url):
        clean, auth = split_credentials(url)
        return BuildpackRef("git", clean, ref, auth)
    shipped = ", ".join(shipped_names())
    raise BuildpackError(
        f"{where}: {shown!r} is not a buildpack: use one of the shipped ones ({shipped}) or a git URL "
        "(https://host/repo.git; '#ref' picks a branch or tag). file://, ssh and host paths are refused.")


def select_buildpacks(config: dict[str, str], buildpacks_file: str | None,
                      allowed_paths: tuple[str, ...] = (), languages: tuple[str, ...] = ()
                      ) -> tuple[list[BuildpackRef], str]:
    """Which buildpacks to run, and why. BUILDPACK_URL in the app's config wins, then
    heroku.yml's `build.languages`, then a `.buildpacks` file (one per line, all run in order),
    else the shipped ones in detection order (the first that detects is used). Returns (refs,
    source) where source is 'BUILDPACK_URL', 'heroku.yml', '.buildpacks' or 'detect'."""
    url = (config.get("BUILDPACK_URL") or "").strip()
    if url:
        return [parse_buildpack_ref(url, "BUILDPACK_URL", allowed_paths)], "BUILDPACK_URL"
    if languages:
        # a bare language is Heroku's buildpack of it (`go` -> heroku/go)
        return [parse_buildpack_ref(f"heroku/{lang}" if re.fullmatch(r"[a-z0-9-]+", lang) else lang,
                                    f"heroku.yml build.languages[{i}]", allowed_paths)
                for i, lang in enumerate(languages)], "heroku.yml"
    if buildpacks_file is not None:
        refs = []
        for lineno, raw in enumerate(buildpacks_file.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            refs.append(parse_buildpack_ref(line, f".buildpacks line {lineno}", allowed_paths))
        if not refs:
            raise BuildpackError(".buildpacks lists no buildpack: add one per line (a shipped name, a path "
                                 "or a git URL) or delete the file to use detection.")
        return refs, ".buildpacks"
    return [BuildpackRef("builtin", n) for n in BUILTIN_ORDER], "detect"


def parse_marker(line: str) -> tuple[str, list[str]] | None:
    """The runner's machine-readable lines (`@@dockyard <event> <args...>`), else None."""
    if not line.startswith(MARKER):
        return None
    parts = line[len(MARKER):].split(" ", 3)
    return parts[0], parts[1:]


def format_output_line(line: str) -> str:
    """Buildpack output as Heroku shows it: `-----> ` headings and ` !     ` errors as they
    are, any other line indented under its heading."""
    line = line.rstrip("\r\n")
    if line.startswith(("----->", " !", "       ")) or not line.strip():
        return line
    return "       " + line


# A language's own files at the root of an app, for the message when nothing detects it.
LANGUAGE_FILES: tuple[tuple[str, str, str], ...] = (
    ("Gemfile", "a Gemfile", "ruby"), ("composer.json", "a composer.json", "php"),
    ("pom.xml", "a pom.xml", "java"), ("build.gradle", "a build.gradle", "gradle"),
    ("build.gradle.kts", "a build.gradle.kts", "gradle"), ("mix.exs", "a mix.exs", "elixir"),
    ("Cargo.toml", "a Cargo.toml", "rust"), ("project.clj", "a project.clj", "clojure"),
    ("build.sbt", "a build.sbt", "scala"), ("Package.swift", "a Package.swift", "swift"),
)
_LANGUAGE_NAMES = {"ruby": "Ruby", "php": "PHP", "java": "Java", "gradle": "Gradle (JVM)", "elixir": "Elixir",
                   "rust": "Rust", "clojure": "Clojure", "scala": "Scala", "swift": "Swift"}


def found_languages(root_files: set[str]) -> list[str]:
    """What the app's root says it is, for languages no shipped buildpack detected: e.g. "a
    Gemfile: Ruby apps need the Ruby buildpack, which this Dockyard does not ship (...)"."""
    found = []
    for name, what, lang in LANGUAGE_FILES:
        if name in root_files:
            shipped = lang in shipped_names()
            found.append(f"{what}: {_LANGUAGE_NAMES[lang]} apps need the {_LANGUAGE_NAMES[lang]} buildpack, " + (
                "which did not detect this app (see its output above)" if shipped else
                f"which this Dockyard does not ship: set BUILDPACK_URL=https://github.com/heroku/heroku-buildpack-{lang} "
                "(fetched and run in the build container) or add a Dockerfile"))
    return found


def no_match_message(tried: list[tuple[BuildpackRef, str]], found: list[str] | None = None) -> str:
    """tried: (buildpack, its detect output). Names what the app's files say it is (`found`),
    then every buildpack tried and what it looks for."""
    items = "; ".join(f"{ref.label} (looks for {ref.looks_for})" for ref, _ in tried)
    lead = f"Found {'; and '.join(found)}. " if found else ""
    return (f"{lead}Dockyard looked for a Dockerfile and a heroku.yml at the root of the repository and found "
            f"neither, and no buildpack detected this app. Tried, in order: {items}. Add one of those files, "
            "a Dockerfile or heroku.yml, or set BUILDPACK_URL (`dockyard config:set BUILDPACK_URL=...`).")


def parse_release_yaml(text: str, buildpack: str) -> dict[str, str]:
    """`bin/release` output: YAML with `default_process_types` (and optionally addons and
    config_vars, which are ignored here). Returns {type: command}."""
    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise BuildpackError(f"{buildpack}'s bin/release printed invalid YAML{where}: it must print "
                             "e.g. `default_process_types: {web: ...}`.") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BuildpackError(f"{buildpack}'s bin/release must print a YAML mapping (default_process_types: ...), "
                             f"not a {type(data).__name__}.")
    types = data.get("default_process_types") or {}
    if not isinstance(types, dict):
        raise BuildpackError(f"{buildpack}'s bin/release: default_process_types must be a mapping of "
                             "process type to command.")
    out: dict[str, str] = {}
    for ptype, command in types.items():
        ptype = str(ptype)
        if not PROCESS_TYPE_RE.fullmatch(ptype):
            raise BuildpackError(f"{buildpack}'s bin/release: process type {ptype[:40]!r} must be 1-30 "
                                 "characters from a-z, 0-9, '_' and '-'.")
        if not isinstance(command, str) or not command.strip():
            raise BuildpackError(f"{buildpack}'s bin/release: process type {ptype!r} needs a command string.")
        out[ptype] = command.strip()
    return out


# A Procfile line that fits the app's language, for messages asking for one.
_PROCFILE_EXAMPLES = {"python": "web: gunicorn app:app", "nodejs": "web: node server.js",
                      "go": "web: bin/<your binary>", "static": "web: busybox httpd -f -p $PORT",
                      NULL: "web: ./start.sh"}


def procfile_example(buildpacks: list[str]) -> str:
    """`web: ...` for the first buildpack that has an example (the shipped ones)."""
    return next((_PROCFILE_EXAMPLES[b] for b in buildpacks if b in _PROCFILE_EXAMPLES), "web: <command that serves $PORT>")


def merge_process_types(defaults: dict[str, str], procfile: dict[str, str] | None) -> dict[str, str]:
    """Procfile entries win over the buildpacks' defaults (Heroku's rule)."""
    merged = dict(defaults)
    merged.update(procfile or {})
    return merged


REDACTED = "[config value hidden]"
MIN_REDACTED_LEN = 6


def redact(line: str, config: dict[str, str]) -> str:
    """Config values never reach the build output, even when a buildpack prints one: every value
    of at least MIN_REDACTED_LEN characters is replaced (shorter ones, like `1` or `true`, would
    garble ordinary output and are not secrets)."""
    for value in sorted((v for v in config.values() if len(v) >= MIN_REDACTED_LEN), key=len, reverse=True):
        if value in line:
            line = line.replace(value, REDACTED)
    return line


def safe_env_files(config: dict[str, str]) -> dict[str, str]:
    """Config vars to write into ENV_DIR (one file per key). Keys are already validated by the
    config API; anything that is not a plain name is skipped rather than written as a path."""
    return {k: v for k, v in config.items() if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k)}


_RUNTIME = ["WORKDIR /app", "USER 1000:1000", 'ENTRYPOINT ["/bin/sh", "/app/.dockyard/launch"]', 'CMD ["/bin/bash"]']


def deps_dockerfile(stack: str) -> str:
    """The dependency image: the run stack + the slug's dependency directories in /app, owned by
    the app user, with the process settings. Tagged by a digest of its content and reused."""
    return "\n".join([f"FROM {stack}", "COPY --chown=1000:1000 deps/ /app/", *_RUNTIME]) + "\n"


def slug_dockerfile(base: str, from_stack: bool, rootfs: bool = False) -> str:
    """The image of a buildpack build: `base` (the dependency image, or the run stack when the slug
    has no dependency directories) + the rest of the slug in /app, owned by the app user (the
    engine adds its own labels to every image it builds).
    `rootfs`: files a buildpack left in BUILD_DIR/.dockyard/rootfs go to / (root-owned; e.g.
    Debian node's externalized builtins under /usr/share/nodejs)."""
    lines = [f"FROM {base}"]
    if rootfs:
        lines.append("COPY rootfs/ /")
    lines.append("COPY --chown=1000:1000 app/ /app/")
    if from_stack:   # else the dependency image has them
        lines.extend(_RUNTIME)
    return "\n".join(lines) + "\n"


LAUNCHER = """#!/bin/sh
# Dockyard's process launcher (Heroku's .profile.d convention), then the process itself.
export HOME=/app
cd /app || exit 1
for f in /app/.profile.d/*.sh; do
    [ -r "$f" ] && . "$f"
done
[ -r /app/.profile ] && . /app/.profile
exec "$@"
"""

# Top-level directories of a slug that hold dependencies (their own image layer).
DEPS_DIRS: tuple[str, ...] = (".heroku", "node_modules")
# A buildpack told which dependency layers exist (DOCKYARD_DEPS_LAYERS: the 16-hex prefixes of
# their keys) writes BUILD_DIR/.dockyard/deps-layer: "<key> installed" when the slug holds its
# freshly installed dependencies (their layer is tagged deps-k<key>), "<key> reused" when they
# were unchanged and it left them out (that layer is reused).
DEPS_MARKER = "deps-layer"
# BUILD_DIR/.dockyard/stack saying "scratch": the slug needs no stack (it brings its own /bin/sh
# and server in .dockyard/rootfs), so the image is built FROM scratch.
STACK_MARKER = "stack"
DEPS_KEY_TAG = "deps-k"
_DEPS_LINE = re.compile(r"^([0-9a-f]{16,64})\s+(installed|reused)\s*$")


def deps_layer_marker(text: str) -> tuple[str, bool]:
    """(key, reused) from a buildpack's deps-layer file; ("", False) when absent or malformed."""
    m = _DEPS_LINE.match(text.strip())
    return (m.group(1), m.group(2) == "reused") if m else ("", False)
