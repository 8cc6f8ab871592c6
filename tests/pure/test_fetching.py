"""fetch_url against a real HTTP server on loopback; the SSRF guard also with a mock transport and resolver."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from app.fetching import FetchFailed, UrlNotAllowed, UrlPolicy, fetch_url
from app.fetching.url_policy import address_class
from ocr_engine.errors import InvalidInput, LimitExceeded

BODY = b"%PDF-1.7 pretend document " * 40
LOOPBACK = UrlPolicy(allow_private=True, read_timeout=5.0, connect_timeout=2.0)
STREAM_CHUNK = b"x" * 65536
STREAM_TOTAL = 64 * 1024 * 1024


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        self.server.requests.append((self.path, self.headers.get("Host", "")))
        path = self.path.split("?")[0]
        if path == "/doc":
            self._reply(200, BODY)
        elif path.startswith("/hops/"):
            left = int(path.rsplit("/", 1)[1])
            self._redirect(f"/hops/{left - 1}" if left > 1 else "/doc")
        elif path == "/relative":
            self._redirect("doc")
        elif path == "/to-localhost":
            self._redirect(f"http://localhost:{self.server.server_port}/doc")
        elif path == "/to-file":
            self._redirect("file:///etc/passwd")
        elif path == "/missing":
            self._reply(404, b"not here")
        elif path == "/declared-huge":
            self.send_response(200)
            self.send_header("Content-Length", "10000000")
            self.end_headers()
            self.server.stop.wait(10)
        elif path == "/chunked-huge":
            self._stream_chunked()
        elif path == "/slow":
            self.server.stop.wait(10)
            self._reply(200, BODY)

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _stream_chunked(self) -> None:
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for _ in range(STREAM_TOTAL // len(STREAM_CHUNK)):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(STREAM_CHUNK), STREAM_CHUNK))
                self.server.streamed += len(STREAM_CHUNK)
            self.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client hung up, as it should once over the limit
            pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[tuple[str, str]] = []
        self.stop = threading.Event()
        self.streamed = 0

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.server_port}{path}"


@pytest.fixture
def server() -> Iterator[_Server]:
    http_server = _Server()
    thread = threading.Thread(target=http_server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield http_server
    finally:
        http_server.stop.set()
        http_server.shutdown()
        http_server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Host names added to the returned dict resolve to the given address; others resolve as usual."""
    names: dict[str, str] = {}
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: object, port: object, *args: object, **kwargs: object) -> list[tuple]:
        if host in names:
            family = socket.AF_INET6 if ":" in names[host] else socket.AF_INET
            return [(family, socket.SOCK_STREAM, 6, "", (names[host], port))]
        if isinstance(host, str) and host.endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return names


def fetch(url: str, policy: UrlPolicy = LOOPBACK, max_bytes: int = 1_000_000, **kwargs: object) -> bytes:
    return asyncio.run(fetch_url(url, policy=policy, max_bytes=max_bytes, **kwargs))


def test_fetches_a_document(server: _Server) -> None:
    assert fetch(server.url("/doc")) == BODY
    assert server.requests == [("/doc", f"127.0.0.1:{server.server_port}")]


def test_follows_redirects_up_to_the_limit(server: _Server) -> None:
    assert fetch(server.url("/hops/3")) == BODY
    assert [path for path, _ in server.requests] == ["/hops/3", "/hops/2", "/hops/1", "/doc"]


def test_follows_relative_redirects(server: _Server) -> None:
    assert fetch(server.url("/relative")) == BODY


def test_too_many_redirects_fail(server: _Server) -> None:
    with pytest.raises(FetchFailed, match="more than 3 redirects"):
        fetch(server.url("/hops/4"))
    assert len(server.requests) == 4
    with pytest.raises(FetchFailed, match="more than 0 redirects"):
        fetch(server.url("/hops/1"), UrlPolicy(allow_private=True, max_redirects=0))


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]"])
def test_loopback_is_refused_by_default_before_any_request(server: _Server, host: str) -> None:
    with pytest.raises(UrlNotAllowed) as caught:
        fetch(server.url("/doc", host=host), UrlPolicy())
    assert "loopback" in caught.value.message
    assert "OCRSERVE_URL_ALLOW_PRIVATE" in caught.value.message
    assert server.requests == []


def test_redirect_to_a_host_outside_allowed_hosts_is_refused(server: _Server) -> None:
    policy = UrlPolicy(allow_private=True, allowed_hosts=("127.0.0.1",))
    assert fetch(server.url("/doc"), policy) == BODY
    with pytest.raises(UrlNotAllowed) as caught:
        fetch(server.url("/to-localhost"), policy)
    assert "'localhost' is not in the allowed hosts" in caught.value.message
    assert "redirected from" in caught.value.message
    assert [path for path, _ in server.requests] == ["/doc", "/to-localhost"]


