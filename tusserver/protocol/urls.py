"""Public URLs of uploads: the request's own origin, or a trusted proxy's view of it.

`Forwarded` (RFC 7239) and `X-Forwarded-Proto` / `X-Forwarded-Host` are believed only when the
peer is a configured trusted proxy; anyone else could point Location at a host of their choice.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tusserver.protocol.model import OWS

__all__ = ["TrustedProxies", "forwarded_origin", "request_origin"]

_HOST = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")
_PROTOS = ("http", "https")
_DEFAULT_PORTS = {"http": 80, "https": 443}

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class TrustedProxies:
    """The peers whose forwarding headers are believed."""

    networks: tuple[Network, ...] = ()
    everyone: bool = False

    @classmethod
    def parse(cls, entries: Iterable[str]) -> TrustedProxies:
        """Build from IPs, CIDR networks or "*"; raises ValueError on a malformed entry."""
        entries = [entry.strip() for entry in entries if entry.strip()]
        networks = tuple(ipaddress.ip_network(entry, strict=False) for entry in entries if entry != "*")
        return cls(networks=networks, everyone="*" in entries)

    def trusts(self, peer: str | None) -> bool:
        """True if `peer` (an IP address) is a trusted proxy."""
        if self.everyone:
            return True
        if peer is None or not self.networks:
            return False
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped  # a dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d
        return any(address in network for network in self.networks)


def _forwarded_pairs(value: str) -> dict[str, str]:
    # RFC 7239 §4: the first element was added by the proxy nearest the client.
    first = value.split(",", 1)[0]
    pairs = (part.split("=", 1) for part in first.split(";") if "=" in part)
    return {name.strip(OWS).lower(): raw.strip(OWS).strip('"') for name, raw in pairs}


def forwarded_origin(headers: Mapping[str, str]) -> tuple[str | None, str | None]:
    """The (scheme, host) a proxy reports the client used; None for what it does not say.

    `Forwarded` wins over `X-Forwarded-*`; values that are not a plain scheme or host are ignored.
    """
    pairs = _forwarded_pairs(headers.get("forwarded", ""))
    proto = pairs.get("proto") or headers.get("x-forwarded-proto", "").split(",", 1)[0].strip(OWS)
    host = pairs.get("host") or headers.get("x-forwarded-host", "").split(",", 1)[0].strip(OWS)
    scheme = proto.lower() if proto.lower() in _PROTOS else None
    return scheme, host if host and _HOST.fullmatch(host) else None


def request_origin(scope: Mapping[str, Any], host: str | None) -> tuple[str, str | None]:
    """The (scheme, host) the client addressed: its Host header, or the server's own address where
    the Host header is missing or not a plain host; no host if the server's address is unknown
    too. What Starlette's `request.url` gives, minus the URL parsing (most of its cost)."""
    scheme: str = scope.get("scheme", "http")
    if host and _HOST.fullmatch(host):
        return scheme, host
    server: tuple[str, int | None] | None = scope.get("server")
    if server is None:
        return scheme, None
    name, port = server
    name = f"[{name}]" if ":" in name else name  # an IPv6 address (RFC 3986 §3.2.2)
    return scheme, name if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{name}:{port}"
