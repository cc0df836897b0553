"""Where the node may connect on somebody else's say-so: address classes, URL checks, a resolver that checks.

A URL that arrives from elsewhere (a ``ws=`` web seed inside a magnet a stranger published, a DVM job's
``url`` input) must not make the node fetch from itself or its LAN: ``http://127.0.0.1:8737/api/...``, the
cloud metadata service at 169.254.169.254, a router's admin page. The rule:

    scheme        http or https only
    address       every address the host resolves to must be *public*; with ``network.lan_only`` private
                  and link-local addresses are fine too (a LAN node fetches from its LAN); loopback,
                  unspecified, multicast and reserved addresses never are
    when          at every connection (the resolver below checks what it returns, so a DNS answer that
                  changes between check and connect - rebinding - is caught) and at every redirect hop

URLs a user types on the command line are trusted and never pass through here.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from silnode.errors import AddressRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

LOOPBACK, LINK_LOCAL, PRIVATE, PUBLIC, OTHER = "loopback", "link-local", "private", "public", "other"
SCHEMES = ("http", "https")


def classify(ip: IPAddress | str) -> str:
    """loopback | link-local | private | public | other (unspecified, multicast, reserved)."""
    addr = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    if isinstance(addr, ipaddress.IPv6Address):
        mapped = addr.ipv4_mapped or addr.sixtofour
        if mapped is not None:  # ::ffff:127.0.0.1 is 127.0.0.1
            return classify(mapped)
        if addr.teredo is not None:
            return OTHER
    if addr.is_loopback:
        return LOOPBACK
    if addr.is_unspecified or addr.is_multicast or addr.is_reserved:
        return OTHER
    if addr.is_link_local:
        return LINK_LOCAL
    if addr.is_private or not addr.is_global:  # RFC 1918, ULA, CGNAT, documentation ranges, ...
        return PRIVATE
    return PUBLIC


@dataclass(frozen=True)
class Policy:
    """Which address classes a URL from elsewhere may reach."""

    lan_only: bool = False

    @property
    def allowed(self) -> frozenset[str]:
        return frozenset({PUBLIC, PRIVATE, LINK_LOCAL} if self.lan_only else {PUBLIC})

    def check_address(self, ip: IPAddress | str, *, what: str = "") -> None:
        kind = classify(ip)
        if kind not in self.allowed:
            raise AddressRefused(f"{what or ip} resolves to {ip} ({kind}): refused")

    def check_url_shape(self, url: str) -> tuple[str, str, int]:
        """(scheme, host, port) of an http(s) URL, or AddressRefused."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise AddressRefused(f"not a usable URL: {url[:120]!r} ({exc})") from None
        scheme = parts.scheme.lower()
        if scheme not in SCHEMES or not parts.hostname:
            raise AddressRefused(f"only http(s) URLs with a host are fetched, not {url[:120]!r}")
        return scheme, parts.hostname, port or (443 if scheme == "https" else 80)

    def check_url(self, url: str) -> list[IPAddress]:
        """Resolve ``url``'s host now and check every address (blocking: DNS). Returns the addresses."""
        _scheme, host, port = self.check_url_shape(url)
        addrs = resolve(host, port)
        for ip in addrs:
            self.check_address(ip, what=_short(url))
        return addrs


def _short(url: str) -> str:
    return url if len(url) <= 120 else url[:117] + "..."


def literal_ip(host: str) -> IPAddress | None:
    """The address a host names by itself, including the forms inet_aton accepts ('127.1', '2130706433')."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (literal addresses in any inet_aton form included)."""
    literal = literal_ip(host)
    if literal is not None:
        return [literal]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise AddressRefused(f"cannot resolve {host[:100]!r}: {exc}") from None
    out: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if ip not in out:
            out.append(ip)
    if not out:
        raise AddressRefused(f"{host[:100]!r} resolves to no address")
    return out


def checking_resolver(policy: Policy) -> Any:
    """An aiohttp resolver that refuses hosts with any address outside ``policy``: every new connection
    resolves through it (with aiohttp's DNS cache off), so what is checked is what is connected to."""
    import asyncio

    from aiohttp.abc import AbstractResolver

    class CheckingResolver(AbstractResolver):
        async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[dict[str, Any]]:
            addrs = await asyncio.to_thread(resolve, host, port)
            for ip in addrs:
                policy.check_address(ip, what=host)
            return [
                {
                    "hostname": host,
                    "host": str(ip),
                    "port": port,
                    "family": socket.AF_INET6 if ip.version == 6 else socket.AF_INET,
                    "proto": 0,
                    "flags": socket.AI_NUMERICHOST,
                }
                for ip in addrs
            ]

        async def close(self) -> None:
            pass

    return CheckingResolver()


def check_hop(policy: Policy, url: str) -> None:
    """The checks aiohttp's resolver cannot make: the scheme, and a host that is an address literal (aiohttp
    connects to those without asking a resolver)."""
    _scheme, host, _port = policy.check_url_shape(url)
    literal = literal_ip(host)
    if literal is not None:
        policy.check_address(literal, what=_short(url))


def redirect_target(base: str, location: str | None, allowed_schemes: Sequence[str] = SCHEMES) -> str:
    from urllib.parse import urljoin

    if not location:
        raise AddressRefused(f"{_short(base)} redirects without a Location")
    target = urljoin(base, location)
    if urlsplit(target).scheme.lower() not in allowed_schemes:
        raise AddressRefused(f"{_short(base)} redirects to a non-http(s) URL")
    return target
