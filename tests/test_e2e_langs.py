"""Ruby, PHP and the JVM end to end: a framework app pushed unchanged, built by the shipped
buildpack on its language stack with dependencies from the operator's configured source, answering
through the router; then a warm push reusing the app's dependency cache.

This machine reaches none of rubygems.org, Packagist or Maven Central, so the sources are the
local mirrors an operator of such a machine would set up from Debian's packaged libraries
(scripts/mirrors/): a gem source, a Composer artifact repository, Debian's Maven repository.
One platform for the module."""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from .conftest import make_app_repo, run, start_platform, stop_platform
from .test_e2e_buildpacks import create, push, sample_files, wait_body

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parent.parent


def _readable(path: Path) -> Path:
    """Build containers run as uid 1000: the mirror and the directories above it must be readable."""
    run(["chmod", "-R", "a+rX", str(path)])
    for d in path.parents:
        if str(d) in ("/", "/tmp"):
            break
        d.chmod(d.stat().st_mode | 0o055)
    return path


@pytest.fixture(scope="module")
def mirrors(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("mirrors")
    run(["ruby", str(ROOT / "scripts/mirrors/gems-from-debian.rb"), str(root / "gems"),
         "sinatra", "rack", "rack-protection", "mustermann", "tilt", "ruby2_keywords", "webrick"])
    run(["python3", str(ROOT / "scripts/mirrors/composer-from-debian.py"), str(root / "composer")])
    run(["bash", str(ROOT / "scripts/mirrors/maven-from-debian.sh"), str(root / "maven")])
    return {"ruby": _readable(root / "gems"), "php": _readable(root / "composer"), "java": _readable(root / "maven")}


@pytest.fixture(scope="module")
def lp(tmp_path_factory, mirrors):
    p = start_platform(tmp_path_factory.mktemp("lang-platform"), DOCKYARD_BUILD_TIMEOUT="900",
                       DOCKYARD_HEALTH_TIMEOUT="60",
                       DOCKYARD_RUBYGEMS_URL=str(mirrors["ruby"]), DOCKYARD_COMPOSER_REPO=str(mirrors["php"]),
                       DOCKYARD_MAVEN_MIRROR=str(mirrors["java"]))
    try:
        yield p
    finally:
        stop_platform(p)


def timed_push(p, app: str, repo: Path) -> tuple[str, float]:
    started = time.monotonic()
    out = push(p, app, repo).stderr
    return out, time.monotonic() - started


def cold_then_warm(p, app: str, repo: Path, edit: tuple[str, str, str], expected: str) -> tuple[str, str, float, float]:
    """Push, wait for `expected`; edit one file (path, old, new) and push again. Returns both
    outputs and both push durations (printed for the report). The cache's use is asserted from
    the outputs (nothing installed or fetched again), not from the durations: with a local mirror
    a cold fetch is cheap, and on a shared 2-core machine the rest of a push varies more."""
    cold_out, cold = timed_push(p, app, repo)
    wait_body(p, app, expected, timeout=60)
    path, old, new = edit
    (repo / path).write_text((repo / path).read_text().replace(old, new))
    make_app_repo(repo, {}, p)
    warm_out, warm = timed_push(p, app, repo)
    wait_body(p, app, new, timeout=60)
    step = [re.findall(r"(?:Gems installed|Dependencies installed|Built) in (\d+) s", o) for o in (cold_out, warm_out)]
    print(f"\n{app}: cold push {cold:.1f} s, warm push {warm:.1f} s, warm/cold {warm / cold:.2f}; "
          f"dependency step cold {step[0]} s, warm {step[1]} s")
    return cold_out, warm_out, cold, warm


def test_ruby_sinatra_from_gem_mirror(lp, tmp_path):
    app = create(lp, "rb")
    repo = make_app_repo(tmp_path / "rb", sample_files("ruby-sinatra"), lp)
    cold_out, warm_out, cold, warm = cold_then_warm(lp, app, repo, ("app.rb", "Hello from Sinatra", "Howdy from Sinatra"),
                                                    "Hello from Sinatra 3.0.5 on Ruby 3.1")
    assert "-----> Ruby app detected (buildpack ruby)" in cold_out
    assert "Using Ruby 3.1" in cold_out and "requested by the Gemfile's ruby line" in cold_out
    assert "Gems of https://rubygems.org come from the mirror file:///dockyard/mirror" in cold_out
    assert "Installing sinatra 3.0.5" in cold_out
    assert "Default web process" not in cold_out or "rackup" in cold_out
    # warm: every gem comes from the app's cache, and the dependency layer is reused
    assert "Installing " not in warm_out.replace("Installing gems with Bundler", "")
    assert "Dependencies unchanged since an earlier build: reusing their image layer" in warm_out
    code, body = lp.curl(app, "/env")
    assert (code, body) == (200, "production")


def test_php_slim_from_composer_artifacts(lp, tmp_path):
    app = create(lp, "php")
    repo = make_app_repo(tmp_path / "php", sample_files("php-slim"), lp)
    cold_out, warm_out, cold, warm = cold_then_warm(lp, app, repo, ("public/index.php", "Hello from Slim", "Hi from Slim"),
                                                    "Hello from Slim 3.12.3 on PHP 8.2")   # Debian 3.12.4 says 3.12.3
    assert "-----> PHP app detected (buildpack php)" in cold_out
    assert "Using PHP 8.2" in cold_out and "Extensions required by composer.json: json mbstring" in cold_out
    assert "Packages come from the package zips in the mirror file:///dockyard/mirror" in cold_out
    assert "Installing slim/slim (3.12.4)" in cold_out
    # warm: vendor/ and Composer's cache are the app's: nothing is extracted again
    assert "Installing slim/slim" not in warm_out and "Nothing to install" in warm_out
    assert "Dependencies unchanged since an earlier build: reusing their image layer" in warm_out
    # Slim's router behind the front controller, an extension the app required
    code, body = lp.curl(app, "/hello/dockyard")
    assert (code, body) == (200, "HELLO, DOCKYARD")


def test_java_jetty_from_maven_mirror(lp, tmp_path):
    app = create(lp, "jvm")
    repo = make_app_repo(tmp_path / "jvm", sample_files("java-jetty"), lp)
    cold_out, warm_out, cold, warm = cold_then_warm(
        lp, app, repo, ("src/main/java/example/Main.java", "Hello from Jetty", "Greetings from Jetty"),
        "Hello from Jetty 9.4.57.v20241219 on Java 17")
    assert "-----> Java (Maven) app detected (buildpack java)" in cold_out
    assert "Using OpenJDK 17" in cold_out and "requested by system.properties (17)" in cold_out
    assert "Maven repositories are mirrored by file:///dockyard/mirror" in cold_out
    assert "BUILD SUCCESS" in cold_out
    fetched = int(re.search(r"Maven fetched (\d+) artifacts from the mirror", cold_out).group(1))
    assert fetched > 20        # Jetty, the servlet API, the plugins and theirs
    # warm: the app's ~/.m2 in its cache has every artifact: Maven fetches nothing
    assert "Maven fetched 0 artifacts from the mirror" in warm_out and "BUILD SUCCESS" in warm_out
