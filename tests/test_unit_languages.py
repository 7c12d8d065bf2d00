"""Ruby, PHP and the JVM: which language stack a build needs and which runtime versions are
refused (builder/languages.py), Heroku's buildpack names, the dependency-source setting."""
from __future__ import annotations

import pytest

from builder import languages as lg
from builder.buildpacks import parse_buildpack_ref
from builder.errors import RuntimeUnavailable
from controller.settings import from_env

ORDER = ["ruby", "php", "java", "python", "nodejs", "go", "static"]


@pytest.mark.parametrize("present, expected", [
    ({"Gemfile", "package.json", "public/"}, "ruby"),          # a Rails app with a JS toolchain
    ({"composer.json", "package.json"}, "php"),                # Laravel
    ({"index.php"}, "php"),
    ({"pom.xml", "public/"}, "java"),
    ({"build.gradle.kts"}, "java"),
    ({"requirements.txt", "index.php"}, "php"),                # a language's own files first
    ({"package.json", "public/"}, None),                       # Node.js: the default stack
    ({"public/"}, None),
    (set(), None),
])
def test_language_of_detection(present, expected):
    assert lg.language_of(ORDER, present, detect=True) == expected


def test_language_of_chosen_buildpacks():
    assert lg.language_of(["nodejs", "ruby"], {"package.json"}, detect=False) == "ruby"
    assert lg.language_of(["nodejs", ""], {"Gemfile"}, detect=False) is None


def test_heroku_names_are_the_shipped_buildpacks():
    for name in ("ruby", "php", "java"):
        ref = parse_buildpack_ref(f"heroku/{name}", "BUILDPACK_URL")
        assert (ref.kind, ref.value) == ("builtin", name)


def test_ruby_versions():
    assert lg.pick_ruby('source "https://rubygems.org"\nruby "3.1.4"\n', None).version == "3.1"
    assert "Gemfile" in lg.pick_ruby("ruby '~> 3.1.0'\n", None).note
    assert lg.pick_ruby(None, "ruby-3.1.2\n").note.startswith("requested by .ruby-version")
    assert lg.pick_ruby(None, None).note.startswith("none requested")
    with pytest.raises(RuntimeUnavailable, match=r"asks for Ruby 3.3.0; this platform has Ruby 3.1"):
        lg.pick_ruby('ruby "3.3.0"', None)
    with pytest.raises(RuntimeUnavailable, match="not a Ruby version"):
        lg.pick_ruby(None, "jruby\n")


def test_php_extensions_and_version():
    rt, exts = lg.pick_php('{"require": {"php": "^8.1", "ext-mbstring": "*", "ext-PDO_PGSQL": "*", "slim/slim": "^3"}}')
    assert (rt.version, exts) == ("8.2", ["mbstring", "pdo_pgsql"])
    with pytest.raises(RuntimeUnavailable, match=r"extension\(s\) mongodb.*Available: .*bcmath"):
        lg.pick_php('{"require": {"ext-mongodb": "*"}}')
    with pytest.raises(RuntimeUnavailable, match="requires php ~7.4; this platform has PHP 8.2"):
        lg.pick_php('{"require": {"php": "~7.4"}}')
    with pytest.raises(RuntimeUnavailable, match="not valid JSON"):
        lg.pick_php("{")
    assert lg.pick_php(None)[1] == []


@pytest.mark.parametrize("constraint, ok", [
    ("^8.1", True), ("^8.2", True), ("^8.3", False), ("^7.4 || ^8.0", True), ("^7.4", False),
    (">=7.2", True), (">=8.3", False), ("<8.0", False), (">=8.0 <8.3", True), ("8.2.*", True),
    ("~8.1", True), ("~8.1.0", False), ("*", True), ("7.4.*|8.2.*", True),
])
def test_php_constraints(constraint, ok):
    assert lg.php_satisfies(constraint, "8.2") is ok


def test_java_versions():
    assert lg.pick_java("java.runtime.version=17\n").version == "17"
    assert lg.pick_java("java.runtime.version = 17.0.9\n").note == "requested by system.properties (17.0.9)"
    assert lg.pick_java(None).note.startswith("none requested")
    for other in ("1.8", "21", "11"):
        with pytest.raises(RuntimeUnavailable, match=f"java.runtime.version={other}; this platform has OpenJDK 17"):
            lg.pick_java(f"java.runtime.version={other}\n")


def test_with_tag():
    assert lg.with_tag("dockyard/stack:bookworm", "bookworm-ruby") == "dockyard/stack:bookworm-ruby"
    assert lg.with_tag("127.0.0.1:5001/stack", "bookworm-php") == "127.0.0.1:5001/stack:bookworm-php"


def test_dependency_sources_setting(tmp_path):
    s = from_env({"DOCKYARD_HOME": str(tmp_path)})
    assert (s.rubygems_url, s.composer_repo, s.maven_mirror) == (
        "https://rubygems.org", "https://repo.packagist.org", "https://repo.maven.apache.org/maven2")
    s = from_env({"DOCKYARD_HOME": str(tmp_path), "DOCKYARD_MAVEN_MIRROR": "https://nexus.example/m2/",
                       "DOCKYARD_RUBYGEMS_URL": "/srv/gems/"})
    assert (s.maven_mirror, s.rubygems_url) == ("https://nexus.example/m2", "/srv/gems")
    for bad in ("ftp://x", "relative/dir", "/srv/../etc"):
        with pytest.raises(ValueError, match="DOCKYARD_COMPOSER_REPO"):
            from_env({"DOCKYARD_HOME": str(tmp_path), "DOCKYARD_COMPOSER_REPO": bad})
