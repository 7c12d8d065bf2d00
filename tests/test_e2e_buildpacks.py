"""Buildpacks end to end: real `git push` of source without a Dockerfile, buildpacks
run in a build container of the build image, the app answers through the router.

One platform for the module, with a short build timeout (for the hung-buildpack test)."""
from __future__ import annotations

import ipaddress
import json
import stat
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import BUSYBOX_BASE, free_port, make_app_repo, run, start_platform, stop_platform, unique_app, wait_until

pytestmark = pytest.mark.e2e
SAMPLES = Path(__file__).resolve().parent / "samples"
BUILD_TIMEOUT = 40
BUILD_MEMORY_MB = 768


@pytest.fixture(scope="module")
def bp(tmp_path_factory, busybox_base):
    # The operator lets builds use buildpacks from the test's own directories (none by default).
    p = start_platform(tmp_path_factory.mktemp("bp-platform"), DOCKYARD_BUILD_TIMEOUT=str(BUILD_TIMEOUT),
                       DOCKYARD_BUILD_MEMORY_MB=str(BUILD_MEMORY_MB),
                       DOCKYARD_BUILDPACK_PATHS=str(tmp_path_factory.getbasetemp()))
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


def cache_of(p, app: str) -> Path:
    """The app's CACHE_DIR: under its id (a name is reused by the next app of that name)."""
    app_id = json.loads(run(["curl", "-sS", "-H", f"Authorization: Bearer {p.token()}", f"{p.api}/apps/{app}"]).stdout)["id"]
    return p.home / "cache" / app_id


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
    assert "-----> Detecting buildpack (in order: ruby, php, java, python, nodejs, go, static)" in out
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
    # ... and nothing is copied: the virtualenv stays out of the slug, its image layer is reused
    assert "reusing the cached virtualenv and its image layer (no download, nothing copied)" in out
    assert "-----> Dependencies unchanged: reusing their image layer (nothing copied)" in out
    assert "Importing the dependencies" not in out and "Importing the slug (0.0 MB)" in out
    assert "Successfully installed" not in out and "Downloading" not in out
    assert wait_body(bp, app, "hi again from python")

    # repo:purge-cache empties the cache: the next build installs again
    purged = bp.cli("repo:purge-cache", "-a", app).stdout
    assert "Purged the build cache of" in purged
    cache = cache_of(bp, app)
    assert not cache.exists() and cache.parent.is_dir()
    make_app_repo(repo, {"app.py": (repo / "app.py").read_text().replace("hi again", "purged")}, bp)
    out = push(bp, app, repo).stderr
    assert "Successfully installed gunicorn" in out
    assert wait_body(bp, app, "purged from python")
    tags = run(["docker", "images", "--format", "{{.Tag}}", f"{bp.name}/{app}"]).stdout.split()
    assert len([t for t in tags if t.startswith("deps-")]) == 1, tags   # older dependency images untagged

    assert cache.exists()
    bp.cli("apps:destroy", "-a", app, "--confirm", app)
    assert run(["docker", "images", "-q", f"{bp.name}/{app}"]).stdout.split() == []   # dependency images too
    assert not cache.exists()


def test_nodejs_sample(bp, tmp_path):
    app = create(bp, "node")
    repo = make_app_repo(tmp_path / "node", sample_files("nodejs"), bp)
    out = push(bp, app, repo).stderr
    assert "-----> Node.js app detected (buildpack nodejs)" in out
    assert "Installing dependencies: npm ci (package-lock.json)" in out
    assert "Default web process: npm start (node server.js)" in out
    assert "Node.js v24." in out and "no engines.node in package.json" in out, out
    assert wait_body(bp, app, "hello from node v24")
    make_app_repo(repo, {"server.js": (repo / "server.js").read_text().replace("hello from node", "hi from node")}, bp)
    out = push(bp, app, repo).stderr
    assert "reusing the cached node_modules and their image layer (no download, nothing copied)" in out, out
    assert "npm ci" not in out and "Vendored Node.js" not in out
    assert wait_body(bp, app, "hi from node v24")


