"""The build sandbox's network policy and naming (pure logic of controller/scheduler/sandbox_policy.py)."""
from __future__ import annotations

import ipaddress
import json

import pytest

from controller.scheduler import sandbox_policy as policy


def _ip_json(*addrs: tuple[str, str, int]) -> str:
    return json.dumps([{"ifname": name, "addr_info": [{"family": "inet", "local": ip, "prefixlen": plen}]}
                       for name, ip, plen in addrs])


def test_the_hosts_networks_come_from_ip_json():
    nets = policy.host_networks(_ip_json(("lo", "127.0.0.1", 8), ("eth0", "192.0.2.2", 24),
                                         ("docker0", "172.17.0.1", 16)))
    assert nets == ["127.0.0.0/8", "192.0.2.0/24", "172.17.0.0/16"]
    assert policy.host_networks("not json") == [] and policy.host_networks("") == []


def test_blocked_networks_add_the_hosts_own_public_network_once():
    blocked = policy.blocked_networks(["127.0.0.0/8", "192.0.2.0/24", "172.17.0.0/16", "198.51.100.7/32"])
    assert blocked[:len(policy.ALWAYS_BLOCKED)] == list(policy.ALWAYS_BLOCKED)
    # a private network is inside a fixed range already; the host's public ones are added
    assert blocked[len(policy.ALWAYS_BLOCKED):] == ["192.0.2.0/24", "198.51.100.7/32"]
    for must in ("127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"):
        assert must in blocked


def test_nameservers_skip_loopback_and_ipv6():
    text = "# generated\nnameserver 10.255.255.53\nnameserver 127.0.0.53\nnameserver ::1\nnameserver x\n" \
           "search example\nnameserver 10.255.255.53\n"
    assert policy.nameservers(text) == ["10.255.255.53"]


def test_sandboxes_are_named_by_user_id_never_by_name():
    assert policy.tenant_key(7) == "u7" and policy.tenant_key(None) == "platform"
    assert policy.sandbox_name("dockyard", "u7") == "dockyard-sandbox-u7"


def test_the_registry_port_is_read_from_the_containers_loopback_binding():
    info = {"NetworkSettings": {"Ports": {"5000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "32768"}]}}}
    assert policy.registry_host_port(info) == 32768
    assert policy.registry_host_port({"NetworkSettings": {"Ports": {"5000/tcp": None}}}) is None
    assert policy.registry_host_port({}) is None


def test_the_socket_dir_is_short_whatever_the_home_and_refuses_path_tricks():
    # A unix socket's path holds 107 bytes; homes under pytest's tmp_path alone pass 100.
    path = policy.socket_dir("dyt8c90f0", "u12345")
    assert path == "/run/dockyard/sandboxes/dyt8c90f0/u12345"
    assert len(path + "/docker.sock") <= policy.MAX_SOCKET_PATH
    for instance in ("..", "a/b", "", "Dockyard", "x" * 80):
        with pytest.raises(ValueError, match="DOCKYARD_NAME"):
            policy.socket_dir(instance, "u1")


def test_the_sandbox_engines_networks_overlap_none_of_the_platforms():
    # the cluster network the platform reaches a node's sandbox from, the host's bridges, a resolver
    avoid = ["172.18.0.0/16", "10.213.7.0/24", "10.0.0.0/8", "192.168.0.0/16", "8.8.8.8"]
    pool, bridge = policy.engine_networks(avoid)
    assert (pool, bridge) == ("172.16.0.0/17", "172.16.128.1/24")
    nets = [ipaddress.ip_network(pool), ipaddress.ip_interface(bridge).network]
    assert not nets[0].overlaps(nets[1])
    assert not any(n.overlaps(ipaddress.ip_network(a)) for n in nets for a in avoid)
    assert policy.engine_networks([]) == ("10.213.0.0/17", "10.213.128.1/24")


def test_a_host_on_every_candidate_range_gets_an_error_naming_the_fix():
    with pytest.raises(ValueError, match="free one of them"):
        policy.engine_networks(["10.0.0.0/8", "172.16.0.0/12"])


def test_tidying_an_earlier_build_leaves_a_later_pushs_build_tag():
    from controller.scheduler.sandbox_transfer import newer_build
    keep = "build-8bb84fe465e8-1796648120"
    assert newer_build("build-0123456789ab-1796648125", keep)       # pushed after: still building
    assert newer_build("build-0123456789ab-1796648120", keep)       # the same second: kept too
    assert not newer_build("build-0123456789ab-1796648119", keep)   # an older build: tidied
    assert not newer_build("deps-kee1b1162c4a85693", keep) and not newer_build("v3", keep)
    assert not newer_build("build-x-1796648125", "v3")              # nothing to compare with: tidied as before
