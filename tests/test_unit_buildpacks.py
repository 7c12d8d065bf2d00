"""Unit tests of the pure buildpack logic: selection and order, the runner's markers, bin/release
YAML, heroku.yml, the slug Dockerfile, and the Python buildpack's decisions. No sockets."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from builder.build import detect_method
from builder.buildpacks import (BUILTIN_ORDER, BuildpackError, BuildpackRef, deps_dockerfile, deps_layer_marker,
                                format_output_line,
                                merge_process_types,
                                no_match_message, parse_buildpack_ref, parse_marker, parse_release_yaml,
                                redact_url_credentials,
                                safe_env_files, select_buildpacks, slug_dockerfile)
from builder.herokuyml import ManifestError, parse_heroku_yml

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("dockyard_python", ROOT / "buildpacks/python/lib/dockyard_python.py")
pyb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pyb)


# ---- selection and order -------------------------------------------------------------
def test_detection_order_is_fixed_and_complete():
    refs, source = select_buildpacks({}, None)
    assert source == "detect"
    assert [r.value for r in refs] == ["ruby", "php", "java", "python", "nodejs", "go", "static"] == list(BUILTIN_ORDER)
    assert all((ROOT / "buildpacks" / n / "bin" / f).is_file() for n in BUILTIN_ORDER
               for f in ("detect", "compile", "release"))


def test_buildpack_url_wins_over_buildpacks_file():
    refs, source = select_buildpacks({"BUILDPACK_URL": "https://example.com/bp.git#v2"}, "python\n")
    assert source == "BUILDPACK_URL"
    assert refs == [BuildpackRef("git", "https://example.com/bp.git", "v2")]
    assert refs[0].label == "https://example.com/bp.git#v2"


def test_buildpacks_file_lists_several_in_order_with_comments():
    refs, source = select_buildpacks({}, "# mine\n/opt/bp/custom\n\nnodejs\nhttps://git.example/bp.git\n",
                                     ("/opt/bp",))
    assert source == ".buildpacks"
    assert [(r.kind, r.value) for r in refs] == [("path", "/opt/bp/custom"), ("builtin", "nodejs"),
                                                  ("git", "https://git.example/bp.git")]


@pytest.mark.parametrize("ref", ["/", "/proc", "/opt/bpx/custom", "file:///srv/bp.git", "ext::sh -c id",
                                 "git@host:bp.git", "ssh://host/bp.git", "https://"])
def test_host_paths_and_local_transports_are_refused(ref):
    with pytest.raises(BuildpackError, match="not allowed|not a buildpack"):
        select_buildpacks({"BUILDPACK_URL": ref}, None, ("/opt/bp",))


def test_credentials_in_a_buildpack_url_are_kept_apart_and_never_shown():
    ref = parse_buildpack_ref("https://bob:t0ken-s3cret@git.example/bp.git#v1", "BUILDPACK_URL")
    assert (ref.value, ref.ref, ref.auth) == ("https://git.example/bp.git", "v1", ("bob", "t0ken-s3cret"))
    assert "t0ken" not in ref.label + repr(ref)
    with pytest.raises(BuildpackError) as e:
        parse_buildpack_ref("ftp://bob:t0ken-s3cret@git.example/bp.git", "BUILDPACK_URL")
    assert "t0ken" not in e.value.message
    assert redact_url_credentials("fatal: https://u:p4ss@h/x.git failed") == "fatal: https://***@h/x.git failed"


def test_bad_buildpack_references_name_the_line_and_the_fix():
    with pytest.raises(BuildpackError, match=r"\.buildpacks line 2: 'elixir' is not a buildpack: use one of the shipped"):
        select_buildpacks({}, "python\nelixir\n")
    with pytest.raises(BuildpackError, match="contains '..'"):
        parse_buildpack_ref("/opt/../etc", "BUILDPACK_URL")
    with pytest.raises(BuildpackError, match="lists no buildpack"):
        select_buildpacks({}, "# nothing\n\n")


def test_no_match_message_lists_every_buildpack_and_what_it_looks_for():
    refs, _ = select_buildpacks({}, None)
    msg = no_match_message([(r, "") for r in refs])
    for name, wanted in (("python", "requirements.txt"), ("nodejs", "package.json"), ("go", "go.mod"),
                         ("static", "index.html")):
        assert f"{name} (looks for" in msg and wanted in msg
    assert msg.index("ruby (") < msg.index("php (") < msg.index("java (") < msg.index("python") \
        < msg.index("nodejs") < msg.index("go (") < msg.index("static")
    assert "BUILDPACK_URL" in msg


def test_detect_method_prefers_heroku_yml_then_dockerfile(tmp_path):
    assert detect_method(tmp_path) == "buildpack"
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    assert detect_method(tmp_path) == "dockerfile"
    (tmp_path / "heroku.yml").write_text("build: {docker: {web: Dockerfile}}\n")
    assert detect_method(tmp_path) == "heroku.yml"


# ---- runner output -------------------------------------------------------------------
def test_markers_and_output_formatting():
    assert parse_marker("@@dockyard detect 1 0 Node.js app") == ("detect", ["1", "0", "Node.js app"])
    assert parse_marker("-----> Installing") is None
    assert format_output_line("-----> Installing") == "-----> Installing"
    assert format_output_line(" !     broken") == " !     broken"
    assert format_output_line("Collecting gunicorn\r") == "       Collecting gunicorn"


def test_env_files_skip_names_that_are_not_plain():
    assert safe_env_files({"A_B": "1", "../x": "2", "ok1": "3"}) == {"A_B": "1", "ok1": "3"}


# ---- bin/release ---------------------------------------------------------------------
def test_release_yaml_default_process_types():
    text = "---\naddons: []\ndefault_process_types:\n  web: gunicorn app:app\n  worker: python w.py\n"
    assert parse_release_yaml(text, "python") == {"web": "gunicorn app:app", "worker": "python w.py"}
    assert parse_release_yaml("", "x") == {}
    assert parse_release_yaml("---\ndefault_process_types: {}\n", "x") == {}


@pytest.mark.parametrize("text, message", [
    ("default_process_types: [web]", "must be a mapping"),
    ("default_process_types:\n  Web!: x\n", "process type 'Web!' must be 1-30 characters"),
    ("default_process_types:\n  web: ''\n", "needs a command string"),
    ("default_process_types: {web: [\n", "invalid YAML at line"),
    ("- a\n- b\n", "must print a YAML mapping"),
])
def test_release_yaml_errors(text, message):
    with pytest.raises(BuildpackError, match=message):
        parse_release_yaml(text, "mybp")


def test_procfile_wins_over_buildpack_defaults():
    assert merge_process_types({"web": "npm start"}, {"web": "node a.js", "worker": "node w.js"}) == \
        {"web": "node a.js", "worker": "node w.js"}
    assert merge_process_types({"web": "bin/app"}, None) == {"web": "bin/app"}


def test_slug_and_deps_dockerfiles_run_as_the_app_user():
    deps = deps_dockerfile("dockyard/stack:bookworm").splitlines()
    assert deps[:2] == ["FROM dockyard/stack:bookworm", "COPY --chown=1000:1000 deps/ /app/"]
    assert "USER 1000:1000" in deps and 'ENTRYPOINT ["/bin/sh", "/app/.dockyard/launch"]' in deps
    slug = slug_dockerfile("x/a:deps-1", from_stack=False, rootfs=True).splitlines()
    assert slug == ["FROM x/a:deps-1", "COPY rootfs/ /", "COPY --chown=1000:1000 app/ /app/"]
    bare = slug_dockerfile("dockyard/stack:bookworm", from_stack=True).splitlines()
    # the scheduler appends the labels when it builds (test_unit_scheduler)
    assert "USER 1000:1000" in bare and "COPY rootfs/ /" not in bare and bare[-1] == 'CMD ["/bin/bash"]'


def test_deps_layer_marker_names_a_key_and_whether_the_dependencies_were_reused():
    key = "ab" * 32
    assert deps_layer_marker(f"{key} reused\n") == (key, True)
    assert deps_layer_marker(f"{key[:16]} installed") == (key[:16], False)
    # anything else is no marker: the dependencies in the slug (if any) make their own layer
    for text in ("", "reused", f"{key}", f"{key} reused extra", f"{key[:15]} reused", f"../{key} reused",
                 f"{key.upper()} reused", f"{key}:x reused"):
        assert deps_layer_marker(text) == ("", False), text


def test_memory_engine_lists_an_apps_tags_by_prefix():
    from controller.scheduler.memory import MemoryScheduler
    engine = MemoryScheduler()
    engine.add_image("img1", app="a")
    for tag in ("deps-k0123", "deps-k4567", "deps-89ab", "v1"):
        engine.tag("img1", "d/a", tag)
    engine.tag("img1", "d/ab", "deps-kffff")
    assert engine.image_tags("d/a", "deps-k") == ["deps-k0123", "deps-k4567"]
    assert engine.image_tags("d/b", "deps-k") == []


def test_tree_digest_follows_content_not_mtimes(tmp_path):
    from builder.buildpack_build import tree_digest
    (tmp_path / "a" / "d").mkdir(parents=True)
    (tmp_path / "a" / "d" / "f").write_text("1")
    first = tree_digest(tmp_path / "a")
    os.utime(tmp_path / "a" / "d" / "f", (1, 1))
    assert tree_digest(tmp_path / "a") == first
    (tmp_path / "a" / "d" / "f").write_text("2")
    assert tree_digest(tmp_path / "a") != first


# ---- heroku.yml ----------------------------------------------------------------------
def test_heroku_yml_full_manifest():
    m = parse_heroku_yml(
        "build:\n  docker:\n    web: Dockerfile\n    worker: Dockerfile\n"
        "release:\n  image: web\n  command:\n    - ./migrate.sh\n    - --yes\n"
        "run:\n  web: httpd -f -p $PORT\n  worker:\n    command: [\"python\", \"w.py\"]\n    image: worker\n")
    assert m.dockerfile == "Dockerfile"
    assert m.process_types == {"web": "httpd -f -p $PORT", "worker": "python w.py", "release": "./migrate.sh --yes"}


def test_heroku_yml_processes_without_run_use_the_image_command():
    m = parse_heroku_yml("build:\n  docker:\n    web: docker/Dockerfile.web\n")
    assert m.dockerfile == "docker/Dockerfile.web" and m.process_types == {"web": ""}


@pytest.mark.parametrize("text, message", [
    ("build:\n  docker:\n    web: Dockerfile\nbuidl: x\n", r"unknown top-level key `buidl` \(line 4\)"),
    ("build:\n  dockr:\n    web: Dockerfile\n", r"unknown key `build.dockr` \(line 2\)"),
    ("build:\n  docker:\n    web: Dockerfile\nrun:\n  web:\n    cmd: x\n", r"unknown key `run.web.cmd` \(line 6\)"),
    ("build:\n  docker:\n    web: Dockerfile\n    worker: Dockerfile.w\n",
     r"`build.docker.worker` \(line 4\) names Dockerfile.w, but `build.docker.web` names Dockerfile"),
    ("build:\n  docker:\n    Web: Dockerfile\n", r"process type `build.docker.Web` \(line 3\)"),
    ("build:\n  docker:\n    web: ../Dockerfile\n", "must be a path inside the repository"),
    ("build:\n  docker:\n    web: Dockerfile\nrun:\n  worker:\n    command: x\n    image: nope\n",
     r"`run.worker.image` \(line 7\) must name a process under build.docker \(web\)"),
    ("run:\n  web: x\n", "has no `build` section"),
    ("build: [\n", "not valid YAML at line"),
    ("", "heroku.yml is empty"),
])
def test_heroku_yml_errors_name_the_key_and_line(text, message):
    with pytest.raises(ManifestError, match=message):
        parse_heroku_yml(text)


# ---- the Python buildpack's decisions -------------------------------------------------
def test_python_version_requests():
    assert pyb.requested_version("3.11\n", "python-3.12.1") == "3.11"
    assert pyb.requested_version(None, "python-3.11.2\n") == "3.11.2"
    assert pyb.requested_version(None, None) == ""
    with pytest.raises(ValueError, match="not a Python version"):
        pyb.requested_version("pypy3\n", None)
    assert pyb.check_version("3.11", "3.11.2") == "honoured"
    assert "patch releases are compatible" in pyb.check_version("3.11.9", "3.11.2")
    with pytest.raises(ValueError, match="Python 3.12 is not available: Dockyard provides Python 3.9, 3.11, 3.13"):
        pyb.check_version("3.12", "3.11.2")
    # the platform chose the nearest available minor for a request it cannot honour
    assert pyb.check_version("3.6.6", "3.9.2", "3.9") == "not available; the nearest is 3.9.2"


def test_python_install_plan_order():
    assert pyb.install_plan({"uv.lock", "pyproject.toml", "requirements.txt"}) == "uv.lock"
    assert pyb.install_plan({"Pipfile.lock", "requirements.txt"}) == "Pipfile.lock"
    assert pyb.install_plan({"requirements.txt", "pyproject.toml"}) == "requirements.txt"
    assert pyb.install_plan({"pyproject.toml"}) == "pyproject.toml"
    assert pyb.install_plan({"app.py"}) == "none"      # a dependency-free app (Dokku's, piku's) installs nothing


def test_pipfile_lock_to_requirements():
    text = ('{"default": {"flask": {"version": "==3.0.0"}, "lib": {"git": "https://x/lib.git", "ref": "abc"}},'
            ' "develop": {"pytest": {"version": "==8.0"}}}')
    assert pyb.pipfile_lock_requirements(text) == ["flask==3.0.0", "lib @ git+https://x/lib.git@abc"]
    with pytest.raises(ValueError, match="not valid JSON"):
        pyb.pipfile_lock_requirements("{")


def test_python_default_web_only_when_unambiguous():
    flask = "from flask import Flask\napp = Flask(__name__)\n"
    assert pyb.default_web(["gunicorn==23.0\n"], {"app.py": flask})[0] == "gunicorn app:app --bind 0.0.0.0:$PORT"
    assert pyb.default_web(["gunicorn"], {"mysite/wsgi.py": "application = get_wsgi_application()\n"})[0] \
        == "gunicorn mysite.wsgi:application --bind 0.0.0.0:$PORT"
    assert pyb.default_web(["gunicorn"], {"app.py": "def app(environ, start_response):\n    pass\n"})[0]
    web, why = pyb.default_web(["flask"], {"app.py": flask})
    assert web is None and "gunicorn is not among the dependencies" in why and "Procfile" in why
    web, why = pyb.default_web(["gunicorn"], {"app.py": flask, "wsgi.py": "application = app\n"})
    assert web is None and "several WSGI apps" in why
    web, why = pyb.default_web(["gunicorn"], {"main.py": "print(1)\n"})
    assert web is None and "no WSGI app found" in why
    assert "web: " in pyb.release_yaml("gunicorn app:app") and pyb.release_yaml(None).endswith("{}\n")


def test_failing_requirement_lines_from_pip_output():
    req = "gunicorn==23.0.0\n# c\nFlask_Login==9.9\nflask=>2.0\n"
    out = ("ERROR: Could not find a version that satisfies the requirement flask-login==9.9\n"
           "ERROR: No matching distribution found for flask-login==9.9\n")
    assert pyb.failing_requirement_lines(req, out) == [(3, "Flask_Login==9.9")]
    out = "ERROR: Invalid requirement: 'flask=>2.0' (from line 4 of requirements.txt)\n"
    assert pyb.failing_requirement_lines(req, out) == [(4, "flask=>2.0")]
    assert pyb.failing_requirement_lines(req, "some other failure") == []


UV_TOO_NEW = """error: No solution found when resolving dependencies
  cause: Because the requested Python version (>=3.9) does not satisfy Python>=3.10 and django==5.0 depends on Python>=3.10, we can conclude that django==5.0 cannot be used.
         And because you require django==5.0, we can conclude that your requirements are unsatisfiable.
