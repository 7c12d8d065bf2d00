"""Pipelines, promotion and review apps on a real platform (the session's: `make up`, gunicorn,
Docker, nginx, real git), driven by the official Heroku CLI where it has the command and by
Dockyard's CLI: staging is promoted to production (the same image id, production's own config),
a promotion whose health check fails in production rolls back without touching staging, a
second user without deploy rights on production cannot promote, a branch push makes a review
app with its own Postgres that goes with its add-on when the branch is deleted, and the owner's
app quota bounds review apps. Small busybox apps; four builds in all."""
from __future__ import annotations

import json
import secrets
import time

import pytest

from .conftest import BUSYBOX_BASE, make_app_repo, run, wait_until
from .heroku_cli import heroku
from .test_e2e_access import As, new_user
from .test_e2e_dashboard import By, browser, login, session_for, shot, wait  # noqa: F401 - browser is a fixture

pytestmark = pytest.mark.e2e

# Serves index.html and what it was released with; refuses to start in production when the
# commit has a `fail` file (a release whose health check fails there and nowhere else).
START = ('if [ -f /app/fail ] && [ "$STAGE" = production ]; then echo refusing; exit 1; fi; '
         'echo "$(cat /app/index.html) stage=$STAGE db=${DATABASE_URL#*@}" > /www/index.html; '
         'exec httpd -f -p $PORT -h /www')


def app_files(text: str) -> dict[str, str]:
    return {"Dockerfile": f"FROM {BUSYBOX_BASE}\nCOPY . /app\nCMD {json.dumps(['/bin/sh', '-c', START])}\n",
            "index.html": text}


@pytest.fixture(scope="module")
def world(platform, tmp_path_factory):
    """alice owns staging and production (plain user: quotas apply); bob collaborates on staging only."""
    base = tmp_path_factory.mktemp("pipelines")
    tag = secrets.token_hex(2)
    alice, bob = new_user(platform, base, f"alice{tag}"), new_user(platform, base, f"bob{tag}")
    w = {"alice": alice, "bob": bob, "pipeline": f"shop{tag}", "stg": f"shop{tag}-stg", "prd": f"shop{tag}-prd",
         "repo": base / "repo"}
    for app, stage in ((w["stg"], "staging"), (w["prd"], "production")):
        alice.cli("apps:create", app)
        alice.cli("config:set", f"STAGE={stage}", "-a", app)
    alice.cli("access:add", bob.name, "-a", w["stg"])
    make_app_repo(w["repo"], app_files("one"), platform)
    alice.cli("git:remote", "-a", w["stg"], cwd=w["repo"])
    assert "is live" in alice.git("push", "dockyard", "main", cwd=w["repo"]).stderr
    return w


def image_of(platform, app: str) -> str:
    """The image id of the app's one running instance (after a retired one has stopped)."""
    (cid,) = wait_until(lambda: (lambda ids: ids if len(ids) == 1 else None)(platform.containers(app, running_only=True)),
                        30, f"one running instance of {app}")
    return run(["docker", "inspect", "-f", "{{.Image}}", cid]).stdout.strip()


def releases(user: As, app: str) -> list[dict]:
    return user.api("GET", f"/apps/{app}/releases").json()


def test_pipeline_made_and_shown_by_the_heroku_cli(platform, world):
    a, p = world["alice"], world["pipeline"]
    heroku(platform, a.token, "pipelines:create", p, "-a", world["stg"], "--stage", "staging")
    heroku(platform, a.token, "pipelines:add", p, "-a", world["prd"], "--stage", "production")
    info = heroku(platform, a.token, "pipelines:info", p).stdout
    assert world["stg"] in info and world["prd"] in info and "staging" in info and "production" in info, info
    mine = a.cli("pipelines:info", p).stdout
    assert f"{world['prd']:<32} production" in mine, mine
    # bob sees the pipeline through staging, but only the apps he may read
    seen = world["bob"].cli("pipelines:info", p).stdout
    assert world["stg"] in seen and world["prd"] not in seen, seen
    refused = world["bob"].cli("pipelines:add", p, "-a", world["stg"], "--stage", "development", check=False)
    assert refused.returncode != 0 and "owner" in refused.stderr


