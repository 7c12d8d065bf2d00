"""The Python buildpack's logic. Runs inside the build container with the stack's python3
(standard library only). The functions are pure and unit-tested (tests/test_unit_buildpacks.py);
main() is the thin command-line shell bin/compile and bin/release call."""
from __future__ import annotations

import json
import os
import re
import sys

_VERSION = re.compile(r"^(?:python-)?(\d+)\.(\d+)(?:\.(\d+))?$")
# A module-level WSGI callable: `app = Flask(...)`, `application = get_wsgi_application()`,
# `def app(environ, start_response):` ...
_WSGI_ASSIGN = re.compile(r"^(app|application)\s*(?::[^=]+)?=\s*\S", re.MULTILINE)
_WSGI_DEF = re.compile(r"^def\s+(app|application)\s*\(\s*environ\b", re.MULTILINE)
# A module-level ASGI app: `app = FastAPI()`, `app = Starlette(...)`, Quart, Litestar (Django has
# both: its wsgi.py is served, as before).
_ASGI_ASSIGN = re.compile(r"^(app|application)\s*(?::[^=]+)?=\s*(?:\w+\.)?(FastAPI|Starlette|Quart|Litestar)\s*\(",
                          re.MULTILINE)
# piku's Procfile: `wsgi: module:callable` and `asgi: module:callable` are served by a server
# the platform provides.
PIKU_SERVERS = {"wsgi": "gunicorn", "asgi": "uvicorn"}
AVAILABLE = "3.9, 3.11, 3.13, 3.14 and 3.15"
WSGI_CANDIDATES = ("wsgi.py", "app.py", "main.py", "application.py", "server.py")


def requested_version(python_version: str | None, runtime_txt: str | None) -> str:
    """The version an app asks for: .python-version (first non-comment line) wins over
    runtime.txt (`python-3.11.2`). '' when neither asks. Raises ValueError on a bad value."""
    for name, text in ((".python-version", python_version), ("runtime.txt", runtime_txt)):
        if text is None:
            continue
        lines = [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]
        if not lines:
            continue
        value = lines[0]
        if not _VERSION.match(value):
            raise ValueError(f"{name} says {value[:40]!r}, which is not a Python version: write e.g. "
                             + ("3.11" if name == ".python-version" else "python-3.11.2") + ".")
        return value.removeprefix("python-")
    return ""


def check_version(wanted: str, stack: str, nearest: str = "") -> str:
    """'honoured' when the stack's Python satisfies the request (same major.minor, and the same
    patch level when one is given), or says so when the platform chose the `nearest` available
    minor; else ValueError with what to do."""
    w = _VERSION.match(wanted)
    s = _VERSION.match(stack)
    if not w or not s:
        raise ValueError(f"Cannot compare Python {wanted!r} with the stack's {stack!r}.")
    if nearest and nearest == f"{s.group(1)}.{s.group(2)}" and w.group(1, 2) != s.group(1, 2):
        return f"not available; the nearest is {stack}"
    same_minor = w.group(1, 2) == s.group(1, 2)
    if same_minor and (w.group(3) is None or w.group(3) == s.group(3)):
        return "honoured"
    if same_minor:
        return f"the stack has {stack}; patch releases are compatible, using it"
    raise ValueError(f"Python {wanted} is not available: Dockyard provides Python {AVAILABLE} (one stack "
                     f"each); change .python-version / runtime.txt to one of them (or remove it), or deploy "
                     "with a Dockerfile that brings the Python you need.")


def install_plan(files: set[str]) -> str:
    """Which file the dependencies come from, in Heroku's order of preference."""
    for name in ("uv.lock", "Pipfile.lock", "requirements.txt", "pyproject.toml", "setup.py"):
        if name in files:
            if name == "uv.lock" and "pyproject.toml" not in files:
                continue
            return name
    return "none"


def pipfile_lock_requirements(text: str) -> list[str]:
    """The `default` packages of a Pipfile.lock as requirement lines."""
    try:
        data = json.loads(text)
    except ValueError as e:
        raise ValueError(f"Pipfile.lock is not valid JSON ({e}): run `pipenv lock` and commit it.") from None
    out = []
    for name, spec in sorted((data.get("default") or {}).items()):
        if not isinstance(spec, dict):
            continue
        if "version" in spec:
            out.append(f"{name}{spec['version']}")
        elif "git" in spec:
            ref = f"@{spec['ref']}" if spec.get("ref") else ""
            out.append(f"{name} @ git+{spec['git']}{ref}")
        elif "path" in spec or "file" in spec:
            out.append(spec.get("path") or spec.get("file"))
        else:
            out.append(name)
    return out


