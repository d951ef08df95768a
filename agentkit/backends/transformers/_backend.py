"""TransformersBackend: Gemma 4 in this Python process, with agentkit owning the prompt token by token.

In-process inference gives agentkit full control: the prompt goes in as token ids built segment by segment
(untrusted text is tokenized with special-token parsing off, so it can never become a control token), and
every generated id is seen, so generation stops exactly on the Gemma 4 stop tokens and control tokens reach the
loop verbatim. The KV cache is kept between calls and only new tokens are prefilled (see
:mod:`._engine`), which makes each tool round of an agent cost about what its new tokens cost. On CUDA the
decode step is compiled and replayed as a CUDA graph; the compilation runs on a background thread while requests
are served eagerly (:mod:`._compile`), and its kernels are cached on disk, so a later process is ready in
seconds. ``compile_status`` says where it stands.

With ``assistant_model=`` (a Gemma 4 multi-token-prediction drafter such as
``google/gemma-4-E4B-it-assistant``) the engine's loop drafts with it and verifies each drafted block in one pass
of the main model (:mod:`._assisted`): at temperature 0 the output is identical to plain decoding, sampling keeps
the target's distribution, and the KV cache is reused across calls as without a drafter (the drafter reads the
main model's cache and keeps no state of its own).

A multimodal checkpoint (``Gemma4ForConditionalGeneration``: E2B/E4B see and hear, 26B/31B see) takes images and
audio as content parts of user messages; :mod:`._media` expands their placeholders and keeps their keys/values
in the cache across steps like any other prompt tokens.

Install with ``pip install -e '.[transformers]'`` in the agentkit checkout; torch and transformers are imported
when a backend is created, not when agentkit is.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sys
import threading
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from agentkit.errors import BackendError, ModelNotFound, UserError

from ..base import Capabilities, GenerationDone, GenerationRequest, RawDelta, Timings, Usage
from ._context import choose_cache_len
from .compat import import_transformers, patch_gemma4_assistant_kv_sharing

__all__ = ["TemplateDriftWarning", "TransformersBackend"]


class TemplateDriftWarning(UserWarning):
    """The model's own chat template renders the conversation differently from agentkit."""


def _pick_device(device: str | None) -> Any:
    import torch

    if device:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _pick_dtype(dtype: Any, device: Any) -> Any:
    import torch

    if dtype is None:
        # bf16 halves memory traffic on GPUs (decode is bandwidth-bound); CPUs compute it slowly, so fp32 there.
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, str):
        value = getattr(torch, dtype, None)
        if not isinstance(value, torch.dtype):
            raise UserError(f"unknown dtype {dtype!r}: use bfloat16, float16 or float32")
        return value
    return dtype


