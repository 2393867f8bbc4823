"""The destination guard: which addresses PIE sends requests to on its users' behalf.

Refused, unless PIE_OUTBOUND_ALLOWED_HOSTS allows them (host names, and addresses or CIDRs):
schemes other than http and https, user info in the URL, and any address that is not
globally routable — loopback, private (RFC 1918, fc00::/7), shared (100.64.0.0/10),
link-local, multicast, reserved, unspecified, documentation — and the cloud metadata
addresses, IPv4 inside IPv6 included (::ffff:10.0.0.1). Host names that only ever name the
machine itself or a metadata service (`localhost`, `*.localhost`, `metadata.google.internal`)
are refused as such.

`check_url` looks at the URL alone (no DNS): `parse_url` raises InvalidURL for a URL that is
not a well-formed http(s) URL (a 400 at registration), `check_destination` DestinationRefused
for one whose destination is refused whatever DNS says (a 422). `resolve` runs at send time,
each lookup bounded in time (`Resolver`): every address the name resolves to must pass, and
the request then goes to one of those checked addresses (pie.outbound.client), so a second
lookup cannot change where it goes. A lookup that fails or times out is LookupFailed
(pie.outbound.dns): a transient failure, unlike a refusal."""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import SplitResult, urlsplit

from pie.outbound.dns import LookupFailed, Resolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SCHEMES = ("http", "https")
MAX_URL_LENGTH = 2048
# Cloud metadata services (AWS, ECS task metadata, GCP, Azure, Alibaba, Oracle): refused
# even when an allowed CIDR covers them; only naming the address itself allows it.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",
        "169.254.170.2",
        "169.254.169.253",
        "fd00:ec2::254",
        "fd00:ec2::23",
        "100.100.100.200",
        "192.0.0.192",
    )
)
REFUSED_NAMES = frozenset(
    {
        "localhost",
        "localhost.localdomain",
        "ip6-localhost",
        "ip6-loopback",
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
    }
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")
# 6to4 (RFC 3056: the IPv4 address is bits 16-48) and the deprecated site-local range, both
# global to Python's ipaddress but able to reach inside a network with the right relays.
SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
SITE_LOCAL = ipaddress.ip_network("fec0::/10")
# Dot-separated labels of letters, digits, hyphens and underscores (some internal names have
# them), 1 to 63 characters each, 253 in all.
HOST_NAME = re.compile(
    r"(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*"
)


class DestinationRefused(ValueError):
    """A URL or address PIE does not send to; the message says why and what would allow it."""


class InvalidURL(DestinationRefused):
    """A URL that is not a well-formed http(s) URL: malformed input rather than a refused
    destination (a subclass, as PIE never sends to either)."""


@dataclass(frozen=True)
class Allowed:
    """PIE_OUTBOUND_ALLOWED_HOSTS: host names (exact, case-insensitive) and networks."""

    names: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = field(default=())

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Allowed:
        """ValueError for an entry that is neither a network nor a host name."""
        names: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in entries:
            entry = entry.strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            name = normalise_name(entry)
            if not name or "/" in entry or ":" in entry:
                raise ValueError(f"{entry!r} is neither a host name nor an address or CIDR")
            names.add(name)
        return cls(frozenset(names), tuple(networks))

    def allows_name(self, name: str) -> bool:
        return normalise_name(name) in self.names

    def allows_address(self, address: IPAddress) -> bool:
        if address in METADATA_ADDRESSES:  # only an exact entry, not a wide CIDR
            return any(n.num_addresses == 1 and address in n for n in self.networks)
        return any(address.version == n.version and address in n for n in self.networks)


def normalise_name(name: str) -> str:
    return name.strip().rstrip(".").lower()


def refusal(address: IPAddress) -> str | None:
    """Why PIE does not send to this address (None: it may)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped
        if embedded is None and address in NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is None and address in SIX_TO_FOUR:
            embedded = ipaddress.IPv4Address((int(address) >> 80) & 0xFFFFFFFF)
        if embedded is not None:
            inner = refusal(embedded)
            return f"{inner} (inside IPv6)" if inner else None
        if address in SITE_LOCAL:
            return "a site-local address"
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    for kind, refused in (
        ("an unspecified", address.is_unspecified),
        ("a loopback", address.is_loopback),
        ("a link-local", address.is_link_local),
        ("a multicast", address.is_multicast),
        ("a private", address.is_private),
        ("a reserved", address.is_reserved),
        ("a non-global", not address.is_global),
    ):
        if refused:
            return f"{kind} address"
    return None


def literal_address(host: str) -> IPAddress | None:
    """The address a URL host spells without DNS: IPv6 in brackets, dotted IPv4, and the
    legacy forms the C resolver also reads as IPv4 (`127.1`, `0x7f.1`, `2130706433`)."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host) and host[0].isdigit():
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def check_address(address: IPAddress, allowed: Allowed, host: str, literal: bool = False) -> None:
    reason = refusal(address)
    if reason and not allowed.allows_address(address):
        what = host if literal else f"{host} resolves to {address}, which"
        raise DestinationRefused(
            f"{what} is {reason}; PIE does not send requests there unless "
            "PIE_OUTBOUND_ALLOWED_HOSTS allows it"
        )


@dataclass(frozen=True)
class Destination:
    url: SplitResult
    host: str  # lower-case name or address, without brackets
    port: int
    address: IPAddress | None  # when the URL names an address

    @property
    def target(self) -> str:
        """The request target: path and query (the fragment is never sent)."""
        path = self.url.path or "/"
        return f"{path}?{self.url.query}" if self.url.query else path


def parse_url(url: str) -> Destination:
    """The URL's destination, or InvalidURL when it is not a well-formed http(s) URL."""
    if not isinstance(url, str) or not url:
        raise InvalidURL("the URL is empty")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidURL(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(ord(c) <= 0x20 or ord(c) >= 0x7F for c in url):
        raise InvalidURL(
            "the URL may hold only printable ASCII (percent-encode the path; write an "
            "international host name in its xn-- form)"
        )
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # "Invalid IPv6 URL"
        raise InvalidURL(f"the URL cannot be read: {exc}") from None
    if parts.scheme not in SCHEMES:
        raise InvalidURL(f"the URL's scheme must be http or https, not {parts.scheme or 'none'!r}")
    if "@" in parts.netloc:
        raise InvalidURL("the URL may not hold a user name or password")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise InvalidURL(f"the URL's port is not valid: {exc}") from None
    host = normalise_name(parts.hostname or "")
    if not host:
        raise InvalidURL("the URL names no host")
    if not port:
        raise InvalidURL("the URL's port may not be 0")
    address = literal_address(host)
    if address is None and ("[" in parts.netloc or not HOST_NAME.fullmatch(host)):
        raise InvalidURL(f"the URL's host {host!r} is neither a host name nor an address")
    return Destination(parts, host, port, address)


def check_destination(destination: Destination, allowed: Allowed) -> None:
    """DestinationRefused when the destination is refused whatever DNS says: an address
    written in the URL, or a name of this machine or of a metadata service."""
    host = destination.host
    if destination.address is not None:
        check_address(destination.address, allowed, host, literal=True)
    elif not allowed.allows_name(host):
        if host in REFUSED_NAMES or host.endswith(".localhost"):
            raise DestinationRefused(
                f"{host} names this machine or a metadata service; PIE does not send "
                "requests there unless PIE_OUTBOUND_ALLOWED_HOSTS allows it"
            )


def check_url(url: str, allowed: Allowed) -> Destination:
    """The URL's destination, or DestinationRefused (InvalidURL when malformed): what can be
    seen without DNS."""
    destination = parse_url(url)
    check_destination(destination, allowed)
    return destination


def resolve(destination: Destination, allowed: Allowed, resolver: Resolver) -> list[IPAddress]:
    """Every address the destination's host has, each checked; DestinationRefused when any
    is refused (a name that resolves to an internal address is not sent to at all),
    LookupFailed when the name cannot be resolved now."""
    if destination.address is not None:
        return [destination.address]
    found = resolver(destination.host, destination.port)
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in found:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise LookupFailed(f"{destination.host} resolves to no address")
    named = allowed.allows_name(destination.host)
    for address in addresses:
        # An allowed name may resolve to internal addresses, but never to a metadata one
        # that is not itself allowed.
        if not named or address in METADATA_ADDRESSES:
            check_address(address, allowed, destination.host)
    return addresses
