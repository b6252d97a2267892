"""Where a request comes from: its client address and its request id.

The client address is decided by :func:`client_address`, the one function every part of the
service asks.

Behind a reverse proxy ``REMOTE_ADDR`` is the proxy's address, and the client's is in
``X-Forwarded-For``, which the client can also write. ``TRUSTED_PROXIES`` names the proxies
(addresses or CIDR ranges) whose ``X-Forwarded-For`` is believed:

1. ``REMOTE_ADDR`` is not a trusted proxy: it is the client address, whatever the headers say.
2. Otherwise walk ``X-Forwarded-For`` from the right (each proxy appends the address it saw) and
   take the first address that is not a trusted proxy; when every one is, the left-most.
   A malformed entry stops the walk: the last well-formed address before it is the answer.

The audit log (console actors), the sign-in lockout and the gateway's log line all use it.

The request id is the gateway's ``X-Request-ID`` when it has the gateway's format
(``req_<uuid4>``), else one made here: a client's arbitrary text never reaches the audit log.
"""

from __future__ import annotations

import ipaddress
import os
import re
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest

GATEWAY_REQUEST_ID_RE = re.compile(
    r"req_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
)
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def trusted_networks(proxies: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    """Parse TRUSTED_PROXIES entries (raises ValueError on a malformed one)."""
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in proxies)


def _parse(value: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    # An IPv4 client seen through an IPv6 socket: record it as the IPv4 address it is.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _is_trusted(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


@lru_cache(maxsize=1024)
def _canonical(value: str) -> str | None:
    """`value` (a REMOTE_ADDR) as the address it is, or None: the few peers repeat."""
    address = _parse(value)
    return None if address is None else str(address)


def client_address(request: HttpRequest) -> str | None:
    """The address of the client that made `request`, or None when there is none to tell."""
    networks = trusted_networks(tuple(settings.TRUSTED_PROXIES))
    if not networks:
        return _canonical(request.META.get("REMOTE_ADDR") or "")
    remote = _parse(request.META.get("REMOTE_ADDR") or "")
    if remote is None:
        return None
    if not _is_trusted(remote, networks):
        return str(remote)
    # Several X-Forwarded-For headers reach Django joined with commas, in order.
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    chosen = remote
    for entry in reversed(forwarded.split(",") if forwarded.strip() else []):
        address = _parse(entry)
        if address is None:
            break
        chosen = address
        if not _is_trusted(address, networks):
            break
    return str(chosen)


def request_id(request: HttpRequest) -> str:
    """This request's id, made once per request so all its events carry the same one."""
    cached = getattr(request, "_klikit_request_id", None)
    if cached is None:
        given = request.META.get("HTTP_X_REQUEST_ID", "")
        cached = given if GATEWAY_REQUEST_ID_RE.fullmatch(given) else new_request_id()
        request._klikit_request_id = cached
    return cached


def new_request_id() -> str:
    """``req_`` and a random UUID version 4, as ``uuid.uuid4()`` makes it, in two thirds the time.

    The same 16 random bytes from the operating system with the version and variant bits set;
    only ``uuid.UUID``'s generic construction and formatting are skipped (every gateway request
    that comes without an id pays this).
    """
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"req_{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
