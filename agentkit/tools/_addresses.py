"""Which addresses ``fetch_url`` may connect to: globally routable unicast only, however the address is spelled.

A URL from a model may come from a prompt injection, so every address that is not globally routable is refused:
loopback, private, link-local, CGNAT, multicast, reserved, unspecified — and IPv6 spellings that reach them. An
IPv6 address that carries an IPv4 address to a translator or tunnel (IPv4-mapped, SIIT, NAT64, 6to4, Teredo) is
judged by the IPv4 address it reaches; deprecated and unassigned IPv6 space is refused outright.
"""

from __future__ import annotations

import ipaddress

__all__ = ["is_ip", "is_public_address"]

_V6 = ipaddress.IPv6Network
_GLOBAL_UNICAST_V6 = _V6("2000::/3")  # the only IPv6 space handed out for public unicast
# Prefixes whose last 32 bits are an IPv4 address that the network translates to: IPv4-mapped, SIIT's
# IPv4-translated, and NAT64's well-known prefix. Their IPv6 wrapper is nothing; the IPv4 address decides.
_V4_SUFFIX_PREFIXES = (_V6("::ffff:0:0/96"), _V6("::ffff:0:0:0/96"), _V6("64:ff9b::/96"))
_NAT64_LOCAL = _V6("64:ff9b:1::/48")  # local-use NAT64 (RFC 8215): the prefix length, and so the layout, varies
_REFUSED_V6 = (
    _V6("::/96"),  # IPv4-compatible ::a.b.c.d, deprecated (RFC 4291); also :: and ::1
    _V6("fec0::/10"),  # site-local, deprecated (RFC 3879): routed inside a site
    _V6("3ffe::/16"),  # the 6bone test network, returned in 2006
    _V6("2001::/32"),  # Teredo: a tunnel to an embedded IPv4 server and client
)


def _v4_at(value: int, prefix_len: int) -> ipaddress.IPv4Address:
    """The IPv4 address RFC 6052 embeds after a ``prefix_len``-bit prefix (bits 64-71 are skipped)."""
    bits = [(value >> (127 - i)) & 1 for i in range(128)]
    v4 = [b for i, b in enumerate(bits[prefix_len:], start=prefix_len) if not 64 <= i < 72][:32]
    return ipaddress.IPv4Address(int("".join(map(str, v4)), 2))


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """Every IPv4 address an IPv6 address can carry to a translator or tunnel (an empty list: none)."""
    if any(ip in net for net in _V4_SUFFIX_PREFIXES):
        return [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    if ip in _NAT64_LOCAL:  # any of the layouts a local translator may use: all must be public
        return [_v4_at(int(ip), n) for n in (48, 56, 64, 96)]
    if ip.sixtofour is not None:
        return [ip.sixtofour]
    if ip.teredo is not None:
        return list(ip.teredo)
    return []


def _is_public_v4(ip: ipaddress.IPv4Address) -> bool:
    return ip.is_global and not ip.is_multicast


def is_public_address(address: str) -> bool:
    """True for globally routable unicast addresses; False for anything on the user's side of the router.

    An IPv6 address that embeds an IPv4 address (IPv4-mapped, SIIT, NAT64, 6to4, Teredo) reaches that IPv4
    address, so the embedded address must be public too; deprecated ranges (IPv4-compatible, site-local, 6bone)
    and everything outside 2000::/3 are refused outright.
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv4Address):
        return _is_public_v4(ip)
    embedded = _embedded_ipv4(ip)
    if embedded and not all(_is_public_v4(v4) for v4 in embedded):
        return False
    if any(ip in net for net in _V4_SUFFIX_PREFIXES) or ip in _NAT64_LOCAL:
        return True  # a translated public IPv4 address (NAT64 on IPv6-only networks resolves names to these)
    if any(ip in net for net in _REFUSED_V6) or ip not in _GLOBAL_UNICAST_V6:
        return False
    return ip.is_global and not ip.is_multicast


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
