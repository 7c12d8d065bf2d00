"""The official Heroku CLI (npm `heroku`, pinned) drives Dockyard: apps, account, access, keys,
domains, config, releases and rollback, formation and dynos, maintenance, buildpacks and
add-ons, each checked by its effect (the router's answers, containers, Dockyard's own API and
CLI), not only by the exit code. Uses the suite's one platform; one small app is deployed."""
from __future__ import annotations

import json
import secrets

import pytest
import requests

from .conftest import make_app_repo, run, wait_until
from .heroku_cli import heroku
from .test_e2e_access import new_user
from .test_e2e_workflow import env_app

pytestmark = pytest.mark.e2e


class Person:
    """A platform user with an email, driving the Heroku CLI with their own token."""

    def __init__(self, platform, tmp_path, prefix: str):
        self.as_ = new_user(platform, tmp_path, f"{prefix}{secrets.token_hex(3)}")
        self.p, self.name, self.token = platform, self.as_.name, self.as_.token
        self.email = f"{self.name}@example.com"
        assert self.as_.cli("account:email", self.email).stdout.strip() == self.email

    def heroku(self, *args, check=True, **kw):
        return heroku(self.p, self.token, *args, check=check, **kw)

    def json(self, *args):
        return json.loads(self.heroku(*args, "--json").stdout)


@pytest.fixture(scope="module")
def carol(platform, tmp_path_factory):
    return Person(platform, tmp_path_factory.mktemp("carol"), "carol")


@pytest.fixture(scope="module")
def deployed(platform, carol, tmp_path_factory):
    """One small app of carol's, deployed with git: its page shows its hostname and $GREETING."""
    name = f"hk-{secrets.token_hex(3)}"
    repo = make_app_repo(tmp_path_factory.mktemp("repo") / name, env_app("$(hostname)-$GREETING"), platform)
    out = carol.heroku("apps:create", name).stdout
    assert f"http://{name}.{platform.domain}" in out
    carol.as_.git("remote", "add", "dockyard", f"{platform.api}/{name}.git", cwd=repo)
    carol.as_.git("push", "dockyard", "main", cwd=repo)
    return name


def page(platform, name) -> tuple[int, str]:
    code, body = platform.curl(name)
    return code, body.strip()


def dyno_ids(person, name) -> dict[str, str]:
    return {d["name"]: d["id"] for d in person.json("ps", "-a", name)}


