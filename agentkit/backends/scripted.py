"""ScriptedBackend: a test double that replays raw Gemma 4 model outputs.

It implements the same :class:`~agentkit.backends.base.Backend` interface as the real engines and speaks the
real protocol: each script entry is exactly what a Gemma 4 model would write (control tokens included),
streamed in small chunks so the loop's incremental parser is exercised, cut at the first stop marker the
request asks for (as an engine would stop there). Every request is recorded, so tests can assert on the
prompts the loop sent (``.prompts``) — for example that no earlier thinking is ever sent back.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path

from agentkit.errors import BackendError, UserError

from .base import Capabilities, GenerationDone, GenerationRequest, RawDelta, Timings, Usage

__all__ = ["ScriptedBackend"]

Script = str | Callable[[GenerationRequest], str]


def _estimate_tokens(text: str) -> int:
    # No tokenizer here; ~4 characters per token is the usual estimate for reporting only.
    return max(1, len(text) // 4) if text else 0


class ScriptedBackend:
    """Replays one scripted output per generation call and records what it was sent.

    ``outputs`` are raw model outputs (``"Hi!<turn|>"``) or callables that receive the request and return
    one. ``chunk_size`` sets how finely the text is streamed; ``delay_s`` sleeps between chunks (to test
    cancellation and streaming UIs).
    """

    def __init__(
        self,
        outputs: Iterable[Script] = (),
        *,
        chunk_size: int = 3,
        delay_s: float = 0.0,
        model: str = "scripted-gemma4",
    ) -> None:
        if isinstance(outputs, str | bytes):
            # A lone string would be replayed one character per call: say so instead of failing later.
            raise UserError("ScriptedBackend takes a list of raw outputs, e.g. ScriptedBackend(['Hi!<turn|>'])")
        self._outputs: list[Script] = list(outputs)
        for i, out in enumerate(self._outputs):
            if not (isinstance(out, str) or callable(out)):
                raise UserError(
                    f"ScriptedBackend output {i} is of type {type(out).__name__}; each output is a raw model "
                    "output string (or a function of the request that returns one)"
                )
        self._next = 0
        self.chunk_size = max(1, chunk_size)
        self.delay_s = delay_s
        self._model = model
        self.requests: list[GenerationRequest] = []

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: object) -> ScriptedBackend:
        """Load a JSON list of raw outputs (used by ``scripted:PATH`` backend URLs and demos)."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"cannot read scripted outputs from {path}: {exc}") from exc
        if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
            raise UserError(f"{path} must hold a JSON list of strings (raw Gemma 4 model outputs)")
        return cls(data, **kwargs)  # type: ignore[arg-type]

    @property
    def name(self) -> str:
        return "scripted"

    @property
    def model(self) -> str:
        return self._model

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities()

    @property
    def prompts(self) -> list[str]:
        """The text prompt of every request, in order (what a text-prompt engine would have received)."""
        return [r.prompt.text for r in self.requests]

    @property
    def remaining(self) -> int:
        return len(self._outputs) - self._next

    def add(self, *outputs: Script) -> None:
        self._outputs.extend(outputs)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[RawDelta | GenerationDone]:
        self.requests.append(request)
        if self._next >= len(self._outputs):
            raise BackendError(
                f"ScriptedBackend has no output left for call {self._next + 1} (it was given {len(self._outputs)})",
                backend="scripted",
            )
        script = self._outputs[self._next]
        self._next += 1
        text = script(request) if callable(script) else script
        # Stop where an engine would: at the first stop marker, marker included.
        stop: str | None = None
        cut = len(text)
        for marker in request.stop:
            i = text.find(marker)
            if i != -1 and i + len(marker) <= cut:
                cut, stop = i + len(marker), marker
        text = text[:cut]
        # Budget measured in estimated tokens, as the real engines measure theirs.
        if _estimate_tokens(text) > request.sampling.max_tokens:
            text, stop = text[: request.sampling.max_tokens * 4], None
        start = time.perf_counter()
        ttft = 0.0
        for i in range(0, len(text), self.chunk_size):
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            else:
                await asyncio.sleep(0)  # let cancellation in, as a real stream would
            if i == 0:
                ttft = time.perf_counter() - start
            yield RawDelta(text[i : i + self.chunk_size])
        total = time.perf_counter() - start
        completion = _estimate_tokens(text)
        yield GenerationDone(
            stop=stop,
            usage=Usage(prompt_tokens=_estimate_tokens(request.prompt.text), completion_tokens=completion),
            timings=Timings(ttft_s=ttft, total_s=total, tokens_per_s=completion / total if total > 0 else 0.0),
        )

    async def list_models(self) -> list[str]:
        """The one scripted model, as a server with a single model would list it."""
        return [self._model]

    async def check(self) -> None:
        return None

    async def aclose(self) -> None:
        return None
