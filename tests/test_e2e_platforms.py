"""Apps written for Render, and static JavaScript builds, pushed unchanged with plain `git push`
and answering their own page through the router: a render.yaml app (build command, pre-deploy
migration against the Postgres add-on its `databases:` asks for, envVars from a value, a group,
a generated secret and the database, a worker and a cron job, Render's own variables, and a
server that binds to localhost unless RENDER is set); a JavaScript app whose `build` script
writes dist/ (Vite's shape) served as a static site. One platform for the module; each push is
timed (cold: a new app; warm: the same app again) for the notes."""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from builder.buildpacks import shipped_names

from .conftest import make_app_repo, run, start_platform, stop_platform, unique_app

pytestmark = pytest.mark.e2e
SAMPLES = Path(__file__).resolve().parent / "samples"


@pytest.fixture(scope="module")
def pf(tmp_path_factory):
    p = start_platform(tmp_path_factory.mktemp("platforms"), DOCKYARD_HEALTH_TIMEOUT="30")
    try:
        yield p
    finally:
        stop_platform(p)     # its add-on volumes too


def sample(name: str) -> dict[str, bytes]:
    root = SAMPLES / name
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def create(pf, tmp_path, prefix: str, files: dict) -> tuple[str, Path]:
    name = unique_app(prefix)
    repo = make_app_repo(tmp_path / name, files, pf)
    pf.cli("apps:create", name, cwd=repo)
    return name, repo


def timed_push(pf, repo: Path, label: str, check: bool = True):
    started = time.monotonic()
    proc = pf.git("push", "dockyard", "main", cwd=repo, check=False, timeout=900)
    print(f"\npush time {label}: {time.monotonic() - started:.1f} s")
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_render_yaml_app_with_database_worker_cron_and_render_variables(pf, tmp_path):
    name, repo = create(pf, tmp_path, "render", sample("render"))
    out = timed_push(pf, repo, "render.yaml (python + postgres) cold").stderr
    assert "render.yaml: service render-sample; processes queue, web; 1 cron job(s); add-ons sampledb (postgres)" \
        in out, out
    assert "Setting Render's variables: IS_PULL_REQUEST, RENDER, RENDER_EXTERNAL_HOSTNAME" in out
    assert "Generated a secret value for SECRET_KEY (render.yaml generateValue)" in out
    assert "Running render.yaml buildCommand: pip install -r requirements.txt && python build.py" in out
    assert "attached as DATABASE_URL" in out and "Setting DB_HOST from render.yaml (host of sampledb)" in out
    assert "migrated" in out                                   # preDeployCommand, with the database
    host = f"{name}.{pf.domain}"
    page = f"hello from render.yaml; service=render-sample host={host} secret=64 db_host=True migrations=1; " \
           "built with RENDER=true MODE=render-demo\n"
    assert pf.curl(name) == (200, page)
    ps = pf.cli("ps", "-a", name).stdout
    assert "queue" in ps and "web" in ps, ps
    addons = pf.cli("addons", "-a", name).stdout
    assert "DATABASE_URL" in addons, addons
    secret = pf.cli("config:get", "SECRET_KEY", "-a", name).stdout.strip()
    assert len(secret) == 64 and secret not in out
    # a warm push: the same add-on, a second migration, nothing created twice
    make_app_repo(repo, {"worker.py": sample("render")["worker.py"] + b"# again\n"}, pf)
    again = timed_push(pf, repo, "render.yaml (python + postgres) warm").stderr
    assert "Creating postgres" not in again and "Setting Render's variables" not in again, again
    assert pf.curl(name) == (200, page.replace("migrations=1", "migrations=2"))
    assert len(pf.cli("addons", "-a", name).stdout.strip().splitlines()) == len(addons.strip().splitlines())
    listing = pf.cli("cron", "-a", name).stdout      # the cron job runs as app.json's do (seen in the conventions test)
    assert "echo cron-ran mode=$MODE" in listing and "next run" in listing, listing


def test_static_javascript_build_is_served_without_node(pf, tmp_path):
    name, repo = create(pf, tmp_path, "vite", sample("vite-static"))
    out = timed_push(pf, repo, "static JS build (dist/) cold").stderr
    assert "Running: npm run build" in out and "Static build output in dist/: served by busybox httpd" in out, out
    assert "Vendored Node.js" not in out
    # no stack under the site: busybox is its shell and server, so the image is a few MB
    size = re.search(r"image ([0-9.]+) MB", out)
    assert size and float(size.group(1)) < 10, out
    assert "onto scratch" in out, out
    code, body = pf.curl(name)
    assert code == 200 and "<h1>built by vite-shaped build</h1>" in body, (code, body)
    # a single-page app: an unknown path gets index.html (the client-side router's page)
    assert "<h1>built by vite-shaped build</h1>" in pf.curl(name, "/some/client/route")[1]
    assert pf.curl(name, "/assets/app.js") == (200, "console.log('hi');\n")
    make_app_repo(repo, {"src/title.txt": "built again"}, pf)
    timed_push(pf, repo, "static JS build (dist/) warm")
    assert "<h1>built again</h1>" in pf.curl(name)[1]


