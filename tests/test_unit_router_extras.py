"""Pure logic of the router extras: rendering of settings/TLS/maintenance/wildcards,
blame of nginx refusals, certificate checks, hostname rules, router:set parsing, access-log
lines. No sockets."""
from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from controller.routing import certs
from controller.routing import options as router_options
from controller.routing.certs import host_covered, inspect_bundle, uncovered_hosts
from controller.routing.domains import default_owner, normalize_hostname
from core.errors import BadRequest
from router import render
from router.accesslog import format_line, group, parse_line
from router.errors import RenderError
from router.nginx import _blame
from router.table import Route, RouteOptions, Tls, Upstream, build_table
from tests.router_helpers import self_signed

PORT = 18080
UP = (Upstream("127.0.0.1", 5001),)


def rr(*routes, **kw):
    return render.render_routes(routes, PORT, **kw)


# ---------------------------------------------------------------- render
def test_existing_callers_get_the_defaults():
    (route,) = build_table([("a", UP)], "localhost")
    assert route.options == RouteOptions() and route.tls is None and not route.force_https and not route.maintenance
    assert not route.has_extras()
    text = rr(route)
    assert "client_max_body_size 100m;" in text and "proxy_read_timeout 60s;" in text
    assert "ssl" not in text.split("# Any other host")[0]
    assert "keepalive_timeout 1s;" in text and "max_fails=3 fail_timeout=10s" in text


def test_options_render_into_the_app_block_and_pages_name_the_setting():
    text = rr(Route("a", ("a.localhost",), UP, options=RouteOptions("50m", 120, 30, 3)))
    for line in ("client_max_body_size 50m;", "proxy_read_timeout 120s;", "proxy_send_timeout 30s;",
                 "proxy_connect_timeout 3s;", "proxy_next_upstream_timeout 120s;",
                 'set $dockyard_app "a";', "error_page 413 @too_large;", "error_page 504 @gateway_timeout;"):
        assert line in text
    assert "client-max-body-size=50m" in text and "dockyard router:set client-max-body-size=" in text
    assert "read-timeout=120s" in text and "dockyard router:set read-timeout=" in text


@pytest.mark.parametrize("opts", [
    RouteOptions(client_max_body_size="1g"), RouteOptions(client_max_body_size="5m;evil"),
    RouteOptions(client_max_body_size="01m"), RouteOptions(read_timeout=0), RouteOptions(read_timeout=10**6),
    RouteOptions(send_timeout="5"), RouteOptions(connect_timeout=100), RouteOptions(read_timeout=True),
])
def test_bad_options_are_refused_naming_the_app(opts):
    with pytest.raises(RenderError) as err:
        rr(Route("shop", ("shop.localhost",), UP, options=opts))
    assert err.value.app == "shop" and "App shop" in err.value.message


def test_tls_listener_default_tls_server_and_redirect():
    tls = Tls("/srv/certs/a.crt", "/srv/certs/a.key")
    text = rr(Route("a", ("a.example.com", "*.a.example.com"), UP, tls=tls, force_https=True),
              Route("b", ("b.localhost",), UP), tls_port=8443)
    a_block = text.split("# App a:")[1].split("# App b:")[0]
    assert "listen 127.0.0.1:8443 ssl;" in a_block
    assert 'ssl_certificate "/srv/certs/a.crt";' in a_block and 'ssl_certificate_key "/srv/certs/a.key";' in a_block
    assert "server_name a.example.com *.a.example.com;" in a_block
    assert 'if ($https = "") {\n        return 308 https://$host:8443$request_uri;' in a_block
    assert "8443" not in text.split("# App b:")[1].split("# Any other host")[0]
    assert "listen 127.0.0.1:8443 ssl default_server;" in text and "ssl_reject_handshake on;" in text
    # Port 443 needs no port in the redirect; no app with TLS means no TLS listener at all.
    assert "return 308 https://$host$request_uri;" in rr(Route("a", ("a.x.com",), UP, tls=tls, force_https=True),
                                                         tls_port=443)
    assert "8443" not in rr(Route("b", ("b.localhost",), UP), tls_port=8443)