def test_nodejs_dev_dependencies_are_pruned_after_the_build(bp, tmp_path):
    """A devDependency is installed for the build (the build script uses it), then pruned from
    the slug; the cached node_modules keeps it, so a code-only push installs nothing; with
    NPM_CONFIG_PRODUCTION=false the devDependencies stay, as on Heroku."""
    app = create(bp, "nodedev")
    files = sample_files("nodejs")
    del files["package-lock.json"]
    files["package.json"] = json.dumps({
        "name": "dockyard-sample-node-dev", "version": "1.0.0", "private": True,
        "scripts": {"start": "node server.js",
                    # writes into node_modules when gen.txt exists (as a generated client would)
                    "build": "node -e \"require('is-number'); const fs = require('fs'); if (fs.existsSync('gen.txt')) "
                             "fs.writeFileSync('node_modules/generated.txt', fs.readFileSync('gen.txt')); "
                             "console.log('build used is-number')\""},
        "devDependencies": {"is-number": "7.0.0"}}).encode()
    repo = make_app_repo(tmp_path / "nodedev", files, bp)

    def modules(version: int) -> str:
        image = f"{bp.name}/{app}:v{version}"
        # an image without node_modules lists nothing; one that does not run fails the test
        return run(["docker", "run", "--rm", "--entrypoint", "/bin/sh", image, "-c",
                    "test -d /app && { ls /app/node_modules 2>/dev/null; true; }"]).stdout

    out = push(bp, app, repo).stderr
    assert "build used is-number" in out and "Pruned devDependencies" in out, out
    assert wait_body(bp, app, "hello from node")
    assert "is-number" not in modules(1)
    # a code-only push: the build uses the cached node_modules (devDependencies too) in place, and
    # the image is built on the layer of pruned dependencies made by the first build
    make_app_repo(repo, {"server.js": (repo / "server.js").read_text().replace("hello from node", "code from node")}, bp)
    out = push(bp, app, repo).stderr
    assert "reusing the cached node_modules and their image layer (no download, nothing copied)" in out, out
    assert "build used is-number" in out and "Pruned devDependencies" not in out, out
    assert "-----> Dependencies unchanged: reusing their image layer (nothing copied)" in out, out
    assert wait_body(bp, app, "code from node")
    listed = modules(2)
    assert "is-number" not in listed and listed.strip() == modules(1).strip()
    bp.cli("config:set", "NPM_CONFIG_PRODUCTION=false", "-a", app)    # release v3
    make_app_repo(repo, {"server.js": (repo / "server.js").read_text().replace("code from node", "hi from node")}, bp)
    out = push(bp, app, repo).stderr
    assert "Dependencies unchanged: reusing the cached node_modules (no download)" in out, out
    assert "build used is-number" in out, out
    assert "Keeping devDependencies (NPM_CONFIG_PRODUCTION or YARN_PRODUCTION is false)" in out, out
    assert "is-number" in modules(4)
    # a build that writes into node_modules (e.g. a generated client): the image gets them, not
    # the layer of the build before
    make_app_repo(repo, {"gen.txt": "generated v5"}, bp)
    out = push(bp, app, repo).stderr
    assert "reusing the cached node_modules and their image layer" in out, out
    assert "The build script changed node_modules: they go into the image again" in out, out
    generated = run(["docker", "run", "--rm", "--entrypoint", "/bin/cat", f"{bp.name}/{app}:v5",
                     "/app/node_modules/generated.txt"], check=False).stdout
    assert generated == "generated v5"


def test_go_sample(bp, tmp_path):
    app = create(bp, "go")
    repo = make_app_repo(tmp_path / "go", sample_files("go"), bp)
    out = push(bp, app, repo).stderr
    assert "-----> Go app detected (buildpack go)" in out
    assert "Built bin/hellogo" in out
    assert wait_body(bp, app, "hello from go go1.")
    assert any((cache_of(bp, app) / "go-build").iterdir())     # Go's build cache is kept for the next push


