"""Fetch a web page for the model: bounded, text-only, and unable to reach the user's own network.

A URL from a model may come from a prompt injection, so by default the tool refuses every address that
is not globally routable (loopback, private, link-local, CGNAT, multicast, reserved, unspecified — and
IPv4-mapped forms of them). The check runs on the *resolved* addresses of *every* hop, redirects
included, and the connection is then made to the checked address itself (the URL's host goes in the
``Host`` header and TLS SNI/certificate check), so a name that resolves differently a second later
(DNS rebinding) or a public name pointing at 127.0.0.1 (``127.0.0.1.nip.io``) gets nowhere.

The body is streamed and ``Content-Encoding`` is undone here, in bounded pieces, rather than by httpx (which
inflates each chunk, and each chained layer, in full): reading stops when either the bytes received or the
bytes they decode to reach ``max_bytes``, so a gzip bomb costs a few kilobytes. Only text, HTML, JSON and XML
are accepted; HTML becomes markdown (trafilatura, falling back to markdownify, then to plain text for pages
nested too deeply for either) and long text is cut with a marker. The whole fetch has one deadline, so a
server trickling bytes cannot hold the tool forever.

A URL the model composed can carry data out (``?k=<a secret it just read>``), so by default the tool's
``approval_check`` holds any URL that did not come from the user, a search result or an approved fetch for a
person (see :mod:`agentkit.tools.provenance`).
"""

from __future__ import annotations

import asyncio
import codecs
import concurrent.futures
import ipaddress
import socket
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Mapping
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin

import httpx

from agentkit.errors import ToolError
from agentkit.tools.runtime import CallContext, Tool, tool

__all__ = ["Resolver", "fetch_url", "make_fetch_url"]

