"""Unit tests (no sockets) of the Heroku Platform API face: the pure shape translations
(controller/heroku), the request details Heroku's CLI sends (Accept, Range, quantities as
strings, sizes, release ids, buildpack names, add-on plans), process names, and users' emails
in the store."""
from __future__ import annotations

import pytest

from controller.accounts import users as accounts
from controller.apps.dyno_ops import split_dyno_name
from controller.web.heroku import resources, shapes
from controller.services import Services
from controller.settings import Settings
from controller.store import Store
from core.errors import BadRequest, Conflict, InvalidName, NotFound

SHIPPED = ("python", "nodejs", "go", "static")


@pytest.mark.parametrize("accept,heroku", [
    ("application/vnd.heroku+json; version=3", True), ("application/vnd.heroku+json; version=3.sdk", True),
    ("Application/VND.Heroku+JSON; version=3.buildpack-registry", True),
    ("application/json", False), ("", False), (None, False),
])
def test_heroku_requests_are_known_by_their_accept_header(accept, heroku):
    assert shapes.wants_heroku(accept) is heroku


def test_timestamps_become_herokus_utc_form():
    assert shapes.timestamp("2026-12-06T20:40:38.123456+00:00") == "2026-12-06T20:40:38Z"
    assert shapes.timestamp("2026-12-06T21:40:38.123456789+01:00") == "2026-12-06T20:40:38Z"   # the engine's ns
    assert shapes.timestamp("2026-12-06T20:40:38.5Z") == "2026-12-06T20:40:38Z"
    assert shapes.timestamp("1765053638") == "2025-12-06T20:40:38Z"      # a container listing's epoch seconds
    assert shapes.timestamp("") is None and shapes.timestamp(None) is None
    assert shapes.timestamp("0001-01-01T00:00:00Z") is None and shapes.timestamp("soon") is None


def test_range_header_orders_and_cuts_lists():
    spec = shapes.parse_range("version ..; max=2, order=desc")
    assert spec == shapes.Range("version", "desc", 2)
    rows = [{"version": v} for v in (1, 3, 2)]
    assert shapes.apply_range(rows, spec) == [{"version": 3}, {"version": 2}]
    assert shapes.apply_range(rows, shapes.parse_range("")) == rows
    assert shapes.apply_range(rows, shapes.parse_range("id ..; order=desc")) == list(reversed(rows))  # no such field
    assert shapes.parse_range("name ..; max=99999").max == 1000
    assert shapes.parse_range("garbage;;max=x,order=sideways") == shapes.Range("garbage", "asc", None)


def test_release_ids_are_stable_and_name_the_version_back():
    rid = shapes.stable_id("release", "app-1", 3)
    assert rid == shapes.stable_id("release", "app-1", 3) != shapes.stable_id("release", "app-2", 3)
    assert shapes.release_version(rid, "app-1", [1, 2, 3]) == 3
    assert shapes.release_version("v2", "app-1", [1, 2, 3]) == 2 and shapes.release_version(1, "app-1", [1]) == 1
    with pytest.raises(BadRequest, match="No release"):
        shapes.release_version(shapes.stable_id("release", "other", 3), "app-1", [1, 2, 3])


def test_release_shape_has_what_rollback_and_releases_read():
    r = shapes.release(app_id="a", app_name="shop", version=2, status="succeeded", description="Deploy abc",
                       created_at="2026-01-02T03:04:05+00:00", current=True, user_id=7, user_login="al@x.io",
                       build_id="b1")
    assert r["current"] and r["eligible_for_rollback"] and r["user"]["email"] == "al@x.io"
    assert r["version"] == 2 and r["id"] == shapes.stable_id("release", "a", 2)
    failed = shapes.release(app_id="a", app_name="shop", version=3, status="failed", description="", created_at="",
                            current=False, user_id=None, user_login=None, build_id="b2")
    assert not failed["eligible_for_rollback"]
    config_only = shapes.release(app_id="a", app_name="shop", version=1, status="succeeded", description="",
                                 created_at="", current=False, user_id=None, user_login=None, build_id=None)
    assert not config_only["eligible_for_rollback"]


