"""Pure logic of other platforms' conventions: Render's blueprint (render.yaml) read into the
manifest app.json gives, its connection properties and variables."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from builder.manifest import read_manifest
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
