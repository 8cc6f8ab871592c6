"""Which URLs the API may fetch: the SSRF guard that runs before every request and every redirect hop."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import httpx
import msgspec

from ocr_engine.errors import InvalidInput
from ocrserve.settings import Settings

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_SCHEMES = frozenset({"http", "https"})
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_MAX_SHOWN = 200


class FetchFailed(InvalidInput):
    """A URL could not be fetched; the message says why."""

    code = "fetch_failed"


class UrlNotAllowed(InvalidInput):
    """A URL points somewhere the URL policy forbids (private address, host not allowed, bad scheme)."""

    code = "url_not_allowed"


class UrlPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Timeouts and where URLs may point; by default any public host, never a private address."""

    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_redirects: int = 3
    allowed_hosts: tuple[str, ...] = ()  # exact hosts or "*.example.com"; empty = any public host
    allow_private: bool = False

    @classmethod
    def of(cls, settings: Settings) -> UrlPolicy:
        return cls(
            connect_timeout=settings.url_connect_timeout,
            read_timeout=settings.url_read_timeout,
            max_redirects=settings.url_max_redirects,
            allowed_hosts=settings.url_allowed_hosts,
            allow_private=settings.url_allow_private,
        )


def parse_url(url: str) -> httpx.URL:
    try:
        return httpx.URL(url.strip())
    except httpx.InvalidURL as exc:
        raise InvalidInput(f"{url[:_MAX_SHOWN]!r} is not a valid URL") from exc


def display_url(url: httpx.URL) -> str:
    """The URL for messages and logs: without credentials or query (pre-signed URLs carry secrets there)."""
    shown = str(url.copy_with(userinfo=b"", query=None, fragment=None))
    return shown if len(shown) <= _MAX_SHOWN else shown[:_MAX_SHOWN] + "…"


def _host_allowed(host: str, allowed_hosts: tuple[str, ...]) -> bool:
    """Exact match, or "*.example.com" matching any subdomain (not example.com itself)."""
    host = host.lower().rstrip(".")
    for entry in (entry.lower().rstrip(".") for entry in allowed_hosts):
        if host == entry or (entry.startswith("*.") and host.endswith(entry[1:])):
            return True
    return False


def _unwrap_ipv4(ip: IpAddress) -> IpAddress:
    """The IPv4 address inside an IPv4-mapped, 6to4 or NAT64 IPv6 address, which is where packets go."""
    if isinstance(ip, ipaddress.IPv4Address):
        return ip
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def address_class(ip: IpAddress) -> str | None:
    """The non-public class of `ip` ("loopback", "private", …), or None when it is a public address."""
    ip = _unwrap_ipv4(ip)
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if ip.is_reserved:
        return "reserved"
    return None if ip.is_global else "non-public"


async def _resolve(url: httpx.URL, policy: UrlPolicy, what: str) -> list[IpAddress]:
    loop = asyncio.get_running_loop()
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        async with asyncio.timeout(policy.connect_timeout):
            infos = await loop.getaddrinfo(url.host, port, type=socket.SOCK_STREAM)
    except TimeoutError as exc:
        raise FetchFailed(
            f"fetching {what} failed: resolving {url.host!r} timed out after {policy.connect_timeout:g}s"
        ) from exc
    except OSError as exc:  # socket.gaierror
        raise FetchFailed(f"fetching {what} failed: could not resolve host {url.host!r}") from exc
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))


async def resolve_allowed(url: httpx.URL, policy: UrlPolicy, *, what: str) -> str:
    """Check scheme, host and every address the host resolves to; return the address to connect to.

    Connecting to this very address (not resolving again) keeps DNS rebinding from slipping past the check.
    `what` names the URL in messages.
    """
    if url.scheme not in _SCHEMES:
        raise UrlNotAllowed(f"{what} is not allowed: only http and https URLs can be fetched")
    if not url.host:
        raise InvalidInput(f"{what} has no host")
    if policy.allowed_hosts and not _host_allowed(url.host, policy.allowed_hosts):
        raise UrlNotAllowed(
            f"{what} is not allowed: host {url.host!r} is not in the allowed hosts (OCRSERVE_URL_ALLOWED_HOSTS)"
        )
    addresses = await _resolve(url, policy, what)
    if not policy.allow_private:
        for ip in addresses:
            if (kind := address_class(ip)) is not None:
                raise UrlNotAllowed(
                    f"{what} is not allowed: {url.host!r} resolves to {ip}, a {kind} address; set"
                    " OCRSERVE_URL_ALLOW_PRIVATE to allow fetching from private networks"
                )
    return str(addresses[0])
