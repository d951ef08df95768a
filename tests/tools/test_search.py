"""web_search with the ddgs client replaced at its boundary by FakeDDGS (no network)."""

from __future__ import annotations

from typing import Any

import pytest
from ddgs.exceptions import DDGSException, RatelimitException, TimeoutException

from agentkit.errors import ToolError, UserError
from agentkit.tools import make_web_search, web_search


class FakeDDGS:
    """Test double for ``ddgs.DDGS``: same ``.text`` signature, ddgs-shaped result dicts, ddgs's exceptions."""

    def __init__(self, results: list[dict[str, Any]] | None = None, error: Exception | None = None) -> None:
        self.results = results if results is not None else []
        self.error = error
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def text(self, query: str, **kwargs: Any) -> list[dict[str, Any]]:
        self.calls.append((query, kwargs))
        if self.error is not None:
            raise self.error
        limit = kwargs.get("max_results") or len(self.results)
        return self.results[:limit]


RESULTS = [
    {"title": "Gemma 4", "href": "https://ai.google.dev/gemma", "body": "Open   models\nfrom Google."},
    {"title": "", "href": "https://example.org/b", "body": "x" * 900},
    {"title": "no url", "href": "", "body": "dropped"},
    {"title": "Third", "href": "https://example.org/c", "body": "c"},
]


def test_results_are_normalised_and_options_passed() -> None:
    fake = FakeDDGS(RESULTS)
    search = make_web_search(region="de-de", safesearch="off", timelimit="w", client_factory=lambda: fake)
    out = search("gemma 4 function calling", max_results=3)
    assert out[0] == {"title": "Gemma 4", "url": "https://ai.google.dev/gemma", "snippet": "Open models from Google."}
    assert out[1]["title"] == "https://example.org/b" and len(out[1]["snippet"]) == 500
    assert [r["url"] for r in out] == ["https://ai.google.dev/gemma", "https://example.org/b"]
    query, kwargs = fake.calls[0]
    assert query == "gemma 4 function calling"
    assert kwargs == {"region": "de-de", "safesearch": "off", "timelimit": "w", "max_results": 3}


def test_max_results_is_clamped() -> None:
    fake = FakeDDGS(RESULTS)
    make_web_search(client_factory=lambda: fake)("q", max_results=500)
    assert fake.calls[0][1]["max_results"] == 25


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (RatelimitException("202 Ratelimit"), "rate-limiting"),
        (TimeoutException("timed out"), "timed out"),
        (DDGSException("No results found."), "no results"),
        (DDGSException("engine exploded"), "engine exploded"),
        (ConnectionError("network down"), "check the network"),
        # What ddgs 9 raises on a machine with no DNS (the message of a real offline run, shortened).
        (
            DDGSException(
                "DNSError: DNSError('error sending request for url (https://html.duckduckgo.com/html/) > error "
                'resolving DNS > DNS error: no records found for Query { name: Name("html.duckduckgo.com.") }\')'
            ),
            "cannot reach the search engine .* may be offline",
        ),
    ],
)
def test_failures_become_tool_errors(error: Exception, message: str) -> None:
    search = make_web_search(client_factory=lambda: FakeDDGS(error=error))
    with pytest.raises(ToolError, match=message) as info:
        search("anything")
    assert info.value.__cause__ is error


async def test_tool_errors_reach_the_loop_as_tool_errors() -> None:
    search = make_web_search(client_factory=lambda: FakeDDGS(error=RatelimitException("429")))
    with pytest.raises(ToolError, match="wait a minute"):
        await search.acall({"query": "x"})
    with pytest.raises(ToolError, match="query is empty"):
        await search.acall({"query": "   "})


def test_default_instance_and_bad_options() -> None:
    assert web_search.name == "web_search" and not web_search.side_effects
    assert web_search.parameters["required"] == ["query"]
    with pytest.raises(UserError):
        make_web_search(safesearch="strict")  # type: ignore[arg-type]
    with pytest.raises(UserError):
        make_web_search(timelimit="decade")  # type: ignore[arg-type]