@pytest.mark.parametrize("route, needle", [
    (Route("a", ("a.x.com",), UP, force_https=True), "no certificate"),
    (Route("a", ("a.x.com",), UP, tls=Tls("/x/a b.crt", "/x/a.key")), "certificate file"),
    (Route("a", ("a.x.com",), UP, tls=Tls("/x/a.crt", "/x/a;.key")), "key file"),
    (Route("a", ("a.x.com",), UP, tls=Tls("relative.crt", "/x/a.key")), "certificate file"),
])
def test_bad_tls_extras_are_refused_naming_the_app(route, needle):
    with pytest.raises(RenderError) as err:
        rr(route, tls_port=8443)
    assert err.value.app == "a" and needle in err.value.message


def test_tls_without_a_tls_port_is_refused_for_that_app():
    with pytest.raises(RenderError) as err:
        rr(Route("a", ("a.x.com",), UP, tls=Tls("/x/a.crt", "/x/a.key")))
    assert err.value.app == "a" and "DOCKYARD_ROUTER_TLS_PORT" in err.value.message


def test_maintenance_page_even_without_instances():
    for ups in (UP, ()):
        text = rr(Route("a", ("a.localhost",), ups, maintenance=True))
        block = text.split("# App a:")[1].split("# Any other host")[0]
        assert 'return 503 "App a is down for maintenance.' in block and "proxy_pass" not in block
        assert "add_header Retry-After 60 always;" in block


@pytest.mark.parametrize("name", ["*.example.com", "*.a.b.example.com"])
def test_wildcards_render(name):
    assert f"server_name {name};" in rr(Route("a", (name,), UP))


@pytest.mark.parametrize("name", ["*", "*.com", "a.*.com", "*example.com", "**.example.com", "*.exa mple.com",
                                  "*.example.com;", "x.example.com\r\nevil"])
def test_bad_wildcards_are_refused(name):
    with pytest.raises(RenderError):
        rr(Route("a", (name,), UP))


def test_app_at_line_and_blame():
    tls = Tls("/srv/c/b.crt", "/srv/c/b.key")
    routes = [Route("a", ("a.localhost",), UP), Route("b", ("b.localhost",), UP, tls=tls),
              Route("c", ("c.localhost",), UP, options=RouteOptions(read_timeout=9))]
    text = rr(*routes, tls_port=8443)
    lines = text.splitlines()
    c_line = next(i for i, l in enumerate(lines, 1) if "proxy_read_timeout 9s" in l)
    assert render.app_at_line(text, c_line) == "c"
    assert render.app_at_line(text, len(lines) - 2) is None
    rejected = Path("/srv/r/conf/routes.conf.rejected")
    out = f'nginx: [emerg] "proxy_read_timeout" directive invalid value in {rejected}:{c_line}\n'
    assert _blame(out, text, routes, rejected) == "c"
    # The same complaint in a block of an app with no extras: nobody to blame (plain would not help).
    a_line = next(i for i, l in enumerate(lines, 1) if 'set $dockyard_app "a"' in l)
    assert _blame(f"in {rejected}:{a_line}", text, routes, rejected) is None
    assert _blame('nginx: [emerg] cannot load certificate "/srv/c/b.crt": PEM_read failed', text, routes,
                  rejected) == "b"
    assert _blame("nginx: [emerg] something else", text, routes, rejected) is None


def test_plain_keeps_maintenance_and_drops_extras():
    r = Route("a", ("a.x.com",), UP, options=RouteOptions(read_timeout=5), tls=Tls("/a", "/b"), force_https=True,
              maintenance=True)
    p = r.plain()
    assert p.options == RouteOptions() and p.tls is None and not p.force_https and p.maintenance
    assert r.has_extras() and not p.has_extras()


def test_main_conf_logs_json_per_app_and_streams_responses():
    text = render.render_main("/srv/r", PORT)
    assert "log_format dockyard_json escape=json" in text
    assert 'access_log "/srv/r/logs/access.log" dockyard_json buffer=64k flush=1s if=$dockyard_app;' in text
    assert "proxy_buffering off;" in text and "proxy_set_header X-Request-Id $dockyard_request_id;" in text


# ---------------------------------------------------------------- certificates
def test_inspect_bundle_accepts_a_matching_pair_and_reports_names_and_expiry():
    cert, key = self_signed(["www.example.com", "*.api.example.com"], days=10)
    info = inspect_bundle(cert, key, ["www.example.com", "myapp.localhost"])
    assert info.names == ("*.api.example.com", "www.example.com") and info.self_signed
    assert datetime.datetime.fromisoformat(info.not_after) > datetime.datetime.now(datetime.timezone.utc)
    assert len(info.fingerprint) == 64
    assert uncovered_hosts(info, ["www.example.com", "v1.api.example.com", "a.b.api.example.com"]) == [
        "a.b.api.example.com"]


