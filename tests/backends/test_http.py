"""The HTTP plumbing every server engine shares: the error table, the retry policy, the per-loop client."""

from __future__ import annotations

import asyncio
import re
import warnings

import httpx
import pytest

from agentkit.backends._http import (
    TRANSPORT_ERRORS,
    ErrorReply,
    HTTPBackend,
    LoopClient,
    RetryPolicy,
    ServerErrors,
    is_transient,
    server_url,
)
from agentkit.backends.ollama import OllamaBackend
from agentkit.backends.vllm import VLLMBackend
from agentkit.errors import (
    BackendError,
    BackendResponseError,
    BackendUnavailable,
    ContextTooLong,
    ModelNotFound,
    StreamInterrupted,
    UserError,
)

ERRORS = ServerErrors(
    engine="Engine",
    backend="engine",
    url="http://box:1",
    model="m",
    timeout=7.0,
    owner="EngineBackend",
    start="start it with `engine serve`",
    missing_model=re.compile("no such model"),
    missing_model_hint="Pull it.",
    context=re.compile("too many tokens"),
    context_hint="raise the window",
    auth_hint="Give the key.",
    address_hint="is this an Engine server?",
    hints=[(re.compile("unsupported"), "use a Gemma 4 model")],
)


def translated(exc: BaseException, streamed: int = 0) -> BackendError:
    try:
        with ERRORS.mapped(lambda: streamed, served=["a", "b"]):
            raise exc
    except BackendError as error:
        assert error.__cause__ is exc  # the original stays the cause, as in httpx's own mapping
        return error
    raise AssertionError("mapped() let the exception through")


def test_every_httpx_transport_error_has_a_row() -> None:
    kinds = [v for v in vars(httpx).values() if isinstance(v, type) and issubclass(v, httpx.TransportError)]
    assert len(kinds) > 10
    for kind in kinds:
        error = translated(kind("boom"))
        assert isinstance(error, BackendUnavailable), kind
        assert "Engine at http://box:1" in str(error)


@pytest.mark.parametrize(
    ("exc", "cls", "says", "retry"),
    [
        (
            httpx.ConnectError("refused"),
            BackendUnavailable,
            "Cannot reach Engine at http://box:1 (ConnectError: refused)",
            True,
        ),
        (httpx.ConnectTimeout("slow dns"), BackendUnavailable, "Cannot reach Engine", True),  # not "did not answer"
        (ConnectionRefusedError(111, "refused"), BackendUnavailable, "start it with `engine serve`", True),
        (httpx.RemoteProtocolError("closed"), BackendUnavailable, "closed the connection before answering", True),
        (httpx.ReadError("reset"), BackendUnavailable, "closed the connection before answering", True),
        (ConnectionResetError(104, "reset"), BackendUnavailable, "closed the connection before answering", True),
        (httpx.ReadTimeout("quiet"), BackendUnavailable, "did not answer within 7 s", False),
        (httpx.PoolTimeout("busy"), BackendUnavailable, "give EngineBackend a larger timeout=", False),
        (httpx.UnsupportedProtocol("ftp"), BackendUnavailable, "Cannot reach Engine", False),
    ],
)
def test_transport_errors_before_output(exc: BaseException, cls: type, says: str, retry: bool) -> None:
    error = translated(exc)
    assert type(error) is cls and says in str(error)
    assert is_transient(error) is retry


@pytest.mark.parametrize(
    ("exc", "says"),
    [
        (httpx.ReadTimeout("quiet"), "stopped sending output for 7 s after 12 streamed characters"),
        (httpx.RemoteProtocolError("peer closed"), "stopped streaming after 12 characters: the connection broke off"),
        (httpx.ReadError("reset"), "broke off mid-response (ReadError: reset)"),
    ],
)
def test_transport_errors_after_output_interrupt_the_stream_and_are_never_retried(
    exc: BaseException, says: str
) -> None:
    error = translated(exc, streamed=12)
    assert type(error) is StreamInterrupted and says in str(error)
    assert not is_transient(error)


