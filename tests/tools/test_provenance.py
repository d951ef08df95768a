"""URL provenance for fetch_url's approval: what is trusted, and that ordinary research never prompts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentkit import Agent, Approval, SessionStore, ToolCallRequest
from agentkit.testing import ScriptedBackend
from agentkit.tools import CallContext, make_fetch_url, make_web_search, tool
from agentkit.tools.provenance import url_key, url_values, urls_in_text

Q = '<|"|>'


def call(name: str, **args: str) -> str:
    body = ",".join(f"{k}:{Q}{v}{Q}" for k, v in args.items())
    return f"<|tool_call>call:{name}{{{body}}}<tool_call|><|tool_response>"


class Web:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(f"https://{request.headers['host']}{request.url.raw_path.decode()}")
        return httpx.Response(200, text="page text", headers={"Content-Type": "text/plain"})


async def public(host: str, port: int) -> list[str]:
    return ["93.184.216.34"]


class Results:
    def text(self, query: str, **kwargs: Any) -> list[dict[str, str]]:
        return [{"title": "A", "href": "https://docs.example.org/guide?page=2#intro", "body": "snippet"}]


def never_ask(request: ToolCallRequest) -> Approval:
    raise AssertionError(f"asked about {request.name}({request.arguments})")


def agent_for(script: list[str], web: Web, **kwargs: Any) -> Agent:
    fetch = make_fetch_url(resolver=public, transport=httpx.MockTransport(web))
    search = make_web_search(client_factory=Results)
    return Agent(ScriptedBackend(script), tools=[search, fetch], **kwargs)


def test_url_keys_ignore_scheme_fragment_and_host_case() -> None:
    assert url_key("https://Docs.Example.org/guide?page=2#intro") == url_key("http://docs.example.org/guide?page=2")
    assert url_key("example.org") == url_key("https://example.org/")
    assert url_key("https://example.org/a") != url_key("https://example.org/a?x=1")
    assert url_key("https://example.org/docs/") == url_key("https://example.org/docs")
    assert url_key("https://example.org/docs//") != url_key("https://example.org/docs")
    assert url_key("ftp://example.org/") is None and url_key("") is None


def test_urls_are_found_in_prose_but_only_whole_values_count_in_results() -> None:
    text = "Compare (https://a.example/x?y=1), example.org/page and [docs](https://b.example/)."
    assert {url_key("https://a.example/x?y=1"), url_key("example.org/page"), url_key("https://b.example/")} <= (
        urls_in_text(text)
    )
    assert url_values({"snippet": "see https://evil.example/x", "url": "https://ok.example/"}) == {
        url_key("https://ok.example/")
    }


@given(st.text(max_size=300))
def test_scanning_any_text_never_fails(text: str) -> None:
    for key in urls_in_text(text):
        assert isinstance(key, str)


def test_search_then_fetch_never_prompts_and_works_without_anyone_to_ask() -> None:
    for ask in (never_ask, None):
        web = Web()
        script = [
            call("web_search", query="guide"),
            call("fetch_url", url="https://docs.example.org/guide?page=2"),
            "done<turn|>",
        ]
        result = agent_for(script, web, ask=ask).run("find the guide")
        assert [r.error for r in result.tool_calls] == [None, None]
        assert web.seen == ["https://docs.example.org/guide?page=2"]


def test_urls_the_user_wrote_are_fetched_without_a_prompt() -> None:
    web = Web()
    script = [call("fetch_url", url="https://example.org/pricing"), "done<turn|>"]
    result = agent_for(script, web, ask=never_ask).run("What does example.org/pricing say?")
    assert result.tool_calls[0].error is None and web.seen == ["https://example.org/pricing"]


def test_an_approved_url_is_trusted_afterwards_also_in_a_reloaded_session(tmp_path: Path) -> None:
    web = Web()
    asked: list[ToolCallRequest] = []

    def approve(request: ToolCallRequest) -> Approval:
        asked.append(request)
        return Approval.ALLOW

    store = SessionStore(tmp_path)
    url = "https://other.example/report"
    agent = agent_for([call("fetch_url", url=url), "ok<turn|>"], web, ask=approve, store=store)
    agent.run("look around")
    assert len(asked) == 1 and "did not come from" in asked[0].reason
    again = agent_for(
        [call("fetch_url", url=url), "ok<turn|>"], web, ask=never_ask, store=store, session_id=agent.session_id
    )
    assert again.run("and once more").tool_calls[0].error is None
    assert web.seen == [url, url]


def test_the_check_can_be_switched_off() -> None:
    web = Web()
    fetch = make_fetch_url(resolver=public, transport=httpx.MockTransport(web), ask_for_unknown_urls=False)
    agent = Agent(ScriptedBackend([call("fetch_url", url="https://any.example/x"), "ok<turn|>"]), tools=[fetch])
    assert agent.run("go").tool_calls[0].error is None


def test_any_tool_can_decide_per_call_with_an_approval_check() -> None:
    def big_transfers(arguments: Any, context: CallContext) -> str | None:
        return "more than 100 units" if arguments["amount"] > 100 else None

    @tool(approval_check=big_transfers)
    def transfer(amount: int) -> str:
        """Move money."""
        return f"moved {amount}"

    def run(amount: int) -> Any:
        raw = f"<|tool_call>call:transfer{{amount:{amount}}}<tool_call|><|tool_response>"
        return Agent(ScriptedBackend([raw, "ok<turn|>"]), tools=[transfer]).run("pay").tool_calls[0]

    assert run(5).result == "moved 5"
    error = run(500).error
    assert error is not None and "needs a person's approval (more than 100 units)" in error


@pytest.mark.parametrize("bad", ["yes", 3])
def test_approval_check_must_be_a_function(bad: Any) -> None:
    from agentkit.errors import UserError

    with pytest.raises(UserError, match="approval_check must be a function"):
        tool(lambda: None, approval_check=bad)


def test_the_terminal_question_says_why_a_fetch_is_held() -> None:
    import io

    from rich.console import Console

    from agentkit.cli.run import call_for_approval

    reason = "this URL did not come from the user, a search result or a fetch the user approved"
    shown, lines = call_for_approval(
        ToolCallRequest("c1", "fetch_url", {"url": "https://x.example/"}, True, "", reason)
    )
    console = Console(file=io.StringIO(), width=200)
    console.print(shown)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert f"why: {reason}" in text and lines == 2