def test_wildcard_allowed_host_and_the_connection_is_pinned(server: _Server, fake_dns: dict[str, str]) -> None:
    fake_dns["docs.example.com"] = "127.0.0.1"
    policy = UrlPolicy(allow_private=True, allowed_hosts=("*.example.com",))
    assert fetch(server.url("/doc", host="docs.example.com"), policy) == BODY
    assert server.requests == [("/doc", f"docs.example.com:{server.server_port}")]
    for refused in ("example.com", "docs.example.com.evil.test", "127.0.0.1"):
        fake_dns[refused] = "127.0.0.1"
        with pytest.raises(UrlNotAllowed, match="allowed hosts"):
            fetch(server.url("/doc", host=refused), policy)


def test_redirect_from_a_public_host_to_a_private_address_is_refused(fake_dns: dict[str, str]) -> None:
    fake_dns["public.example"] = "93.184.216.34"
    fake_dns["internal.example"] = "10.1.2.3"
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(302, headers={"Location": "http://internal.example/secrets"})

    async def run() -> bytes:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return await fetch_url("http://public.example/doc", policy=UrlPolicy(), max_bytes=100, client=client)

    with pytest.raises(UrlNotAllowed) as caught:
        asyncio.run(run())
    assert "'internal.example' resolves to 10.1.2.3, a private address" in caught.value.message
    assert len(seen) == 1
    assert seen[0].url.host == "93.184.216.34"  # connected to the address that was checked
    assert seen[0].headers["host"] == "public.example"


def test_redirect_to_a_file_url_is_refused(server: _Server) -> None:
    with pytest.raises(UrlNotAllowed, match="only http and https"):
        fetch(server.url("/to-file"))


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/doc", "gopher://127.0.0.1/"])
def test_other_schemes_are_refused(url: str) -> None:
    with pytest.raises(UrlNotAllowed, match="only http and https"):
        fetch(url)


@pytest.mark.parametrize("url", ["http://[::1", "http:///doc"])
def test_malformed_urls_are_invalid_input(url: str) -> None:
    with pytest.raises(InvalidInput):
        fetch(url)


def test_body_over_max_bytes_is_cut_off_while_streaming(server: _Server) -> None:
    with pytest.raises(LimitExceeded) as caught:
        fetch(server.url("/chunked-huge"), max_bytes=100_000)
    assert "larger than 100,000 bytes" in caught.value.message
    assert "OCRSERVE_MAX_DOCUMENT_BYTES" in caught.value.message
    assert server.streamed < STREAM_TOTAL


def test_declared_length_over_max_bytes_is_refused_without_reading(server: _Server) -> None:
    policy = UrlPolicy(allow_private=True, read_timeout=3.0)
    with pytest.raises(LimitExceeded, match="is 10,000,000 bytes"):  # not a read timeout
        fetch(server.url("/declared-huge"), policy, max_bytes=1_000_000)


def test_body_exactly_max_bytes_is_accepted(server: _Server) -> None:
    assert fetch(server.url("/doc"), max_bytes=len(BODY)) == BODY
    with pytest.raises(LimitExceeded):
        fetch(server.url("/doc"), max_bytes=len(BODY) - 1)


def test_http_errors_fail_with_the_status_and_without_the_query(server: _Server) -> None:
    with pytest.raises(FetchFailed) as caught:
        fetch(server.url("/missing?signature=s3cr3t"))
    assert caught.value.message == f"fetching {server.url('/missing')} failed: HTTP 404"


def test_slow_server_times_out(server: _Server) -> None:
    with pytest.raises(FetchFailed, match=r"timed out after 0\.3s$"):
        fetch(server.url("/slow"), UrlPolicy(allow_private=True, read_timeout=0.3))


def test_refused_connection_fails_with_a_short_reason() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(FetchFailed) as caught:
        fetch(f"http://127.0.0.1:{port}/doc")
    assert caught.value.message == f"fetching http://127.0.0.1:{port}/doc failed: could not connect"


def test_unresolvable_host_fails(fake_dns: dict[str, str]) -> None:
    with pytest.raises(FetchFailed, match=r"could not resolve host 'nowhere\.invalid'"):
        fetch("http://nowhere.invalid/doc")


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("2002:7f00:1::", "loopback"),  # 6to4 around 127.0.0.1
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 around 169.254.169.254
        ("10.0.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "private"),  # reserved, which Python also counts as private
        ("4000::1", "reserved"),
        ("100.64.0.1", "non-public"),  # carrier-grade NAT
    ],
)
def test_address_classes(address: str, expected: str | None) -> None:
    assert address_class(ipaddress.ip_address(address)) == expected