def test_static_sample(bp, tmp_path):
    app = create(bp, "static")
    repo = make_app_repo(tmp_path / "static", sample_files("static"), bp)
    out = push(bp, app, repo).stderr
    assert "-----> Static app detected (buildpack static)" in out
    assert "document root /app/public" in out
    assert wait_body(bp, app, "<h1>hello from static</h1>")


# ---- detection failures and bad input --------------------------------------------------
def test_nothing_detected_lists_every_buildpack_tried(bp, tmp_path):
    app = create(bp, "none")
    repo = make_app_repo(tmp_path / "none", {"README.md": "just words\n", "Procfile": "web: ./serve\n"}, bp)
    proc = push(bp, app, repo, check=False)
    assert proc.returncode != 0
    assert "[remote rejected]" in proc.stderr
    assert "looked for a Dockerfile and a heroku.yml" in proc.stderr
    assert "no buildpack detected this app. Tried, in order: ruby (looks for Gemfile); php (looks for " \
           "composer.json or index.php); java (looks for pom.xml" in proc.stderr
    for name in ("python (looks for requirements.txt", "nodejs (looks for package.json)", "go (looks for go.mod or *.go files)", "static (looks for index.html"):
        assert name in proc.stderr
    assert bp.curl(app)[0] != 200


def test_empty_repo_is_rejected_with_what_to_add(bp, tmp_path):
    app = create(bp, "empty")
    repo = make_app_repo(tmp_path / "empty", {}, bp)
    proc = push(bp, app, repo, check=False)
    assert proc.returncode != 0
    assert "The pushed commit has no files: add your app's source" in proc.stderr


def test_broken_requirements_txt_shows_the_failing_line(bp, tmp_path):
    app = create(bp, "badreq")
    files = sample_files("python")
    files["requirements.txt"] = b"gunicorn==23.0.0\nflask=>2.0\n"
    repo = make_app_repo(tmp_path / "badreq", files, bp)
    proc = push(bp, app, repo, check=False)
    assert proc.returncode != 0
    assert "requirements.txt line 2: flask=>2.0" in proc.stderr
    # a package that does not exist: pip does not say the line, the buildpack does
    make_app_repo(repo, {"requirements.txt": "gunicorn==23.0.0\n# ok\nno-such-package-dockyard-zz==1.0\n"}, bp)
    proc = push(bp, app, repo, check=False)
    assert proc.returncode != 0
    assert "requirements.txt line 3: no-such-package-dockyard-zz==1.0" in proc.stderr
    assert "pip could not install requirements.txt" in proc.stderr
    assert "The python buildpack's bin/compile failed (exit 1)" in proc.stderr


def test_broken_package_json_shows_the_failing_line(bp, tmp_path):
    app = create(bp, "badpkg")
    files = sample_files("nodejs")
    files["package.json"] = b'{\n  "name": "x",\n  "scripts": {"start": "node server.js",}\n}\n'
    repo = make_app_repo(tmp_path / "badpkg", files, bp)
    proc = push(bp, app, repo, check=False)
    assert proc.returncode != 0
    assert "package.json line 3:" in proc.stderr
    assert '3 |   "scripts": {"start": "node server.js",}' in proc.stderr
    assert "package.json is not valid JSON: fix the line shown above" in proc.stderr


