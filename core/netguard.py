"""Which addresses the platform may connect to on a tenant's behalf (log drains today; any
outbound target a tenant names). Pure: the caller resolves names and passes the addresses.

Never allowed, whatever the operator says: loopback, link-local (169.254.0.0/16 holds cloud
metadata services), unspecified (0.0.0.0 reaches the host), multicast, broadcast and reserved
ranges, and the platform's own networks (the container engine's bridges and overlays, where
apps and add-ons listen). Private ranges (RFC 1918, CGNAT, IPv6 ULA) are refused too unless
the operator names the collector (a host name or a CIDR) in the allow-list. An IPv6 address that
embeds an IPv4 one (::ffff:a.b.c.d, 6to4, Teredo, NAT64) is judged by the IPv4 address it
reaches. Addresses are compared as `ipaddress` objects, never as text, so 127.1, 0x7f000001
and [::ffff:127.0.0.1] are the loopback they resolve to."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


@dataclass(frozen=True)
class Allowed:
    """The operator's allow-list of private collectors: host names (exact, lower case) and networks."""
    names: frozenset[str] = frozenset()
    networks: tuple[Network, ...] = ()


def parse_allowed(entries: tuple[str, ...] | list[str]) -> Allowed:
    """Entries are host names or CIDRs/addresses; ValueError names a bad one."""
    names, nets = set(), []
    for raw in entries:
        entry = raw.strip().lower().rstrip(".")
        if not entry:
            continue
        try:
            nets.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            continue
        except ValueError:
            pass
        if not all(part and len(part) < 64 and all(c.isalnum() or c == "-" for c in part)
                   for part in entry.split(".")):
            raise ValueError(f"{raw!r} is neither a host name nor a CIDR")
        names.add(entry)
    return Allowed(frozenset(names), tuple(nets))


def embedded_ipv4(ip: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries and reaches (mapped, 6to4, Teredo client, NAT64)."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def refusal(ip: Address, host: str, own: tuple[Network, ...] = (), allowed: Allowed = Allowed()) -> str | None:
    """Why `ip` (an address `host` resolved to) must not be connected to, or None when it may."""
    inner = embedded_ipv4(ip)
    if inner is not None:
        return refusal(inner, host, own, allowed)
    if ip.is_loopback:
        return "loopback (this host)"
    if ip.is_link_local:
        return "link-local (e.g. a cloud metadata service)"
    if ip.is_unspecified:
        return "unspecified (reaches this host)"
    if ip.is_multicast or (isinstance(ip, ipaddress.IPv4Address) and ip == ipaddress.IPv4Address("255.255.255.255")):
        return "multicast or broadcast"
    for net in own:
        if ip.version == net.version and ip in net:
            return f"one of the platform's own networks ({net})"
    if ip.is_global:
        return None
    if host.lower().rstrip(".") in allowed.names or any(ip.version == n.version and ip in n for n in allowed.networks):
        return None
    if ip.is_private or ip in ipaddress.ip_network("100.64.0.0/10"):
        return "a private address"
    return "a reserved address"
