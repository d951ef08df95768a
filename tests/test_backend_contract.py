"""The conformance suite itself: each check fails for a backend that breaks the rule it names.

The real backends pass it (tests/backends/test_contract.py); here, ScriptedBackend variants each break one
rule, so a check that could never fail would show up as a test that does not raise.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from agentkit.backends import Capabilities, GenerationDone, GenerationRequest, RawDelta, Usage
from agentkit.errors import BackendError
from agentkit.testing import ScriptedBackend
from agentkit.testing.backend_contract import (
    CHECKS,
    PNG,
    ContractHarness,
    NotApplicable,
    check_cancel_task,
    check_context_too_long,
    check_errors,
    check_media,
    check_stop_markers,
    check_streaming,
    check_thinking,
    check_tool_media,
    check_usage_and_timings,
    run_check,
)


class OneBlob(ScriptedBackend):
    """Buffers the whole answer and sends it as one piece."""

    async def stream(self, request: GenerationRequest) -> AsyncIterator[RawDelta | GenerationDone]:
        pieces = [e async for e in super().stream(request)]
        yield RawDelta("".join(e.text for e in pieces if isinstance(e, RawDelta)))
        yield pieces[-1]


class DropsMarker(ScriptedBackend):
    """Strips the stop marker from the text, as an engine's default detokenization would."""

    def __init__(self, outputs: list[str]) -> None:
        super().__init__(outputs, chunk_size=1000)  # whole markers in each piece, so each is stripped

    async def stream(self, request: GenerationRequest) -> AsyncIterator[RawDelta | GenerationDone]:
        async for event in super().stream(request):
            if isinstance(event, RawDelta):
                event = RawDelta(event.text.replace("<turn|>", "").replace("<|tool_response>", ""))
            yield event


class NoUsage(ScriptedBackend):
    async def stream(self, request: GenerationRequest) -> AsyncIterator[RawDelta | GenerationDone]:
        async for event in super().stream(request):
            yield GenerationDone(event.stop, Usage()) if isinstance(event, GenerationDone) else event


class Deaf(ScriptedBackend):
    """Never suspends between pieces, so a cancellation cannot reach it before the end."""

    async def stream(self, request: GenerationRequest) -> AsyncIterator[RawDelta | GenerationDone]:
        self.requests.append(request)
        text = self._outputs[self._next]
        self._next += 1
        assert isinstance(text, str)
        for i in range(0, len(text), 3):
            yield RawDelta(text[i : i + 3])
        yield GenerationDone(None, Usage(1, 1))


class Unreachable(ScriptedBackend):
    async def check(self) -> None:
        raise ConnectionRefusedError("refused")  # a raw socket error, not a BackendError

    async def stream(self, request: GenerationRequest) -> AsyncIterator[RawDelta | GenerationDone]:
        raise ConnectionRefusedError("refused")
        yield  # pragma: no cover


class ClaimsMedia(ScriptedBackend):
    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(media=True)


def harness(cls: type[ScriptedBackend], **kwargs: object) -> ContractHarness:
    return ContractHarness(backend_for=lambda *outputs: cls(list(outputs)), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("check", "cls", "why"),
    [
        (check_streaming, OneBlob, "in one piece: not streamed"),
        (check_stop_markers, DropsMarker, "expected"),
        (check_thinking, DropsMarker, "expected"),
        (check_usage_and_timings, NoUsage, "prompt_tokens=0"),
        (check_cancel_task, Deaf, "ran on to its end through a cancellation"),
    ],
)
def test_each_check_catches_the_backend_that_breaks_its_rule(
    check: Callable[..., object], cls: type[ScriptedBackend], why: str
) -> None:
    with pytest.raises(AssertionError, match=why):
        run_check(check, harness(cls))  # type: ignore[arg-type]


def test_errors_must_be_backend_errors_and_media_must_reach_the_engine() -> None:
    with pytest.raises(AssertionError, match="raised ConnectionRefusedError: refused, not a BackendError"):
        run_check(check_errors, harness(ScriptedBackend, unavailable=lambda: Unreachable([])))
    with pytest.raises(AssertionError, match="engine received 0 images"):
        run_check(check_media, harness(ClaimsMedia, received_images=lambda: []))
    with pytest.raises(NotApplicable, match="declares no media support"):
        run_check(check_media, harness(ScriptedBackend, received_images=lambda: []))
    # An image a tool returned must reach the engine too (the fake sees none: it was dropped or only described).
    with pytest.raises(AssertionError, match="engine received 0 images"):
        run_check(check_tool_media, harness(ClaimsMedia, received_images=lambda: []))
    with pytest.raises(AssertionError, match="took a prompt longer than its 16-token context"):
        run_check(check_context_too_long, harness(ScriptedBackend, context_tokens=16))


def test_a_conforming_backend_passes_every_check_that_applies() -> None:
    def unavailable() -> ScriptedBackend:
        raise BackendError("no engine here: start it first", backend="scripted")

    applied = 0
    for check in CHECKS:
        try:
            run_check(check, harness(ScriptedBackend, unavailable=unavailable))
            applied += 1
        except NotApplicable:
            pass
    assert applied == len(CHECKS) - 3  # all but the two media checks and the context window: ScriptedBackend lacks them


def test_the_contracts_picture_is_a_well_formed_png() -> None:
    """Engines that decode the media check's image (the in-process one does) must be able to: every chunk's
    length and CRC are right (the first version's data chunk was a byte short)."""
    import struct
    import zlib

    assert PNG.startswith(b"\x89PNG\r\n\x1a\n")
    at, kinds = 8, []
    while at < len(PNG):
        (length,) = struct.unpack(">I", PNG[at : at + 4])
        kind, data = PNG[at + 4 : at + 8], PNG[at + 8 : at + 8 + length]
        assert len(data) == length and PNG[at + 8 + length : at + 12 + length] == struct.pack(
            ">I", zlib.crc32(kind + data)
        )
        kinds.append(kind)
        at += 12 + length
    assert kinds == [b"IHDR", b"IDAT", b"IEND"]
    assert zlib.decompress(PNG[8 + 25 + 8 : 8 + 25 + 8 + 11]) == b"\x00" * 5  # one filter byte, one RGBA pixel