def uses_gunicorn(dependency_texts: list[str]) -> bool:
    pattern = re.compile(r"(^|[\s\"'\[,])gunicorn\b", re.IGNORECASE | re.MULTILINE)
    return any(pattern.search(t or "") for t in dependency_texts)


def wsgi_targets(sources: dict[str, str]) -> list[str]:
    """`module:callable` for each candidate file that defines a module-level WSGI app;
    sources: relative path -> text (root candidates and <package>/wsgi.py)."""
    found = []
    for path in sorted(sources):
        text = sources[path]
        if path.endswith("asgi.py") or _ASGI_ASSIGN.search(text):
            continue
        m = _WSGI_DEF.search(text) or _WSGI_ASSIGN.search(text)
        if m:
            module = path[:-3].replace("/", ".")
            found.append(f"{module}:{m.group(1)}")
    return found


def uses(package: str, dependency_texts: list[str]) -> bool:
    pattern = re.compile(rf"(^|[\s\"'\[,]){re.escape(package)}\b", re.IGNORECASE | re.MULTILINE)
    return any(pattern.search(t or "") for t in dependency_texts)


def asgi_targets(sources: dict[str, str]) -> list[str]:
    found = []
    for path in sorted(sources):
        m = _ASGI_ASSIGN.search(sources[path])
        if m:
            found.append(f"{path[:-3].replace('/', '.')}:{m.group(1)}")
    return found


def default_web(dependency_texts: list[str], sources: dict[str, str]) -> tuple[str | None, str]:
    """(command, why). A default only when unambiguous: exactly one ASGI app (served by
    uvicorn, which the build adds when the dependencies lack it), else gunicorn among the
    dependencies and exactly one WSGI module."""
    asgi = asgi_targets(sources)
    if len(asgi) == 1:
        return f"uvicorn {asgi[0]} --host 0.0.0.0 --port $PORT", f"uvicorn serving the ASGI app {asgi[0]}"
    if len(asgi) > 1:
        return None, (f"No Procfile, and several ASGI apps were found ({', '.join(asgi)}): add a Procfile "
                      f"naming one, e.g. `web: uvicorn {asgi[0]} --host 0.0.0.0 --port $PORT`.")
    if not uses_gunicorn(dependency_texts):
        return None, ("No Procfile and gunicorn is not among the dependencies, so there is no default web "
                      "process: add a Procfile, e.g. `web: gunicorn app:app` (and gunicorn to requirements.txt).")
    targets = wsgi_targets(sources)
    if len(targets) == 1:
        return f"gunicorn {targets[0]} --bind 0.0.0.0:$PORT", f"gunicorn serving {targets[0]}"
    if not targets:
        return None, ("No Procfile, and no WSGI app found (looked for `app`/`application` in "
                      f"{', '.join(WSGI_CANDIDATES)} and */wsgi.py): add a Procfile, e.g. `web: gunicorn app:app`.")
    return None, (f"No Procfile, and several WSGI apps were found ({', '.join(targets)}): add a Procfile "
                  f"naming one, e.g. `web: gunicorn {targets[0]}`.")


_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def failing_requirement_lines(requirements: str, pip_output: str) -> list[tuple[int, str]]:
    """The requirements.txt lines pip's errors point at: `(from line N ...)`, or the
    requirement named by `Invalid requirement: '...'` / `No matching distribution found for X`."""
    lines = requirements.splitlines()
    numbers: set[int] = {int(n) for n in re.findall(r"from line (\d+) of", pip_output)}
    named = re.findall(r"(?:Invalid requirement: '([^']+)'|No matching distribution found for (\S+)|"
                       r"satisfies the requirement (\S+))", pip_output)
    wanted = set()
    for groups in named:
        for g in groups:
            m = _NAME.match(g) if g else None
            if m:
                wanted.add(_norm(m.group(1)))
    for i, line in enumerate(lines, 1):
        m = _NAME.match(line.split("#", 1)[0])
        if m and _norm(m.group(1)) in wanted:
            numbers.add(i)
    return [(n, lines[n - 1]) for n in sorted(numbers) if 0 < n <= len(lines)]


# uv's resolver names a requirement that cannot run on the target Python and the Python it needs:
# "django==5.0 depends on Python>=3.10", "all versions of numpy depend on Python>=3.10".
_NEEDS_PYTHON = re.compile(r"(?:all versions of )?([A-Za-z0-9][A-Za-z0-9._\[\]-]*(?:[=<>!~]=?[^\s,]+)?) "
                           r"depends? on Python([<>=!~]=?[0-9][^\s,]*(?:,[<>=!~]=?[0-9][^\s,]*)*)")


