"""Which addresses an allow-listed host may resolve to: globally routable unicast ones only.

``ipaddress`` judges an IPv6 address by its own prefix, but several IPv6 forms carry an IPv4
address, and that IPv4 address is where the packets end up: IPv4-mapped ``::ffff:0:0/96``,
the deprecated IPv4-compatible ``::/96``, 6to4 ``2002::/16`` and NAT64 ``64:ff9b::/96`` and
``64:ff9b:1::/48`` (the IPv4 address in the last 32 bits). Python 3.11 counts
``64:ff9b::a9fe:a9fe`` as global, yet behind a NAT64 gateway it is the cloud metadata service
169.254.169.254. So these forms are judged by the IPv4 address inside, by the same rule as
plain IPv4. Two forms are refused outright: site-local ``fec0::/10``, deprecated but still some
networks' private range, which Python 3.11 counts as global; and Teredo ``2001::/32``, a tunnel
to whatever client address it names, which no storage host is reached through (Python already
counts it as non-global; refusing it here keeps that true whatever the client address).
"""

from __future__ import annotations

import ipaddress
from ipaddress import IPv4Address, IPv6Address, IPv6Network

_LAST_32_BITS_CARRY_IPV4 = (
    IPv6Network("::/96"),
    IPv6Network("64:ff9b::/96"),
    IPv6Network("64:ff9b:1::/48"),
)


def embedded_ipv4(ip: IPv6Address) -> IPv4Address | None:
    """The IPv4 address that ``ip`` carries, or None when it is a plain IPv6 address."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if any(ip in network for network in _LAST_32_BITS_CARRY_IPV4):
        return IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public_address(address: str) -> bool:
    """True for globally routable unicast addresses only (not loopback, private, link-local...)."""
    try:
        ip: IPv4Address | IPv6Address = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, IPv6Address):
        if ip.is_site_local or ip.teredo is not None:
            return False
        inner = embedded_ipv4(ip)
        if inner is not None:
            ip = inner
    return ip.is_global and not ip.is_multicast