def test_yarn_berry_app_installs_with_the_yarn_its_package_json_names(pf, tmp_path):
    name, repo = create(pf, tmp_path, "yarn4", sample("yarn-berry"))
    out = timed_push(pf, repo, "yarn 4 (packageManager) cold").stderr
    assert "Installing @yarnpkg/cli-dist@4.18.1 from the npm registry" in out, out
    assert "yarn install --immutable (yarn 4.18.1, nodeLinker node-modules)" in out, out
    assert pf.curl(name) == (200, "yarn berry app: 2m in ms is 90000\n")
    # a broken lockfile: the push shows yarn's own error, not only its warnings
    make_app_repo(repo, {"package.json": sample("yarn-berry")["package.json"].replace(b'"2.1.3"', b'"2.1.2"')}, pf)
    bad = timed_push(pf, repo, "yarn 4 (lockfile out of date)", check=False)
    assert bad.returncode != 0
    assert "yarn-berry could not install the dependencies (exit 1). Its errors:" in bad.stderr, bad.stderr
    assert "lockfile would have been modified" in bad.stderr, bad.stderr
    assert pf.curl(name) == (200, "yarn berry app: 2m in ms is 90000\n")


def test_python_app_with_no_requirements_and_the_null_buildpack_by_its_dokku_url(pf, tmp_path):
    name, repo = create(pf, tmp_path, "nodeps", sample("python-nodeps"))
    out = timed_push(pf, repo, "python, no requirements file (Dokku smoke test) cold").stderr
    assert "Python app detected" in out and "no dependencies to install" in out, out
    assert pf.curl(name) == (200, "python with no dependencies, venv=/app/.heroku/python\n")
    # Dokku's null buildpack by URL: the shipped one, not a clone; the Procfile runs on the stack
    pf.cli("config:set", "BUILDPACK_URL=https://github.com/dokku/buildpack-null", "-a", name)
    make_app_repo(repo, {"README": "null buildpack\n"}, pf)
    out = timed_push(pf, repo, "null buildpack (BUILDPACK_URL) warm").stderr
    assert "https://github.com/dokku/buildpack-null is Dockyard's shipped null buildpack (nothing is fetched)" in out
    assert "Fetching buildpack" not in out and "Null buildpack: nothing to build" in out, out
    assert pf.curl(name) == (200, "python with no dependencies, venv=none\n")


def test_piku_wsgi_procfile_and_env_file(pf, tmp_path):
    name, repo = create(pf, tmp_path, "piku", sample("piku-wsgi"))
    out = timed_push(pf, repo, "piku wsgi: + ENV cold").stderr
    assert "Setting GREETING from piku's ENV file" in out and "Setting PORT" not in out, out
    assert "Installing gunicorn (the app is served by it" in out
    assert "Procfile wsgi: app:application is served by `gunicorn app:application --bind 0.0.0.0:$PORT`" in out
    assert pf.curl(name) == (200, "hello from piku via gunicorn\n")
    make_app_repo(repo, {"app.py": sample("piku-wsgi")["app.py"] + b"# again\n"}, pf)
    assert "Dependencies unchanged" in timed_push(pf, repo, "piku wsgi: + ENV warm").stderr
    assert pf.curl(name) == (200, "hello from piku via gunicorn\n")


def test_fastapi_app_without_procfile_is_served_by_uvicorn(pf, tmp_path):
    name, repo = create(pf, tmp_path, "fastapi", sample("fastapi"))
    out = timed_push(pf, repo, "FastAPI, no Procfile cold").stderr
    assert "Installing uvicorn (the app is served by it and its dependencies do not list it)" in out, out
    assert "Default web process: uvicorn main:app --host 0.0.0.0 --port $PORT" in out, out
    assert pf.curl(name) == (200, '{"hello":"from fastapi"}')
    make_app_repo(repo, {"main.py": sample("fastapi")["main.py"].replace(b'"from fastapi"', b'"again"')}, pf)
    timed_push(pf, repo, "FastAPI, no Procfile warm")
    assert pf.curl(name) == (200, '{"hello":"again"}')


def test_heroku_yml_build_languages_builds_with_those_buildpacks(pf, tmp_path):
    name, repo = create(pf, tmp_path, "hyml", sample("heroku-yml-go"))
    out = timed_push(pf, repo, "heroku.yml build.languages [go] cold").stderr
    assert "with buildpacks (heroku.yml build.languages: go)" in out, out
    assert "Buildpacks from heroku.yml: heroku/go" in out and "heroku/go is Dockyard's shipped go buildpack" in out
    assert "heroku.yml run declares types: web" in out
    assert pf.curl(name) == (200, "go built from heroku.yml build.languages\n")


