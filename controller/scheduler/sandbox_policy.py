"""What a build sandbox is and may reach (pure: no I/O; docker_sandbox.py applies it).

A sandbox is one building user's own Docker engine (Docker-in-Docker) on a bridge network of its
own. Its rules (scripts/sandbox/init.sh) refuse every connection, by the engine itself (`ADD
http://...`, a pull) or by a build step, to the networks listed here: loopback, link-local, the
private ranges (the platform's networks, other tenants' containers, the host's bridges) and the
networks of the host's own addresses. Package registries on the internet stay reachable; so do
the host's resolvers, on port 53 only."""
from __future__ import annotations

import ipaddress
import json
import re

# Never reachable from a sandbox, whatever the host's addresses are.
ALWAYS_BLOCKED = ("0.0.0.0/8", "127.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "169.254.0.0/16",
                  "172.16.0.0/12", "192.168.0.0/16", "224.0.0.0/4", "240.0.0.0/4")
REGISTRY_PORT = 5000          # the sandbox's own registry, inside it
SOCKET_DIR = "/sandbox"       # where the sandbox's engine puts docker.sock (a host directory)


def tenant_key(user_id: int | None) -> str:
    """The sandbox of a user: by id, which is never reused (a new user of the same name never
    finds another's images)."""
    return f"u{user_id}" if user_id is not None else "platform"


def sandbox_name(instance: str, tenant: str) -> str:
    """The container, its network and its volume share this name."""
    return f"{instance}-sandbox-{tenant}"


# A unix socket's path holds at most 107 bytes, and DOCKYARD_HOME can be any length (a test's
# home under pytest's tmp_path alone is over 100): the sandboxes' sockets live under a short root
# of their own, one folder per platform instance, whatever the home.
SOCKET_ROOT = "/run/dockyard/sandboxes"
MAX_SOCKET_PATH = 107
_PART_RE = re.compile(r"[a-z0-9][a-z0-9_.-]*")


def socket_dir(instance: str, tenant: str) -> str:
    """The host directory the sandbox's engine puts docker.sock in."""
    path = f"{SOCKET_ROOT}/{instance}/{tenant}"
    if not all(_PART_RE.fullmatch(p) for p in (instance, tenant)) or len(path) + len("/docker.sock") > MAX_SOCKET_PATH:
        raise ValueError(f"The build sandbox's socket for instance {instance!r} and tenant {tenant!r} needs a "
                         "short DOCKYARD_NAME of lower-case letters, digits, '.', '_' or '-'.")
    return path


def host_networks(ip_json: str) -> list[str]:
    """The IPv4 networks of the host's own interfaces, from `ip -j -4 addr` (e.g. 192.0.2.2/24
    gives 192.0.2.0/24): the host and its neighbours on every network it is on."""
    nets: list[str] = []
    try:
        links = json.loads(ip_json or "[]")
    except ValueError:
        return nets
    for link in links if isinstance(links, list) else []:
        for addr in link.get("addr_info") or []:
            if addr.get("family") != "inet" or "local" not in addr:
                continue
            try:
                net = ipaddress.ip_interface(f"{addr['local']}/{addr.get('prefixlen', 32)}").network
            except ValueError:
                continue
            if str(net) not in nets:
                nets.append(str(net))
    return nets


def blocked_networks(host_nets: list[str]) -> list[str]:
    """Everything a sandbox may not connect to, smallest list first-come: the fixed ranges, then
    the host's networks not already inside one of them."""
    fixed = [ipaddress.ip_network(n) for n in ALWAYS_BLOCKED]
    out = list(ALWAYS_BLOCKED)
    for raw in host_nets:
        net = ipaddress.ip_network(raw, strict=False)
        if net.version == 4 and not any(net.subnet_of(f) for f in fixed) and str(net) not in out:
            out.append(str(net))
    return out


def nameservers(resolv_conf: str) -> list[str]:
    """The host's IPv4 resolvers (not loopback ones, which a sandbox cannot reach)."""
    found: list[str] = []
    for line in resolv_conf.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            try:
                ip = ipaddress.ip_address(parts[1])
            except ValueError:
                continue
            if ip.version == 4 and not ip.is_loopback and str(ip) not in found:
                found.append(str(ip))
    return found


# Where a sandbox's engine takes its own networks from (its default bridge, a build's network).
# Docker's own default pools (172.17-31, 192.168) only skip the networks on the sandbox's own
# interfaces: they can take the network of the host talking to the sandbox (the platform host,
# which reaches a node's sandbox through the node), and every reply to it then goes to a build's
# bridge. So the platform names a range that overlaps none of its networks nor its resolvers.
POOL_CANDIDATES = tuple(f"10.{b}.0.0/16" for b in range(213, 256)) + tuple(f"172.{b}.0.0/16" for b in range(16, 32))


def engine_networks(avoid: list[str]) -> tuple[str, str]:
    """The sandbox engine's (default address pool, default bridge address): the first candidate
    /16 overlapping none of `avoid` (networks or addresses); its lower half is the pool of
    /24s for the builds' networks, its upper half's first /24 the default bridge."""
    taken = [ipaddress.ip_network(a, strict=False) for a in avoid]
    for raw in POOL_CANDIDATES:
        net = ipaddress.ip_network(raw)
        if not any(net.overlaps(t) for t in taken if t.version == 4):
            pool, upper = net.subnets(prefixlen_diff=1)
            return str(pool), f"{next(upper.hosts())}/24"
    raise ValueError("Every address range a build sandbox's engine can use (10.213-255.0.0/16, 172.16-31.0.0/16) "
                     "overlaps a network of this host: free one of them.")


def registry_host_port(container: dict) -> int | None:
    """The host port (on 127.0.0.1) the sandbox's registry is published on, from `inspect`."""
    ports = ((container.get("NetworkSettings") or {}).get("Ports") or {}).get(f"{REGISTRY_PORT}/tcp") or []
    for binding in ports:
        if binding.get("HostIp") in ("127.0.0.1", "") and str(binding.get("HostPort", "")).isdigit():
            return int(binding["HostPort"])
    return None
