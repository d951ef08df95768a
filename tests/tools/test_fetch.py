"""fetch_url against a real HTTP server on loopback: limits, content types, redirects and address policy."""

from __future__ import annotations

import gzip
import ipaddress
import shutil
import ssl
import subprocess
import threading
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentkit.errors import ToolError
from agentkit.tools import fetch_url, make_fetch_url
from agentkit.tools.fetch import is_public_address

ARTICLE = """<html><head><title>Gemma notes</title><script>var tracking = 1;</script></head><body>
<nav>Home | About</nav><article><h1>Function calling</h1>
<p>Gemma 4 declares tools in the system turn and calls them with a compact syntax of its own.</p>
<p>Each call is answered by a tool response, and the model continues its turn afterwards.</p>
</article></body></html>"""


class _Handler(BaseHTTPRequestHandler):
    server: LocalSite

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass

    def _send(self, status: int, body: bytes, content_type: str | None, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        self.server.requests.append((self.path, self.headers.get("Host", "")))
        query = parse_qs(url.query)
        path = url.path
        if path == "/page.html":
            self._send(200, ARTICLE.encode(), "text/html; charset=utf-8")
        elif path == "/plain":
            self._send(200, "caf\xe9 au lait".encode("latin-1"), "text/plain; charset=iso-8859-1")
        elif path == "/data.json":
            self._send(200, b'{"answer": 42}', "application/json")
        elif path == "/report.pdf":
            self._send(200, b"%PDF-1.7\x00\x01binary", "application/pdf")
        elif path == "/untyped":
            self._send(200, b"\x7fELF\x00\x00\x00", None)
        elif path == "/missing":
            self._send(404, b"not here", "text/plain")
        elif path in ("/loop-a", "/loop-b"):
            self._send(302, b"", "text/plain", {"Location": "/loop-b" if path == "/loop-a" else "/loop-a"})
        elif path.startswith("/chain/"):
            n = int(path.rsplit("/", 1)[1])
            target = f"/chain/{n - 1}" if n > 0 else "/data.json"
            self._send(302, b"", "text/plain", {"Location": target})
        elif path == "/redirect":
            self._send(302, b"", "text/plain", {"Location": query["to"][0]})
        elif path == "/huge":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            chunk = b"0123456789abcdef" * 4096  # 64 KiB
            try:
                for _ in range(800):  # 50 MiB if nobody stops reading
                    self.wfile.write(chunk)
                    self.server.huge_sent += len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass
        elif path == "/slow":
            time.sleep(3)
            self._send(200, b"late", "text/plain")
        elif path == "/trickle":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            try:
                for _ in range(100):  # one byte every 50 ms: no single read ever times out
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.05)
            except (BrokenPipeError, ConnectionResetError):
                pass
        else:
            self._send(404, b"no route", "text/plain")