Resolver = Callable[[str, int], Awaitable[list[str]]]
_TEXT_TYPES = ("application/json", "application/xml", "application/xhtml+xml", "application/javascript")
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_USER_AGENT = "agentkit-fetch/0.1 (+https://github.com/agentkit)"
_ZLIB_WBITS = {"gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS}
_MAX_ENCODINGS = 2
_PIECE = 64 * 1024
_MAX_CONVERT_TAGS = 50_000  # a bound on work, not a verdict on the page: above it the page is read as plain text
_MAX_MARKDOWNIFY_TAGS = 20_000


async def system_resolver(host: str, port: int) -> list[str]:
    """All addresses the system resolver gives for ``host`` (IP literals come back unchanged)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


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


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _content_kind(content_type: str) -> str | None:
    """'html', 'text' or None (refused) for a Content-Type header value."""
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime in _HTML_TYPES:
        return "html"
    if mime.startswith("text/") or mime in _TEXT_TYPES or mime.endswith(("+json", "+xml")):
        return "text"
    return None


class _Inflater:
    """One ``Content-Encoding`` layer undone in pieces of at most ``_PIECE`` bytes, ``budget`` bytes in all.

    Undoing a layer produces nothing until the next layer (or the reader) asks for more, so a small body that
    inflates to gigabytes is read only as far as the limit. ``exhausted`` says the budget stopped it.
    """

    def __init__(self, encoding: str, budget: int) -> None:
        self.encoding = encoding
        self.budget = budget
        self.exhausted = False
        self._zlib = zlib.decompressobj(_ZLIB_WBITS[encoding])
        self._first = True

    def inflate(self, pieces: Iterator[bytes]) -> Iterator[bytes]:
        for data in pieces:
            while not self.exhausted:
                room = min(_PIECE, self.budget + 1)
                try:
                    out = self._zlib.decompress(data, room)
                except zlib.error as exc:
                    if self._first and self.encoding == "deflate":  # servers send raw deflate as often as zlib
                        self._zlib, self._first = zlib.decompressobj(-zlib.MAX_WBITS), False
                        continue
                    raise ToolError(f"the page's {self.encoding} compression is corrupt ({exc})") from exc
                self._first = False
                data = self._zlib.unconsumed_tail
                if self._zlib.eof:
                    rest = self._zlib.unused_data
                    if self.encoding == "gzip" and rest.startswith(b"\x1f\x8b"):
                        # A further gzip member: concatenated gzip is one valid body.
                        self._zlib, data = zlib.decompressobj(_ZLIB_WBITS["gzip"]), rest
                    else:
                        data = b""  # trailing bytes after the stream: ignored, as browsers and httpx do
                self.budget -= len(out)
                if self.budget < 0:
                    self.exhausted = True
                    out = out[: len(out) + self.budget]
                if out:
                    yield out
                if not data and len(out) < room:
                    break  # all input used and no output held back: wait for the next piece


class _Decoder:
    """Every ``Content-Encoding`` layer of a response undone while streaming, never past ``limit`` bytes each."""

    def __init__(self, header_values: list[str], limit: int) -> None:
        encodings = [e.strip().lower() for e in header_values if e.strip()]
        encodings = ["gzip" if e == "x-gzip" else e for e in encodings if e != "identity"]
        unknown = [e for e in encodings if e not in _ZLIB_WBITS]
        if unknown:
            raise ToolError(
                f"the server compressed the page with {unknown[0]!r}, which fetch_url does not decode "
                "(it accepts gzip and deflate); try another source"
            )
        if len(encodings) > _MAX_ENCODINGS:
            raise ToolError(f"the page is compressed {len(encodings)} times over; fetch_url undoes at most two layers")
        self.layers = [_Inflater(e, limit) for e in reversed(encodings)]  # the last one applied comes off first

    @property
    def exhausted(self) -> bool:
        return any(layer.exhausted for layer in self.layers)

    def feed(self, raw: bytes) -> Iterator[bytes]:
        pieces: Iterator[bytes] = iter((raw,))
        for layer in self.layers:
            pieces = layer.inflate(pieces)
        return pieces


def _decode_text(body: bytes, charset: str | None) -> tuple[str, str]:
    """The body as text, and a note for the model when the server's charset could not be used.

    The server names the codec, so it may name none (``x-nonsense``), a non-text codec (``zlib``, ``base64``),
    or one that fails even with ``errors="replace"`` (``idna``, ``undefined``): each is read as UTF-8 instead.
    """
    if charset:
        try:
            if codecs.lookup(charset)._is_text_encoding:
                return body.decode(charset, errors="replace"), ""
        except (LookupError, ValueError, UnicodeError):
            pass
        shown = charset if len(charset) <= 40 else charset[:40] + "..."
        note = f"[note: the server's character set {shown!r} is not a usable text encoding; read as UTF-8]\n\n"
        return body.decode("utf-8", errors="replace"), note
    return body.decode("utf-8", errors="replace"), ""


class _PlainText(HTMLParser):
    """The text of an HTML document without scripts and styles; iterative, so any nesting depth works."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "noscript"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "noscript") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self.parts.append(" ".join(data.split()))


def _plain_text(html: str, why: str) -> str:
    parser = _PlainText()
    parser.feed(html)
    parser.close()
    return f"[note: {why}; showing its plain text]\n\n" + "\n".join(parser.parts)


def _html_to_text(html: str, url: str) -> str:
    # trafilatura and markdownify cost time per element (markdownify also recursion per nesting level): a hostile
    # 2 MB page of 600,000 tags kept them busy for most of a minute, one nested 100,000 deep raised
    # RecursionError. Pages with that many tags get the linear plain-text pass instead.
    tags = html.count("<")
    if tags > _MAX_CONVERT_TAGS:
        return _plain_text(html, f"the page has {tags} tags, too many to convert to markdown")
    try:
        import trafilatura

        text = trafilatura.extract(html, url=url, output_format="markdown", include_links=True, include_tables=True)
    except Exception:  # trafilatura fails on some malformed pages; markdownify is the fallback
        text = None
    if text and text.strip():
        return text
    if tags > _MAX_MARKDOWNIFY_TAGS:
        return _plain_text(html, f"the page has {tags} tags, too many to convert to markdown")
    from markdownify import markdownify

    try:
        return str(markdownify(html, strip=["script", "style", "noscript"], heading_style="ATX")).strip()
    except RecursionError:
        return _plain_text(html, "the page's HTML is nested too deeply to convert to markdown")


def make_fetch_url(
    *,
    allow_private: bool = False,
    max_bytes: int = 2_000_000,
    max_chars: int = 20_000,
    timeout_s: float = 20.0,
    max_redirects: int = 5,
    resolver: Resolver | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    name: str = "fetch_url",
    ask_for_unknown_urls: bool = True,
) -> Tool:
    """A ``fetch_url`` tool with its own limits; ``allow_private=True`` lets it reach local addresses.

    ``ask_for_unknown_urls`` (the default) holds a fetch for a person's approval when its URL did not come from
    the user, a search result or an earlier approved fetch: a URL the model composed can carry workspace data
    out in its path or query (see :mod:`agentkit.tools.provenance`). ``False`` fetches any URL unasked.

    ``resolver`` and ``transport`` are the DNS and network seams (tests pass doubles; defaults are the
    system resolver and httpx's own transport).
    """
    resolve = resolver or system_resolver

    async def check_hop(url: httpx.URL) -> list[str]:
        if url.scheme not in ("http", "https"):
            raise ToolError(f"{url} uses the {url.scheme or 'no'} scheme; only http and https URLs can be fetched")
        if not url.host:
            raise ToolError(f"{url} has no host name")
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            addresses = [str(ipaddress.ip_address(url.host))] if _is_ip(url.host) else await resolve(url.host, port)
        except (OSError, UnicodeError) as exc:
            raise ToolError(f"cannot resolve the host {url.host!r}: {exc}") from exc
        if not addresses:
            raise ToolError(f"the host {url.host!r} has no addresses")
        if not allow_private:
            blocked = [a for a in addresses if not is_public_address(a)]
            if blocked:
                raise ToolError(
                    f"refusing to fetch {url}: {url.host} resolves to {blocked[0]}, a loopback, private or otherwise "
                    "non-public address (local services are off limits to this tool)"
                )
        return addresses

    async def send_pinned(client: httpx.AsyncClient, url: httpx.URL, addresses: list[str]) -> httpx.Response:
        """Connect to a checked address, keeping the name for the Host header and TLS."""
        last: Exception | None = None
        for address in addresses:
            request = client.build_request(
                "GET",
                url.copy_with(host=address),
                headers={"Host": url.netloc.decode("ascii")},
                extensions={"sni_hostname": url.host} if url.scheme == "https" else {},
            )
            try:
                return await client.send(request, stream=True)
            except httpx.ConnectError as exc:
                last = exc
        assert last is not None
        raise last

    async def fetch(url: str) -> str:
        current = httpx.URL(url.strip())
        seen = {str(current)}
        headers = {
            "User-Agent": _USER_AGENT,
            "Accept-Encoding": "gzip, deflate",
            "Accept": "text/html, text/*, */*;q=0.5",
        }
        async with httpx.AsyncClient(
            transport=transport, follow_redirects=False, trust_env=False, headers=headers, timeout=timeout_s
        ) as client:
            for hop in range(max_redirects + 1):
                addresses = await check_hop(current)
                response = await send_pinned(client, current, addresses)
                try:
                    if response.is_redirect and "location" in response.headers:
                        target = httpx.URL(urljoin(str(current), response.headers["location"]))
                        if str(target) in seen:
                            raise ToolError(f"{url} redirects in a loop (back to {target}); the page cannot be fetched")
                        if hop == max_redirects:
                            break
                        seen.add(str(target))
                        current = target
                        continue
                    return await read_body(response, current)
                finally:
                    await response.aclose()
        raise ToolError(f"{url} redirected more than {max_redirects} times; giving up")

    async def read_body(response: httpx.Response, url: httpx.URL) -> str:
        if response.status_code >= 400:
            raise ToolError(f"{url} answered HTTP {response.status_code} {response.reason_phrase}")
        content_type = response.headers.get("content-type", "")
        kind = _content_kind(content_type) if content_type else "text"
        if kind is None:
            raise ToolError(
                f"{url} is {content_type.split(';')[0]}, not text; fetch_url reads HTML, text, JSON and XML only"
            )
        # Raw bytes through our own decoder: httpx would inflate every Content-Encoding layer in full before
        # any limit applies (1.8 kB of chained gzip is 2 GB in memory). Both what arrives and what it
        # decodes to stop at max_bytes.
        encodings = response.headers.get_list("content-encoding", split_commas=True)
        if response.is_stream_consumed:  # a transport that hands over bodies already read and decoded (doubles)
            encodings = []
        decoder = _Decoder(encodings, max_bytes)
        body = bytearray()
        received = 0
        cut = False
        async for raw in _raw_body(response):
            received += len(raw)
            for piece in decoder.feed(raw):
                body += piece
                if len(body) >= max_bytes:
                    break
            if len(body) >= max_bytes or decoder.exhausted or received >= max_bytes:
                del body[max_bytes:]
                cut = True
                break
        if not content_type and b"\x00" in body[:8192]:
            raise ToolError(f"{url} sent binary data without a content type; fetch_url reads text only")
        text, note = _decode_text(bytes(body), response.charset_encoding)
        if kind == "html":
            text = await asyncio.to_thread(_html_to_text, text, str(url))
        total = len(text)
        if total > max_chars:
            text = text[:max_chars] + f"\n\n[... truncated: showing the first {max_chars} of {total} characters]"
        elif cut:
            text += f"\n\n[... truncated: the page is larger than {max_bytes} bytes; only the start was read]"
        return f"URL: {url}\n\n{note}{text}"

    async def afetch(url: str) -> str:
        try:
            async with asyncio.timeout(timeout_s):
                return await fetch(url)
        except TimeoutError as exc:
            raise ToolError(f"fetching {url} took longer than {timeout_s:g} s; try another source") from exc
        except httpx.InvalidURL as exc:
            raise ToolError(f"{url!r} is not a valid URL: {exc}") from exc
        except httpx.TimeoutException as exc:
            raise ToolError(f"{url} did not answer within {timeout_s:g} s") from exc
        except httpx.HTTPError as exc:
            raise ToolError(f"could not fetch {url}: {type(exc).__name__}: {exc}") from exc

    def fetch_url(url: str) -> str:
        """Fetch a web page (http or https) and return its readable text as markdown.

        Args:
            url: The full address, starting with http:// or https://.
        """
        # Sync so that direct calls work; the agent loop runs sync tools in a worker thread.
        return _run_coroutine(afetch(url))

    check = _url_origin_check if ask_for_unknown_urls else None
    return tool(fetch_url, name=name, timeout_s=timeout_s + 5, approval_check=check)


def _url_origin_check(arguments: Mapping[str, Any], context: CallContext) -> str | None:
    if context.is_trusted_url(str(arguments.get("url", ""))):
        return None
    return (
        "this URL did not come from the user, a search result or a fetch the user approved; a URL the model "
        "put together can carry data out in its address"
    )


async def _raw_body(response: httpx.Response) -> AsyncIterator[bytes]:
    """The body as it came over the wire, still compressed; a body some transport already read, as it is."""
    if response.is_stream_consumed:
        yield response.content
        return
    async for raw in response.aiter_raw():
        yield raw


def _run_coroutine(coro: Coroutine[Any, Any, str]) -> str:
    """asyncio.run, or the same in a helper thread when the caller already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


fetch_url: Tool = make_fetch_url()
