"""Backing services end to end: a buildpack Python app (psycopg and redis from PyPI) gets a
Postgres and a Redis add-on by `addons:create`, writes rows to its DATABASE_URL, and the rows
survive a redeploy, `make down && make up`, and a restore from a backup into a new add-on
(byte for byte); a second app cannot reach the first app's database; a Redis counter survives
a restart; the reconciler restarts a stopped add-on; destroying asks first and keeps a final
backup. One platform for the module."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from .conftest import ROOT, make_app_repo, run, start_platform, stop_platform, unique_app

pytestmark = pytest.mark.e2e
SAMPLE = Path(__file__).resolve().parent / "samples" / "python-addons"


@pytest.fixture(scope="module")
def pf(tmp_path_factory):
    p = start_platform(tmp_path_factory.mktemp("addons-platform"), DOCKYARD_HEALTH_TIMEOUT="30")
    try:
        yield p
    finally:
        stop_platform(p)     # its add-on volumes too


@pytest.fixture(scope="module")
def deployed(pf, tmp_path_factory):
    """App A (Postgres + Redis) and app B (nothing attached), both running the sample."""
    files = {str(f.relative_to(SAMPLE)): f.read_bytes() for f in sorted(SAMPLE.rglob("*")) if f.is_file()}
    names = {}
    for key in ("a", "b"):
        app = unique_app(f"pg{key}")
        pf.cli("apps:create", app)
        repo = make_app_repo(tmp_path_factory.mktemp(f"repo-{key}"), files, pf)
        push(pf, app, repo)
        names[key] = (app, repo)
    return names


def push(p, app: str, repo: Path) -> None:
    proc = p.git("push", "-q", f"{p.api}/{app}.git", "HEAD:main", cwd=repo, check=False, timeout=900)
    assert proc.returncode == 0, f"push failed:\n{proc.stdout}\n{proc.stderr}"


def get(p, app: str, path: str, expect: str = "", timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    code, body = 0, ""
    while time.monotonic() < deadline:
        code, body = p.curl(app, path)
        if code == 200 and expect in body:
            return body
        time.sleep(0.5)
    raise AssertionError(f"{app}{path}: last answer {code} {body[:300]!r}, wanted {expect!r}")


def post(p, app: str, path: str, data: str) -> str:
    return run(["curl", "-sS", "--max-time", "30", "--data-binary", "@-",
                f"http://{app}.{p.domain}:{p.router_port}{path}"], input=data).stdout


def addons_of(p, app: str) -> list[dict]:
    return json.loads(p.cli("addons", "-a", app, "--json").stdout)


def app_id(p, app: str) -> str:
    return json.loads(run(["curl", "-sS", "-H", f"Authorization: Bearer {p.token()}", f"{p.api}/apps/{app}"]).stdout)["id"]


def cli_in(p, stdin: str, *args, check: bool = True):
    """The CLI with `stdin` as its input (psql, redis-cli, a confirmation prompt)."""
    return run([str(ROOT / ".venv/bin/dockyard"), *args], cwd=p.user_home, env=p.env, input=stdin, check=check,
               timeout=600)


def psql(p, app: str, addon: str, sql: str) -> str:
    return cli_in(p, sql, "pg:psql", addon, "-a", app).stdout


def test_create_postgres_sets_database_url_and_rows_survive(pf, deployed):
    app, repo = deployed["a"]
    out = pf.cli("addons:create", "postgres", "-a", app).stdout
    assert "as DATABASE_URL" in out
    release = json.loads(run(["curl", "-sS", "-H", f"Authorization: Bearer {pf.token()}",
                              f"{pf.api}/apps/{app}/releases"]).stdout)[-1]
    assert release["description"] == "Set DATABASE_URL config vars" and release["status"] == "succeeded"
    (pg,) = addons_of(pf, app)
    assert pg["service"] == "postgres" and pg["state"] == "available" and pg["var"] == "DATABASE_URL"
    url = pf.cli("config:get", "DATABASE_URL", "-a", app).stdout.strip()
    password = url.split(":")[2].split("@")[0]
    assert url.startswith("postgres://u") and len(password) == 40
    assert get(pf, app, "/write?n=500&size=64") == "wrote 500"
    before = json.loads(get(pf, app, "/rows"))
    assert before["count"] == 500

    # a redeploy (new code, same add-on)
    (repo / "VERSION").write_text("2\n")
    make_app_repo(repo, {}, pf)
    push(pf, app, repo)
    assert json.loads(get(pf, app, "/rows")) == before

    # the platform stopped and started again (apps and add-ons keep running; nothing is lost)
    pf.make("down")
    pf.make("up")
    assert json.loads(get(pf, app, "/rows")) == before

    # the credentials are nowhere but the config: not in events, logs or the audit log
    logs = pf.cli("logs", "-a", app, "-n", "500").stdout
    audit = pf.cli("audit", check=False).stdout
    info = pf.cli("addons:info", pg["name"], "-a", app).stdout
    for text in (logs, audit, info, out):
        assert password not in text
    assert "PostgreSQL 15" in info and "Debian package 15" in info


def test_second_app_cannot_reach_the_first_apps_database(pf, deployed):
    app, _ = deployed["a"]
    other, _ = deployed["b"]
    (pg,) = [a for a in addons_of(pf, app) if a["service"] == "postgres"][:1]
    url = pf.cli("config:get", "DATABASE_URL", "-a", app).stdout.strip()
    # the owner app reaches it by name; the other app cannot even resolve or route to it
    assert get(pf, app, f"/reach?host={pg['name']}&port=5432") == "open"
    assert get(pf, other, f"/reach?host={pg['name']}&port=5432").startswith("closed")
    ips = run(["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
               f"{pf.name}.addon.{pg['name']}"]).stdout.split()
    assert ips
    for ip in ips:
        assert get(pf, other, f"/reach?host={ip}&port=5432", timeout=20).startswith("closed"), ip
    # not even with the first app's full URL (host, user and password)
    assert post(pf, app, "/connect", url).startswith("connected as u")
    body = post(pf, other, "/connect", url)
    assert body.startswith("OperationalError"), body
    # attached, it gets its own credentials and sees the same rows
    pf.cli("addons:attach", pg["name"], "-a", other, "--as", "SHARED")
    other_url = pf.cli("config:get", "SHARED_URL", "-a", other).stdout.strip()
    assert other_url.split("@")[0] != url.split("@")[0]
    assert json.loads(get(pf, other, "/rows?var=SHARED_URL"))["count"] >= 500
    pf.cli("addons:detach", pg["name"], "-a", other)
    assert "SHARED_URL" not in pf.cli("config", "-a", other).stdout
    assert get(pf, other, f"/reach?host={pg['name']}&port=5432").startswith("closed")


def test_backup_and_restore_into_a_new_addon_byte_for_byte(pf, deployed, tmp_path):
    app, _ = deployed["a"]
    (old,) = [a["name"] for a in addons_of(pf, app) if a["var"] == "DATABASE_URL"]
    before = json.loads(get(pf, app, "/rows"))
    out = pf.cli("pg:backups:capture", "-a", app).stdout
    backup = [b for b in json.loads(run(["curl", "-sS", "-H", f"Authorization: Bearer {pf.token()}",
                                         f"{pf.api}/apps/{app}/addons/backups"]).stdout) if b["addon"] == old][-1]
    assert backup["name"] in out and backup["size"] > 0
    listing = pf.cli("pg:backups", "-a", app).stdout
    assert backup["name"] in listing and backup["created_at"] in listing
    pf.cli("pg:backups:download", backup["name"], "-a", app, "-o", str(tmp_path / "b.dump"))
    assert (tmp_path / "b.dump").read_bytes()[:5] == b"PGDMP"      # pg_dump's custom format
    assert not list((pf.home / "backups" / app_id(pf, app)).glob(".*.tmp"))     # written atomically
    refused = pf.cli("pg:backups:restore", backup["name"], "-a", app, check=False)
    assert refused.returncode != 0 and f"--confirm {app}" in refused.stderr

    pf.cli("pg:backups:restore", backup["name"], "-a", app, "--confirm", app)
    rows = {a["var"]: a["name"] for a in addons_of(pf, app) if a["service"] == "postgres"}
    new = rows["DATABASE_URL"]
    assert new != old and rows[old.upper().replace("-", "_") + "_URL"] == old
    assert json.loads(get(pf, app, "/rows")) == before
    copy = "COPY (SELECT id, payload FROM items ORDER BY id) TO STDOUT;\n"
    assert psql(pf, app, new, copy) == psql(pf, app, old, copy)
    assert psql(pf, app, new, copy).count("\n") == before["count"]
    destroyed = pf.cli("addons:destroy", old, "-a", app, check=False)
    assert destroyed.returncode != 0 and "--confirm" in destroyed.stderr
    pf.cli("addons:destroy", old, "-a", app, "--confirm", app)
    assert json.loads(get(pf, app, "/rows")) == before


def test_redis_counter_survives_a_restart_and_the_reconciler_restarts_it(pf, deployed):
    app, _ = deployed["a"]
    pf.cli("addons:create", "redis", "-a", app, "--memory", "64")
    (rd,) = [a for a in addons_of(pf, app) if a["service"] == "redis"]
    assert rd["var"] == "REDIS_URL" and rd["memory_mb"] == 64
    container = f"{pf.name}.addon.{rd['name']}"
    mem = run(["docker", "inspect", "-f", "{{.HostConfig.Memory}}", container]).stdout.strip()
    assert mem == str(64 << 20)
    assert get(pf, app, "/incr") == "1"
    assert get(pf, app, "/incr") == "2"
    run(["docker", "restart", container])
    assert get(pf, app, "/incr") == "3"
    # stopped behind the platform's back: the reconciler starts it again, on the same data
    run(["docker", "stop", container])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state = run(["docker", "inspect", "-f", "{{.State.Status}}", container]).stdout.strip()
        if state == "running":
            break
        time.sleep(0.5)
    assert state == "running"
    assert get(pf, app, "/incr") == "4"
    assert f"Add-on {rd['name']} was exited; restarted" in pf.cli("logs", "-a", app, "-n", "300").stdout
    assert cli_in(pf, "SET k v\n", "redis:cli", "-a", app).stdout.strip() == "OK"
    assert cli_in(pf, "GET k\n", "redis:cli", "-a", app).stdout.strip() == "v"


def test_destroying_the_app_asks_and_keeps_a_final_backup(pf, deployed):
    app, _ = deployed["a"]
    names = [a["name"] for a in addons_of(pf, app)]
    assert names
    kept_in = pf.home / "backups" / app_id(pf, app)     # by the app's id: its name is free again
    no = cli_in(pf, "n\n", "apps:destroy", "-a", app, "--confirm", app, check=False)
    assert no.returncode != 0 and "Delete them too?" in no.stdout + no.stderr
    assert [a["name"] for a in addons_of(pf, app)] == names
    yes = cli_in(pf, "y\n", "apps:destroy", "-a", app, "--confirm", app)
    assert "Kept a final backup" in yes.stdout
    for name in names:
        assert run(["docker", "inspect", f"{pf.name}.addon.{name}"], check=False).returncode != 0
        assert run(["docker", "volume", "inspect", f"{pf.name}-addon-{name}"], check=False).returncode != 0
        assert list(kept_in.glob(f"{name}-*-final.*"))


def test_an_addon_whose_volume_is_lost_is_not_started_empty(pf, deployed):
    other, _ = deployed["b"]
    pf.cli("addons:create", "redis", "-a", other, "--as", "CACHE")
    (rd,) = [a for a in addons_of(pf, other) if a["var"] == "CACHE_URL"]
    container, volume = f"{pf.name}.addon.{rd['name']}", f"{pf.name}-addon-{rd['name']}"
    run(["docker", "rm", "-f", container])
    run(["docker", "volume", "rm", volume])
    time.sleep(3)    # several reconciler passes
    assert run(["docker", "inspect", container], check=False).returncode != 0
    assert run(["docker", "volume", "inspect", volume], check=False).returncode != 0
    assert [a["state"] for a in addons_of(pf, other) if a["name"] == rd["name"]] == ["missing"]
    out = pf.cli("addons:destroy", rd["name"], "-a", other, "--confirm", other).stdout
    assert "Destroyed" in out and "final backup" not in out


def test_a_volume_lost_just_as_its_addon_is_recreated_is_not_replaced_by_an_empty_one(pf, deployed, tmp_path):
    """The fault at the worst moment: the volume goes right after the scheduler found it, before
    it creates the container (the engine would make an empty volume of that name for it)."""
    import secrets

    from controller.scheduler.docker_services import DockerServices
    from controller.services import scheduler_config
    from controller.settings import Settings
    from core.errors import SchedulerError
    pf.cli("addons:create", "redis", "-a", deployed["b"][0], "--as", "SPARE")   # the service image is there
    name = "dytv" + secrets.token_hex(3)
    engine = DockerServices(scheduler_config(Settings(home=tmp_path / "home", name=name)))
    image = Settings(home=tmp_path / "home").redis_image
    engine.start_service("redis-lost", "redis", image, 64, new=True)
    container, volume = f"{name}.addon.redis-lost", f"{name}-addon-redis-lost"
    try:
        run(["docker", "rm", "-f", container])
        found = engine.client.api.inspect_volume

        def found_then_lost(vol: str) -> dict:
            seen = found(vol)
            if not lost:
                lost.append(run(["docker", "volume", "rm", vol]))
            return seen

        lost: list = []
        engine.client.api.inspect_volume = found_then_lost
        with pytest.raises(SchedulerError, match="is gone"):
            engine.start_service("redis-lost", "redis", image, 64)
        assert lost
        assert run(["docker", "inspect", container], check=False).returncode != 0
        assert run(["docker", "volume", "inspect", volume], check=False).returncode != 0
    finally:
        run(["docker", "rm", "-f", container], check=False)
        run(["docker", "volume", "rm", volume], check=False)
        nets = run(["docker", "network", "ls", "-q", "--filter", f"label=dockyard.instance={name}"]).stdout.split()
        if nets:
            run(["docker", "network", "rm", *nets], check=False)


def test_an_addon_that_cannot_start_shows_crashed_with_its_last_lines(pf, deployed):
    from .conftest import BUSYBOX_BASE
    other, _ = deployed["b"]
    pf.cli("addons:create", "redis", "-a", other, "--as", "BROKEN")
    (rd,) = [a for a in addons_of(pf, other) if a["var"] == "BROKEN_URL"]
    container, volume = f"{pf.name}.addon.{rd['name']}", f"{pf.name}-addon-{rd['name']}"
    on_volume = ["docker", "run", "--rm", "--network", "none", "-v", f"{volume}:/data", BUSYBOX_BASE, "sh", "-c"]
    # a data file the server refuses to load: it exits at every start, and the engine keeps restarting it
    run([*on_volume, "echo not-an-rdb-file > /data/dump.rdb"])
    run(["docker", "kill", container])
    deadline, state = time.monotonic() + 60, None
    while time.monotonic() < deadline and state != "crashed":
        time.sleep(0.5)
        state = [a["state"] for a in addons_of(pf, other) if a["name"] == rd["name"]][0]
    assert state == "crashed"
    # the dashboard's app page shows it too, where people look (it said nothing of add-ons)
    from .test_e2e_dashboard import session_for
    page = session_for(pf, pf.token()).get(f"{pf.api}/dashboard/apps/{other}", timeout=30).text
    row = page[page.index(f'data-addon="{rd["name"]}"'):]
    assert ">crashed<" in row[:600] and "BROKEN_URL" in row[:600], row[:600]
    deadline, info = time.monotonic() + 30, ""
    while time.monotonic() < deadline and "signature" not in info.lower():   # redis' own reason, in its last lines
        info = pf.cli("addons:info", rd["name"], "-a", other).stdout
        assert "State:        crashed" in info, info    # never "available" while it crash-loops
        time.sleep(0.3)
    assert "signature" in info.lower(), info
    # the operator removes the bad file: the next start serves again, with no command from anyone
    run([*on_volume, "rm -f /data/dump.rdb"])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and state != "available":
        time.sleep(1)
        state = [a["state"] for a in addons_of(pf, other) if a["name"] == rd["name"]][0]
    assert state == "available"
    assert "Destroyed" in pf.cli("addons:destroy", rd["name"], "-a", other, "--confirm", other).stdout