class LocalSite(ThreadingHTTPServer):
    """A real HTTP server on 127.0.0.1 with the routes the tests need; records every request it saw."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[tuple[str, str]] = []
        self.huge_sent = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture()
def site() -> Iterator[LocalSite]:
    server = LocalSite()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_html_becomes_readable_text(site: LocalSite) -> None:
    out = make_fetch_url(allow_private=True)(f"{site.base}/page.html")
    assert out.startswith(f"URL: {site.base}/page.html\n\n")
    assert "compact syntax of its own" in out and "model continues its turn" in out
    assert "tracking" not in out and "<p>" not in out


def test_text_and_json_pass_through(site: LocalSite) -> None:
    fetch = make_fetch_url(allow_private=True)
    assert fetch(f"{site.base}/plain").endswith("café au lait")  # charset from the header
    assert fetch(f"{site.base}/data.json").endswith('{"answer": 42}')


def test_binary_content_is_refused(site: LocalSite) -> None:
    fetch = make_fetch_url(allow_private=True)
    with pytest.raises(ToolError, match="application/pdf, not text"):
        fetch(f"{site.base}/report.pdf")
    with pytest.raises(ToolError, match="binary data without a content type"):
        fetch(f"{site.base}/untyped")
    with pytest.raises(ToolError, match="HTTP 404"):
        fetch(f"{site.base}/missing")


def test_huge_body_stops_at_the_cap(site: LocalSite) -> None:
    out = make_fetch_url(allow_private=True, max_bytes=100_000, max_chars=1_000_000)(f"{site.base}/huge")
    assert "larger than 100000 bytes; only the start was read" in out
    assert len(out) < 101_000
    time.sleep(0.2)  # let the server notice the closed connection
    assert site.huge_sent < 10 * 1024 * 1024  # it was stopped far before its 50 MiB


def test_long_text_is_truncated_with_a_marker(site: LocalSite) -> None:
    out = make_fetch_url(allow_private=True, max_bytes=300_000, max_chars=5_000)(f"{site.base}/huge")
    assert out.endswith("[... truncated: showing the first 5000 of 300000 characters]")


def test_redirects_loops_and_limits(site: LocalSite) -> None:
    fetch = make_fetch_url(allow_private=True, max_redirects=3)
    assert fetch(f"{site.base}/chain/2").endswith('{"answer": 42}')  # /chain/N takes N + 1 redirects
    with pytest.raises(ToolError, match="more than 3 times"):
        fetch(f"{site.base}/chain/3")
    with pytest.raises(ToolError, match="redirects in a loop"):
        fetch(f"{site.base}/loop-a")


def test_slow_servers_hit_the_deadline(site: LocalSite) -> None:
    fetch = make_fetch_url(allow_private=True, timeout_s=1)
    with pytest.raises(ToolError, match=r"did not answer within 1 s|longer than 1 s"):
        fetch(f"{site.base}/slow")
    with pytest.raises(ToolError, match="longer than 1 s"):
        fetch(f"{site.base}/trickle")  # each byte arrives in time; the overall deadline still ends it


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.org/x", "gopher://h/", "data:text/plain,hi"])
def test_other_schemes_are_refused(url: str) -> None:
    with pytest.raises(ToolError, match="only http and https"):
        fetch_url(url)


def test_loopback_is_refused_by_default(site: LocalSite) -> None:
    port = site.server_address[1]
    for url in (
        f"{site.base}/page.html",
        f"http://localhost:{port}/",
        f"http://2130706433:{port}/",
        f"http://[::1]:{port}/",
    ):
        with pytest.raises(ToolError, match="non-public address"):
            fetch_url(url)
    assert site.requests == []  # refused before connecting


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("172.16.5.4", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata service
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1%eth0", False),
        ("fd00::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped loopback
        ("ff0e::1", False),  # global-scope multicast
    ],
)
def test_address_policy(address: str, public: bool) -> None:
    assert is_public_address(address) is public


class FakeResolver:
    """Test double for DNS: fixed answers per host name, records what was asked."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host not in self.answers:
            raise OSError(f"[Errno -2] Name or service not known: {host}")
        return self.answers[host]


class LoopbackRouter(httpx.AsyncBaseTransport):
    """Test transport: records where each request was pinned, then delivers it to the local site."""

    def __init__(self, site: LocalSite) -> None:
        self.site = site
        self.pinned: list[tuple[str, str]] = []
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.pinned.append((request.url.host, request.headers["host"]))
        request.url = request.url.copy_with(scheme="http", host="127.0.0.1", port=self.site.server_address[1])
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_every_redirect_hop_is_checked(site: LocalSite) -> None:
    resolver = FakeResolver({"public.test": ["93.184.216.34"], "internal.test": ["10.1.2.3"]})
    router = LoopbackRouter(site)
    fetch = make_fetch_url(resolver=resolver, transport=router)
    assert fetch("http://public.test/data.json").endswith('{"answer": 42}')
    assert router.pinned == [("93.184.216.34", "public.test")]  # connected to the checked address
    for target in ("http://internal.test/admin", f"{site.base}/page.html", "http://169.254.169.254/latest/meta-data"):
        with pytest.raises(ToolError, match="non-public address"):
            fetch(f"http://public.test/redirect?to={target}")
    assert [path for path, _ in site.requests if not path.startswith("/redirect")] == ["/data.json"]


def test_dns_tricks_are_resolved_and_refused(site: LocalSite) -> None:
    resolver = FakeResolver(
        {
            "127.0.0.1.nip.io": ["127.0.0.1"],  # public wildcard DNS that answers with the embedded address
            "rebind.test": ["93.184.216.34", "192.168.0.10"],  # one public and one private answer
        }
    )
    router = LoopbackRouter(site)
    fetch = make_fetch_url(resolver=resolver, transport=router)
    for url in ("http://127.0.0.1.nip.io/", "http://rebind.test/"):
        with pytest.raises(ToolError, match="non-public address"):
            fetch(url)
    with pytest.raises(ToolError, match="cannot resolve"):
        fetch("http://unknown.test/")
    assert router.pinned == [] and site.requests == []


async def test_fetch_runs_as_a_tool_inside_an_event_loop(site: LocalSite) -> None:
    fetch = make_fetch_url(allow_private=True)
    assert (await fetch.acall({"url": f"{site.base}/data.json"})).endswith('{"answer": 42}')
    assert fetch(f"{site.base}/data.json").endswith("42}")  # a direct call works even with a loop running