def test_scale_updates_read_the_clis_strings_relative_counts_and_sizes():
    got = shapes.scale_updates([{"type": "web", "quantity": "2"}, {"type": "worker", "quantity": "+1"},
                                {"type": "clock", "quantity": "-3", "size": "standard-2x"}],
                               {"worker": 2, "clock": 1})
    assert got == [{"type": "web", "quantity": 2}, {"type": "worker", "quantity": 3},
                   {"type": "clock", "quantity": 0, "size_mb": 1024}]
    assert shapes.scale_updates([{"type": "web", "size": "1GB"}], {}) == [{"type": "web", "size_mb": 1024}]
    for bad in ([], None, [{"quantity": 1}], [{"type": "web", "quantity": "two"}], [{"type": "web", "quantity": True}]):
        with pytest.raises(BadRequest):
            shapes.scale_updates(bad, {})
    with pytest.raises(BadRequest, match="Unknown size"):
        shapes.size_mb("huge")
    assert shapes.size(512, None) == "512MB" and shapes.size(1024, 1.5) == "1024MB/1.5CPU"


def test_dyno_and_app_shapes():
    d = shapes.dyno(app_id="a", app_name="shop", container_id="c" * 64, label="web.2", ptype="web", state="up",
                    size_="512MB", command="gunicorn", started_at="1765053638", version=4)
    assert (d["name"], d["type"], d["state"], d["size"], d["release"]["version"]) == ("web.2", "web", "up", "512MB", 4)
    assert d["updated_at"] == "2025-12-06T20:40:38Z"
    assert shapes.dyno_state("exited") == "down" and shapes.dyno_state("crashed") == "crashed"
    a = shapes.app(app_id="a", name="shop", created_at="2026-01-02T03:04:05+00:00", released_at=None, owner_id=1,
                   owner_login="al@x.io", web_url="http://shop.x/", git_url="http://api/shop.git", stack="s",
                   maintenance=True)
    assert a["owner"]["email"] == "al@x.io" and a["region"]["name"] and a["stack"]["name"] == "s"
    assert a["maintenance"] is True and a["updated_at"] == "2026-01-02T03:04:05Z"


def test_made_up_app_names_are_valid_names():
    from core.names import validate_app_name
    assert shapes.new_app_name(lambda words: words[0], 1234) == "amber-anchor-1234"
    assert validate_app_name(shapes.new_app_name(lambda words: words[-1], 9999)) == "young-wharf-9999"


def test_app_changes_accept_name_and_maintenance_only():
    assert shapes.app_changes({"maintenance": True}) == (None, True)
    assert shapes.app_changes({"name": "new"}) == ("new", None)
    for bad in ({"maintenance": "yes"}, {"name": 3}, {"stack": "heroku-24"}):
        with pytest.raises(BadRequest):
            shapes.app_changes(bad)


def test_buildpack_names_map_onto_buildpack_url():
    assert resources.buildpack_for_dockyard("heroku/python", SHIPPED) == "python"
    assert resources.buildpack_for_dockyard("urn:buildpack:heroku/go", SHIPPED) == "go"
    assert resources.buildpack_for_dockyard("https://h/x.git#v1", SHIPPED) == "https://h/x.git#v1"
    with pytest.raises(BadRequest, match="does not ship"):
        resources.buildpack_for_dockyard("heroku/ruby", SHIPPED)
    assert resources.buildpack_url_for([], SHIPPED) is None
    assert resources.buildpack_url_for([{"buildpack": "heroku/nodejs"}], SHIPPED) == "nodejs"
    with pytest.raises(BadRequest, match=".buildpacks"):
        resources.buildpack_url_for([{"buildpack": "heroku/nodejs"}, {"buildpack": "heroku/python"}], SHIPPED)
    assert resources.buildpack_installations("python", SHIPPED)[0]["buildpack"]["url"] == "heroku/python"
    assert resources.buildpack_installations("https://h/x.git", SHIPPED)[0]["buildpack"]["url"] == "https://h/x.git"
    assert resources.buildpack_installations(None, SHIPPED) == []
    assert resources.registry_entry("heroku/static", SHIPPED)["blob_url"] == "heroku/static"
    assert resources.registry_entry("heroku/ruby", SHIPPED) is None


