"""The platform's certificate for `*.<domain>`: the local CA (issuing, its name constraint,
renewal), the operator's certificate checks, which hostnames it serves, and how the router
renders it beside an app's own certificate. No sockets."""
from __future__ import annotations

import datetime
import json

import pytest
from cryptography import x509

from controller.routing import platform_tls as pt
from controller.routing.table import with_extras
from core.errors import BadRequest, NotFound
from router import render
from router.errors import RenderError
from router.table import Route, Tls, Upstream, build_table
from tests.router_helpers import write_pair

NOW = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
UP = (Upstream("127.0.0.1", 5001),)
PLATFORM = Tls("/h/certs/platform-1.crt", "/h/certs/platform-1.key")
OWN = Tls("/h/certs/app-1.crt", "/h/certs/app-1.key")


def test_the_leaf_is_signed_by_the_ca_for_the_domain_and_the_ca_is_constrained_to_it():
    ca_pem, ca_key = pt.new_ca("dy.example", "test", NOW)
    chain, key = pt.new_leaf(ca_pem, ca_key, "dy.example", NOW)
    leaf, ca_again = x509.load_pem_x509_certificates(chain.encode())
    ca = x509.load_pem_x509_certificate(ca_pem.encode())
    assert ca_again == ca
    leaf.verify_directly_issued_by(ca)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["*.dy.example", "dy.example"]
    constraint = ca.extensions.get_extension_for_class(x509.NameConstraints)
    assert constraint.critical and [n.value for n in constraint.value.permitted_subtrees] == ["dy.example"]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert pt.leaf_is_current(chain, key, "dy.example", NOW)
    assert not pt.leaf_is_current(chain, key, "other.example", NOW)           # the domain changed
    assert not pt.leaf_is_current(chain, key, "dy.example", NOW + datetime.timedelta(days=pt.LEAF_DAYS - 10))
    assert pt.ca_covers(ca_pem, "dy.example", NOW) and not pt.ca_covers(ca_pem, "other.example", NOW)


def test_ensure_local_ca_creates_once_keeps_keys_private_and_follows_a_domain_change(tmp_path):
    said = pt.ensure_local_ca(tmp_path / "tls", "dy.example", "test")
    assert len(said) == 2 and "local certificate authority" in said[0] and "*.dy.example" in said[1]
    for key in ("ca.key", "platform.key"):
        assert (tmp_path / "tls" / key).stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "tls").stat().st_mode & 0o777 == 0o700
    ca = (tmp_path / "tls/ca.crt").read_text()
    assert pt.ensure_local_ca(tmp_path / "tls", "dy.example", "test") == []     # nothing to do the second time
    assert (tmp_path / "tls/ca.crt").read_text() == ca
    assert len(pt.ensure_local_ca(tmp_path / "tls", "new.example", "test")) == 2   # constrained to the old one
    assert (tmp_path / "tls/ca.crt").read_text() != ca
    assert pt.ca_pem(tmp_path / "tls", "") == (tmp_path / "tls/ca.crt").read_text()
    with pytest.raises(NotFound, match="operator's own certificate"):
        pt.ca_pem(tmp_path / "tls", "/etc/ssl/mine.pem")
    with pytest.raises(NotFound, match="make up"):
        pt.ca_pem(tmp_path / "none", "")
    # force-https may rely on it once there is one
    assert pt.available(tmp_path / "tls", "") and pt.available(tmp_path / "none", "/etc/ssl/mine.pem")
    assert not pt.available(tmp_path / "none", "")


def test_a_single_label_domain_gets_every_apps_name_since_clients_refuse_a_wildcard_over_it(tmp_path):
    pt.ensure_local_ca(tmp_path / "tls", "localhost", "test")
    bundle = pt.serving_bundle(tmp_path / "tls", "", "", "localhost", ("a.localhost", "b.localhost"))
    assert bundle.info.names == ("*.localhost", "a.localhost", "b.localhost", "localhost")
    again = pt.serving_bundle(tmp_path / "tls", "", "", "localhost", ("b.localhost", "a.localhost"))
    assert again.info.fingerprint == bundle.info.fingerprint                    # reissued only on a change
    more = pt.serving_bundle(tmp_path / "tls", "", "", "localhost", ("a.localhost", "b.localhost", "c.localhost"))
    assert "c.localhost" in more.info.names
    two_labels = tmp_path / "two"
    pt.ensure_local_ca(two_labels, "dy.example", "test")
    assert pt.serving_bundle(two_labels, "", "", "dy.example", ("a.dy.example",)).info.names == \
        ("*.dy.example", "dy.example")
    assert pt.serving_bundle(tmp_path / "missing", "", "", "dy.example") is None


def test_the_operators_certificate_must_cover_the_apps_hostnames(tmp_path):
    crt, key = write_pair(tmp_path, "op", ["*.dy.example"])
    assert pt.operator_bundle(str(crt), str(key), "dy.example").source == "operator"
    with pytest.raises(BadRequest, match=r"not the apps' hostnames: use a certificate for \*\.other\.example"):
        pt.operator_bundle(str(crt), str(key), "other.example")
    with pytest.raises(BadRequest, match="DOCKYARD_TLS_CERT / DOCKYARD_TLS_KEY: cannot read"):
        pt.operator_bundle(str(tmp_path / "nope.crt"), str(key), "dy.example")
    # the router's renders keep the inspection; the checks hold all the same
    served = pt.serving_bundle(tmp_path, str(crt), str(key), "dy.example")
    assert served.source == "operator" and (tmp_path / "inspected.json").is_file()
    assert pt.serving_bundle(tmp_path, str(crt), str(key), "dy.example").info == served.info
    with pytest.raises(BadRequest, match=r"use a certificate for \*\.other\.example"):
        pt.serving_bundle(tmp_path, str(crt), str(key), "other.example")


