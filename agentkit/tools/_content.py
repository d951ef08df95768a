"""A fetched body made readable: its type checked, its ``Content-Encoding`` undone in bounded pieces, HTML to text.

``Content-Encoding`` is undone here, in pieces, rather than by httpx (which inflates each chunk, and each chained
layer, in full): reading stops when either the bytes received or the bytes they decode to reach the limit, so a
gzip bomb costs a few kilobytes. Only text, HTML, JSON and XML are accepted; HTML becomes markdown (trafilatura,
falling back to markdownify, then to plain text for pages too large or nested too deeply for either).
"""

from __future__ import annotations

import codecs
import zlib
from collections.abc import Iterator
from html.parser import HTMLParser

from agentkit.errors import ToolError

__all__ = ["Decoder", "content_kind", "decode_text", "html_to_text"]

_TEXT_TYPES = ("application/json", "application/xml", "application/xhtml+xml", "application/javascript")
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_ZLIB_WBITS = {"gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS}
_MAX_ENCODINGS = 2
_PIECE = 64 * 1024
_MAX_CONVERT_TAGS = 50_000  # a bound on work, not a verdict on the page: above it the page is read as plain text
_MAX_MARKDOWNIFY_TAGS = 20_000


def content_kind(content_type: str) -> str | None:
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


class Decoder:
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


def decode_text(body: bytes, charset: str | None) -> tuple[str, str]:
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


def html_to_text(html: str, url: str) -> str:
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