class PortRouter(httpx.AsyncBaseTransport):
    """Test transport: delivers pinned requests to a loopback port, keeping scheme, Host header and TLS name."""

    def __init__(self, port: int, inner: httpx.AsyncBaseTransport) -> None:
        self.port = port
        self.inner = inner
        self.seen: list[tuple[str, str, object]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.url.host, request.headers["host"], request.extensions.get("sni_hostname")))
        request.url = request.url.copy_with(host="127.0.0.1", port=self.port)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture()
def tls_site(tmp_path: Path) -> Iterator[tuple[int, ssl.SSLContext]]:
    """The same routes over HTTPS with a self-signed certificate for public.test only."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    cmd = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=public.test"
    cmd += " -addext subjectAltName=DNS:public.test"
    subprocess.run([*cmd.split(), "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    server = LocalSite()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    server.socket = server_ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client_ctx = ssl.create_default_context(cafile=str(cert))
    yield server.server_address[1], client_ctx
    server.shutdown()
    server.server_close()


def test_https_is_pinned_to_the_checked_address_and_verified_by_name(tls_site: tuple[int, ssl.SSLContext]) -> None:
    port, ctx = tls_site
    resolver = FakeResolver({"public.test": ["93.184.216.34"], "other.test": ["93.184.216.34"]})
    router = PortRouter(port, httpx.AsyncHTTPTransport(verify=ctx))
    fetch = make_fetch_url(resolver=resolver, transport=router)
    assert fetch("https://public.test/data.json").endswith('{"answer": 42}')
    assert router.seen == [("93.184.216.34", "public.test", "public.test")]
    with pytest.raises(ToolError, match="could not fetch"):
        fetch("https://other.test/data.json")  # the certificate is checked against the name, not the address


def _served(body: bytes, encoding: str) -> httpx.MockTransport:
    """A transport that streams ``body`` as it would come off the wire, with this Content-Encoding."""

    class Wire(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            for i in range(0, len(body), 7):  # small pieces: layers must carry state across chunks
                yield body[i : i + 7]

    def handler(request: httpx.Request) -> httpx.Response:
        headers = {"Content-Type": "text/plain; charset=utf-8", "Content-Encoding": encoding}
        return httpx.Response(200, headers=headers, stream=Wire())

    return httpx.MockTransport(handler)


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda b: zlib.compress(b)[2:-4]),  # raw deflate, as some servers send it
        ("gzip, gzip", lambda b: gzip.compress(gzip.compress(b))),
        ("gzip", lambda b: gzip.compress(b[:10]) + gzip.compress(b[10:])),  # two gzip members
        ("identity", lambda b: b),
    ],
)
def test_compressed_pages_are_decoded(encoding: str, encode: Callable[[bytes], bytes]) -> None:
    text = "Gemma 4 café notes. " * 50

    async def public(host: str, port: int) -> list[str]:
        return ["93.184.216.34"]

    fetch = make_fetch_url(resolver=public, transport=_served(encode(text.encode()), encoding))
    assert fetch("https://example.org/notes") == f"URL: https://example.org/notes\n\n{text}"


_LOCAL_V4 = [
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "100.64.0.0/10",
    "0.0.0.0/8",
]


@given(st.sampled_from(_LOCAL_V4).flatmap(lambda net: st.ip_addresses(network=net)))
def test_every_ipv6_spelling_of_a_local_ipv4_address_is_refused(v4: ipaddress.IPv4Address) -> None:
    n = int(v4)
    spellings = [
        f"::ffff:{v4}",  # IPv4-mapped
        f"::ffff:0:{v4}",  # SIIT
        f"64:ff9b::{v4}",  # NAT64
        f"64:ff9b:1::{v4}",  # local-use NAT64, /96 layout
        f"::{v4}",  # IPv4-compatible
        str(ipaddress.IPv6Address((0x2002 << 112) | (n << 80) | 1)),  # 6to4
        str(ipaddress.IPv6Address((0x20010000 << 96) | (n ^ 0xFFFFFFFF))),  # Teredo client
    ]
    assert [s for s in spellings if is_public_address(s)] == []


@given(st.ip_addresses(v=4))
def test_ipv6_spellings_agree_with_the_ipv4_address_they_carry(v4: ipaddress.IPv4Address) -> None:
    public = is_public_address(str(v4))
    for spelling in (f"::ffff:{v4}", f"::ffff:0:{v4}", f"64:ff9b::{v4}"):
        assert is_public_address(spelling) is public