class TransformersBackend:
    """Runs a Gemma 4 model in-process with transformers.

    ``model`` is a Hub id, a local directory or an already loaded ``PreTrainedModel`` (then pass its
    ``tokenizer``). ``device`` defaults to cuda, then mps, then cpu; ``dtype`` to bfloat16 on cuda and float32
    elsewhere. ``compile`` (default: on for cuda) compiles the decode step; ``max_cache_len`` bounds the
    context (on cuda the cache is allocated at that size up front); by default (or ``$AGENTKIT_MAX_CACHE_LEN``)
    it is the model's context, cut to what free GPU memory (on CPU, half the free RAM) holds.
    ``logits_processors`` are Hugging Face style callables ``(input_ids, scores) -> scores`` applied at every
    step (tests use one to script output).
    With ``compile`` on, compilation starts in the background at once and the first requests are served
    eagerly meanwhile; ``warm_up=True`` instead waits in the constructor until it is done and the CUDA graphs
    are captured (for benchmarks: every request then runs at full speed).
    A multimodal model loaded from a Hub id or directory brings its image processor and audio feature extractor
    from there; for an already loaded one pass ``processor=`` (its ``Gemma4Processor``).
    """

    def __init__(
        self,
        model: str | Path | Any,
        tokenizer: Any = None,
        *,
        device: str | None = None,
        dtype: Any = None,
        assistant_model: str | Path | Any = None,
        compile: bool | None = None,
        max_cache_len: int | None = None,
        logits_processors: Sequence[Any] = (),
        warm_up: bool = False,
        processor: Any = None,
    ) -> None:
        hf = import_transformers()
        import torch

        from ._engine import Engine

        self._device = _pick_device(device)
        self._dtype = _pick_dtype(dtype, self._device)
        if isinstance(model, str | Path):
            self._model_name = str(model)
            self._tokenizer = tokenizer if tokenizer is not None else self._load_tokenizer(hf, self._model_name)
            self._model = self._load(hf.AutoModelForCausalLM, self._model_name, "model")
        else:
            if tokenizer is None:
                raise UserError("TransformersBackend(model=<loaded model>) also needs tokenizer=<its tokenizer>")
            self._model = model
            self._tokenizer = tokenizer
            self._model_name = str(getattr(model, "name_or_path", "") or type(model).__name__)
            self._model.to(self._device)
        self._model.eval()
        from ._media import MediaEncoder

        self._media = (
            MediaEncoder.load(hf, self._model, self._tokenizer, self._model_name)
            if processor is None and isinstance(model, str | Path)
            else MediaEncoder.from_processor(self._model, self._tokenizer, processor)
        )
        self._assistant: Any = None
        if assistant_model is not None:
            patch_gemma4_assistant_kv_sharing()
            if isinstance(assistant_model, str | Path):
                self._assistant = self._load(hf.AutoModelForCausalLM, str(assistant_model), "assistant model")
            else:
                self._assistant = assistant_model.to(self._device)
            self._assistant.eval()
        limit = choose_cache_len(self._model, self._device, max_cache_len)
        self._stop_ids = self._control_ids()
        self._engine = Engine(
            self._model,
            self._tokenizer,
            device=self._device,
            max_cache_len=limit.tokens,
            compile_decode=self._device.type == "cuda" if compile is None else compile,
            keep_hidden=self._assistant is not None,
        )
        self._engine.limit_why = limit.why
        self._drafter: Any = None
        if self._assistant is not None:
            from ._assisted import Drafter

            self._drafter = Drafter(self._engine, self._assistant)
        self._processors = list(logits_processors)
        from ._grammar import Grammars, xgrammar_missing

        self._grammar_missing = xgrammar_missing()
        # The mask must be as wide as the logits: the model's vocabulary (padded), not the tokenizer's.
        vocab = int(getattr(self._model.config.get_text_config(), "vocab_size", 0) or len(self._tokenizer))
        self._grammars = Grammars(self._tokenizer, vocab) if not self._grammar_missing else None
        self._lock = asyncio.Lock()
        self._worker = _Worker()
        self._checked_template = False
        self._torch = torch
        if warm_up:
            self._engine.warm_up()

    # --- loading -----------------------------------------------------------------------------------------

    @staticmethod
    def _load_tokenizer(hf: Any, name: str) -> Any:
        try:
            return hf.AutoTokenizer.from_pretrained(name)
        except (OSError, ValueError) as exc:  # ValueError: a directory without a usable tokenizer
            raise ModelNotFound(_not_found(name, "tokenizer", exc), backend="transformers") from exc

    def _load(self, auto: Any, name: str, what: str) -> Any:
        try:
            with _progress_on_terminals_only():
                return auto.from_pretrained(name, dtype=self._dtype).to(self._device)
        except (OSError, ValueError) as exc:  # ValueError: a config that names no known model
            raise ModelNotFound(_not_found(name, what, exc), backend="transformers") from exc

    def _control_ids(self) -> dict[str, int]:
        """The ids of the tokenizer's single-token control strings (the ones generation can stop on)."""
        ids: dict[str, int] = {}
        unk = self._tokenizer.unk_token_id
        for token in self._tokenizer.all_special_tokens:
            tid = self._tokenizer.convert_tokens_to_ids(token)
            if isinstance(tid, int) and tid != unk:
                ids[token] = tid
        return ids

    # --- Backend interface -------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return "transformers"

    @property
    def model(self) -> str:
        return self._model_name

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            token_ids=True,
            prefix_cache=True,
            grammar=self._grammars is not None,
            grammar_note=self._grammar_missing,
            media=self._media is not None and self._assistant is None,
        )

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    @property
    def compile_status(self) -> str:
        """Where compilation of the CUDA step stands, for ``doctor``, the TUI and logs (one line)."""
        status = self._engine.compile_status
        if status.state == "off":
            return str(status)
        from ._compile import cache_size, compile_cache_dir

        root = compile_cache_dir()
        files, size = cache_size(root)
        cache = f"{files} files, {size / 1e6:.0f} MB" if files else "empty: the first compilation takes minutes"
        return f"{status}; kernel cache {root} ({cache})"

    async def check(self) -> None:
        return None  # loading in __init__ already proved the model is there

    async def aclose(self) -> None:
        async with self._lock:
            self._engine.release()
            if self._media is not None:
                self._media.forget_after(0)
            if self._device.type == "cuda":
                self._torch.cuda.empty_cache()

    def reset_cache(self) -> None:
        """Forget the cached prefix (the next call prefills its whole prompt)."""
        self._engine.reset()
        if self._media is not None:
            self._media.forget_after(0)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[RawDelta | GenerationDone]:
        async with self._lock:
            if request.has_media:
                self._check_media()
            self._maybe_check_template(request)
            ids = request.prompt.token_ids(self._tokenizer)
            if not ids:
                raise UserError("the prompt is empty: render a conversation before calling the backend")
            stop_ids = {self._stop_ids[s]: s for s in request.stop if s in self._stop_ids}
            stop_texts = [s for s in request.stop if s not in self._stop_ids]
            loop = asyncio.get_running_loop()
            queue: asyncio.Queue[str | BaseException | None] = asyncio.Queue()
            cancel = threading.Event()
            result: list[Any] = []

            def emit(text: str) -> None:
                loop.call_soon_threadsafe(queue.put_nowait, text)

            def work() -> None:
                try:
                    result.append(self._generate(ids, request, stop_ids, stop_texts, emit, cancel))
                    loop.call_soon_threadsafe(queue.put_nowait, None)
                except BaseException as exc:  # handed to the consumer, which raises it
                    loop.call_soon_threadsafe(queue.put_nowait, exc)

            start = time.perf_counter()
            finished = self._worker.submit(work)
            ttft = 0.0
            try:
                while True:
                    item = await queue.get()
                    if item is None:
                        break
                    if isinstance(item, BaseException):
                        error = _translate(item)
                        if error is item:
                            raise error
                        raise error from item
                    if not ttft:
                        ttft = time.perf_counter() - start
                    yield RawDelta(item)
            finally:
                cancel.set()
                # Wait for the worker so the cache is consistent before the next call takes the lock.
                await asyncio.shield(asyncio.to_thread(finished.wait))
            res = result[0]
            decode_s = res.end_s - res.first_token_s if res.first_token_s else 0.0
            # First *token*, not first text: a token can be held back while it completes a character.
            ttft = res.first_token_s - start if res.first_token_s else ttft
            yield GenerationDone(
                stop=res.stop,
                usage=Usage(res.prompt_tokens, res.completion_tokens, res.cached_tokens),
                timings=Timings(
                    ttft_s=ttft,
                    total_s=time.perf_counter() - start,
                    tokens_per_s=(res.completion_tokens - 1) / decode_s if decode_s > 0 else 0.0,
                ),
                token_ids=res.token_ids,
            )

    # --- generation (worker thread) ----------------------------------------------------------------------

    def _generate(
        self,
        ids: list[int],
        request: GenerationRequest,
        stop_ids: dict[int, str],
        stop_texts: list[str],
        emit: Any,
        cancel: threading.Event,
    ) -> Any:
        s = request.sampling
        reused: int | None = None
        if request.has_media and self._media is not None:
            # Media placeholders expand to soft tokens, and everything but the last token is prefilled here.
            # Under the engine's lock (the background compilation captures graphs over the same cache) and in
            # inference mode (the static CUDA cache's tensors were made in it).
            with self._engine.lock, self._torch.inference_mode():
                ids, reused = self._media.prefill(self._engine, request)
        processors = list(self._processors)
        if request.grammar is not None and self._grammars is not None:
            # Last, so it masks whatever the other processors left: a call stays well-formed whatever they do.
            processors.append(self._grammars.processor(request.grammar, len(ids)))
        options: dict[str, Any] = {
            "max_new_tokens": s.max_tokens,
            "stop_ids": frozenset(stop_ids),
            "temperature": s.temperature,
            "top_p": s.top_p,
            "top_k": s.top_k,
            "seed": s.seed,
            "on_text": emit,
            "cancel": cancel,
            "stop_texts": stop_texts,
            "logits_processors": processors,
            "id_to_stop": stop_ids.get,
        }
        if self._drafter is not None:
            from ._assisted import generate_speculative

            return generate_speculative(self._engine, self._drafter, ids, **options)
        result = self._engine.generate(ids, **options)
        if self._media is not None:
            if reused is not None:
                result.cached_tokens = reused  # the media prefill above left only the last token to generate()
            else:
                self._media.forget_after(result.cached_tokens)
        return result

    def _check_media(self) -> None:
        """Refuse media this backend cannot take, before any work starts."""
        if self._media is None:
            raise UserError(
                f"{self._model_name} reads text only (no vision tower, or no image processor next to it): use a "
                "multimodal Gemma 4 checkpoint such as google/gemma-4-E4B-it, or pass processor= for a loaded model"
            )
        if self._assistant is not None:
            raise UserError(
                "images and audio do not go through assisted decoding (assistant_model=): "
                "create the backend without an assistant model for media"
            )

    # --- template drift ----------------------------------------------------------------------------------

    def _maybe_check_template(self, request: GenerationRequest) -> None:
        """Render the first fresh prompt with the model's own template too, and warn once if it differs.

        Template revisions drift; the user should know the model was given agentkit's rendering. Only a
        prompt that ends with a generation prompt (the last message is the user's) is comparable: later tool
        rounds continue a model turn, which templates do not render.
        """
        if self._checked_template or not request.messages:
            return
        if request.messages[-1].get("role") != "user":
            return
        self._checked_template = True
        if not getattr(self._tokenizer, "chat_template", None):
            return
        try:
            theirs = self._tokenizer.apply_chat_template(
                [dict(m) for m in request.messages],
                tools=[dict(t) for t in request.tools] or None,
                enable_thinking=request.enable_thinking,
                tokenize=False,
                add_generation_prompt=True,
            )
        except Exception as exc:  # a template that cannot render this conversation is drift too
            theirs = f"<the model's chat template failed: {exc}>"
        ours = request.prompt.raw_text
        if theirs != ours:
            same = (i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b)
            at = next(same, min(len(ours), len(theirs)))
            warnings.warn(
                f"{self._model_name}: the model's chat template renders this conversation differently from agentkit "
                f"(first difference at character {at}: agentkit {ours[at : at + 40]!r}, template "
                f"{theirs[at : at + 40]!r}). The model was given agentkit's rendering.",
                TemplateDriftWarning,
                stacklevel=3,
            )