# ---- apps, account, access, keys, domains -------------------------------------------------------
def test_apps_account_access_keys_and_domains(platform, carol, tmp_path):
    name = f"hk-{secrets.token_hex(3)}"
    assert carol.heroku("auth:whoami").stdout.strip() == carol.email
    carol.heroku("apps:create", name)
    assert name in carol.as_.cli("apps").stdout                      # Dockyard's own CLI sees it
    listed = carol.heroku("apps").stdout
    assert f"=== {carol.email} Apps" in listed and name in listed
    info = carol.json("apps:info", "-a", name)["app"]
    assert info["owner"]["email"] == carol.email and info["name"] == name
    assert info["web_url"] == f"http://{name}.{platform.domain}:{platform.router_port}/"
    assert info["git_url"] == f"{platform.api}/{name}.git" and info["stack"]["name"] and info["region"]["name"]
    assert info["created_at"].endswith("Z")

    # access by email: dave sees the app as a collaborator, then no more
    dave = Person(platform, tmp_path, "dave")
    carol.heroku("access:add", dave.email, "-a", name)
    access = carol.heroku("access", "-a", name).stdout
    assert dave.email in access and "collaborator" in access and carol.email in access and "owner" in access
    theirs = dave.heroku("apps").stdout
    assert "Collaborated Apps" in theirs and name in theirs and carol.email in theirs
    carol.heroku("access:remove", dave.email, "-a", name)
    assert name not in dave.heroku("apps").stdout
    denied = dave.heroku("config", "-a", name, check=False)
    assert denied.returncode != 0 and "not found" in denied.stderr and "TypeError" not in denied.stderr
    h = {"Accept": "application/vnd.heroku+json; version=3"}
    theirs = requests.get(f"{platform.api}/users/{carol.email}/apps", timeout=30,
                          headers={**h, "Authorization": f"Bearer {dave.token}"})
    assert theirs.status_code == 403 and name not in theirs.text              # nobody lists another's apps
    assert requests.get(f"{platform.api}/apps", headers=h, timeout=30).status_code == 401
    registry = requests.get(f"{platform.api}/buildpacks/heroku%2Fpython", headers=h, timeout=30)
    assert registry.status_code == 200 and registry.json()["blob_url"] == "heroku/python"   # public: names only

    # keys: the key reaches Dockyard's key list (and sshd's), and goes again
    key = tmp_path / "id_hk"
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "laptop@home", "-f", str(key)])
    carol.heroku("keys:add", f"{key}.pub")
    fingerprint = run(["ssh-keygen", "-lf", f"{key}.pub"]).stdout.split()[1]
    assert fingerprint in carol.as_.cli("keys").stdout
    carol.heroku("keys:remove", "laptop@home")
    assert fingerprint not in carol.as_.cli("keys").stdout

    # domains: a custom name routes to the app; its DNS target is the app's own name
    host = f"www.{name}.localhost"   # resolves to loopback with no DNS set-up
    carol.heroku("domains:add", host, "-a", name)
    domains = carol.json("domains", "-a", name)
    assert {d["kind"] for d in domains} == {"heroku", "custom"}
    assert next(d for d in domains if d["hostname"] == host)["cname"] == f"{name}.{platform.domain}"
    code, body = platform.curl(name, host=host)
    assert code in (200, 404, 503) and f"{name}" in body          # the router knows the name (nothing deployed)
    carol.heroku("domains:remove", host, "-a", name)
    assert host not in carol.heroku("domains", "-a", name).stdout

    # rename: an app not deployed yet keeps its config under its new name (Dockyard's CLI agrees)
    carol.heroku("config:set", "KEPT=yes", "-a", name)
    carol.heroku("apps:rename", f"{name}-b", "-a", name)
    name = f"{name}-b"
    assert carol.as_.cli("config:get", "KEPT", "-a", name).stdout.strip() == "yes"
    assert carol.heroku("apps:info", "-a", name[:-2], check=False).returncode != 0
    # errors are Heroku-shaped, so the CLI prints Dockyard's message
    missing = carol.heroku("apps:info", "-a", "no-such-app-x", check=False)
    assert missing.returncode != 0 and "App 'no-such-app-x' not found" in missing.stderr
    assert "Error ID: not_found" in missing.stderr and "TypeError" not in missing.stderr
    carol.heroku("apps:destroy", name, "--confirm", name)
    assert name not in carol.as_.cli("apps").stdout
    made_up = json.loads(carol.heroku("apps:create", "--json", input="").stdout)["name"]   # made up, as on Heroku
    assert made_up in carol.as_.cli("apps").stdout
    carol.heroku("apps:destroy", made_up, "--confirm", made_up)


# ---- config, releases, rollback -------------------------------------------------------------------
def test_config_releases_and_rollback(platform, carol, deployed):
    name = deployed
    carol.heroku("config:set", "GREETING=hello", "-a", name)
    assert page(platform, name)[1].endswith("-hello")
    assert carol.heroku("config:get", "GREETING", "-a", name).stdout.strip() == "hello"
    releases = carol.json("releases", "-a", name)
    newest = max(releases, key=lambda r: r["version"])
    assert newest["current"] and newest["status"] == "succeeded" and newest["user"]["email"] == carol.email
    assert "Set GREETING config vars" in newest["description"]
    assert f"Current: v{newest['version']}" in carol.heroku("releases", "-a", name).stdout

    out = carol.heroku("rollback", "-a", name).stdout + carol.heroku("releases", "-a", name).stdout
    assert f"Rollback to v{newest['version'] - 1}" in out
    assert page(platform, name)[1].endswith("-")                  # GREETING is gone with the rollback
    carol.heroku("rollback", f"v{newest['version']}", "-a", name)
    assert page(platform, name)[1].endswith("-hello")
    assert carol.as_.cli("config:get", "GREETING", "-a", name).stdout.strip() == "hello"
    refused = carol.heroku("apps:rename", f"{name}-b", "-a", name, check=False)   # deployed: its images carry the name
    assert refused.returncode != 0 and "not been deployed yet" in refused.stderr


