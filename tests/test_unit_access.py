"""Unit tests (no sockets) for the access model's pure logic: roles, SSH key parsing and the
authorized_keys file, the SSH command check, isolation options, audit details, and the
account store on a temporary SQLite file."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from controller.accounts import access
from controller.accounts import users as accounts
from core import isolation
from controller.accounts import sshkeys
from core.errors import BadRequest, Conflict, NotFound
from core.models import App, User

ED = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPwb9WM1pBNc9Ouypxl9v/sFXMraqmj8AKbySjErwCEv me@x"
ED_FP = "SHA256:E8jQvlO3CW64hoIn6rP1KTenFO0yhqoNKlzstIae77U"
RSA = ("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQCjisrrNYLdRm3863Tp7HkbHwg0H/SpeNx0upPG5B0BKACoHY/qdz1CCY89m8gUqJwCSYDIF"
       "A5KzpWFpCs4qs7YqTw+C/e6dgbRfGIQLKOHCK7jHLPA33JqHha7A2rsl4UX40GZ4VrpTyLu6Z32Im6HJ3hughnKNI4reVx+ncQQ3Q== r")
RSA_FP = "SHA256:qw6DEEEMKhOmdxBbnHPeTbuA7TXN4yIwRgauCQG7eqA"
EC = ("ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBHBBYJKFCQhUflmA+wBYD3nU1LMlOLXOzSdfwm"
      "UEjFIF7Cm1Dc19kM4IdfkOtgwwaF3fr2xHD6Sq6Cb00fIZlVc= e")
EC_FP = "SHA256:1jvt1shu9u4FOu48YkctREXf7gHask9t1YAmbQTUGvA"

ADMIN, OWNER, COLLAB, OTHER = User(1, "admin", True), User(2, "olga", False), User(3, "carl", False), User(4, "eve", False)
APP = App("a1", "shop", OWNER.id, "", 0, 0)


# ---- roles ----------------------------------------------------------------------------
@pytest.mark.parametrize("user,role,read,admin", [
    (ADMIN, "owner", True, True), (OWNER, "owner", True, True),
    (COLLAB, "collaborator", True, False), (OTHER, None, False, False)])
def test_roles(user, role, read, admin):
    assert access.role(user, APP, {COLLAB.id}) == role
    assert access.can_read(user, APP, {COLLAB.id}) is read
    assert access.can_deploy(user, APP, {COLLAB.id}) is read
    assert access.can_admin(user, APP, {COLLAB.id}) is admin


def test_app_without_owner_is_admins_only():
    orphan = App("a2", "old", None, "", 0, 0)
    assert not access.can_read(OWNER, orphan) and access.can_admin(ADMIN, orphan)


# ---- SSH keys -------------------------------------------------------------------------
@pytest.mark.parametrize("line,fp,ktype", [(ED, ED_FP, "ssh-ed25519"), (RSA, RSA_FP, "ssh-rsa"),
                                           (EC, EC_FP, "ecdsa-sha2-nistp256")])
def test_fingerprints_match_ssh_keygen(line, fp, ktype):
    key = sshkeys.parse_public_key(line + "\n")
    assert (key.fingerprint, key.type) == (fp, ktype)   # values printed by `ssh-keygen -lf`


@pytest.mark.parametrize("text,expect", [
    ("", "No public key"), ("-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n", "PRIVATE key"),
    (ED + "\n" + RSA, "exactly one"), ("ssh-dss AAAA x", "Not an OpenSSH public key"),
    ('command="sh" ' + ED, "Not an OpenSSH public key"), ("ssh-ed25519 !!!notbase64", "not valid base64"),
    ("ssh-rsa " + ED.split()[1], "does not match its type"), (None, "No public key")])
def test_bad_keys_say_how_to_fix(text, expect):
    with pytest.raises(BadRequest) as e:
        sshkeys.parse_public_key(text)
    assert expect in e.value.message
    assert "PRIVATE" in expect or "keys:add" in e.value.message or "pass the .pub" in e.value.message or \
        "one public key" in e.value.message


def test_comment_cleaned_and_default_names_unique():
    key = sshkeys.parse_public_key(ED.replace("me@x", "me@x\x1b[31m"))
    assert "\x1b" not in key.comment
    assert sshkeys.default_key_name(key, {"me@x-31m"}) == "me@x-31m-2"


def test_authorized_keys_lines_force_the_command():
    text = sshkeys.render_authorized_keys([(7, "ssh-ed25519 AAAAC3Nz"), (9, RSA)], "/usr/bin/python3 -I /x/ssh.py /s")
    lines = text.splitlines()
    assert lines[0].startswith("#")
    assert lines[1] == 'command="/usr/bin/python3 -I /x/ssh.py /s 7",restrict ssh-ed25519 AAAAC3Nz'
    assert lines[2].startswith('command="/usr/bin/python3 -I /x/ssh.py /s 9",restrict ssh-rsa ') and " r" not in lines[2]
    for bad in ['x"', "x\ny"]:
        with pytest.raises(ValueError):
            sshkeys.authorized_keys_line(1, ED, bad)
    with pytest.raises(ValueError):   # a stored key with options or quotes can never inject
        sshkeys.authorized_keys_line(1, 'ssh-ed25519 AA",no-restrict', "cmd")


@pytest.mark.parametrize("cmd,expect", [
    ("git-receive-pack '/shop.git'", ("git-receive-pack", "shop")),
    ("git-upload-pack 'shop.git'", ("git-upload-pack", "shop")),
    ("git-receive-pack '/shop.git/'", ("git-receive-pack", "shop"))])
def test_git_command_accepted(cmd, expect):
    assert sshkeys.parse_git_command(cmd) == expect


HOSTILE_COMMANDS = ["", "sh", "id; cat /etc/shadow", "git-receive-pack '/../etc.git'",
                    "git-receive-pack '/shop.git'; rm -rf /", "git-receive-pack '/shop.git' && id",
                    "git-receive-pack '/a/../shop.git'", "git-upload-archive '/shop.git'",
                    "git-receive-pack \"/shop.git\"", "git-receive-pack '/sh$(id)op.git'",
                    "git-receive-pack '/shop.git'\nid", "git-receive-pack '/Shop.git'",
                    "git-receive-pack '/sh--op.git'", "scp -t /tmp", "git-receive-pack '/shop.git' extra",
                    "git-receive-pack '/`id`.git'"]


@pytest.mark.parametrize("cmd", HOSTILE_COMMANDS)
def test_git_command_refused(cmd):
    with pytest.raises(BadRequest) as e:
        sshkeys.parse_git_command(cmd)
    assert "git push ssh://git@HOST:PORT/APP.git" in e.value.message


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_git_command_fuzz_only_plain_forms_pass(text):
    try:
        service, app = sshkeys.parse_git_command(text)
    except BadRequest:
        return
    assert text in (f"{service} '/{app}.git'", f"{service} '{app}.git'", f"{service} '/{app}.git/'",
                    f"{service} '{app}.git/'")


def test_unknown_key_message_names_key_and_fix():
    msg = sshkeys.unknown_key_message(ED_FP)
    assert msg.startswith("Permission denied") and ED_FP in msg and "dockyard keys:add ~/.ssh/id_ed25519.pub" in msg


# ---- isolation ------------------------------------------------------------------------
def _isolation(env: dict):
    from controller.settings import from_env
    return from_env({"DOCKYARD_HOME": "/nonexistent", **env}).isolation


def test_isolation_defaults_drop_everything():
    iso = _isolation({})
    opts = isolation.host_config_options(iso)
    assert opts["cap_drop"] == ["ALL"] and opts["cap_add"] is None and opts["nano_cpus"] == 10**9
    assert "mode=1777" in opts["tmpfs"]["/tmp"] and "Binds" not in opts and "binds" not in opts
    assert isolation.container_user("", iso, from_stack=True) == "1000:1000"
    assert isolation.container_user("", iso, from_stack=False) is None     # FROM scratch: root, no caps
    assert isolation.container_user("web", iso) == "web"
    assert isolation.container_user("", _isolation({"DOCKYARD_APP_USER": "root"}), True) is None
    assert isolation.container_user("", _isolation({"DOCKYARD_APP_USER": "2000:2000"})) == "2000:2000"
    assert isolation.built_from(["a", "b", "c"], ["a", "b"]) and not isolation.built_from(["a"], ["a", "b"])
    assert not isolation.built_from(["x", "b"], ["a"]) and not isolation.built_from(["a"], [])
    assert isolation.NETWORK_OPTIONS == {"com.docker.network.bridge.enable_icc": "false"}


def test_apps_join_the_default_bridge_only_when_its_icc_is_off_and_the_choice_is_left_to_us():
    icc_off = {"com.docker.network.bridge.enable_icc": "false", "com.docker.network.bridge.name": "docker0"}
    icc_on = {**icc_off, "com.docker.network.bridge.enable_icc": "true"}
    auto, own = _isolation({}), _isolation({"DOCKYARD_APPS_NETWORK": " Own "})
    assert auto.network == "auto" and own.network == "own"
    assert isolation.apps_network(auto, "dy1", icc_off) == "bridge"
    assert isolation.apps_network(auto, "dy1", icc_on) == "dy1-apps"
    assert isolation.apps_network(auto, "dy1", {}) == "dy1-apps"       # no ICC option: the engine's default, on
    assert isolation.apps_network(auto, "dy1", None) == "dy1-apps"     # no default bridge (dockerd --bridge=none)
    assert isolation.apps_network(own, "dy1", icc_off) == "dy1-apps"
    with pytest.raises(ValueError, match="DOCKYARD_APPS_NETWORK='docker0' is not a choice; set it to auto or own"):
        _isolation({"DOCKYARD_APPS_NETWORK": "docker0"})


def test_isolation_settings_are_checked():
    iso = _isolation({"DOCKYARD_APP_CAPS": "net_bind_service", "DOCKYARD_APP_CPUS": "0.5"})
    assert iso.caps == ("NET_BIND_SERVICE",) and isolation.host_config_options(iso)["nano_cpus"] == 5 * 10**8
    for env in ({"DOCKYARD_APP_CAPS": "ALL;rm"}, {"DOCKYARD_APP_CPUS": "lots"}):
        with pytest.raises(ValueError):
            _isolation(env)


# ---- audit details never hold values ---------------------------------------------------
def test_audit_detail_keeps_config_keys_only():
    from controller.api.audit import _detail
    d = _detail("config:set", {"DATABASE_URL": "postgres://u:hunter2@db", "OLD": None})
    assert d == {"set": ["DATABASE_URL"], "unset": ["OLD"]} and "hunter2" not in repr(d)
    assert _detail("ps:scale", {"updates": [{"type": "web", "quantity": 2, "x": "y"}]}) == \
        {"updates": [{"type": "web", "quantity": 2}]}
    assert _detail("apps:create", {"name": "x", "secret": "s"}) == {}


# ---- account store --------------------------------------------------------------------
@pytest.fixture
def svc(tmp_path):
    from controller.services import Services
    from controller.settings import Settings
    services = Services(Settings(home=tmp_path))
    services.store.migrate()
    return services


@pytest.fixture
def store(svc):
    return svc.store


def test_user_names_validated():
    assert accounts.validate_user_name("alice.b") == "alice.b"
    for bad in ["A", "x", "al ice", "al;ice", "../x", "al\r\nice", "", None, "a" * 50]:
        with pytest.raises(BadRequest):
            accounts.validate_user_name(bad)


def test_tokens_hashed_rotated_revoked(svc, store):
    alice = store.create_user("alice")
    t1 = accounts.mint_token(svc, alice)
    with store.read() as db:
        assert t1 not in repr([tuple(r) for r in db.execute("SELECT * FROM tokens")])
    assert store.user_for_token(t1) == alice
    t2 = accounts.rotate_token(svc, alice, t1)
    assert store.user_for_token(t1) is None and store.user_for_token(t2) == alice
    with pytest.raises(Conflict):
        accounts.rotate_token(svc, alice, t1)
    assert accounts.revoke_token(svc, t2) and store.user_for_token(t2) is None


def test_collaborators_and_user_removal(svc, store):
    olga, carl = store.create_user("olga"), store.create_user("carl")
    app = store.create_app("shop", olga.id)
    accounts.add_collaborator(svc, app, carl)
    with pytest.raises(Conflict):
        accounts.add_collaborator(svc, app, carl)
    with pytest.raises(Conflict):
        accounts.add_collaborator(svc, app, olga)
    assert accounts.collaborator_ids(svc, app) == {carl.id}
    assert [r["role"] for r in accounts.access_list(svc, app)] == ["owner", "collaborator"]
    with pytest.raises(Conflict) as e:
        accounts.remove_user(svc, "olga", carl)
    assert "shop" in e.value.message and "apps:destroy" in e.value.message
    accounts.remove_user(svc, "carl", olga)
    assert accounts.collaborator_ids(svc, app) == set()
    with pytest.raises(NotFound):
        accounts.remove_collaborator(svc, app, olga)


def test_keys_unique_and_removable(svc, store):
    a, b = store.create_user("alice"), store.create_user("bob")
    k = sshkeys.parse_public_key(ED)
    added = accounts.add_key(svc, a, "laptop", k.fingerprint, k.line)
    with pytest.raises(Conflict):
        accounts.add_key(svc, b, "x", k.fingerprint, k.line)
    assert accounts.user_for_key(svc, added["id"]) == (a, ED_FP)
    with pytest.raises(NotFound):
        accounts.remove_key(svc, b, "laptop")
    assert accounts.remove_key(svc, a, ED_FP)["name"] == "laptop"
    assert accounts.all_keys(svc) == []


def test_audit_log_bounded_and_filtered(svc):
    for i in range(5):
        accounts.audit(svc, "alice" if i % 2 else "bob", "ps:scale", "shop", {"i": i}, 200)
    assert [e["detail"]["i"] for e in accounts.audit_entries(svc, actor="alice")] == [1, 3]
    assert len(accounts.audit_entries(svc, limit=2)) == 2


def test_git_access_check_shared_by_http_and_ssh(tmp_path):
    """controller.git.http.authorize_git (used by GitApp and the SSH gateway): 404 for strangers
    and unknown or malformed names (same message), allowed for owner and collaborator."""
    from controller.git.http import authorize_git
    from controller.services import Services
    from controller.settings import Settings
    svc = Services(Settings(home=tmp_path))
    svc.settings.ensure_dirs()
    svc.store.migrate()
    olga, carl, eve = (svc.store.create_user(n) for n in ("olga", "carl", "eve"))
    app = svc.store.create_app("shop", olga.id)
    accounts.add_collaborator(svc, app, carl)
    assert authorize_git(svc, olga, "shop", True) is None
    assert authorize_git(svc, carl, "shop", True) is None
    assert (tmp_path / "repos" / "shop.git" / "HEAD").exists()
    for user, name in ((eve, "shop"), (olga, "nope"), (olga, "../shop"), (olga, "sh;op")):
        status, message = authorize_git(svc, user, name, True)
        assert status == "404 Not Found" and message.startswith("No app named"), (user, name)


def test_app_listings_read_collaborators_once_and_show_each_user_their_apps(tmp_path):
    """`apps` with many apps: who sees which app comes from one query of the collaborators, not
    one per app (the listing's time does not grow with a query per app)."""
    from controller.apps import queries
    from controller.services import Services
    from controller.settings import Settings
    svc = Services(Settings(home=tmp_path))
    svc.settings.ensure_dirs()
    svc.store.migrate()
    olga, carl, eve = (svc.store.create_user(n) for n in ("olga", "carl", "eve"))
    root = svc.store.create_user("root", is_admin=True)
    apps = [svc.store.create_app(f"app{i}", olga.id) for i in range(30)]
    for app in apps[::3]:
        accounts.add_collaborator(svc, app, carl)
    svc.store.create_app("evesown", eve.id)
    queries_run = []
    with svc.store.read() as db:     # this thread's reading connection, reused by the listing
        db.set_trace_callback(queries_run.append)
        try:
            seen = {u.name: [a.name for a in queries.visible_apps(svc, u)] for u in (olga, carl, eve, root)}
            mine = [a.name for a in queries.apps_of(svc, carl)]
        finally:
            db.set_trace_callback(None)
    assert seen["olga"] == sorted(a.name for a in apps)
    assert seen["carl"] == mine == sorted(a.name for a in apps[::3])
    assert seen["eve"] == ["evesown"]
    assert seen["root"] == sorted([a.name for a in apps] + ["evesown"])
    assert len([q for q in queries_run if "collaborators" in q]) == 5     # one per listing
