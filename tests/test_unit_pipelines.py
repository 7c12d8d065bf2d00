"""Pipelines without Docker: the pure rules (stages, review app names, staleness, app.json's
review environment, which images a collection may remove, the promotion request), and the use
cases on the in-memory scheduler with a real SQLite store (couplings and who may change them,
promotion: the same image with the target's config, refused without deploy rights, a failing
target rolled back; stale review apps destroyed)."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

from core.appjson import AppJsonError, parse_review_environment
from core.errors import BadRequest, Conflict, Forbidden, NotFound
from core.names import APP_NAME_RE

from controller.accounts import users as accounts
from controller.apps import releases
from controller.pipelines import couplings, promote, review
from controller.pipelines.stages import branch_of, downstream, is_stale, review_app_name, validate_stage
from controller.scheduler.docker_parse import image_removal
from controller.scheduler.memory import Behaviour
from controller.web.heroku.pipelines import promotion_request

from .test_unit_deploy_logic import svc  # noqa: F401 - the in-memory platform fixture


# ---- pure --------------------------------------------------------------------------------
@pytest.mark.parametrize("branch", ["feature-x", "Feature/X_y", "a" * 60, "x", "--", "fix/ünïcode"])
def test_review_app_names_are_valid_and_distinct(branch):
    name = review_app_name("shop", branch)
    assert APP_NAME_RE.fullmatch(name) and "--" not in name and name.startswith("shop-")
    assert review_app_name("shop", "feature-x") == "shop-feature-x"
    assert review_app_name("shop", "Feature-X") != review_app_name("shop", "feature-x")


def test_stages_promotion_order_and_branches():
    assert [downstream(s) for s in ("development", "staging", "production", "review")] == \
        ["staging", "production", None, None]
    with pytest.raises(BadRequest, match="use one of review, development, staging, production"):
        validate_stage("prod")
    assert branch_of(b"refs/heads/feature/x") == "feature/x" and branch_of(b"refs/tags/v1") is None


def test_staleness_counts_days_since_the_last_push():
    now = datetime(2026, 12, 6, tzinfo=timezone.utc)
    assert is_stale((now - timedelta(days=5)).isoformat(), now, 5)
    assert not is_stale((now - timedelta(days=4, hours=23)).isoformat(), now, 5)
    assert not is_stale(None, now, 5)


def test_review_environment_of_app_json():
    doc = {"addons": ["heroku-redis"], "environments": {"review": {
        "addons": ["heroku-postgresql:essential-0", {"plan": "heroku-redis:mini"}], "env": {"MODE": "review"},
        "formation": {"web": {"quantity": 1, "size": "standard-2x"}},
        "scripts": {"postdeploy": "seed", "pr-predestroy": "goodbye", "other": "ignored"}}}}
    env = parse_review_environment(doc)
    assert env == {"env": {"MODE": {"required": True, "value": "review"}},
                   "formation": {"web": {"quantity": 1, "memory_mb": 1024}},
                   "scripts": {"postdeploy": "seed", "pr-predestroy": "goodbye"},
                   "addons": ["heroku-postgresql", "heroku-redis"]}
    assert parse_review_environment({"addons": ["heroku-redis"]}) == {"addons": ["heroku-redis"]}
    with pytest.raises(AppJsonError):
        parse_review_environment({"environments": {"review": {"addons": [3]}}})


def test_an_image_another_app_runs_only_loses_this_apps_tags():
    shared = ["d/stg:v3", "d/stg:build-1", "d/prd:promoted-1", "d/prd:v2"]
    assert image_removal(shared, "d/stg", set(), True) == ("untag", ["d/stg:v3", "d/stg:build-1"])
    assert image_removal(shared, "d/prd", {"d/prd:v2"}, True) == ("skip", [])
    assert image_removal(["d/prd:promoted-1"], "d/prd", set(), True) == ("remove", [])
    assert image_removal(["d/stg:deps-1"], "d/stg", set(), True) == ("skip", [])


def test_promotion_request_shapes():
    assert promotion_request({"source": {"app": {"id": "a"}}, "targets": [{"app": {"id": "b"}}]}) == ("a", ["b"])
    assert promotion_request({"source": {"app": {"name": "a"}}}) == ("a", None)
    for bad in ({}, {"source": "a"}, {"source": {"app": {"id": "a"}}, "targets": ["b"]}):
        with pytest.raises(BadRequest):
            promotion_request(bad)


# ---- use cases on the in-memory scheduler -------------------------------------------------
def _user(svc, name):
    return svc.store.get_user(name) or svc.store.create_user(name)


def _deploy(svc, app_name, tag):
    # the last deploy's old instance retires in the background, then collects the app's images
    # no release needs: an image added here before that would be collected with them
    for t in threading.enumerate():
        if t.name.startswith("retire-"):
            t.join(30)
    image = f"src/{app_name}:{tag}"
    svc.scheduler.add_image(image, app=app_name)
    return releases.deploy_image(svc, svc.store.get_app(app_name), image, {"web": "serve"}, "carol", lambda _: None)[1]


@pytest.fixture
def shop(svc):  # noqa: F811
    carol = _user(svc, "carol")
    for name, stage in (("shop-stg", "staging"), ("shop-prd", "production")):
        app = releases.create_app(svc, name, carol)
        releases.set_config(svc, app, {"STAGE": stage}, "carol", True, lambda _: None)
    couplings.create(svc, carol, "shop", "shop-stg", "staging")
    couplings.couple(svc, carol, "shop", "shop-prd", "production")
    return carol


def test_promotion_runs_the_upstream_image_with_the_targets_config(svc, shop):  # noqa: F811
    source = _deploy(svc, "shop-stg", "a")
    done = promote.promote(svc, shop, "shop-stg", None, lambda _: None)
    [target] = done.targets
    assert (done.status, target["app"], target["status"]) == ("completed", "shop-prd", "succeeded")
    prd = svc.store.get_app("shop-prd")
    made = svc.store.get_release(prd, target["version"])
    assert made.config == {"STAGE": "production"} and made.description.startswith("Promote shop-stg v")
    image_id = svc.scheduler._images[source.image][0]
    assert svc.scheduler._images[made.image][0] == image_id and made.image.startswith("memtest/shop-prd:")
    assert svc.store.live_release(svc.store.get_app("shop-stg")).version == source.version
    audit = accounts.audit_entries(svc, app="shop-prd")
    assert audit[0]["action"] == "pipelines:promote" and audit[0]["detail"]["result"] == "succeeded"


def test_promotion_needs_deploy_rights_on_every_target(svc, shop):  # noqa: F811
    _deploy(svc, "shop-stg", "a")
    dave = _user(svc, "dave")
    accounts.add_collaborator(svc, svc.store.get_app("shop-stg"), dave)
    before = svc.store.list_releases(svc.store.get_app("shop-prd"))
    with pytest.raises(Forbidden, match="may not deploy every production app"):
        promote.promote(svc, dave, "shop-stg", None, lambda _: None)
    with pytest.raises(NotFound):
        promote.promote(svc, dave, "shop-stg", ["shop-prd"], lambda _: None)
    assert svc.store.list_releases(svc.store.get_app("shop-prd")) == before


def test_a_target_that_fails_its_check_keeps_its_live_release(svc, shop):  # noqa: F811
    _deploy(svc, "shop-stg", "a")
    first = promote.promote(svc, shop, "shop-stg", None, lambda _: None).targets[0]["version"]
    _deploy(svc, "shop-stg", "b")
    svc.scheduler.behave("shop-prd", first + 1, "web", Behaviour(answers=False))
    [target] = promote.promote(svc, shop, "shop-stg", ["shop-prd"], lambda _: None).targets
    assert target["status"] == "failed" and target["error_message"], target
    prd = svc.store.get_app("shop-prd")
    assert prd.live_version == first and svc.store.get_release(prd, first + 1).status == "failed", target


def test_only_owners_change_a_pipeline(svc, shop):  # noqa: F811
    erin = _user(svc, "erin")
    releases.create_app(svc, "erin-app", erin)
    with pytest.raises(NotFound):
        couplings.couple(svc, erin, "shop", "erin-app", "development")    # cannot see it at all
    accounts.add_collaborator(svc, svc.store.get_app("shop-stg"), erin)
    with pytest.raises(Forbidden):
        couplings.couple(svc, erin, "shop", "erin-app", "development")
    with pytest.raises(Forbidden):
        couplings.destroy(svc, erin, "shop")
    assert [c.app for c in couplings.couplings(svc, erin, "shop")] == ["shop-stg"]   # only what she may read
    with pytest.raises(Conflict, match="already in a pipeline"):
        couplings.couple(svc, shop, "shop", "shop-stg", "development")


def test_stale_review_apps_go_and_fresh_ones_stay(svc, shop):  # noqa: F811
    pipeline = svc.store.find_pipeline("shop")
    for branch in ("old", "new"):
        app = releases.create_app(svc, review_app_name("shop", branch), shop)
        svc.store.couple(pipeline, app, "review", branch)
    later = datetime.now(timezone.utc) + timedelta(days=svc.settings.review_app_stale_days, minutes=1)
    svc.store.touch_review_app(svc.store.coupling_of(svc.store.get_app("shop-new")))
    assert review.destroy_stale(svc, lambda _: None, now=datetime.now(timezone.utc)) == []
    assert svc.store.find_app("shop-old") is not None
    gone = review.destroy_stale(svc, lambda _: None, now=later)
    assert sorted(gone) == ["shop-new", "shop-old"]
    assert svc.store.find_app("shop-old") is None and svc.store.find_app("shop-stg") is not None


def test_collecting_the_upstreams_images_spares_what_a_promotion_released(svc, shop):  # noqa: F811
    _deploy(svc, "shop-stg", "a")
    [target] = promote.promote(svc, shop, "shop-stg", None, lambda _: None).targets
    made = svc.store.get_release(svc.store.get_app("shop-prd"), target["version"])
    for tag in "bcd":                              # staging moves on; its old images are collected
        _deploy(svc, "shop-stg", tag)
    svc.scheduler.remove_images("shop-stg")        # even everything of staging's (its destroy)
    assert svc.scheduler.image_exists(made.image) and svc.scheduler.image_exists(f"memtest/shop-prd:v{made.version}")