# ---- formation, dynos, maintenance -----------------------------------------------------------------
def test_scale_ps_restart_and_stop(platform, carol, deployed):
    name = deployed
    carol.heroku("ps:scale", "web=2", "-a", name)
    seen: set[str] = set()

    def both_answer() -> bool:                                     # each instance's page shows its hostname
        seen.add(page(platform, name)[1].split("-")[0])
        return len(seen) == 2
    wait_until(both_answer, 30, "two instances to answer")
    ps = carol.heroku("ps", "-a", name).stdout
    assert "=== web (512MB)" in ps and "(2)" in ps and "web.1: up" in ps and "web.2: up" in ps
    assert "1970" not in ps and "NaN" not in ps and "Invalid" not in ps
    assert carol.as_.api("GET", f"/apps/{name}/formation").json()[0]["quantity"] == 2   # Dockyard's own API agrees

    before = dyno_ids(carol, name)
    carol.heroku("ps:restart", "web.1", "-a", name)
    after = dyno_ids(carol, name)
    assert after["web.1"] != before["web.1"] and after["web.2"] == before["web.2"]
    carol.heroku("ps:restart", "--process-type", "web", "-a", name)
    again = dyno_ids(carol, name)
    assert again["web.1"] != after["web.1"] and again["web.2"] != after["web.2"]

    carol.heroku("ps:stop", "web.2", "-a", name)                   # replaced, as on Heroku
    stopped_one = dyno_ids(carol, name)
    assert set(stopped_one) == {"web.1", "web.2"} and stopped_one["web.2"] != again["web.2"]
    carol.heroku("ps:stop", "web", "-a", name)                     # the type stays stopped
    assert page(platform, name)[0] == 503
    assert "No dynos" in carol.heroku("ps", "-a", name).stdout
    carol.heroku("ps:scale", "web=1", "-a", name)
    assert page(platform, name)[0] == 200

    carol.heroku("maintenance:on", "-a", name)
    code, body = page(platform, name)
    assert code == 503 and "down for maintenance" in body
    assert carol.heroku("maintenance", "-a", name).stdout.strip() == "on"
    carol.heroku("maintenance:off", "-a", name)
    assert page(platform, name)[0] == 200


# ---- buildpacks -------------------------------------------------------------------------------------
def test_buildpacks_are_buildpack_url(platform, carol, deployed):
    name = deployed
    carol.heroku("buildpacks:set", "heroku/python", "-a", name)
    assert carol.as_.cli("config:get", "BUILDPACK_URL", "-a", name).stdout.strip() == "python"
    assert "heroku/python" in carol.heroku("buildpacks", "-a", name).stdout
    second = carol.heroku("buildpacks:add", "heroku/nodejs", "-a", name, check=False)
    assert second.returncode != 0 and ".buildpacks" in second.stderr
    carol.heroku("buildpacks:set", "https://example.test/bp/custom.git", "-a", name)
    assert "https://example.test/bp/custom.git" in carol.heroku("buildpacks", "-a", name).stdout
    carol.heroku("buildpacks:clear", "-a", name)
    assert "BUILDPACK_URL" not in carol.heroku("config", "-a", name).stdout
    assert page(platform, name)[0] == 200                          # buildpack changes restart nothing


# ---- add-ons ------------------------------------------------------------------------------------------
def test_addons_postgres_and_redis(platform, carol):
    name = f"hk-{secrets.token_hex(3)}"
    carol.heroku("apps:create", name)
    made = carol.heroku("addons:create", "heroku-postgresql:essential-0", "-a", name, timeout=300).stdout
    assert "as DATABASE_URL" in made
    carol.heroku("addons:create", "heroku-redis", "-a", name, timeout=300)
    config = carol.heroku("config", "-a", name).stdout
    assert "DATABASE_URL:" in config and "postgres://" in config and "REDIS_URL:" in config and "redis://" in config
    listed = carol.heroku("addons", "-a", name).stdout
    assert "heroku-postgresql" in listed and "heroku-redis" in listed and "as DATABASE" in listed and "as REDIS" in listed
    assert len(carol.as_.api("GET", f"/apps/{name}/addons").json()) == 2            # Dockyard's own API agrees
    info = carol.heroku("addons:info", "DATABASE", "-a", name).stdout
    assert f"{name}::DATABASE" in info and "heroku-postgresql" in info and "created" in info
    attachments = carol.heroku("addons", "--all").stdout
    assert name in attachments

    carol.heroku("addons:destroy", "DATABASE", "-a", name, "--confirm", name, timeout=300)
    config = carol.heroku("config", "-a", name).stdout
    assert "DATABASE_URL" not in config and "REDIS_URL" in config
    assert "heroku-postgresql" not in carol.heroku("addons", "-a", name).stdout
    carol.heroku("apps:destroy", name, "--confirm", name, timeout=300)   # the add-ons go with the app
    assert name not in carol.as_.cli("apps").stdout