class _Worker:
    """The one long-lived thread every generation of a backend runs on.

    CUDA libraries keep per-thread state (cuDNN attention plans, cuBLAS workspaces): a new thread per request
    rebuilt it every time, which cost about 150 ms of time to first token on an H100 (the same prefill took
    55 ms on a warm thread). Daemon, so a stuck generation cannot keep the interpreter from exiting.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], None], threading.Event]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def submit(self, job: Callable[[], None]) -> threading.Event:
        """Queue ``job``; the returned event is set once it has run (it handles its own errors)."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name="agentkit-transformers", daemon=True)
            self._thread.start()
        done = threading.Event()
        self._jobs.put((job, done))
        return done

    def _loop(self) -> None:
        while True:
            job, done = self._jobs.get()
            try:
                job()
            finally:
                done.set()


@contextlib.contextmanager
def _progress_on_terminals_only() -> Iterator[None]:
    """transformers' "Loading weights" bar only when stderr is a terminal: in a log file, or the stderr a program
    reads (``agentkit run --json``), its carriage-return redraws are noise."""
    stderr = sys.stderr
    bars = import_transformers().utils.logging
    if (stderr is not None and stderr.isatty()) or not bars.is_progress_bar_enabled():
        yield
        return
    bars.disable_progress_bar()
    try:
        yield
    finally:
        bars.enable_progress_bar()