def test_promote_releases_the_same_image_with_production_config(platform, world):
    a, stg, prd = world["alice"], world["stg"], world["prd"]
    # bob may deploy staging but not production: his promotion is refused and changes nothing
    refused = world["bob"].cli("pipelines:promote", "-a", stg, check=False)
    assert refused.returncode != 0 and "may not deploy" in refused.stderr, refused.stderr
    assert releases(a, prd)[-1]["description"].startswith("Set STAGE")

    out = heroku(platform, a.token, "pipelines:promote", "-a", stg)
    assert "Promotion successful" in out.stdout + out.stderr, out.stdout + out.stderr
    assert platform.curl(prd)[1].strip() == "one stage=production db="
    assert platform.curl(stg)[1].strip() == "one stage=staging db="
    assert image_of(platform, prd) == image_of(platform, stg)          # nothing was rebuilt
    top = releases(a, prd)[-1]
    assert top["status"] == "succeeded" and top["description"].startswith(f"Promote {stg} v")
    audit = platform.cli("audit", "-a", prd).stdout
    assert "pipelines:promote" in audit and a.name in audit, audit


def test_dashboard_promote_is_confirmed_and_csrf_protected(platform, world, browser):  # noqa: F811
    a, p, stg, prd = world["alice"], world["pipeline"], world["stg"], world["prd"]
    before = releases(a, prd)
    forged = session_for(platform, a.token).post(f"{platform.api}/dashboard/pipelines/{p}/promote",
                                                 data={"app": stg}, timeout=30)           # no CSRF token
    assert forged.status_code == 403 and releases(a, prd) == before

    d = browser
    login(d, platform, a.token)
    d.get(f"{platform.api}/dashboard/pipelines/{p}")
    stages = [s.get_attribute("data-stage") for s in d.find_elements(By.CSS_SELECTOR, "#stages .stage")]
    assert stages == ["development", "staging", "production"]
    card = d.find_element(By.CSS_SELECTOR, f'.stage[data-stage="staging"] .stage-app[data-app="{stg}"]')
    assert "v" in card.find_element(By.CSS_SELECTOR, ".release").text and card.find_element(By.CSS_SELECTOR, ".commit").text
    tops = [e.location["y"] for e in d.find_elements(By.CSS_SELECTOR, "#stages .stage")]
    assert len(set(tops)) == 1                                             # side by side
    shot(d, "pipeline")
    form = card.find_element(By.CSS_SELECTOR, "form")
    assert form.get_attribute("data-confirm").endswith(f"to production: {prd}?")
    d.execute_script("window.confirm = function () { return false; }")     # "Cancel" in the dialog
    card.find_element(By.CSS_SELECTOR, "button.promote").click()
    time.sleep(2)
    assert not d.find_elements(By.ID, "message") and releases(a, prd) == before
    d.execute_script("window.confirm = function () { return true; }")      # "OK"
    card.find_element(By.CSS_SELECTOR, "button.promote").click()
    wait(d, lambda d: any(f"{prd}: succeeded" in m.text for m in d.find_elements(By.ID, "message")), 120,
         "the promotion's outcome")
    after = releases(a, prd)
    assert len(after) == len(before) + 1 and after[-1]["status"] == "succeeded"
    assert after[-1]["description"].startswith(f"Promote {stg} v")
    shot(d, "pipeline-promoted")


def test_failed_health_check_in_production_rolls_back_and_spares_staging(platform, world):
    a, stg, prd, repo = world["alice"], world["stg"], world["prd"], world["repo"]
    make_app_repo(repo, {**app_files("two"), "fail": "production refuses this one\n"}, platform)
    assert "is live" in a.git("push", "dockyard", "main", cwd=repo).stderr
    diff = a.cli("pipelines:diff", "-a", stg).stdout
    assert f"ahead of {prd} by 1 commit" in diff, diff
    staging_before = releases(a, stg)

    failed = a.cli("pipelines:promote", "-a", stg, check=False)
    assert failed.returncode != 0 and f"{prd}: failed" in failed.stdout, failed.stdout + failed.stderr
    assert "rolled back automatically" in failed.stdout
    assert platform.curl(prd)[1].strip() == "one stage=production db="     # the old release serves
    assert platform.curl(stg)[1].strip() == "two stage=staging db="
    assert releases(a, stg) == staging_before
    assert releases(a, prd)[-1]["status"] == "failed"