def test_the_platform_certificate_serves_the_names_the_apps_own_does_not_cover():
    platform = ("*.dy.example", "dy.example")
    assert pt.default_hosts(("a.dy.example", "www.a.com"), platform, None) == ("a.dy.example",)
    assert pt.default_hosts(("a.dy.example", "www.a.com"), platform, ("www.a.com",)) == ("a.dy.example",)
    assert pt.default_hosts(("a.dy.example",), platform, ("a.dy.example",)) == ()   # the app's own wins
    routes = build_table([("a", UP), ("b", UP)], "dy.example")
    a, b = with_extras(routes, {"a": ["www.a.com"]}, {}, {"a": OWN}, (PLATFORM, platform, {"a": ("www.a.com",)}))
    assert (a.platform_tls, a.platform_hosts, a.tls) == (PLATFORM, ("a.dy.example",), OWN)
    assert (b.platform_tls, b.platform_hosts) == (PLATFORM, ("b.dy.example",))
    assert with_extras(routes, {}, {}, {})[0].platform_tls is None


def test_render_gives_each_group_of_names_its_certificate_and_points_https_redirects_at_the_tls_port():
    route = Route("a", ("a.dy.example", "www.a.com", "api.a.com"), UP, tls=OWN, platform_tls=PLATFORM,
                  platform_hosts=("a.dy.example",))
    text = render.render_routes((route, Route("b", ("b.dy.example",), UP)), 8080, tls_port=8443)
    platform_block, own_block = text.split("\nserver {")[1:3]
    assert "server_name a.dy.example;" in platform_block and 'ssl_certificate "/h/certs/platform-1.crt";' in platform_block
    assert "server_name www.a.com api.a.com;" in own_block and 'ssl_certificate "/h/certs/app-1.crt";' in own_block
    for block in (platform_block, own_block):
        assert "listen 127.0.0.1:8080;" in block and "listen 127.0.0.1:8443 ssl;" in block
        assert "proxy_redirect https://$host:8080/ https://$host:8443/;" in block
        assert "proxy_redirect https://$host/ " not in block            # no port: maybe a TLS proxy's 443
    b_block = text.split("# App b:")[1].split("# Any other host")[0]
    assert "8443" not in b_block and "proxy_redirect" not in b_block     # no certificate: HTTP only
    assert text.count("upstream app_a {") == 1
    # On 80/443 an app's own https URL is right: nothing is rewritten.
    assert "proxy_redirect" not in render.render_routes((route,), 80, tls_port=443)


def test_force_https_with_only_the_platform_certificate_redirects_its_names_only():
    route = Route("a", ("a.dy.example", "www.a.com"), UP, force_https=True, platform_tls=PLATFORM,
                  platform_hosts=("a.dy.example",))
    platform_block, own_block = render.render_routes((route,), 8080, tls_port=8443).split("\nserver {")[1:3]
    assert "return 308 https://$host:8443$request_uri;" in platform_block
    assert "return 308" not in own_block and "ssl" not in own_block
    with pytest.raises(RenderError, match="force-https but has no certificate"):
        render.render_routes((Route("a", ("a.dy.example",), UP, force_https=True),), 8080, tls_port=8443)
    # A platform certificate the renderer cannot use is the app's extra: nginx serves it without.
    assert route.has_extras() and route.plain().platform_tls is None and route.plain().platform_hosts == ()


def test_a_rendered_certificate_is_inspected_once_then_read_from_what_was_kept(tmp_path, monkeypatch):
    """The router renders at every pass: an unchanged certificate is not parsed again (the parser
    then stays out of the long-running processes), a changed or expired one is."""
    from controller.routing import certs
    pt.ensure_local_ca(tmp_path / "tls", "dy.example", "test")      # `make up` inspects and keeps it
    real = certs.inspect_bundle
    parsed = []
    monkeypatch.setattr(certs, "inspect_bundle", lambda *a, **kw: parsed.append(1) or real(*a, **kw))
    first = pt.serving_bundle(tmp_path / "tls", "", "", "dy.example")
    assert parsed == [] and first.info.names == ("*.dy.example", "dy.example")
    assert first.info == real(first.cert_pem, first.key_pem, [])
    kept = tmp_path / "tls" / "inspected.json"
    assert kept.stat().st_mode & 0o777 == 0o600
    pt.ensure_local_ca(tmp_path / "tls", "new.example", "test")      # a new leaf: parsed once, then kept
    assert pt.serving_bundle(tmp_path / "tls", "", "", "new.example").info.names[0] == "*.new.example"
    assert pt.serving_bundle(tmp_path / "tls", "", "", "new.example").info.names[0] == "*.new.example"
    assert len(parsed) >= 1
    count = len(parsed)
    kept.write_text("{not json")                                      # a damaged cache is rebuilt
    assert pt.serving_bundle(tmp_path / "tls", "", "", "new.example").info.names[0] == "*.new.example"
    assert len(parsed) == count + 1 and json.loads(kept.read_text())
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=pt.LEAF_DAYS + 1)
    bundle = pt.serving_bundle(tmp_path / "tls", "", "", "new.example")
    with pytest.raises(BadRequest, match="expired"):                 # the kept date is checked at every call
        certs.inspect_kept(kept, bundle.cert_pem, bundle.key_pem, now=later)