def test_addon_plans_services_and_attachment_names():
    assert resources.service_from_plan({"name": "heroku-postgresql:essential-0"}) == "heroku-postgresql"
    assert resources.service_from_plan("heroku-redis") == "heroku-redis"
    with pytest.raises(BadRequest):
        resources.service_from_plan({})
    a = resources.addon(addon_id="x", name="postgres-amber-1", service="postgres", memory_mb=256, state="available",
                        app_id="a", app_name="shop", config_vars=["DATABASE_URL"], created_at="")
    assert a["addon_service"]["name"] == "heroku-postgresql" and a["plan"]["name"] == "heroku-postgresql:256mb"
    assert a["state"] == "provisioned" and a["config_vars"] == ["DATABASE_URL"]
    t = resources.attachment(addon_json=a, app_id="b", app_name="other", var="CACHE_URL")
    assert t["name"] == "CACHE" and t["app"]["name"] == "other" and t["addon"]["id"] == "x"


def test_domain_and_key_shapes():
    d = resources.domain(app_id="a", app_name="shop", hostname="www.x.io", kind="custom",
                         default_host="shop.dock.io", created_at="")
    assert (d["kind"], d["cname"]) == ("custom", "shop.dock.io")
    assert resources.domain(app_id="a", app_name="shop", hostname="shop.dock.io", kind="default",
                            default_host="shop.dock.io", created_at="")["kind"] == "heroku"
    k = resources.key(row={"name": "laptop", "fingerprint": "SHA256:abc", "public_key": "ssh-ed25519 AAAA me@home",
                           "created_at": ""}, login="al@x.io")
    assert (k["id"], k["comment"], k["email"]) == ("SHA256:abc", "me@home", "al@x.io")
    assert resources.key(row={"name": "laptop", "fingerprint": "f", "public_key": "ssh-ed25519 AAAA"},
                         login="al")["comment"] == "laptop"


@pytest.mark.parametrize("name,parsed", [("web", ("web", None)), ("web.1", ("web", 1)), ("run.12", ("run", 12))])
def test_process_names(name, parsed):
    assert split_dyno_name(name) == parsed


@pytest.mark.parametrize("name", ["web.", "web.x", "web.0", "web.1.2", "../web", ""])
def test_bad_process_names_are_refused(name):
    with pytest.raises((BadRequest, InvalidName)):
        split_dyno_name(name)


def test_users_set_an_email_and_are_found_by_it_or_by_name(tmp_path):
    svc = Services(Settings(home=tmp_path))
    svc.store.migrate()
    al, _ = accounts.add_user(svc, "alice")
    bob, _ = accounts.add_user(svc, "bob")
    assert al.login == "alice" and accounts.find_user(svc, "alice").id == al.id   # the name where no email is set
    al = accounts.set_email(svc, al, "Alice@Example.com")
    assert al.email == "alice@example.com" and al.login == "alice@example.com"
    assert accounts.find_user(svc, "alice@example.com").id == al.id
    assert accounts.find_user(svc, "alice").id == al.id
    with pytest.raises(Conflict):
        accounts.set_email(svc, bob, "alice@example.com")          # one user per email
    for bad in ("nope", "a@", 42, "a b@x.io"):
        with pytest.raises(BadRequest):
            accounts.set_email(svc, bob, bad)
    with pytest.raises(NotFound):
        accounts.find_user(svc, "carol@example.com")
    assert accounts.set_email(svc, al, None).login == "alice"


def test_only_an_app_without_builds_or_addons_is_renamed(tmp_path):
    store = Store(tmp_path / "db.sqlite")
    store.migrate()
    app = store.create_app("shop", None)
    store.create_app("taken", None)
    assert store.rename_unbuilt_app(app, "store") and store.find_app("store").id == app.id
    assert store.find_app("shop") is None
    with pytest.raises(Conflict):
        store.rename_unbuilt_app(store.get_app("store"), "taken")
    store.create_build(store.get_app("store"), "abc", "dockerfile", "dockyard/store:b-1")
    assert not store.rename_unbuilt_app(store.get_app("store"), "again")   # its image carries the name
    assert store.find_app("store") is not None and store.find_app("again") is None
