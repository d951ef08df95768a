"""Fetch a web page for the model: bounded, text-only, and unable to reach the user's own network.

A URL from a model may come from a prompt injection, so by default the tool refuses every address that
is not globally routable (loopback, private, link-local, CGNAT, multicast, reserved, unspecified — and
IPv6 spellings of them: :mod:`agentkit.tools._addresses`). The check runs on the *resolved* addresses of
*every* hop, redirects included, and the connection is then made to the checked address itself (the URL's
host goes in the ``Host`` header and TLS SNI/certificate check), so a name that resolves differently a
second later (DNS rebinding) or a public name pointing at 127.0.0.1 (``127.0.0.1.nip.io``) gets nowhere.

The body is streamed and made readable by :mod:`agentkit.tools._content`: ``Content-Encoding`` undone in
bounded pieces (a gzip bomb costs a few kilobytes), only text, HTML, JSON and XML accepted, HTML turned into
markdown; long text is cut with a marker. The whole fetch has one deadline, so a server trickling bytes
cannot hold the tool forever.

A URL the model composed can carry data out (``?k=<a secret it just read>``), so by default the tool's
``approval_check`` holds any URL that did not come from the user, a search result or an approved fetch for a
person (see :mod:`agentkit.tools.provenance`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from typing import Any
from urllib.parse import urljoin

import httpx

from agentkit.errors import ToolError
from agentkit.tools._addresses import is_ip, is_public_address
from agentkit.tools._content import Decoder, content_kind, decode_text, html_to_text
from agentkit.tools.runtime import CallContext, Tool, tool

__all__ = ["Resolver", "fetch_url", "is_public_address", "make_fetch_url"]

Resolver = Callable[[str, int], Awaitable[list[str]]]
_USER_AGENT = "agentkit-fetch/0.1 (+https://github.com/agentkit)"


async def system_resolver(host: str, port: int) -> list[str]:
    """All addresses the system resolver gives for ``host`` (IP literals come back unchanged)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


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
            addresses = [str(ipaddress.ip_address(url.host))] if is_ip(url.host) else await resolve(url.host, port)
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
        kind = content_kind(content_type) if content_type else "text"
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
        decoder = Decoder(encodings, max_bytes)
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
        text, note = decode_text(bytes(body), response.charset_encoding)
        if kind == "html":
            text = await asyncio.to_thread(html_to_text, text, str(url))
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
