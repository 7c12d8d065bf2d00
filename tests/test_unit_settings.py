"""Each setting is declared once (controller/settings.py); from_env reads every field and the
settings page is rendered from the same declarations."""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from controller.settings import Settings, from_env, markdown_table

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "settings.md"


def test_the_settings_page_shows_every_declared_setting():
    page = PAGE.read_text()
    begin, end = "<!-- settings table: begin -->\n", "<!-- settings table: end -->"
    table = page[page.index(begin) + len(begin):page.index(end)].strip()
    assert table == markdown_table(), ("docs/settings.md differs from the declarations: "
                                       "run `.venv/bin/python -m controller.settings` and paste its table")


def test_every_setting_has_a_variable_and_help():
    envs = [f.metadata["env"] for f in fields(Settings)]
    assert len(envs) == len(set(envs))
    assert all(f.metadata["help"] for f in fields(Settings))


def test_from_env_reads_each_field_from_its_variable():
    env = {"DOCKYARD_HOME": "/tmp/dy/../dy2", "DOCKYARD_DOMAIN": ".Apps.Example.", "DOCKYARD_HEALTH_TIMEOUT": "7",
           "DOCKYARD_APP_CPUS": "0.5", "DOCKYARD_APP_CAPS": "net_bind_service", "DOCKYARD_BUILD_CA_BUNDLE": "none",
           "DOCKYARD_SCHEDULER": "Docker", "DOCKYARD_RUNTIMES_DIR": "/opt/rt", "PIP_INDEX_URL": "https://pypi.example/simple"}
    s = from_env(env)
    assert s.home == Path("/tmp/dy2") and s.domain == "apps.example" and s.health_timeout == 7
    assert s.app_cpus == 0.5 and s.app_caps == ("NET_BIND_SERVICE",) and s.build_ca_bundle == ""
    assert s.scheduler == "docker" and s.runtimes_dir == Path("/opt/rt") and s.pip_index_url == "https://pypi.example/simple"
    assert from_env({"DOCKYARD_HOME": "/tmp/x"}).health_timeout == 30      # unset: the default


def test_a_value_below_its_bound_is_raised_to_it():
    s = from_env({"DOCKYARD_HOME": "/tmp/x", "DOCKYARD_KEEP_RELEASES": "0", "DOCKYARD_ADDON_MEMORY_MB": "4",
                  "DOCKYARD_SWEEP_INTERVAL": "0.1"})
    assert (s.keep_releases, s.addon_memory_mb, s.sweep_interval) == (1, 32, 1.0)


def test_a_bad_number_names_the_variable_and_an_example():
    with pytest.raises(ValueError, match=r"DOCKYARD_API_PORT='eighty' is not a whole number; set it to e.g. 5000"):
        from_env({"DOCKYARD_HOME": "/tmp/x", "DOCKYARD_API_PORT": "eighty"})
    with pytest.raises(ValueError, match="DOCKYARD_SCHEDULER"):
        from_env({"DOCKYARD_HOME": "/tmp/x", "DOCKYARD_SCHEDULER": "k8s"})
