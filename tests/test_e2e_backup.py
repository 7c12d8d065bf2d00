"""admin:backup / admin:restore end to end: a platform with an app (code, config, a custom
domain's route, a collaborator, a Postgres add-on with rows) is backed up while it serves, then
lost whole (state, containers, volumes and images gone, as on a dead machine); the backup restored
into a new DOCKYARD_HOME brings the app back with `make up`: same release, same config, same git
history, and the add-on with its rows."""
from __future__ import annotations

import pytest

from .conftest import ROOT, httpd_app, make_app_repo, run, start_platform, stop_platform, unique_app, wait_until


def psql(p, app: str, sql: str) -> str:
    return run([str(ROOT / ".venv/bin/dockyard"), "pg:psql", "-a", app], cwd=p.user_home, env=p.env, input=sql,
               timeout=600).stdout

pytestmark = pytest.mark.e2e


def test_backup_then_restore_onto_an_empty_home_brings_every_app_back(tmp_path, busybox_base):
    first = start_platform(tmp_path / "first")
    name = unique_app("bak")
    try:
        repo = make_app_repo(tmp_path / name, httpd_app("restored"), first)
        first.cli("apps:create", name, cwd=repo)
        first.git("push", "dockyard", "main", cwd=repo)
        first.cli("config:set", "GREETING=hello", "-a", name)
        first.cli("users:add", "carol")
        first.cli("access:add", "carol", "-a", name)
        first.cli("addons:create", "postgres", "-a", name)
        psql(first, name, "CREATE TABLE kept (word text); INSERT INTO kept VALUES ('alpha'), ('beta');\n")
        archive = tmp_path / "platform.tar.gz"
        out = first.cli("admin:backup", str(archive)).stdout
        assert "Backed up" in out and archive.stat().st_mode & 0o777 == 0o600
        head = run(["git", "rev-parse", "HEAD"], cwd=repo).stdout.strip()
    finally:
        stop_platform(first)    # the machine is gone: state, containers, volumes and images
        volumes = run(["docker", "volume", "ls", "-q", "--filter", f"label=dockyard.instance={first.name}"]).stdout.split()
        if volumes:
            run(["docker", "volume", "rm", "-f", *volumes])
    assert not run(["docker", "images", "-q", "--filter", f"label=dockyard.instance={first.name}"]).stdout.strip()
    assert not run(["docker", "volume", "ls", "-q", "--filter", f"label=dockyard.instance={first.name}"]).stdout.strip()

    second = start_platform(tmp_path / "second", DOCKYARD_NAME=first.name)   # a new home, new ports
    second.name = first.name
    try:
        second.make("down")
        refused = second.cli("admin:restore", str(archive), check=False)
        assert refused.returncode != 0 and "already holds" in refused.stderr + refused.stdout
        restored = second.cli("admin:restore", str(archive), "--force").stdout
        assert "restored 1 app(s)" in restored and "1 add-on(s)" in restored, restored
        # the local CA users trust came back too (this platform's `make up` then makes its own, as its
        # domain differs: the CA vouches for one domain only)
        assert (second.home / "tls/ca.crt").read_text() == (first.home / "tls/ca.crt").read_text()
        second.make("up")
        second.cli("login", "--api", second.api, "--token-file", str(second.home / "admin.token"))
        wait_until(lambda: second.curl(name) == (200, "restored"), 60, "the restored app to answer")
        assert second.cli("config:get", "GREETING", "-a", name).stdout.strip() == "hello"
        assert "carol" in second.cli("access", "-a", name).stdout
        assert "alpha" in psql(second, name, "SELECT word FROM kept ORDER BY word;\n")   # the add-on's rows are back
        assert "DATABASE_URL" in second.cli("config", "-a", name).stdout
        assert "available" in second.cli("addons", "-a", name).stdout
        assert "v2" in second.cli("releases", "-a", name).stdout
        clone = tmp_path / "clone"
        second.git("clone", f"{second.api}/{name}.git", str(clone), cwd=tmp_path)
        assert run(["git", "rev-parse", "HEAD"], cwd=clone).stdout.strip() == head
    finally:
        stop_platform(second)
