"""The error table of the engines served over HTTP: httpx's exceptions and servers' error answers to agentkit errors.

In the style of httpx's ``map_httpcore_exceptions`` (``httpx/_transports/default.py``): one table, the most
specific row wins and the original exception stays the cause. An engine supplies only its words
(:class:`ServerErrors`: how to start it, which message means a missing model or a full context), so every
engine's errors say the same kind of thing in the same place, and what is retried (:func:`is_transient`)
follows from the same rows. The retries and the client that raise these are :mod:`agentkit.backends._http`'s.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import httpx

from agentkit.errors import (
    BackendError,
    BackendResponseError,
    BackendUnavailable,
    ContextTooLong,
    ModelNotFound,
    StreamInterrupted,
)

__all__ = ["TRANSPORT_ERRORS", "ErrorReply", "ServerErrors", "is_transient", "server_message"]


class ErrorReply(Exception):
    """The server answered with an error: its HTTP status (None for an error event inside a stream) and message.

    Raised by an engine where it reads the error, mapped by :meth:`ServerErrors.translate` like an httpx exception.
    """

    def __init__(self, status: int | None, body: str) -> None:
        self.status = status
        self.message = server_message(body)
        super().__init__(f"{status}: {self.message}")


@dataclass(frozen=True, slots=True)
class _Row:
    """What one kind of transport failure becomes before any output reached the caller, and after."""

    before: type[BackendError]
    before_says: str
    after: type[BackendError]
    after_says: str
    retry: bool  # worth another try (only ever taken before output)


_UNREACHABLE = _Row(BackendUnavailable, "unreachable", BackendUnavailable, "unreachable", retry=True)
_DROPPED = _Row(BackendUnavailable, "closed", StreamInterrupted, "broken", retry=True)

# The most specific row wins (a ConnectTimeout is a TimeoutException too), so their order does not matter.
TRANSPORT_ERRORS: Mapping[type[BaseException], _Row] = {
    httpx.TransportError: _Row(BackendUnavailable, "unreachable", StreamInterrupted, "broken", retry=False),
    httpx.ConnectError: _UNREACHABLE,
    httpx.ConnectTimeout: _UNREACHABLE,
    ConnectionRefusedError: _UNREACHABLE,
    httpx.NetworkError: _DROPPED,  # ReadError, WriteError, CloseError: a reset or a dropped pooled socket
    httpx.RemoteProtocolError: _DROPPED,  # the server closed the connection without (finishing) an answer
    ConnectionError: _DROPPED,  # resets below httpx
    httpx.TimeoutException: _Row(BackendUnavailable, "slow", StreamInterrupted, "stalled", retry=False),
}

_SAYS = {
    "unreachable": "Cannot reach {engine} at {url} ({detail}): {start}",
    "closed": "{engine} at {url} closed the connection before answering ({detail}); it may be restarting — try "
    "again, or check its log",
    "slow": "{engine} at {url} did not answer within {timeout:g} s ({detail}); it may be overloaded or still "
    "loading the model — try again, or give {owner} a larger timeout=",
    "stalled": "{engine} at {url} stopped sending output for {timeout:g} s after {streamed} streamed characters; "
    "it may be overloaded — run the request again, or give {owner} a larger timeout=",
    "broken": "{engine} at {url} stopped streaming after {streamed} characters: the connection broke off "
    "mid-response ({detail}). The server may have restarted; run the request again.",
}


# Error answers by status, once the engine's patterns (a missing model, a full context) did not match; a 5xx is
# a BackendResponseError like any other here, and the one kind retried (is_transient).
_REFUSED = "{where} refused the request ({status}: {message}). {auth_hint}"
_NOT_THIS_SERVER = "{where} answered with HTTP {status}: {message} — {address_hint}"
_OTHER_STATUS = "{where} answered with {what}: {message}{advice}"
_STATUS_SAYS: Mapping[int | None, str] = {401: _REFUSED, 403: _REFUSED, 404: _NOT_THIS_SERVER, 405: _NOT_THIS_SERVER}


def _row(exc: BaseException) -> _Row | None:
    found: type[BaseException] | None = None
    for kind in TRANSPORT_ERRORS:
        if isinstance(exc, kind) and (found is None or issubclass(kind, found)):
            found = kind
    return None if found is None else TRANSPORT_ERRORS[found]


def is_transient(exc: BaseException) -> bool:
    """Whether a failure before any output is worth another try: a dropped or refused connection, or a 5xx."""
    if isinstance(exc, BackendUnavailable):
        row = _row(exc.__cause__) if exc.__cause__ is not None else None
        return row is not None and row.retry
    return isinstance(exc, BackendResponseError) and exc.status is not None and exc.status >= 500


def server_message(body: str) -> str:
    """The human-readable message inside an error body (``{"error": ...}`` in its forms, FastAPI's ``detail``),
    at most 2,000 characters of it: it is shown to people and to the model."""
    message = _server_message(body)
    return message if len(message) <= 2000 else message[:2000] + f" [... {len(message):,} characters]"


def _server_message(body: str) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body.strip()[:500] or "(empty response body)"
    if isinstance(data, Mapping):
        error = data.get("error")
        if isinstance(error, Mapping) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(error, str):
            return error
        for key in ("message", "detail"):
            if isinstance(data.get(key), str):
                return str(data[key])
    return body.strip()[:500]


@dataclass(frozen=True, slots=True)
class ServerErrors:
    """One engine's words for the shared error table: who it is, where, and what to do about each failure.

    ``missing_model`` and ``context`` are searched in the server's error message (a missing model only in a 404);
    ``hints`` add advice to other error answers whose message matches.
    """

    engine: str  # as people write it: "Ollama", "vLLM"
    backend: str  # BackendError.backend
    url: str
    model: str
    timeout: float
    owner: str  # the class whose timeout= to raise
    start: str  # how to start the server
    missing_model: re.Pattern[str]
    missing_model_hint: str
    context: re.Pattern[str]
    context_hint: str
    auth_hint: str
    address_hint: str  # for a 404/405 that is not a missing model: the address is likely not this engine
    hints: Sequence[tuple[re.Pattern[str], str]] = ()

    def __post_init__(self) -> None:
        # A base URL may carry user:password@ (basic auth at a proxy): every message here names the URL.
        object.__setattr__(self, "url", without_user_info(self.url))

    def translate(self, exc: BaseException, *, streamed: int = 0, served: Sequence[str] | None = None) -> BackendError:
        """The agentkit error for ``exc``; ``streamed`` is how many characters already reached the caller."""
        if isinstance(exc, BackendError):
            return exc
        if isinstance(exc, ErrorReply):
            return self.answered(exc.status, exc.message, streamed=streamed, served=served)
        row = _row(exc)
        if row is None:
            return BackendResponseError(
                f"{self.engine} at {self.url} sent something agentkit cannot read ({_detail(exc)})",
                backend=self.backend,
            )
        cls, says = (row.after, row.after_says) if streamed else (row.before, row.before_says)
        text = _SAYS[says].format(
            engine=self.engine,
            url=self.url,
            detail=_detail(exc),
            start=self.start,
            timeout=self.timeout,
            owner=self.owner,
            streamed=streamed,
        )
        return cls(text, backend=self.backend)

    @contextlib.contextmanager
    def mapped(self, streamed: Callable[[], int] = lambda: 0, served: Sequence[str] | None = None) -> Iterator[None]:
        """Raise what :meth:`translate` makes of any failure inside, from the original (agentkit errors pass)."""
        try:
            yield
        except BackendError:
            raise
        except Exception as exc:
            raise self.translate(exc, streamed=streamed(), served=served) from exc

    def answered(
        self, status: int | None, message: str, *, streamed: int = 0, served: Sequence[str] | None = None
    ) -> BackendError:
        """The agentkit error for an error answer (``status`` None: an error event inside the stream)."""
        if status == 404 and self.missing_model.search(message):
            return self.model_not_found(served, said=message)
        if self.context.search(message):
            return ContextTooLong(
                f"The request does not fit the context window of {self.model!r} on {self.engine} at {self.url} "
                f"({message}). Start a new session or shorten the conversation, or {self.context_hint}",
                backend=self.backend,
                status=status,
            )
        if streamed:
            return StreamInterrupted(
                f"{self.engine} at {self.url} failed after {streamed} streamed characters: {message}",
                backend=self.backend,
                status=status,
            )
        text = _STATUS_SAYS.get(status, _OTHER_STATUS).format(
            where=f"{self.engine} at {self.url}",
            status=status,
            what=f"HTTP {status}" if status is not None else "an error",
            message=message,
            auth_hint=self.auth_hint,
            address_hint=self.address_hint,
            advice="".join(f" — {hint}" for pattern, hint in self.hints if pattern.search(message)),
        )
        return BackendResponseError(text, backend=self.backend, status=status)

    def model_not_found(self, served: Sequence[str] | None, *, said: str = "") -> ModelNotFound:
        """The missing-model error, naming what the server does serve when that is known."""
        listing = "" if served is None else "; it serves: " + (", ".join(repr(m) for m in served) or "(none)")
        echo = f" ({self.engine} said: {said})" if said else ""
        return ModelNotFound(
            f"{self.engine} at {self.url} does not serve model {self.model!r}{listing}. {self.missing_model_hint}"
            f"{echo}",
            backend=self.backend,
            status=404,
        )

    def too_large(self, limit: int) -> BackendResponseError:
        return BackendResponseError(
            f"{self.engine} at {self.url} sent an answer of more than {limit:,} bytes; it was not read further "
            "(is this address the server you meant?)",
            backend=self.backend,
        )

    def compressed(self, encoding: str) -> BackendResponseError:
        return BackendResponseError(
            f"{self.engine} at {self.url} sent its answer compressed ({encoding[:40]!r}) though agentkit asks for "
            "none (Accept-Encoding: identity); it was not read: a few kilobytes of gzip inflate to gigabytes "
            "before any size limit can count them (is a proxy in front of the server compressing? turn that off "
            "for this address)",
            backend=self.backend,
        )

    def not_json(self, data: str) -> BackendResponseError:
        return BackendResponseError(
            f"{self.engine} at {self.url} sent a response that is not JSON: {data[:200]!r}", backend=self.backend
        )


_USER_INFO = re.compile(r"(?<=://)[^/@\s]*@")


def without_user_info(text: str) -> str:
    """``text`` with the ``user:password@`` of every URL in it written as ``***@``."""
    return _USER_INFO.sub("***@", text)


def _detail(exc: BaseException) -> str:
    text = without_user_info(str(exc))  # httpx's own messages name the request's URL, credentials included
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
