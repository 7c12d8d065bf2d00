"""Ruby, PHP and the JVM: which language stack a buildpack build runs on, and the runtime an app
asks for. Pure: no I/O.

Each of these languages has a stack of its own (scripts/build-lang-stacks.sh): the run stack +
Debian's runtime (`<stack>:bookworm-<lang>`) and the build image + its build tools
(`<build>:bookworm-<lang>`). Debian bookworm ships one version of each: Ruby 3.1, PHP 8.2,
OpenJDK 17; an app asking for another is refused with the version there is."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

from .errors import RuntimeUnavailable

LANGUAGES = ("ruby", "php", "java")
# What each language's bin/detect looks for (the buildpacks check the same files).
DETECT_FILES: dict[str, tuple[str, ...]] = {
    "ruby": ("Gemfile",),
    "php": ("composer.json", "index.php"),
    "java": ("pom.xml", "build.gradle", "build.gradle.kts"),
}
VERSIONS = {"ruby": "3.1", "php": "8.2", "java": "17"}
# composer.json `ext-*` requires the PHP stack satisfies: built into Debian's php8.2-common/cli,
# or installed by scripts/build-lang-stacks.sh (PHP_EXTS, each php8.2-<name>; mysql gives mysqli
# and pdo_mysql, pgsql pdo_pgsql, sqlite3 pdo_sqlite, xml dom/simplexml/xmlreader/xmlwriter).
PHP_EXTENSIONS = frozenset("""
    calendar ctype exif ffi fileinfo ftp gettext iconv json openssl pcntl pcre pdo phar posix readline
    shmop sockets sodium spl standard sysvmsg sysvsem sysvshm tokenizer zlib date filter hash random
    reflection session libxml core
    bcmath curl gd intl mbstring mysqli mysqlnd pdo_mysql pgsql pdo_pgsql sqlite3 pdo_sqlite
    dom simplexml xml xmlreader xmlwriter xsl zip opcache zend-opcache