"""


def test_a_pin_that_needs_another_python_is_named_from_the_resolvers_explanation():
    assert pyb.python_needs(UV_TOO_NEW) == ("django==5.0", ">=3.10")
    assert pyb.python_needs("Because all versions of numpy depend on Python>=3.10,<3.14 and you require numpy, "
                            "we can conclude ...") == ("numpy", ">=3.10,<3.14")
    assert pyb.python_needs("Because flask-login was not found in the package registry") is None
    # the next one is looked for without it
    req = "Flask==0.12.2\nDjango==5.0  # the admin\nnumpy==2.1.0\n"
    assert pyb.drop_requirement(req, "django==5.0") == "Flask==0.12.2\nnumpy==2.1.0\n"
    assert pyb.drop_requirement(req, "numpy") == "Flask==0.12.2\nDjango==5.0  # the admin\n"


def test_config_values_are_hidden_from_build_output():
    from builder.buildpacks import redact
    config = {"SECRET": "hunter2-long", "DEBUG": "1", "URL": "postgres://u:hunter2-long@db"}
    assert redact("connecting to postgres://u:hunter2-long@db now", config) == \
        "connecting to [config value hidden] now"
    assert redact("pw hunter2-long, debug 1", config) == "pw [config value hidden], debug 1"


def test_build_files_that_are_symlinks_are_refused(tmp_path):
    from builder.build import tree_file
    from builder.errors import BuildError
    (tmp_path / "Procfile").write_text("web: x\n")
    assert tree_file(tmp_path, "Procfile") == tmp_path / "Procfile"
    assert tree_file(tmp_path, "heroku.yml") is None
    (tmp_path / "Dockerfile").symlink_to("/etc/hostname")
    with pytest.raises(BuildError, match="Dockerfile is a symlink or not a regular file"):
        tree_file(tmp_path, "Dockerfile")
    (tmp_path / ".buildpacks").symlink_to(tmp_path / "missing")
    with pytest.raises(BuildError, match="symlink"):
        tree_file(tmp_path, ".buildpacks")
