"""Web search through ddgs (the maintained successor of duckduckgo-search); no API key needed.

The ddgs client is created per call through ``client_factory`` — the one seam tests replace with a
test double speaking ddgs's interface (``.text(query, region=..., safesearch=..., timelimit=...,
max_results=...)`` returning ``{"title", "href", "body"}`` dicts and raising ddgs's exceptions). Search
engines rate-limit and time out routinely, so every failure becomes a :class:`ToolError` whose message
tells the model what to do next (wait, rephrase) instead of an exception escaping the agent loop.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Literal, Protocol

from agentkit.errors import ToolError, UserError
from agentkit.tools.runtime import Tool, tool

__all__ = ["SearchClient", "make_web_search", "web_search"]

SafeSearch = Literal["on", "moderate", "off"]
TimeLimit = Literal["d", "w", "m", "y"]
_MAX_RESULTS_CAP = 25
_SNIPPET_CHARS = 500


class SearchClient(Protocol):
    """The part of ``ddgs.DDGS`` the tool uses."""

    def text(self, query: str, **kwargs: Any) -> list[dict[str, Any]]: ...


# How ddgs's HTTP layer (primp) words "there is no network" in the DDGSException it raises.
_OFFLINE = re.compile(
    r"DNSError|error resolving|name or service not known|ConnectError|connection refused|network is unreachable", re.I
)


def _default_client(timeout_s: float) -> SearchClient:
    from ddgs import DDGS

    return DDGS(timeout=max(1, round(timeout_s)))


def _translate(exc: Exception, query: str) -> ToolError:
    """Map ddgs and network failures to messages the model can act on (most specific first)."""
    from ddgs.exceptions import DDGSException, RatelimitException, TimeoutException

    if isinstance(exc, RatelimitException):
        return ToolError("the search engine is rate-limiting requests; wait a minute before searching again")
    if isinstance(exc, TimeoutException):
        return ToolError(f"the web search for {query!r} timed out; try again or use a shorter query")
    if isinstance(exc, DDGSException):
        if "no results" in str(exc).lower():
            return ToolError(f"no results for {query!r}; try other or fewer words")
        if _OFFLINE.search(str(exc)):
            # ddgs passes its HTTP layer's error on as text (a DNS failure is a few hundred characters of a
            # Rust debug print); what matters to the model and the person reading is that nothing is reachable.
            return ToolError(
                "the web search cannot reach the search engine (its name does not resolve or the connection "
                "fails: this machine may be offline); answer without searching, or say that search is unavailable"
            )
        return ToolError(f"the web search failed: {exc}")
    return ToolError(f"the web search failed ({type(exc).__name__}: {exc}); check the network connection")


def make_web_search(
    *,
    region: str = "us-en",
    safesearch: SafeSearch = "moderate",
    timelimit: TimeLimit | None = None,
    timeout_s: float = 10.0,
    client_factory: Callable[[], SearchClient] | None = None,
    name: str = "web_search",
) -> Tool:
    """A ``web_search`` tool with fixed options; ``timelimit`` is d/w/m/y (past day, week, month, year)."""
    if safesearch not in ("on", "moderate", "off"):
        raise UserError(f"safesearch must be 'on', 'moderate' or 'off', not {safesearch!r}")
    if timelimit not in (None, "d", "w", "m", "y"):
        raise UserError(f"timelimit must be one of d, w, m, y (or None), not {timelimit!r}")
    factory = client_factory or (lambda: _default_client(timeout_s))

    def web_search(query: str, max_results: int = 5) -> list[dict[str, str]]:
        """Search the web; returns the title, url and a snippet of each result.

        Args:
            query: What to search for, as you would type it into a search engine.
            max_results: How many results to return (1-25).
        """
        if not query.strip():
            raise ToolError("the query is empty; say what to search for")
        count = max(1, min(int(max_results), _MAX_RESULTS_CAP))
        try:
            raw = factory().text(query, region=region, safesearch=safesearch, timelimit=timelimit, max_results=count)
        except Exception as exc:  # ddgs raises its own tree plus whatever its HTTP layer raises
            raise _translate(exc, query) from exc
        results = []
        for item in raw[:count]:
            url = str(item.get("href") or item.get("url") or "")
            if not url:
                continue
            snippet = " ".join(str(item.get("body") or "").split())
            results.append({"title": str(item.get("title") or url), "url": url, "snippet": snippet[:_SNIPPET_CHARS]})
        return results

    # url_source: the result URLs are what a person would click, so fetch_url may follow them unasked.
    return tool(web_search, name=name, timeout_s=timeout_s + 5, url_source=True)


web_search: Tool = make_web_search()