def test_inspect_bundle_refusals_say_how_to_fix():
    cert, key = self_signed(["www.example.com"])
    other_cert, other_key = self_signed(["www.example.com"])
    with pytest.raises(BadRequest, match="does not match the certificate"):
        inspect_bundle(cert, other_key, ["www.example.com"])
    with pytest.raises(BadRequest, match="none of the app's hosts .* domains:add"):
        inspect_bundle(cert, key, ["shop.example.org"])
    with pytest.raises(BadRequest, match="not a PEM certificate"):
        inspect_bundle("hello", key, [])
    with pytest.raises(BadRequest, match="swap CERT and KEY"):
        inspect_bundle(cert, cert, [])
    old_cert, old_key = self_signed(["www.example.com"], days=-1, start_days_ago=10)
    with pytest.raises(BadRequest, match="expired on .* renew"):
        inspect_bundle(old_cert, old_key, ["www.example.com"])


def test_encrypted_key_is_refused_with_the_openssl_hint():
    from cryptography.hazmat.primitives import serialization
    cert, key = self_signed(["www.example.com"])
    k = serialization.load_pem_private_key(key.encode(), None)
    enc = k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.BestAvailableEncryption(b"pw")).decode()
    with pytest.raises(BadRequest, match="encrypted.*openssl pkey"):
        inspect_bundle(cert, enc, ["www.example.com"])


def test_host_covered_wildcards_stand_for_one_label():
    names = ("*.example.com", "example.com")
    assert host_covered(names, "a.example.com") and host_covered(names, "example.com")
    assert not host_covered(names, "a.b.example.com") and not host_covered(names, "example.org")
    assert host_covered(("*.example.com",), "*.example.com") and not host_covered(("a.example.com",), "*.example.com")


# ---------------------------------------------------------------- hostnames
@pytest.mark.parametrize("raw, expected", [("WWW.Example.COM", "www.example.com"), ("www.example.com.", "www.example.com"),
                                           ("*.example.com", "*.example.com")])
def test_hostnames_are_normalized(raw, expected):
    assert normalize_hostname(raw, "localhost") == expected


@pytest.mark.parametrize("raw", ["example", "*.com", "www.example.com:8080", "http://www.example.com", "a b.com",
                                 "www.example.com\r\nX: y", "a;b.com", "$host.com", "a..b.com", "-a.com",
                                 " www.example.com", "a." * 130 + "com", "", None, "www.exa\"mple.com"])
def test_bad_hostnames_are_refused(raw):
    with pytest.raises(BadRequest):
        normalize_hostname(raw, "localhost")


def test_platform_domain_cannot_be_taken():
    for raw in ("dy.example.net", "*.dy.example.net", "*.example.net"):
        with pytest.raises(BadRequest, match="platform domain"):
            normalize_hostname(raw, "dy.example.net")
    assert default_owner("shop.dy.example.net", "dy.example.net") == "shop"
    assert default_owner("a.shop.dy.example.net", "dy.example.net") is None


# ---------------------------------------------------------------- router:set
def test_parse_settings_types_and_resets():
    parsed = router_options.parse_settings("a", {"read-timeout": "120", "client-max-body-size": "50M",
                                                 "force-https": "on", "send-timeout": None, "connect-timeout": "3s"})
    assert parsed == {"read-timeout": 120, "client-max-body-size": "50m", "force-https": True, "send-timeout": None,
                      "connect-timeout": 3}


@pytest.mark.parametrize("changes, needle", [
    ({"read_timeout": "5"}, "Unknown router setting"), ({"read-timeout": "soon"}, "number of seconds"),
    ({"force-https": "maybe"}, "true or false"), ({"client-max-body-size": "2g"}, "client-max-body-size"),
    ({"read-timeout": "0"}, "read-timeout=0"),
])
def test_parse_settings_refusals_name_the_setting(changes, needle):
    from router.errors import RouterError
    with pytest.raises((BadRequest, RouterError)) as err:
        router_options.parse_settings("a", changes)
    assert needle in err.value.message


def test_apply_extras_adds_domains_settings_and_certificate():
    (route,) = build_table([("a", UP)], "localhost")
    tls = Tls("/c.crt", "/c.key")
    out = router_options.apply_extras(route, {"read-timeout": 90, "maintenance": True}, tls, ["www.example.com"])
    assert out.hostnames == ("a.localhost", "www.example.com")
    assert out.options.read_timeout == 90 and out.maintenance and out.tls == tls and not out.force_https


