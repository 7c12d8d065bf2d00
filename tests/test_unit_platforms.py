"""Pure logic of other platforms' conventions: Render's blueprint (render.yaml) read into the
manifest app.json gives, its connection properties and variables; static JavaScript builds;
Heroku's and Dokku's buildpack names and URLs; heroku.yml's build.languages."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from builder.buildpacks import (BuildpackError, BuildpackRef, found_languages, no_match_message, parse_buildpack_ref,
                               procfile_example, select_buildpacks, shipped_names)
from builder.errors import BuildError
from builder.herokuyml import parse_heroku_yml
from builder.manifest import read_manifest
from core.piku import PikuError, parse_env_file, serve_types
from core.renderyaml import RenderYamlError, merge, parse_render_yaml, process_type, property_value

SAMPLES = Path(__file__).resolve().parent / "samples"


def test_render_yaml_sample_gives_processes_scripts_env_cron_and_addons():
    manifest, notes = parse_render_yaml((SAMPLES / "render" / "render.yaml").read_text())
    render = manifest["render"]
    assert render["service"] == "render-sample"
    assert render["process_types"] == {"web": "python server.py", "queue": "python worker.py"}
    assert render["build_command"] == "pip install -r requirements.txt && python build.py"
    assert render["health_path"] == "/health"
    assert manifest["scripts"] == {"predeploy": "python migrate.py"}
    assert manifest["env"]["SECRET_KEY"] == {"required": False, "generator": "secret"}
    assert manifest["env"]["MODE"] == {"required": False, "value": "render-demo"}
    assert manifest["env"]["GREETING"]["value"] == "hello from render.yaml"        # from envVarGroups
    assert manifest["cron"][0]["schedule"] == "* * * * *"
    assert render["addons"] == [{"kind": "postgres", "name": "sampledb", "var": "DATABASE_URL"}]
    assert render["env_from"]["DB_HOST"] == {"kind": "postgres", "name": "sampledb", "property": "host"}
    assert any("plan is ignored" in n for n in notes) and any("region is ignored" in n for n in notes)


def test_render_yaml_redis_second_database_sync_false_and_multiline_commands():
    manifest, notes = parse_render_yaml("""
services:
  - type: web
    name: api
    buildCommand: |
      npm ci
      npm run build
    envVars:
      - {key: TOKEN, sync: false}
      - key: CACHE
        fromService: {type: keyvalue, name: cache, property: connectionString}
      - key: ANALYTICS
        fromDatabase: {name: analytics}
  - {type: keyvalue, name: cache}
  - {type: worker, name: "Mail Sender", startCommand: node mail.js}
databases:
  - name: main
  - name: analytics
