"""Where the platform may connect for a tenant (core/netguard.py) and the drain URL rules
(controller/observe/drains.py): pure logic, names resolved by a fake resolver, no socket opened."""
from __future__ import annotations

import ipaddress
import socket

import pytest

from controller.observe import drains
from core.netguard import embedded_ipv4, parse_allowed, refusal

OWN = (ipaddress.ip_network("172.17.0.0/16"), ipaddress.ip_network("172.30.5.0/24"))


def why(addr: str, host: str = "collector.example", allowed=()) -> str | None:
    return refusal(ipaddress.ip_address(addr), host, OWN, parse_allowed(allowed))


@pytest.mark.parametrize("addr, reason", [
    ("127.0.0.1", "loopback"), ("127.255.0.9", "loopback"), ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback"), ("64:ff9b::7f00:1", "loopback"), ("2002:7f00:1::1", "loopback"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"), ("::ffff:169.254.169.254", "link-local"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"), ("224.0.0.1", "multicast"),
    ("255.255.255.255", "multicast or broadcast"),
    ("172.17.0.2", "platform's own networks"), ("172.30.5.9", "platform's own networks"),
    ("10.1.2.3", "private"), ("192.168.1.1", "private"), ("172.20.0.1", "private"), ("fd00::5", "private"),
    ("100.64.1.1", "private"), ("240.0.0.1", "address"),
])
def test_refused_addresses(addr, reason):
    assert reason in (why(addr) or "ALLOWED"), addr


def test_public_addresses_are_allowed():
    for addr in ("8.8.8.8", "2001:4860:4860::8888", "::ffff:8.8.8.8", "1.1.1.1"):
        assert why(addr) is None, addr


def test_the_allow_list_opens_named_private_collectors_only():
    assert why("10.0.5.7", "logs.internal", ("logs.internal",)) is None
    assert why("10.0.5.7", "LOGS.internal.", ("logs.internal",)) is None
    assert why("10.0.5.7", "other.internal", ("logs.internal",)) == "a private address"
    assert why("10.0.5.7", "x", ("10.0.5.0/24",)) is None
    assert why("10.0.6.7", "x", ("10.0.5.0/24",)) == "a private address"
    # never loopback, link-local or the platform's networks, whatever the operator lists
    assert "loopback" in why("127.0.0.1", "logs.internal", ("logs.internal", "127.0.0.0/8"))
    assert "link-local" in why("169.254.169.254", "x", ("169.254.0.0/16",))
    assert "own networks" in why("172.17.0.3", "x", ("172.16.0.0/12",))
    with pytest.raises(ValueError):
        parse_allowed(["logs internal"])


def test_embedded_ipv4():
    assert str(embedded_ipv4(ipaddress.ip_address("::ffff:10.0.0.1"))) == "10.0.0.1"
    assert embedded_ipv4(ipaddress.ip_address("2001:db8::1")) is None
    assert embedded_ipv4(ipaddress.ip_address("10.0.0.1")) is None


def fake_resolver(answers: dict[str, list[str]]):
    def resolve(host, port, type=0):
        if host not in answers:
            raise socket.gaierror("Name or service not known")
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, type, 6, "", (a, port)) for a in answers[host]]
    return resolve


def test_every_resolved_address_is_judged():
    t = drains.Targets(networks=lambda: ["172.17.0.0/16"],
                       resolve=fake_resolver({"ok.example": ["8.8.8.8"], "mixed.example": ["8.8.8.8", "127.0.0.1"],
                                              "meta.example": ["169.254.169.254"]}))
    assert t.addresses("ok.example", 514) == [(socket.AF_INET, ("8.8.8.8", 514))]
    for host, reason in (("mixed.example", "loopback"), ("meta.example", "link-local"), ("nope.example", "resolve")):
        with pytest.raises(drains.DrainRefused, match=reason):
            t.addresses(host, 514)


def test_a_name_that_changes_is_judged_again_at_connect():
    answers = {"flip.example": ["8.8.8.8"]}
    t = drains.Targets(resolve=fake_resolver(answers))
    t.check("syslog://flip.example:514")            # added while it pointed outside
    answers["flip.example"] = ["127.0.0.1"]         # then DNS changed
    with pytest.raises(drains.DrainRefused, match="loopback"):
        t.connect("flip.example", 514)


@pytest.mark.parametrize("url", ["syslog://h.example:99999", "https://h.example:99999/x", "syslog://h.example:0",
                                 "syslog://h.example:514/\r\nfake line", "https://h.example/a\nb",
                                 "https://h.example/a b", "syslog://h.example:51\x1b[2J4", "syslog://h.example",
                                 "https://h.example:-1/x"])
def test_malformed_drain_urls_are_refused(url):
    with pytest.raises(drains.BadRequest):
        drains.check_url(url)


def test_wellformed_drain_urls_pass():
    for url in ("syslog://logs.example:514", "syslog+tls://[2001:db8::1]:6514", "https://logs.example/t/abc",
                "https://logs.example:8443/x"):
        assert drains.check_url(url) == url