def _not_found(name: str, what: str, exc: BaseException) -> str:
    # A Hub id is "org/name" and never exists on disk; anything absolute, relative or existing is a path.
    looks_local = os.path.isabs(name) or name.startswith((".", "~")) or os.path.exists(name)
    if looks_local and not os.path.exists(os.path.expanduser(name)):
        return f"cannot load the {what} {name!r}: no such directory. Check the path"
    hint = (
        "check that the directory holds a saved model (config.json, weights, tokenizer)"
        if looks_local
        else "check the Hub id, run `huggingface-cli login` for gated models, or pass a local directory"
    )
    detail = str(exc).strip().rstrip(".")
    return f"cannot load the {what} {name!r}: {detail}. {hint[0].upper()}{hint[1:]}"


def _translate(exc: BaseException) -> BaseException:
    """Foreign errors from the worker become agentkit errors (raised ``from`` the original)."""
    if isinstance(exc, BackendError | UserError):
        return exc
    text = str(exc)
    if "out of memory" in text.lower():
        return BackendError(
            f"the GPU ran out of memory: {text.splitlines()[0]}. Use a smaller max_cache_len or a smaller model",
            backend="transformers",
        )
    return BackendError(f"generation failed in transformers: {type(exc).__name__}: {text}", backend="transformers")