CRASHES_WITH_A_DATABASE = {
    "Dockerfile": "FROM dockyard-test/busybox:1\nCOPY web.sh /web.sh\nCMD [\"/bin/sh\", \"/web.sh\"]\n",
    "web.sh": 'if [ -n "$DATABASE_URL" ]; then echo "refusing to start with a database"; exit 1; fi\n'
              'mkdir -p /tmp/www && echo ok > /tmp/www/index.html\nexec httpd -f -p "$PORT" -h /tmp/www\n',
}


def test_addon_whose_config_release_fails_is_removed_again_and_config_has_no_url(pf, tmp_path, busybox_base):
    name, repo = create(pf, tmp_path, "pgfail", CRASHES_WITH_A_DATABASE)
    # a config change before any code: nothing is said to restart
    said = pf.cli("config:set", "MODE=x", "-a", name).stdout
    assert "has no code deployed yet" in said and "restarting" not in said, said
    timed_push(pf, repo, "busybox Dockerfile cold")
    assert pf.curl(name) == (200, "ok\n")
    def addon_containers() -> list[str]:
        return run(["docker", "ps", "-aq", "--filter", f"label=dockyard.instance={pf.name}",
                    "--filter", "label=dockyard.addon"], check=False).stdout.split()

    before = addon_containers()        # other tests' add-ons on this platform
    proc = pf.cli("addons:create", "postgres", "-a", name, check=False)
    assert proc.returncode != 0
    assert "was removed again (it held no data yet)" in proc.stderr and "neither it nor DATABASE_URL" in proc.stderr, \
        proc.stderr
    assert "DATABASE_URL" not in pf.cli("config", "-a", name).stdout
    assert "has no add-ons" in pf.cli("addons", "-a", name).stdout
    assert addon_containers() == before
    assert pf.curl(name) == (200, "ok\n")


def test_rails_shaped_app_is_not_a_static_site_and_the_message_says_what_it_is(pf, tmp_path):
    name, repo = create(pf, tmp_path, "rails", sample("rails-shaped"))
    proc = timed_push(pf, repo, "Rails-shaped (refused)", check=False)
    assert proc.returncode != 0
    assert "Static app detected" not in proc.stderr, proc.stderr
    if "ruby" not in shipped_names():   # else the Ruby buildpack takes it (and rubygems is out of reach here)
        assert "Found a Gemfile: Ruby apps need the Ruby buildpack" in proc.stderr, proc.stderr


def test_python_36_app_gets_the_nearest_python_on_the_bullseye_stack(pf, tmp_path):
    name, repo = create(pf, tmp_path, "py36", sample("python36-flask012"))
    when = "2017-12-01T12:00:00Z"     # a commit of then: its unpinned dependencies as they were then
    run(["git", "commit", "-q", "--amend", "--no-edit", f"--date={when}"], cwd=repo,
        env={**pf.env, "GIT_COMMITTER_DATE": when})
    out = timed_push(pf, repo, "Python 3.6 app (nearest: 3.9, bullseye stack) cold").stderr
    assert "Python 3.6 is not available here: using the nearest, Python 3.9" in out, out
    assert "on the bullseye stack (requested 3.6.6: not available; the nearest is 3.9" in out, out
    assert "The commit is from 2017-12-01" in out and "werkzeug==0.12.2" in out.lower(), out
    assert pf.curl(name) == (200, "flask 0.12 on python 3.9\n")
    make_app_repo(repo, {"app.py": sample("python36-flask012")["app.py"] + b"# again\n"}, pf)
    run(["git", "commit", "-q", "--amend", "--no-edit", f"--date={when}"], cwd=repo,
        env={**pf.env, "GIT_COMMITTER_DATE": when})
    assert "Dependencies unchanged" in timed_push(pf, repo, "Python 3.6 app (nearest: 3.9, bullseye stack) warm").stderr
    assert pf.curl(name) == (200, "flask 0.12 on python 3.9\n")
    # A pin that cannot run on the Python the app gets: the push names it and the Python it needs.
    make_app_repo(repo, {"requirements.txt": sample("python36-flask012")["requirements.txt"] + b"Django==5.0\n"}, pf)
    bad = timed_push(pf, repo, "Python 3.6 app with a pin for Python >= 3.10 (refused)", check=False)
    assert bad.returncode != 0
    assert "requirements.txt line 3: Django==5.0" in bad.stderr, bad.stderr
    assert "django==5.0 needs Python >=3.10, and this app gets Python 3.9" in bad.stderr, bad.stderr
    assert "(it asks for 3.6.6)" in bad.stderr
    assert pf.curl(name) == (200, "flask 0.12 on python 3.9\n")


def test_node_app_with_no_start_command_is_told_a_node_procfile_line(pf, tmp_path):
    name, repo = create(pf, tmp_path, "nostart", {"package.json": '{"name": "nostart", "version": "1.0.0"}\n',
                                                  "index.js": "console.log('no server here');\n"})
    proc = timed_push(pf, repo, "Node app with no start command (refused)", check=False)
    assert proc.returncode != 0
    assert "Add a Procfile, e.g. `web: node server.js`" in proc.stderr, proc.stderr
    assert "gunicorn" not in proc.stderr