@pytest.mark.parametrize(
    ("status", "body", "cls", "says", "retry"),
    [
        (
            404,
            '{"error": "no such model m"}',
            ModelNotFound,
            "does not serve model 'm'; it serves: 'a', 'b'. Pull it.",
            False,
        ),
        (
            404,
            "404 page not found",
            BackendResponseError,
            "HTTP 404: 404 page not found — is this an Engine server?",
            False,
        ),
        (405, "", BackendResponseError, "(empty response body) — is this an Engine server?", False),
        (
            400,
            '{"error": {"message": "too many tokens"}}',
            ContextTooLong,
            "(too many tokens). Start a new session",
            False,
        ),
        (500, '{"error": "too many tokens in the runner"}', ContextTooLong, "raise the window", False),
        (
            401,
            '{"detail": "Unauthorized"}',
            BackendResponseError,
            "refused the request (401: Unauthorized). Give the key.",
            False,
        ),
        (403, "forbidden", BackendResponseError, "refused the request (403: forbidden)", False),
        (
            400,
            '{"error": "thinking unsupported"}',
            BackendResponseError,
            "HTTP 400: thinking unsupported — use a Gemma 4",
            False,
        ),
        (422, '{"message": "bad"}', BackendResponseError, "answered with HTTP 422: bad", False),
        (500, '{"error": "runner died"}', BackendResponseError, "answered with HTTP 500: runner died", True),
        (503, "busy", BackendResponseError, "HTTP 503: busy", True),
        (None, '{"error": "runner died"}', BackendResponseError, "answered with an error: runner died", False),
    ],
)
def test_error_answers(status: int | None, body: str, cls: type, says: str, retry: bool) -> None:
    error = translated(ErrorReply(status, body))
    assert type(error) is cls and says in str(error), str(error)
    assert error.status == status and error.backend == "engine"
    assert is_transient(error) is retry


def test_an_error_answer_after_output_interrupts_the_stream() -> None:
    error = translated(ErrorReply(500, '{"error": "runner died"}'), streamed=3)
    assert type(error) is StreamInterrupted and "failed after 3 streamed characters: runner died" in str(error)
    assert not is_transient(error)


def test_agentkit_errors_pass_unchanged_and_unknown_failures_say_so() -> None:
    original = ContextTooLong("already translated")
    with pytest.raises(ContextTooLong) as info, ERRORS.mapped():
        raise original
    assert info.value is original and info.value.__cause__ is None
    error = translated(ValueError("bad field"))
    assert type(error) is BackendResponseError and "sent something agentkit cannot read (ValueError: bad field)" in str(
        error
    )


def test_the_table_names_each_row_once() -> None:
    assert all(issubclass(k, BaseException) for k in TRANSPORT_ERRORS)


# -- the retry policy -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options", [{"retries": -1}, {"retries": True}, {"retries": 1.5}, {"retry_wait": -0.1}, {"retry_wait": "1"}]
)
def test_retry_policy_refuses_nonsense(options: dict[str, object]) -> None:
    with pytest.raises(UserError, match=r"retries|retry_wait"):
        RetryPolicy(**options)  # type: ignore[arg-type]


async def test_retries_only_what_is_transient_and_only_as_often_as_allowed() -> None:
    policy = RetryPolicy(retries=2, retry_wait=0)
    calls: list[BackendError] = []

    def failing(error: BackendError) -> object:
        async def attempt() -> str:
            calls.append(error)
            raise error

        return attempt

    refused = translated(httpx.ConnectError("refused"))
    with pytest.raises(BackendUnavailable):
        await policy.call(failing(refused))  # type: ignore[arg-type]
    assert len(calls) == 3
    calls.clear()
    with pytest.raises(BackendResponseError):
        await policy.call(failing(translated(ErrorReply(400, "bad"))))  # type: ignore[arg-type]
    assert len(calls) == 1

    outcomes: list[BaseException | str] = [refused, "ok"]

    async def flaky() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    assert await policy.call(flaky) == "ok" and outcomes == []


def test_both_engines_take_the_one_knob_and_ollamas_old_name_warns() -> None:
    assert OllamaBackend("m", retries=5, retry_wait=0.25)._retry == RetryPolicy(5, 0.25)
    assert VLLMBackend("m", tokenizer=False, retries=5, retry_wait=0.25)._retry == RetryPolicy(5, 0.25)
    with pytest.warns(DeprecationWarning, match=r"OllamaBackend\(backoff_s=...\) is deprecated; pass retry_wait="):
        old = OllamaBackend("m", backoff_s=0.125)
    assert old._retry.retry_wait == 0.125
    with pytest.raises(UserError, match="got both backoff_s= and retry_wait="), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        OllamaBackend("m", backoff_s=0.1, retry_wait=0.2)
    assert isinstance(OllamaBackend("m"), HTTPBackend) and isinstance(VLLMBackend("m", tokenizer=False), HTTPBackend)


# -- the client -----------------------------------------------------------------------------------------------


