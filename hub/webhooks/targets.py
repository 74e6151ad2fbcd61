"""Where a webhook may be sent: http(s) URLs whose host is a public address. Private, loopback, link-local and
other reserved addresses are refused (a subscription must not reach the hub's own network, nor cloud metadata
endpoints) unless webhooks.allow_private_targets is on. Names are checked when they are resolved for each delivery,
so a name that later points inside is refused too."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver


class TargetError(ValueError):
    """The URL may not be a webhook target; the message says why."""


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_url(url: str, allow_private: bool) -> str:
    """URL if it may be a target, else TargetError with the reason."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise TargetError("the URL must start with http:// or https://")
    if not parts.hostname:
        raise TargetError("the URL has no host")
    if parts.username or parts.password:
        raise TargetError("put credentials in the secret, not in the URL")
    try:
        _ = parts.port
    except ValueError:
        raise TargetError("the URL's port is not a number from 0 to 65535") from None
    host = parts.hostname
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        if not allow_private and (host == "localhost" or host.endswith((".localhost", ".local", ".internal"))):
            raise TargetError(f"{host} is a local name; webhooks.allow_private_targets is off") from None
        return url
    if not allow_private and not _public(host):
        raise TargetError(f"{host} is a private, loopback or reserved address; webhooks.allow_private_targets is off")
    return url


class PublicResolver(AbstractResolver):
    """Resolves like aiohttp's default and drops every non-public address (unless allowed)."""

    def __init__(self, allow_private: bool) -> None:
        self._inner = ThreadedResolver()
        self._allow_private = allow_private

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        if self._allow_private:
            return found
        kept = [r for r in found if _public(r["host"])]
        if not kept:
            raise OSError(f"{host} resolves only to private, loopback or reserved addresses; refused")
        return kept

    async def close(self) -> None:
        await self._inner.close()