""")
    render = manifest["render"]
    assert render["build_command"] == "npm ci && npm run build"
    assert render["process_types"] == {"mail-sender": "node mail.js"}      # no startCommand: the buildpack's web
    assert manifest["formation"] == {"mail-sender": {"quantity": 1}}
    assert {(a["name"], a["var"]) for a in render["addons"]} == {
        ("main", "DATABASE_URL"), ("analytics", "ANALYTICS_URL"), ("cache", "REDIS_URL")}
    assert render["env_from"]["CACHE"] == {"kind": "redis", "name": "cache", "property": "connectionString"}
    assert any("config:set TOKEN=" in n for n in notes)
    assert "env" not in {k for k, v in manifest.items() if v}


@pytest.mark.parametrize("text, named", [
    ("services: [{type: web}]", "services[0].name"),
    ("services: [{type: cron, name: c, startCommand: x}]", "services[0].schedule"),
    ("services: [{type: worker, name: w}]", "needs a startCommand"),
    ("services: [{type: web, name: w, envVars: [{key: D, fromDatabase: {name: nope}}]}]", "'nope'"),
    ("services: [{type: web, name: w, envVars: [{key: D}]}]", "(D) needs `value`"),
    ("services: [{type: static_site, name: w}]", "services[0].type"),
    ("services: [{type: web, name: w, numInstances: -1}]", "numInstances"),
    ("services: [{type: web\n", "line 2"),
    ("- a\n- b\n", "must be a mapping"),
])
def test_render_yaml_errors_name_the_key(text, named):
    with pytest.raises(RenderYamlError) as e:
        parse_render_yaml(text)
    assert named in e.value.message and e.value.message.startswith("render.yaml:"), e.value.message


def test_render_properties_merge_and_process_type_names():
    url = "postgres://u_1:p%40ss@db-host:5432/d_x"
    assert [property_value(url, p) for p in ("connectionString", "host", "port", "user", "password", "database",
                                             "hostport")] == [url, "db-host", "5432", "u_1", "p@ss", "d_x", "db-host:5432"]
    merged = merge({"scripts": {"predeploy": "a"}, "env": {"X": {"value": "1"}}},
                   {"scripts": {"predeploy": "b"}, "env": {"X": {"value": "2"}, "Y": {"value": "3"}},
                    "cron": [], "render": {"service": "s"}})
    assert merged["scripts"] == {"predeploy": "a"} and merged["env"]["X"] == {"value": "1"}
    assert merged["env"]["Y"] == {"value": "3"} and merged["render"] == {"service": "s"} and "cron" not in merged
    assert process_type("My_Worker.v2") == "my_worker-v2"


def test_read_manifest_takes_render_health_check_and_says_what_it_read(tmp_path):
    (tmp_path / "render.yaml").write_bytes((SAMPLES / "render" / "render.yaml").read_bytes())
    lines: list[str] = []
    checks, manifest = read_manifest(tmp_path, 5000, {}, "app", lines.append)
    assert checks["web"][0]["path"] == "/health"
    assert manifest["scripts"]["predeploy"] == "python migrate.py"
    assert "render.yaml: service render-sample; processes queue, web; 1 cron job(s); add-ons sampledb (postgres)" \
        in "\n".join(lines)


CHECK_PACKAGE = Path(__file__).resolve().parent.parent / "buildpacks" / "nodejs" / "lib" / "check-package.js"


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node (scripts/install.sh installs it)")
@pytest.mark.parametrize("scripts, files, served", [
    ({"dev": "vite", "build": "vite build"}, ["dist/index.html"], "dist"),                       # Vite
    ({"start": "react-scripts start", "build": "react-scripts build"}, ["build/index.html"], "build"),  # CRA
    ({"start": "next start", "build": "next build"}, ["out/index.html"], "out"),                # next export
    ({"start": "node server.js", "build": "vite build"}, ["dist/index.html"], ""),              # its own server
    ({"build": "tsc"}, ["dist/index.js"], ""),                                                  # not a site
    ({"build": "vite build"}, ["dist/index.html", "Procfile"], ""),                             # a Procfile wins
    ({"build": "x"}, ["site/index.html", "static.json"], "site"),                              # static.json root
    ({}, ["dist/index.html"], ""),                                                              # no build script
])
def test_static_javascript_build_detection(tmp_path, scripts, files, served):
    (tmp_path / "package.json").write_text(json.dumps({"name": "x", "scripts": scripts}))
    for rel in files:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text('{"root": "site/"}' if rel == "static.json" else "x")
    proc = subprocess.run(["node", str(CHECK_PACKAGE), "--static-output", "package.json"], cwd=tmp_path,
                          capture_output=True, text=True, check=True,
                          env={k: v for k, v in os.environ.items() if k != "DOCKYARD_WEB_DECLARED"})
    assert proc.stdout.strip() == served


@pytest.mark.parametrize("text, shipped", [
    ("heroku/python", "python"), ("heroku/nodejs", "nodejs"), ("heroku/go", "go"),
    ("heroku-community/static", "static"),
    ("https://github.com/heroku/heroku-buildpack-python", "python"),
    ("https://github.com/heroku/heroku-buildpack-python.git#v250", "python"),
    ("https://github.com/heroku/heroku-buildpack-nodejs.git", "nodejs"),
    ("https://github.com/heroku/heroku-buildpack-go/", "go"),
    ("https://github.com/heroku/heroku-buildpack-static", "static"),
    ("https://github.com/dokku/buildpack-null", "null"),
    ("https://github.com/ryandotsmith/null-buildpack.git", "null"),
    ("https://buildpack-registry.s3.amazonaws.com/buildpacks/heroku/python.tgz", "python"),
    ("null", "null"),
])
def test_well_known_buildpacks_are_the_shipped_ones(text, shipped):
    ref = parse_buildpack_ref(text, ".buildpacks line 1")
    assert (ref.kind, ref.value) == ("builtin", shipped)
    assert ref.alias == ("" if text == shipped else text)


def test_other_buildpack_urls_are_still_cloned_and_unshipped_names_say_so():
    fork = parse_buildpack_ref("https://github.com/someone/heroku-buildpack-python.git#main", "BUILDPACK_URL")
    assert (fork.kind, fork.value, fork.ref) == ("git", "https://github.com/someone/heroku-buildpack-python.git", "main")
    ruby = parse_buildpack_ref("https://github.com/heroku/heroku-buildpack-elixir", "BUILDPACK_URL")
    assert ruby.kind == "git"
    with pytest.raises(BuildpackError) as e:
        parse_buildpack_ref("heroku/elixir", ".buildpacks line 2")
    assert "Heroku's elixir buildpack, which Dockyard does not ship" in e.value.message
    assert "https://github.com/heroku/heroku-buildpack-elixir" in e.value.message
    # the null buildpack is never part of detection: it would match every app
    assert "null" not in [r.value for r in select_buildpacks({}, None)[0]]


def test_heroku_yml_languages_are_buildpacks_and_run_gives_commands():
    yml = parse_heroku_yml("build:\n  languages:\n    - go\nrun:\n  web: bin/app --port $PORT\n")
    assert yml.languages == ("go",) and yml.dockerfile == "" and yml.process_types == {"web": "bin/app --port $PORT"}
    refs, source = select_buildpacks({}, ".buildpacks is ignored\n", languages=("go", "heroku/nodejs", "node"))
    assert source == "heroku.yml" and [r.value for r in refs] == ["go", "nodejs", "nodejs"]
    with pytest.raises(BuildpackError) as e:
        select_buildpacks({}, None, languages=("elixir",))
    assert "heroku.yml build.languages[0]" in e.value.message
    for text, named in [("build:\n  languages: go\n", "must be a list"),
                        ("build:\n  languages: [go]\n  docker: {web: Dockerfile}\n", "both `docker` and `languages`")]:
        with pytest.raises(BuildError) as err:
            parse_heroku_yml(text)
        assert named in err.value.message


_spec = importlib.util.spec_from_file_location("dockyard_python", Path(__file__).resolve().parent.parent
                                               / "buildpacks/python/lib/dockyard_python.py")
pyb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pyb)


def test_asgi_apps_default_to_uvicorn_and_django_stays_wsgi():
    fastapi = "from fastapi import FastAPI\n\napp = FastAPI()\n"
    assert pyb.default_web(["fastapi"], {"main.py": fastapi})[0] == "uvicorn main:app --host 0.0.0.0 --port $PORT"
    assert pyb.default_web(["gunicorn\nfastapi"], {"main.py": fastapi})[0].startswith("uvicorn main:app")
    web, why = pyb.default_web(["fastapi"], {"main.py": fastapi, "app.py": "app = Starlette(routes=[])\n"})
    assert web is None and "several ASGI apps" in why
    django = {"mysite/wsgi.py": "application = get_wsgi_application()\n",
              "mysite/asgi.py": "application = get_asgi_application()\n"}
    assert pyb.default_web(["gunicorn"], django)[0] == "gunicorn mysite.wsgi:application --bind 0.0.0.0:$PORT"
    # the server is added only when the app needs it and does not list it
    assert pyb.servers_to_add(["fastapi==0.115.6\n"], {"main.py": fastapi}, None, False) == ["uvicorn"]
    assert pyb.servers_to_add(["fastapi[standard]\n"], {"main.py": fastapi}, None, False) == []
    assert pyb.servers_to_add(["uvicorn\n"], {"main.py": fastapi}, None, False) == []
    assert pyb.servers_to_add(["fastapi"], {"main.py": fastapi}, None, True) == []          # render.yaml's web
    assert pyb.servers_to_add([""], {}, "wsgi: app:application\n", False) == ["gunicorn"]
    assert pyb.servers_to_add([""], {}, "web: python3 x.py\n", False) == []
    assert pyb.install_plan({"app.py", "Procfile"}) == "none"


def test_piku_procfile_servers_and_env_file():
    types, said = serve_types({"wsgi": "app:application", "worker": "python3 w.py"})
    assert types == {"web": "gunicorn app:application --bind 0.0.0.0:$PORT", "worker": "python3 w.py"}
    assert said == ["wsgi: app:application is served by `gunicorn app:application --bind 0.0.0.0:$PORT`"]
    assert serve_types({"asgi": "main:app"})[0] == {"web": "uvicorn main:app --host 0.0.0.0 --port $PORT"}
    assert serve_types({"web": "x"}) == ({"web": "x"}, [])
    for bad, named in [({"wsgi": "a:b", "web": "x"}, "wsgi and web"), ({"wsgi": "a;rm -rf /"}, "module and callable")]:
        with pytest.raises(PikuError) as e:
            serve_types(bad)
        assert named in e.value.message
    env = parse_env_file('# c\nGREETING="hello there"\nexport DEBUG=1  # on\nPORT=9000\nnot a line\nEMPTY=\n')
    assert env == {"GREETING": "hello there", "DEBUG": "1", "EMPTY": ""}


def test_procfile_examples_fit_the_language():
    assert procfile_example(["nodejs"]) == "web: node server.js"
    assert procfile_example(["python"]) == "web: gunicorn app:app"
    assert procfile_example(["https://example.com/bp.git"]) == "web: <command that serves $PORT>"


def test_no_buildpack_message_names_what_the_app_is():
    found = found_languages({"Gemfile", "public", "config.ru"})
    assert len(found) == 1 and found[0].startswith("a Gemfile: Ruby apps need the Ruby buildpack, ")
    if "ruby" not in shipped_names():
        assert "BUILDPACK_URL=https://github.com/heroku/heroku-buildpack-ruby" in found[0]
    msg = no_match_message([(BuildpackRef("builtin", "static"), "")], found)
    assert msg.startswith("Found a Gemfile: Ruby apps") and "static (looks for index.html" in msg
    assert found_languages({"app.py"}) == []
