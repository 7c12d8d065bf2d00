"""The architecture, checked: data flows one way (push -> build -> image -> release ->
scheduler -> router) and the code's layout says so. `lint-imports` checks the contracts in
pyproject.toml (layers, the CLI as a pure client, no import cycles, Docker only in the
scheduler's backend, SQL only in the store); the rest are the size and comment rules."""
from __future__ import annotations

import ast
import importlib
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "builder", "router", "controller", "cli")
CHECKED_FOR_HISTORY = PACKAGES + ("tests", "bench")
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 80


def _sources() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]


MAX_FLAT_CONTROLLER_MODULES = 12


def test_the_controller_is_grouped_by_concern():
    """A newcomer finds a concern in one folder: only a few cross-cutting modules stay flat."""
    flat = sorted(p.name for p in (ROOT / "controller").glob("*.py") if p.name != "__init__.py")
    assert len(flat) <= MAX_FLAT_CONTROLLER_MODULES, f"move these into the folder of their concern: {flat}"


TRANSPORTS = ("api", "dashboard", "git", "web")


def test_transports_never_touch_the_store():
    """The API, the dashboard, git and the web layer they share call use cases; every read and
    write of the store goes through one (so a rule added there holds for every transport).
    import-linter forbids importing controller.store there; this catches `svc().store.X`."""
    hits = []
    for folder in TRANSPORTS:
        for path in sorted((ROOT / "controller" / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Attribute) and node.attr == "store":
                    hits.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not hits, f"call a use case (apps/queries.py, addons/queries.py, accounts/, observe/ ...) instead: {hits}"


def test_no_module_imports_a_private_name_of_another():
    hits = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
                hits += [f"{path.relative_to(ROOT)}: {node.module}.{a.name}" for a in node.names
                         if a.name.startswith("_") and not a.name.startswith("__")]
    assert not hits, f"make these public (and say what they are for) or keep them in their module: {hits}"


def test_every_module_imports():
    """A module that cannot be imported would only show when its process starts."""
    failures = []
    for pkg in PACKAGES:
        root = importlib.import_module(pkg)
        for info in pkgutil.walk_packages(root.__path__, prefix=f"{pkg}."):
            try:
                importlib.import_module(info.name)
            except Exception as e:  # noqa: BLE001 - collected and reported together
                failures.append(f"{info.name}: {e.__class__.__name__}: {e}")
    assert not failures, "\n".join(failures)


def test_no_file_is_over_the_size_limit():
    big = {str(p.relative_to(ROOT)): n for p in _sources() if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES}
    assert not big, f"split these files (over {MAX_FILE_LINES} lines): {big}"


def _is_data(node: ast.AST) -> bool:
    """A function that only returns a literal (a template) is data, not logic."""
    body = [n for n in node.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
    return len(body) == 1 and isinstance(body[0], ast.Return) and isinstance(body[0].value, (ast.Constant, ast.JoinedStr))


def test_no_function_is_over_the_size_limit():
    long = {}
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not _is_data(node):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(ROOT)}:{node.name}"] = length
    assert not long, f"split these functions (over {MAX_FUNCTION_LINES} lines): {long}"


HISTORY = re.compile(r"#.*\b(issue|LESSONS)\s*#?\d+|\b(issue|LESSONS)\s+\d+\b", re.IGNORECASE)


@pytest.mark.parametrize("pkg", CHECKED_FOR_HISTORY)
def test_comments_describe_design_not_tracker_history(pkg):
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in (ROOT / pkg).rglob("*.py") if p.name != "test_unit_layers.py"
            for i, line in enumerate(p.read_text().splitlines(), 1) if HISTORY.search(line)]
    assert not hits, f"say why in the present tense, not which issue: {hits}"
