"""Image references as registries see them, pull patterns and the mirror (core/imagerefs.py)."""
from __future__ import annotations

import pytest

from core.imagerefs import DEFAULT_PULL_ALLOW, ImageRef, admitted, parse_ref, pull_source
from controller.settings import from_env


@pytest.mark.parametrize("ref, expected", [
    ("python:3.12", "docker.io/library/python:3.12"),
    ("python", "docker.io/library/python:latest"),
    ("myorg/app:1", "docker.io/myorg/app:1"),
    ("docker.io/library/python:3.12-slim", "docker.io/library/python:3.12-slim"),
    ("index.docker.io/library/node", "docker.io/library/node:latest"),
    ("ghcr.io/org/tool:v2", "ghcr.io/org/tool:v2"),
    ("127.0.0.1:5000/team/x:1", "127.0.0.1:5000/team/x:1"),
    ("localhost/x", "localhost/x:latest"),
    ("python@sha256:" + "a" * 64, "docker.io/library/python@sha256:" + "a" * 64),
])
def test_parse_ref(ref, expected):
    assert str(parse_ref(ref)) == expected


@pytest.mark.parametrize("ref", ["", "Python:3", "a//b", "x:bad tag", "x@sha256:short", "../etc:1", "x:"])
def test_not_references(ref):
    assert parse_ref(ref) is None


def test_default_patterns_admit_official_images_only():
    for ok in ("python:3.12", "node", "docker.io/library/postgres:16", "library/redis:7"):
        assert admitted(ok, DEFAULT_PULL_ALLOW), ok
    for no in ("myorg/app:1", "ghcr.io/library/python:3", "dockyard/myapp:v3", "docker.io/library/x/y:1", "bad ref"):
        assert not admitted(no, DEFAULT_PULL_ALLOW), no


def test_patterns_with_registries_and_tags():
    patterns = ("ghcr.io/myorg/*", "docker.io/library/python:3.*")
    assert admitted("ghcr.io/myorg/api:1", patterns)
    assert not admitted("ghcr.io/other/api:1", patterns) and not admitted("ghcr.io/myorg/sub/api:1", patterns)
    assert admitted("python:3.12", patterns) and not admitted("python:2.7", patterns)
    assert not admitted("python:3.12", ())


def test_pull_source_uses_the_mirror_for_docker_hub_only():
    assert pull_source(parse_ref("python:3.12"), "127.0.0.1:5000") == "127.0.0.1:5000/library/python:3.12"
    assert pull_source(parse_ref("myorg/app"), "https://mirror.example/") == "mirror.example/myorg/app:latest"
    assert pull_source(parse_ref("python:3.12"), "") == "docker.io/library/python:3.12"
    assert pull_source(parse_ref("ghcr.io/o/x:1"), "127.0.0.1:5000") == "ghcr.io/o/x:1"
    assert ImageRef("docker.io", "library/x", digest="sha256:" + "b" * 64).suffix.startswith("@sha256:")


def test_pull_settings(tmp_path):
    s = from_env({"DOCKYARD_HOME": str(tmp_path)})
    assert (s.pull_allow, s.registry_mirror) == (DEFAULT_PULL_ALLOW, "")
    s = from_env({"DOCKYARD_HOME": str(tmp_path), "DOCKYARD_PULL_ALLOW": "docker.io/library/*, ghcr.io/me/*",
                  "DOCKYARD_REGISTRY_MIRROR": "127.0.0.1:5000/"})
    assert (s.pull_allow, s.registry_mirror) == (("docker.io/library/*", "ghcr.io/me/*"), "127.0.0.1:5000")
    assert from_env({"DOCKYARD_HOME": str(tmp_path), "DOCKYARD_PULL_ALLOW": "none"}).pull_allow == ()