def python_needs(resolver_output: str) -> tuple[str, str] | None:
    """(requirement, the Python it needs) from uv's explanation of a failed resolution, or None."""
    m = _NEEDS_PYTHON.search(resolver_output)
    return (m.group(1), m.group(2).rstrip(".")) if m else None


def drop_requirement(requirements: str, requirement: str) -> str:
    """requirements.txt without the lines of `requirement`'s package (to look for the next one)."""
    m = _NAME.match(requirement)
    name = _norm(m.group(1)) if m else ""
    return "".join(line for line in requirements.splitlines(keepends=True)
                   if not ((n := _NAME.match(line.split("#", 1)[0])) and _norm(n.group(1)) == name))


def procfile_servers(procfile: str | None) -> list[str]:
    """The servers piku's `wsgi:` / `asgi:` Procfile entries need."""
    types = {line.split(":", 1)[0].strip() for line in (procfile or "").splitlines() if ":" in line}
    return [server for ptype, server in PIKU_SERVERS.items() if ptype in types]


def servers_to_add(dependency_texts: list[str], sources: dict[str, str], procfile: str | None,
                   web_declared: bool) -> list[str]:
    """Servers the build installs because the app is served by one it does not list: piku's
    wsgi/asgi entries, or the default uvicorn of an ASGI app."""
    wanted = procfile_servers(procfile)
    if procfile is None and not web_declared and len(asgi_targets(sources)) == 1:
        wanted.append("uvicorn")
    return [s for s in dict.fromkeys(wanted) if not uses(s, dependency_texts)
            and not (s == "uvicorn" and uses("fastapi[standard", dependency_texts))]


def release_yaml(web: str | None) -> str:
    if not web:
        return "---\ndefault_process_types: {}\n"
    return "---\ndefault_process_types:\n  web: " + json.dumps(web) + "\n"


# ---- the shell --------------------------------------------------------------
def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def _app_facts(build_dir: str) -> tuple[list[str], dict[str, str]]:
    deps = [_read(os.path.join(build_dir, f)) or "" for f in
            ("requirements.txt", "pyproject.toml", "setup.py", "setup.cfg", "Pipfile.lock", "uv.lock")]
    sources = {}
    for name in WSGI_CANDIDATES + ("asgi.py",):
        text = _read(os.path.join(build_dir, name))
        if text is not None:
            sources[name] = text
    for entry in sorted(os.listdir(build_dir)):
        if not entry.startswith(".") and os.path.isdir(os.path.join(build_dir, entry)):
            for name in ("wsgi.py", "asgi.py"):
                text = _read(os.path.join(build_dir, entry, name))
                if text is not None:
                    sources[f"{entry}/{name}"] = text
    return deps, sources


def main(argv: list[str]) -> int:
    cmd, args = argv[0], argv[1:]
    try:
        if cmd == "requested-version":
            d = args[0]
            print(requested_version(_read(os.path.join(d, ".python-version")), _read(os.path.join(d, "runtime.txt"))))
        elif cmd == "check-version":
            print(check_version(args[0], args[1], os.environ.get("DOCKYARD_PYTHON_NEAREST", "")))
        elif cmd == "plan":
            print(install_plan(set(os.listdir(args[0]))))
        elif cmd == "pipfile-lock":
            print("\n".join(pipfile_lock_requirements(_read(args[0]) or "")))
        elif cmd == "failing-lines":
            for n, line in failing_requirement_lines(_read(args[0]) or "", _read(args[1]) or ""):
                print(f" !     requirements.txt line {n}: {line}")
        elif cmd == "python-needs":       # LOG: "requirement spec", or nothing
            found = python_needs(_read(args[0]) or "")
            print(" ".join(found) if found else "")
        elif cmd == "drop-requirement":   # FILE REQUIREMENT: the file without that package's lines
            kept = drop_requirement(_read(args[0]) or "", args[1])
            with open(args[0], "w") as f:
                f.write(kept)
        elif cmd == "explain-web":
            if os.path.isfile(os.path.join(args[0], "Procfile")) or os.environ.get("DOCKYARD_WEB_DECLARED"):
                return 0
            web, why = default_web(*_app_facts(args[0]))
            print(f"-----> Default web process: {web} ({why})" if web else f"-----> {why}")
        elif cmd == "servers":
            deps, sources = _app_facts(args[0])
            print(" ".join(servers_to_add(deps, sources, _read(os.path.join(args[0], "Procfile")),
                                          bool(os.environ.get("DOCKYARD_WEB_DECLARED")))))
        elif cmd == "release":
            web, _ = default_web(*_app_facts(args[0]))
            sys.stdout.write(release_yaml(web))
        else:
            print(f"unknown command {cmd}")
            return 2
    except ValueError as e:
        print(str(e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
