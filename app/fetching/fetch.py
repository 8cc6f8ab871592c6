"""Fetch a document over http(s), checking the URL policy on every hop and capping the size as it streams."""

from __future__ import annotations

import httpx

from app.fetching.url_policy import FetchFailed, UrlPolicy, display_url, parse_url, resolve_allowed
from ocr_engine.documents.limits import document_too_large

# Identity encoding: the size cap then bounds what the server sends, not what a gzip bomb inflates to.
# Connection close: requests go to a pinned IP, so a pooled TLS connection must not serve another host name.
_HEADERS = {"User-Agent": "ocrserve", "Accept-Encoding": "identity", "Connection": "close"}


async def fetch_url(url: str, *, policy: UrlPolicy, max_bytes: int, client: httpx.AsyncClient | None = None) -> bytes:
    """Body of `url`; a refused URL raises UrlNotAllowed, a failure FetchFailed, a big body LimitExceeded."""
    start = parse_url(url)
    if client is not None:
        return await _fetch(start, policy, max_bytes, client)
    async with httpx.AsyncClient(trust_env=False) as own_client:  # no proxies from the environment
        return await _fetch(start, policy, max_bytes, own_client)


async def _fetch(start: httpx.URL, policy: UrlPolicy, max_bytes: int, client: httpx.AsyncClient) -> bytes:
    """Follow redirects by hand so that every hop passes the URL policy."""
    timeout = httpx.Timeout(policy.read_timeout, connect=policy.connect_timeout)
    target, what = start, display_url(start)
    for _ in range(policy.max_redirects + 1):
        address = await resolve_allowed(target, policy, what=what)
        try:
            async with client.stream(
                "GET",
                target.copy_with(host=address),
                headers={**_HEADERS, "Host": target.netloc.decode("ascii")},
                timeout=timeout,
                follow_redirects=False,
                extensions={"sni_hostname": target.raw_host.decode("ascii")},
            ) as response:
                if response.is_redirect:
                    target = target.join(response.headers["location"])
                    what = f"{display_url(target)} (redirected from {display_url(start)})"
                    continue
                if not response.is_success:
                    raise FetchFailed(f"fetching {what} failed: HTTP {response.status_code}")
                return await _read_body(response, max_bytes)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise FetchFailed(f"fetching {what} failed: {_reason(exc, policy)}") from exc
    raise FetchFailed(f"fetching {display_url(start)} failed: more than {policy.max_redirects} redirects")


async def _read_body(response: httpx.Response, max_bytes: int) -> bytes:
    """Read at most `max_bytes`, refusing as soon as the declared or received size passes it."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise document_too_large(max_bytes, int(declared))
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise document_too_large(max_bytes)
    return bytes(body)


def _reason(exc: httpx.HTTPError | httpx.InvalidURL, policy: UrlPolicy) -> str:
    """A short client-facing reason; the exception text (hosts, internals) stays out of replies."""
    if isinstance(exc, httpx.ConnectTimeout):
        return f"timed out after {policy.connect_timeout:g}s"
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out after {policy.read_timeout:g}s"
    if isinstance(exc, httpx.ConnectError):
        return "could not connect"
    if isinstance(exc, httpx.NetworkError):
        return "the connection broke off"
    if isinstance(exc, httpx.InvalidURL):
        return "the server redirected to an invalid URL"
    return "the server sent an invalid response"
