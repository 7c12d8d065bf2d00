"""Buildpacks end to end (issue 3): real `git push` of source without a Dockerfile, buildpacks
run in a build container of the build image, the app answers through the router.

One platform for the module, with a short build timeout (for the hung-buildpack test)."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import BUSYBOX_BASE, make_app_repo, run, start_platform, stop_platform, unique_app

pytestmark = pytest.mark.e2e
SAMPLES = Path(__file__).resolve().parent / "samples"
BUILD_TIMEOUT = 60


@pytest.fixture(scope="module")
def bp(tmp_path_factory, busybox_base):
    p = start_platform(tmp_path_factory.mktemp("bp-platform"), DOCKYARD_BUILD_TIMEOUT=str(BUILD_TIMEOUT))
    try:
        yield p
    finally:
        stop_platform(p)


def sample_files(name: str) -> dict[str, bytes]:
    root = SAMPLES / name
    return {str(f.relative_to(root)): f.read_bytes() for f in sorted(root.rglob("*")) if f.is_file()}


def create(p, prefix: str) -> str:
    app = unique_app(prefix)
    p.cli("apps:create", app)
    return app


def push(p, app: str, repo: Path, check: bool = True) -> subprocess.CompletedProcess:
    url = f"{p.api}/{app}.git"
    proc = p.git("push", "-q", url, "HEAD:main", cwd=repo, check=False, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"push failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def wait_body(p, app: str, expected: str, path: str = "/", timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    code, body = 0, ""
    while time.monotonic() < deadline:
        code, body = p.curl(app, path)
        if code == 200 and expected in body:
            return body
        time.sleep(0.5)
    raise AssertionError(f"{app}{path}: last answer {code} {body[:200]!r}, wanted {expected!r}")


def last_build(p, app: str) -> dict:
    import json
    import urllib.request
    req = urllib.request.Request(f"{p.api}/apps/{app}/builds", headers={"Authorization": f"Bearer {p.token()}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())[-1]


def make_buildpack(root: Path, detect: str, compile_: str, release: str) -> Path:
    (root / "bin").mkdir(parents=True)
    for name, body in (("detect", detect), ("compile", compile_), ("release", release)):
        f = root / "bin" / name
        f.write_text("#!/bin/bash\n" + body + "\n")
        f.chmod(0o755)
    for d in (root, *root.parents):
        if str(d) in ("/", "/tmp"):
            break
        d.chmod(d.stat().st_mode | stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    return root


# ---- the shipped buildpacks ------------------------------------------------------------
def test_python_sample_cold_warm_cache_and_purge(bp, tmp_path):
    app = create(bp, "py")
    bp.cli("config:set", "-a", app, "GREETING=s3cr3t-value-42")
    repo = make_app_repo(tmp_path / "py", sample_files("python"), bp)
    out = push(bp, app, repo).stderr
    assert "-----> Detecting buildpack (in order: python, nodejs, go, static)" in out
    assert "-----> Python app detected (buildpack python)" in out
    assert "Python 3.11" in out and "requested 3.11: honoured" in out
    assert "Installing dependencies from requirements.txt" in out
    assert "Successfully installed gunicorn" in out
    assert "Default web process: gunicorn app:app" in out
    assert "s3cr3t-value-42" not in out            # config vars reach compile, never the output
    assert wait_body(bp, app, "hello from python s3cr3t-value-42")
    build = last_build(bp, app)
    assert build["method"].startswith("buildpack:python")
    assert build["source_commit"] == run(["git", "rev-parse", "HEAD"], cwd=repo).stdout.strip()
    assert build["duration_seconds"] is not None
    info = bp.cli("builds:info", build["id"], "-a", app).stdout
    assert "Method:   buildpack:python (Python)" in info and "Duration:" in info
    assert "Successfully installed gunicorn" in bp.cli("builds:output", build["id"], "-a", app).stdout

    # a code-only change: nothing is downloaded or installed again
    (repo / "app.py").write_text((repo / "app.py").read_text().replace("hello from python", "hi again from python"))
    make_app_repo(repo, {}, bp)
    out = push(bp, app, repo).stderr
    assert "Dependencies unchanged: reusing the cached virtualenv (no download)" in out
    assert "Successfully installed" not in out and "Downloading" not in out
    assert wait_body(bp, app, "hi again from python")

    # repo:purge-cache empties the cache: the next build installs again
    purged = bp.cli("repo:purge-cache", "-a", app).stdout
    assert "Purged the build cache of" in purged
    assert not (bp.home / "cache" / app).exists()
    make_app_repo(repo, {"app.py": (repo / "app.py").read_text().replace("hi again", "purged")}, bp)
    out = push(bp, app, repo).stderr
    assert "Successfully installed gunicorn" in out
    assert wait_body(bp, app, "purged from python")


def test_nodejs_sample(bp, tmp_path):
    app = create(bp, "node")
    repo = make_app_repo(tmp_path / "node", sample_files("nodejs"), bp)
    out = push(bp, app, repo).stderr
    assert "-----> Node.js app detected (buildpack nodejs)" in out
    assert "Installing dependencies: npm ci (package-lock.json)" in out
    assert "Default web process: npm start (node server.js)" in out
    assert wait_body(bp, app, "hello from node v18")


def test_go_sample(bp, tmp_path):
    app = create(bp, "go")
    repo = make_app_repo(tmp_path / "go", sample_files("go"), bp)
    out = push(bp, app, repo).stderr
    assert "-----> Go app detected (buildpack go)" in out
    assert "Built bin/hellogo" in out
    assert wait_body(bp, app, "hello from go go1.")


def test_static_sample(bp, tmp_path):
    app = create(bp, "static")
    repo = make_app_repo(tmp_path / "static", sample_files("static"), bp)
    out = push(bp, app, repo).stderr
    assert "-----> Static app detected (buildpack static)" in out
    assert "document root /app/public" in out
    assert wait_body(bp, app, "<h1>hello from static</h1>")