@pytest.mark.parametrize("procfile, message", [
    (b"web: gunicorn app:app\n\x00\xff\xfe garbage", "Procfile is binary, not text"),
    (b"Web.Server: gunicorn app:app\n", "Procfile line 1: process type 'Web.Server' must be 1-30 characters"),
])
def test_bad_procfile_rejects_the_push(bp, tmp_path, procfile, message):
    app = create(bp, "badproc")
    files = {"index.html": b"hi\n", "Procfile": procfile}
    repo = make_app_repo(tmp_path / "badproc", files, bp)
    proc = push(bp, app, repo, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr


# ---- custom buildpacks: BUILDPACK_URL, .buildpacks, git URL, ENV_DIR, failures, timeout --
def test_custom_buildpack_from_path_gets_env_dir_and_runs_a_worker_only_app(bp, tmp_path):
    pack = make_buildpack(
        tmp_path / "packs" / "custom",
        detect='[ -f "$1/hello.txt" ] && echo "Hello" && exit 0; exit 1',
        compile_=('echo "-----> custom compile as uid $(id -u) in $1"\n'
                  'echo "plain line from compile"\n'
                  '[ -f "$3/API_SECRET" ] || { echo " !     no API_SECRET in ENV_DIR"; exit 1; }\n'
                  'echo "careless buildpack prints $(cat "$3/API_SECRET")"\n'
                  'touch "$2/was-here"'),
        release='printf -- "---\\ndefault_process_types:\\n  worker: while true; do sleep 1; done\\n"')
    app = create(bp, "custom")
    bp.cli("config:set", "-a", app, f"BUILDPACK_URL={pack}", "API_SECRET=very-secret-123")
    repo = make_app_repo(tmp_path / "custom", {"hello.txt": "hi\n"}, bp)
    out = push(bp, app, repo).stderr
    assert f"Buildpacks from BUILDPACK_URL: {pack}" in out
    assert f"-----> Hello app detected (buildpack {pack})" in out
    assert "-----> custom compile as uid 1000 in /app" in out       # in the build container, not as root
    assert "remote:        plain line from compile" in out          # indented under its heading
    assert "very-secret-123" not in out
    assert "careless buildpack prints [config value hidden]" in out
    assert "Default types for buildpack: worker" in out
    assert (cache_of(bp, app) / "was-here").exists()          # CACHE_DIR is the app's, kept
    deadline = time.monotonic() + 30
    while not bp.containers(app, running_only=True) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert bp.containers(app, running_only=True), "the worker-only app runs"
    ps = bp.cli("ps", "-a", app).stdout
    assert "worker.1" in ps and "web" not in ps
    assert bp.curl(app)[0] != 200                                   # no web process: no route
    build = last_build(bp, app)
    assert build["method"] == f"buildpack:{pack} (Hello)"


def test_buildpacks_file_with_git_url_and_a_failing_buildpack(bp, tmp_path):
    """A git buildpack is cloned in a container on a network of its own: served here by `git
    daemon` on this host's address on the engine's default bridge, as a git host outside the
    platform would be (the build step reaches it through its network's route, as it would reach
    any other host; other containers it cannot reach)."""
    src = make_buildpack(tmp_path / "gitpack", detect='echo "Failing"; exit 0',
                         compile_='echo "-----> about to fail"; echo "the real reason: disk on fire"; exit 3',
                         release='echo "---"')
    run(["git", "init", "-q", "-b", "main", str(src)], env=bp.env)
    run(["git", "add", "-A"], cwd=src, env=bp.env)
    run(["git", "commit", "-q", "-m", "bp"], cwd=src, env=bp.env)
    served = tmp_path / "served"
    run(["git", "clone", "-q", "--bare", str(src), str(served / "bp.git")], env=bp.env)
    subnet = run(["docker", "network", "inspect", "bridge", "-f", "{{(index .IPAM.Config 0).Subnet}}"]).stdout.strip()
    host = str(ipaddress.ip_network(subnet)[1])     # the host's own address on the default bridge
    port = free_port()
    daemon = subprocess.Popen(["git", "daemon", "--export-all", "--reuseaddr", f"--base-path={served}",
                               f"--listen={host}", f"--port={port}", str(served)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: run(["git", "ls-remote", f"git://{host}:{port}/bp.git"], check=False).returncode == 0,
                   20, "git daemon to serve")
        url = f"git://{host}:{port}/bp.git"
        app = create(bp, "failbp")
        repo = make_app_repo(tmp_path / "failbp", {".buildpacks": f"# one per line\n{url}\n", "x.txt": "x"}, bp)
        proc = push(bp, app, repo, check=False)
        assert proc.returncode != 0
        assert f"Fetching buildpack {url}" in proc.stderr
        assert "the real reason: disk on fire" in proc.stderr, proc.stderr
        assert f"The {url} buildpack's bin/compile failed (exit 3)" in proc.stderr
        assert last_build(bp, app)["status"] == "failed"
    finally:
        daemon.terminate()
        daemon.wait(10)


def test_hung_buildpack_is_killed_at_the_build_timeout(bp, tmp_path):
    pack = make_buildpack(tmp_path / "packs" / "hang", detect='echo Hang',
                          compile_='echo "-----> hanging"; sleep 100000', release='echo "---"')
    app = create(bp, "hang")
    bp.cli("config:set", "-a", app, f"BUILDPACK_URL={pack}")
    repo = make_app_repo(tmp_path / "hang", {"x.txt": "x"}, bp)
    proc = push(bp, app, repo, check=False)
    assert proc.returncode != 0
    assert "-----> hanging" in proc.stderr
    assert (f"The build ran longer than {BUILD_TIMEOUT} s in {pack}'s bin/compile and was stopped (its container "
            "was killed): make it faster, or raise DOCKYARD_BUILD_TIMEOUT.") in " ".join(proc.stderr.split())
    deadline = time.monotonic() + 20
    while bp.containers(app) and time.monotonic() < deadline:       # removed right after the kill
        time.sleep(0.5)
    assert bp.containers(app) == []                                  # the build container is gone


# ---- other ways in: heroku.yml and an image from the engine ------------------------------
def test_heroku_yml_builds_the_named_dockerfile_with_run_and_release(bp, tmp_path):
    app = create(bp, "hyml")
    files = {
        "docker/Dockerfile.web": f"FROM {BUSYBOX_BASE}\nCOPY index.html /www/index.html\n",
        "index.html": "hello from heroku.yml\n",
        "Procfile": "web: this-is-ignored\n",
        "heroku.yml": ("build:\n  docker:\n    web: docker/Dockerfile.web\n"
                       "release:\n  image: web\n  command:\n    - /bin/sh\n    - -c\n    - echo release-phase-ran\n"
                       "run:\n  web: exec httpd -f -p $PORT -h /www\n"),
    }
    repo = make_app_repo(tmp_path / "hyml", files, bp)
    out = push(bp, app, repo).stderr
    assert "with heroku.yml: docker/Dockerfile.web" in out
    assert "release-phase-ran" in out
    assert wait_body(bp, app, "hello from heroku.yml")
    assert last_build(bp, app)["method"] == "heroku.yml (docker/Dockerfile.web)"

    make_app_repo(repo, {"heroku.yml": "build:\n  docker:\n    web: docker/Dockerfile.web\nrun:\n  web:\n    cmd: x\n"}, bp)
    proc = push(bp, app, repo, check=False)
    assert proc.returncode != 0
    assert "heroku.yml: unknown key `run.web.cmd` (line 6): use `command` and `image`." in proc.stderr
    assert wait_body(bp, app, "hello from heroku.yml")           # the previous release keeps serving


def test_deploy_an_image_from_the_engine(bp, tmp_path):
    app = create(bp, "img")
    ctx = tmp_path / "img"
    ctx.mkdir()
    (ctx / "index.html").write_text("hello from an image\n")
    (ctx / "Dockerfile").write_text(f"FROM {BUSYBOX_BASE}\nCOPY index.html /www/index.html\n"
                                    'CMD ["/bin/sh", "-c", "exec httpd -f -p $PORT -h /www"]\n')
    image = f"dockyard-test/{bp.name}-img:1"
    run(["docker", "build", "-q", "--label", f"dockyard.instance={bp.name}", "-t", image, str(ctx)])
    out = bp.cli("deploy", "-a", app, "--image", image).stdout
    assert f"Deployed {image} to {app} as v1" in out
    assert wait_body(bp, app, "hello from an image")
    builds = bp.cli("builds", "-a", app).stdout
    assert f"image:{image}" in builds

    proc = bp.cli("deploy", "-a", app, "--image", "dockyard-test/no-such-image:9", check=False)
    assert proc.returncode != 0
    assert "is not in this machine's Docker engine (there is no registry to pull from)" in proc.stderr


# ---- more of the Python buildpack ------------------------------------------------------
def test_python_version_the_stack_cannot_honour_and_no_default_web(bp, tmp_path):
    app = create(bp, "pyver")
    # a Python 3 version that is not here gets the nearest one (tests/test_e2e_platforms.py); Python 2 none
    files = {"requirements.txt": "# nothing yet\n", "runtime.txt": "python-2.7.18\n", "app.py": "print(1)\n"}
    repo = make_app_repo(tmp_path / "pyver", files, bp)
    proc = push(bp, app, repo, check=False)
    assert proc.returncode != 0
    assert ("Python 2.7.18 is not available: Dockyard provides Python 3.9, 3.11, 3.13, 3.14 and 3.15 (one stack each); "
            "change .python-version / runtime.txt to one of them (or remove it)") in proc.stderr

    (repo / "runtime.txt").unlink()
    make_app_repo(repo, {}, bp)
    proc = push(bp, app, repo, check=False)
    assert proc.returncode != 0
    assert "gunicorn is not among the dependencies, so there is no default web process: add a Procfile" in proc.stderr
    assert "The app has no process types" in proc.stderr


def test_python_pyproject_app_with_a_procfile_worker(bp, tmp_path):
    app = create(bp, "pyproj")
    files = {
        "pyproject.toml": ('[project]\nname = "pyproj"\nversion = "0.1"\ndependencies = ["gunicorn==23.0.0"]\n'
                           '[build-system]\nrequires = ["setuptools>=64"]\nbuild-backend = "setuptools.build_meta"\n'
                           '[tool.setuptools]\npy-modules = ["app"]\n'),
        "app.py": (SAMPLES / "python" / "app.py").read_text().replace("hello from python", "hello from pyproject"),
        "Procfile": "web: gunicorn app:app --bind 0.0.0.0:$PORT --workers 1\nworker: python -c 'import time; time.sleep(10**6)'\n",
    }
    repo = make_app_repo(tmp_path / "pyproj", files, bp)
    out = push(bp, app, repo).stderr
    assert "Installing dependencies from pyproject.toml" in out
    assert "Procfile declares types: web, worker" in out
    assert wait_body(bp, app, "hello from pyproject")
    bp.cli("ps:scale", "-a", app, "worker=1")                    # like Heroku, only web starts by itself
    assert "worker.1" in bp.cli("ps", "-a", app).stdout


def test_buildpack_out_of_memory_names_the_setting(bp, tmp_path):
    pack = make_buildpack(tmp_path / "packs" / "hog", detect="echo Hog",
                          compile_='echo "-----> allocating"; python3 -c "b = bytearray(1200 * 1024 * 1024)"',
                          release='echo "---"')
    app = create(bp, "hog")
    bp.cli("config:set", "-a", app, f"BUILDPACK_URL={pack}")
    repo = make_app_repo(tmp_path / "hog", {"x.txt": "x"}, bp)
    proc = push(bp, app, repo, check=False)
    assert proc.returncode != 0
    assert f"out of memory (limit {BUILD_MEMORY_MB} MB, raise DOCKYARD_BUILD_MEMORY_MB)" in proc.stderr


def test_a_committed_symlink_dockerfile_is_never_followed(bp, tmp_path):
    target = tmp_path / "host-file"
    target.write_text("host data\n")
    app = create(bp, "symlink")
    repo = tmp_path / "symlink"
    repo.mkdir()
    (repo / "Dockerfile").symlink_to(target)
    make_app_repo(repo, {"index.html": "x\n"}, bp)
    proc = push(bp, app, repo, check=False)
    assert proc.returncode != 0
    assert "Dockerfile is a symlink or not a regular file: commit the file itself" in proc.stderr
    assert target.read_text() == "host data\n"                       # nothing appended on the host