def test_one_client_per_event_loop_kept_while_the_loop_lives_and_aclose_closes_it() -> None:
    holder = LoopClient("http://box:1", timeout=5)

    async def twice() -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
        return holder.client(), holder.client()

    agents_loop = asyncio.new_event_loop()  # an agent's own loop, alive across its runs
    try:
        first, again = agents_loop.run_until_complete(twice())
        assert first is again
        elsewhere, _ = asyncio.run(twice())  # another loop: the agent's pool cannot serve it
        assert elsewhere is not first
        back, _ = agents_loop.run_until_complete(twice())
        assert back is first and not first.is_closed  # switching back finds the pool still warm

        async def close_then_reopen() -> httpx.AsyncClient:
            await holder.aclose()
            assert first.is_closed
            return holder.client()

        reopened = agents_loop.run_until_complete(close_then_reopen())
        assert reopened is not first and not reopened.is_closed
        agents_loop.run_until_complete(holder.aclose())
        assert reopened.is_closed and len(holder._per_loop) == 0  # the closed asyncio.run loop is forgotten too
    finally:
        agents_loop.close()


async def test_the_concurrency_limit_holds_requests_back() -> None:
    holder = LoopClient("http://box:1", timeout=5, max_concurrency=1)
    inside = asyncio.Event()
    release = asyncio.Event()
    order: list[str] = []

    async def first() -> None:
        async with holder.slot():
            order.append("first in")
            inside.set()
            await release.wait()
            order.append("first out")

    async def second() -> None:
        await inside.wait()
        async with holder.slot():
            order.append("second in")

    tasks = [asyncio.create_task(first()), asyncio.create_task(second())]
    await inside.wait()
    for _ in range(5):
        await asyncio.sleep(0)
    assert order == ["first in"]
    release.set()
    await asyncio.gather(*tasks)
    assert order == ["first in", "first out", "second in"]
    await holder.aclose()
    with pytest.raises(UserError, match="max_concurrency must be at least 1"):
        LoopClient("http://box:1", timeout=5, max_concurrency=0)


@pytest.mark.parametrize(
    ("given", "suffix", "expected"),
    [
        ("localhost:11434", "", "http://localhost:11434"),
        ("http://box:8000/", "/v1", "http://box:8000"),
        ("https://box/v1/", "/v1", "https://box"),
        (" http://box:1 ", "", "http://box:1"),
    ],
)
def test_server_url(given: str, suffix: str, expected: str) -> None:
    assert server_url(given, strip_suffix=suffix) == expected


def test_the_engines_import_paths_and_lazy_exports() -> None:
    """The paths of before the move still name the engines, and naming one imports only its own subpackage."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import agentkit.backends as b\n"
        "engines = {'agentkit.backends.ollama', 'agentkit.backends.vllm', 'agentkit.backends._http'}\n"
        "assert not engines & set(sys.modules)\n"
        "from agentkit.backends.ollama import OllamaBackend\n"
        "assert b.OllamaBackend is OllamaBackend and 'agentkit.backends.vllm' not in sys.modules\n"
        "from agentkit.backends.vllm import VLLMBackend\n"
        "assert b.VLLMBackend is VLLMBackend\n"
        "assert type(b.backend_from_url('ollama:gemma4:e4b')) is OllamaBackend\n"
        "assert type(b.backend_from_url('vllm://box:8000/m', tokenizer=False)) is VLLMBackend\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


async def test_a_refused_connection_is_retried_only_once_the_server_has_answered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """First contact with nothing listening fails at once (README's quick start without Ollama said nothing for
    four seconds); a server that answered before and now refuses is restarting, so that is retried."""
    from fake_ollama import FakeOllamaServer

    sent = 0
    real_send = httpx.AsyncClient.send

    async def counting(self: httpx.AsyncClient, request: httpx.Request, **kwargs: object) -> httpx.Response:
        nonlocal sent
        sent += 1
        return await real_send(self, request, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(httpx.AsyncClient, "send", counting)
    with FakeOllamaServer() as server:
        url = server.url
        backend = OllamaBackend("m", url, retries=2, retry_wait=0)
        await backend.list_models()
        assert sent == 1
        await backend.aclose()  # no kept-alive connection to the old server: the next request connects anew
    sent = 0
    with pytest.raises(BackendUnavailable):
        await backend.list_models()  # the same address, gone: a restart, tried three times
    assert sent == 3
    await backend.aclose()

    sent = 0
    never = OllamaBackend("m", url, retries=2, retry_wait=0)
    with pytest.raises(BackendUnavailable, match="Cannot reach"):
        await never.list_models()
    assert sent == 1
    await never.aclose()