def test_review_app_with_its_own_postgres_lives_as_long_as_its_branch(platform, world):
    a, p, repo = world["alice"], world["pipeline"], world["repo"]
    heroku(platform, a.token, "reviewapps:enable", "-p", p)
    review = f"{p}-feature-x"
    a.git("checkout", "-q", "-b", "feature-x", cwd=repo)
    manifest = {"environments": {"review": {
        "addons": ["heroku-postgresql"], "env": {"STAGE": {"value": "review"}},
        "scripts": {"postdeploy": "echo seeded-$STAGE", "pr-predestroy": "echo predestroy-ran-$STAGE"}}}}
    make_app_repo(repo, {**app_files("three"), "app.json": json.dumps(manifest)}, platform)
    pushed = a.git("push", "dockyard", "feature-x", cwd=repo).stderr
    url = f"http://{review}.{platform.domain}:{platform.router_port}/"
    assert f"Review app for feature-x: {url}" in pushed and "seeded-review" in pushed, pushed
    (addon,) = a.api("GET", f"/apps/{review}/addons").json()
    assert addon["service"] == "postgres"
    assert platform.curl(review)[1].strip().startswith(f"three stage=review db={addon['name']}")
    assert "review" in a.cli("pipelines:info", p).stdout

    make_app_repo(repo, app_files("four"), platform)                   # each push updates it
    a.git("push", "dockyard", "feature-x", cwd=repo)
    assert platform.curl(review)[1].strip().startswith("four stage=review db=")

    gone = a.git("push", "dockyard", ":feature-x", cwd=repo).stderr
    assert "predestroy-ran-review" in gone and f"Destroyed the review app {review}" in gone, gone
    assert a.api("GET", f"/apps/{review}").status_code == 404
    left = run(["docker", "ps", "-aq", "--filter", f"label=dockyard.addon={addon['name']}"]).stdout.split()
    assert left == []
    wait_until(lambda: platform.curl(review)[0] == 404, 20, "the review app's route to go")


def test_review_apps_count_against_the_owner_quota(platform, world):
    a, repo = world["alice"], world["repo"]
    owned = len([x for x in a.api("GET", "/apps").json()])
    platform.cli("users:quota", a.name, "--apps", str(owned))
    try:
        a.git("checkout", "-q", "-b", "feature-y", cwd=repo)
        refused = a.git("push", "dockyard", "feature-y", cwd=repo, check=False)
        assert refused.returncode != 0 and "quota" in refused.stderr, refused.stderr
        assert a.api("GET", f"/apps/{world['pipeline']}-feature-y").status_code == 404
    finally:
        platform.cli("users:quota", a.name, "--reset")


def test_production_outlives_the_staging_app_it_was_promoted_from(platform, world):
    """Staging's images go with it, but the image production runs (promoted, so labelled as
    staging's) only loses staging's tags, even while no container of production holds it."""
    a, stg, prd = world["alice"], world["stg"], world["prd"]
    promoted = image_of(platform, prd)
    a.cli("ps:stop", "-a", prd)
    wait_until(lambda: not platform.containers(prd, running_only=True), 30, "production stopped")
    a.cli("apps:destroy", "-a", stg, "--confirm", stg)
    assert run(["docker", "image", "inspect", promoted], check=False).returncode == 0
    a.cli("ps:start", "-a", prd)
    assert platform.curl(prd)[1].strip() == "one stage=production db=" and image_of(platform, prd) == promoted
    heroku(platform, a.token, "pipelines:remove", "-a", prd)
    assert prd not in a.cli("pipelines:info", world["pipeline"]).stdout
    a.cli("pipelines:destroy", world["pipeline"])
    assert world["pipeline"] not in a.cli("pipelines").stdout
    assert a.api("GET", f"/apps/{prd}").status_code == 200              # its apps stay
    a.cli("apps:destroy", "-a", prd, "--confirm", prd)                  # the session's platform goes on