# ---------------------------------------------------------------- access log
def test_access_log_line_becomes_a_heroku_style_router_line():
    line = json.dumps({"msec": "1700000000.123", "app": "shop", "method": "GET", "path": '/a?b="c"', "status": "503",
                       "bytes": "12", "request_time": "0.010", "upstream_time": "0.002, 0.004",
                       "connect_time": "0.001", "upstream": "127.0.0.1:1", "request_id": "r1", "host": "shop.x",
                       "fwd": "10.0.0.1", "proto": "https"})
    app, (at, source, process, message) = parse_line(line)
    assert (app, source, process) == ("shop", "router", "router")
    assert at == "2023-11-14T22:13:20.123000+00:00"
    assert message.startswith("at=error method=GET path=\"/a?b=%22c%22\" host=shop.x request_id=r1")
    assert "status=503 bytes=12 connect=1ms service=4ms protocol=https upstream=127.0.0.1:1" in message
    assert parse_line("not json") is None and parse_line(json.dumps({"app": ""})) is None
    assert "service=-" in format_line({"upstream_time": "-"})


def test_group_bounds_lines_per_app():
    lines = [json.dumps({"msec": str(1700000000 + i), "app": "a", "path": f"/{i}"}) for i in range(10)]
    out = group(lines, max_per_app=3)
    assert [r[3].split('path="')[1].split('"')[0] for r in out["a"]] == ["/7", "/8", "/9"]


# ---------------------------------------------------------------- store (SQLite in tmp, no sockets)
def test_router_state_in_the_store(tmp_path):
    from controller.routing.certs import CertBundle, store_bundle, stored_bundle
    from controller.routing.options import merge_settings
    from core.errors import Conflict
    from controller.routing.table import with_extras
    from controller.store import Store
    store = Store(tmp_path / "db.sqlite")
    store.migrate()
    a, b = store.create_app("app-a", None), store.create_app("app-b", None)

    def update(app, parsed):
        return store.change_router_settings(app, lambda current: merge_settings(current, parsed))
    store.add_domain(a, "www.example.com")
    with pytest.raises(Conflict):
        store.add_domain(b, "www.example.com")
    assert store.domain_owner_name("www.example.com") == "app-a"
    assert update(a, {"read-timeout": 90, "maintenance": True}) == {"maintenance": True, "read-timeout": 90}
    assert update(a, {"read-timeout": None, "maintenance": False}) == {}
    update(a, {"client-max-body-size": "5m"})
    cert, key = self_signed(["www.example.com"])
    info = inspect_bundle(cert, key, ["www.example.com"])
    store_bundle(store, a, CertBundle(cert, key, info))
    got = stored_bundle(store, "app-a")
    assert got.info == info and got.key_pem == key and stored_bundle(store, "app-b") is None
    tls = certs.cert_files(tmp_path / "certs", "app-a", got)
    assert Path(tls.cert_path).read_text() == cert
    assert all(Path(p).stat().st_mode & 0o777 == 0o600 for p in (tls.cert_path, tls.key_path))
    (tmp_path / "certs" / "stale.key").write_text("x")
    certs.prune_cert_files(tmp_path / "certs", {tls.cert_path, tls.key_path})
    assert sorted(p.name for p in (tmp_path / "certs").iterdir()) == sorted(
        [Path(tls.cert_path).name, Path(tls.key_path).name])
    routes = with_extras(build_table([("app-a", UP), ("app-b", ())], "localhost"), store.all_domains(),
                         store.all_router_settings(), {"app-a": tls})
    assert routes[0].hostnames == ("app-a.localhost", "www.example.com")
    assert routes[0].options.client_max_body_size == "5m" and routes[0].tls == tls
    assert routes[1] == build_table([("app-b", ())], "localhost")[0]
    store.delete_app(a)   # cascades
    assert store.all_domains() == {} and stored_bundle(store, "app-a") is None
    assert not store.remove_domain(b, "www.example.com")


def test_nginx_error_log_is_capped_with_its_tail_kept(tmp_path):
    from router.accesslog import cap_log
    log = tmp_path / "error.log"
    log.write_bytes(b"x" * 5000 + b"last line\n")
    assert not cap_log(log, 10_000)
    assert cap_log(log, 1000, keep=100)
    assert log.stat().st_size == 0
    assert (tmp_path / "error.log.1").read_bytes().endswith(b"last line\n")
    assert len((tmp_path / "error.log.1").read_bytes()) == 100