""".split())


def with_tag(image: str, tag: str) -> str:
    repo = image.rpartition(":")[0] if ":" in image.rsplit("/", 1)[-1] else image
    return f"{repo}:{tag}"


def language_of(order: list[str], present: set[str], detect: bool) -> str | None:
    """The language stack a build needs. order: the buildpacks to run (shipped names; others are
    ''), present: the entries at the root of the push ('*.go' for any Go file, 'public/' for a
    public directory). Detection: the first shipped buildpack whose files are there, when it is
    one of these languages. Chosen buildpacks (BUILDPACK_URL, .buildpacks): the first of them."""
    for name in order:
        if not detect:
            if name in LANGUAGES:
                return name
        elif any(f in present for f in DETECT_FILES.get(name, ()) + _OTHER_FILES.get(name, ())):
            return name if name in LANGUAGES else None
    return None


_OTHER_FILES: dict[str, tuple[str, ...]] = {
    "python": ("requirements.txt", "pyproject.toml", "setup.py", "Pipfile.lock", "uv.lock"),
    "nodejs": ("package.json",),
    "go": ("go.mod", "*.go"),
    "static": ("index.html", "public/"),
}


@dataclass(frozen=True)
class Runtime:
    language: str
    version: str      # what the stack has
    note: str         # for the push output


_RUBY_IN_GEMFILE = re.compile(r"""^\s*ruby\s*\(?\s*["']([^"']+)["']""", re.MULTILINE)


def pick_ruby(gemfile: str | None, ruby_version: str | None) -> Runtime:
    """Gemfile's `ruby "3.1.2"` (or .ruby-version, `ruby-3.1.2` / `3.1`): only Debian's 3.1 is
    here; a request for another minor is refused naming it."""
    want, source = "", ""
    m = _RUBY_IN_GEMFILE.search(gemfile or "")
    if m:
        want, source = m.group(1).strip(), "the Gemfile's ruby line"
    elif (ruby_version or "").strip():
        want, source = ruby_version.strip().splitlines()[0].strip(), ".ruby-version"
    have = VERSIONS["ruby"]
    if not want:
        return Runtime("ruby", have, "none requested: Debian bookworm's Ruby")
    m = re.match(r"^(?:ruby-)?[~>=\s]*(\d+)\.(\d+)", want)
    if not m:
        raise RuntimeUnavailable(f"{source} asks for Ruby {want[:30]!r}, which is not a Ruby version: write e.g. "
                                 f"ruby \"{have}\".")
    if f"{m.group(1)}.{m.group(2)}" != have:
        raise RuntimeUnavailable(f"{source} asks for Ruby {want[:30]}; this platform has Ruby {have} (Debian "
                                 f"bookworm's): change it to {have} and push again.")
    return Runtime("ruby", have, f"requested by {source} ({want[:30]})")


def pick_php(composer_json: str | None) -> tuple[Runtime, list[str]]:
    """(PHP 8.2, the ext-* the app requires). A `php` constraint that 8.2 cannot satisfy, or an
    extension the stack lacks, is refused naming what there is."""
    if composer_json is None:
        return Runtime("php", VERSIONS["php"], "no composer.json: Debian bookworm's PHP"), []
    try:
        data = json.loads(composer_json or "{}")
    except ValueError as e:
        raise RuntimeUnavailable(f"composer.json is not valid JSON ({e}): fix it and push again.") from None
    require = data.get("require") if isinstance(data, dict) else None
    require = require if isinstance(require, dict) else {}
    exts = sorted(k[4:].lower() for k in require if isinstance(k, str) and k.lower().startswith("ext-"))
    missing = [e for e in exts if e not in PHP_EXTENSIONS]
    if missing:
        raise RuntimeUnavailable(f"composer.json requires the PHP extension(s) {', '.join(missing)}, which this "
                                 f"platform's PHP does not have. Available: {', '.join(sorted(PHP_EXTENSIONS))}.")
    want = str(require.get("php") or "")
    if want and not php_satisfies(want, VERSIONS["php"]):
        raise RuntimeUnavailable(f"composer.json requires php {want[:40]}; this platform has PHP {VERSIONS['php']} "
                                 "(Debian bookworm's): allow 8.2 and push again.")
    note = f"composer.json requires php {want[:40]}" if want else "composer.json names no php version"
    return Runtime("php", VERSIONS["php"], note), exts


def php_satisfies(constraint: str, have: str) -> bool:
    """Whether PHP `have` (major.minor) satisfies a composer constraint, roughly: any of the
    `||` alternatives whose every part (>=, >, <, <=, ^, ~, x.y.*, exact) holds."""
    version = tuple(int(p) for p in have.split("."))
    for alt in re.split(r"\s*\|\|?\s*", constraint.strip()):
        parts = [p for p in re.split(r"[\s,]+", alt) if p]
        if parts and all(_part_ok(p, version) for p in parts):
            return True
    return False


def _part_ok(part: str, have: tuple[int, ...]) -> bool:
    m = re.match(r"^(>=|<=|>|<|\^|~|==|=|!=)?v?(\d+)(?:\.(\d+|\*))?(?:\.(\d+|\*))?", part)
    if not m:
        return part == "*"
    op, major = m.group(1) or "", int(m.group(2))
    minor = int(m.group(3)) if m.group(3) and m.group(3) != "*" else None
    want = (major, minor if minor is not None else 0)
    cur = (have[0], have[1] if len(have) > 1 else 0)
    if op == "^":
        return cur[0] == major and cur >= want
    if op == "~":
        return cur >= want and (cur[0] == major if minor is not None and m.group(4) is None else cur[:2] == want)
    if op in (">=", ">"):
        return cur >= want if op == ">=" else cur > want or (minor is None and cur[0] > major)
    if op in ("<=", "<"):
        return cur <= want if op == "<=" else cur < want
    if op == "!=":
        return cur != want
    return cur[0] == major and (minor is None or cur[1] == minor)


_JAVA_VERSION = re.compile(r"^\s*java\.runtime\.version\s*[=:]\s*(\S+)", re.MULTILINE)


def pick_java(system_properties: str | None) -> Runtime:
    """system.properties `java.runtime.version` (17, 1.8, 21, ...): only OpenJDK 17 is here."""
    have = VERSIONS["java"]
    m = _JAVA_VERSION.search(system_properties or "")
    if not m:
        return Runtime("java", have, "none requested: Debian bookworm's OpenJDK")
    want = m.group(1)
    major = want[2:].split(".")[0] if want.startswith("1.") else re.split(r"[.\-+_]", want)[0]
    if major != have:
        raise RuntimeUnavailable(f"system.properties asks for java.runtime.version={want[:20]}; this platform has "
                                 f"OpenJDK {have} (Debian bookworm's): set java.runtime.version={have} and push again.")
    return Runtime("java", have, f"requested by system.properties ({want[:20]})")
