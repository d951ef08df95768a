"""The decode loop behind the transformers backend: a KV cache kept across calls and the forward passes over it
(eager, compiled, replayed as CUDA graphs). Picking each token and turning it into text is :mod:`._decoding`.

Why a hand loop instead of ``model.generate``: an agent's prompts grow by appending (one model turn spans all
its tool rounds), so the engine keeps one KV cache and the token ids it holds between calls and prefills only
what is new (:meth:`Engine.prepare`). ``generate`` would re-prefill the whole history every round. Owning the
loop also gives exact stop-token handling, prompt cancellation and, on CUDA, a decode step that runs as one
replayed CUDA graph.

The cache gives *every* layer full-length storage, sliding-window layers included (the attention mask applies
the window): sliding layers that keep only their last ``window`` positions cannot be rolled back, and rolling
back is what reusing the longest common prefix needs when a prompt diverges from what the cache holds.

- CPU/MPS: a growing cache (``DynamicLayer``), eager forward passes — simple, and fast enough for small models.
- CUDA: a preallocated cache (``StaticLayer``, fixed addresses). The decoder layers are compiled on a
  background thread (:mod:`._compile`) while requests run eagerly; every forward pass over the static cache
  is captured by hand as CUDA graphs — one per input length (the decode step, 64- and 256-token prefill chunks)
  and per attention view (a power-of-two prefix of the cache). Stock eager decoding is launch-bound (thousands
  of kernel launches per token); a replay is one launch. Measured with an E4B-shaped model: 188 tokens/s on an
  H200 against 17 for stock ``generate`` (tools/bench/). Once the compiled step is in, prompts up to 2,048
  tokens prefill through captured chunks too (17 ms to the first token of 512 against stock's 59-94); a longer
  prompt into an empty cache is prefilled as stock does (a growing cache, one eager pass) and copied over.

Everything here runs on a worker thread; nothing in it touches the event loop.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
from collections.abc import Callable, Sequence
from typing import Any

import torch

from agentkit.errors import ContextTooLong

from ._compile import BackgroundCompile, CompileStatus, RegionalCompiler, install_attention, use_persistent_cache
from ._decoding import (
    GenerationResult,
    LogitsProcessor,
    TokenOutput,
    apply_processors,
    greedy_options,
    sample_next,
)
from .compat import cache_argument, import_transformers

log = logging.getLogger("agentkit.backends.transformers")
_nullcontext = contextlib.nullcontext

__all__ = ["Engine"]


class Engine:
    """One model, its tokenizer and one reusable KV cache. Not thread-safe: callers serialize ``generate``."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        device: torch.device,
        max_cache_len: int,
        compile_decode: bool,
        static: bool | None = None,
        keep_hidden: bool = False,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.max_cache_len = max_cache_len
        self.limit_why = f"max_cache_len is {max_cache_len}"  # where the limit came from, for the error
        # ``static`` defaults to CUDA only; tests force it on CPU to check the padded-chunk prefill path.
        self.static = device.type == "cuda" if static is None else static
        self.compile_decode = compile_decode and self.static
        # Captured CUDA graphs replay the whole step as one launch, compiled or not: eager graphs until the
        # compiled step is ready (or for good, when compilation is off or failed), compiled ones after.
        self.use_graphs = self.static and device.type == "cuda"
        # Attention reads only the first ``view`` cache positions, ``view`` a power-of-two bucket (from 1024)
        # above the current length: a step's cost follows the history it has, not the preallocated size.
        self.buckets = sorted({min(max_cache_len, 1024 << i) for i in range(16)})
        self.cache: Any = None
        self.cache_ids: list[int] = []  # the tokens whose keys/values the cache holds, in order
        # Cached positions before this were prefilled with more than their token ids (image or audio features):
        # a chunk may feed cached tokens again (``_prefill_chunks``), but never these.
        self._refeed_from = 0
        self._cache_arg = cache_argument(model)
        # (input length, view bucket, logits kept) -> (CUDA graph, its output)
        self._graphs: dict[tuple[int, int, int], tuple[Any, torch.Tensor]] = {}
        self._pool: Any = None
        self._view_mask = torch.ones((1, max_cache_len), dtype=torch.long, device=device)
        self._step_ids = torch.zeros((1, 1), dtype=torch.long, device=device)
        self._step_pos = torch.zeros((1, 1), dtype=torch.long, device=device)
        # Appends (a tool result, a user message) are prefilled in chunks through the captured graphs: 64 tokens,
        # 256 for longer ones (one weight read instead of four), whole 1,024-token chunks for long prompts.
        self.prefill_chunks: tuple[int, ...] = (64, 256, 1024)
        self.graph_prefill_max = 512
        self._chunk_bufs = {
            c: (
                torch.zeros((1, c), dtype=torch.long, device=device),
                torch.zeros((1, c), dtype=torch.long, device=device),
            )
            for c in self.prefill_chunks
        }
        # A prompt prefilled from an empty cache runs exactly as stock transformers does (a growing cache,
        # attention over exactly its tokens), then its keys/values are copied into the static cache. Above this
        # length the temporary copy would cost too much memory; the static path takes those.
        self.fresh_prefill_max = 16_384
        # With the compiled step in, a captured chunk is cheap enough that up to this many tokens, a prompt into
        # an empty cache is faster in chunks too (tools/bench/transformers_prefill.py measures the crossover).
        self.compiled_graph_max = 2048
        self.lock = threading.RLock()  # held by ``generate`` and by the background thread's graph captures
        self.regions: RegionalCompiler | None = None
        self._background: BackgroundCompile | None = None
        self._compiled_ready = False  # set by the background thread
        self.compiled_in_use = False  # the step runs the compiled layers (swapped in between requests)
        self._eager_graphs_failed = ""
        self._released = False
        # ``keep_hidden``: a multi-token-prediction drafter reads the target's last hidden state. A hook on the
        # final norm records it per thread (the background compilation runs forward passes of its own); a
        # captured graph's hidden state is its own static tensor, kept per graph. Installed before any capture.
        self._hidden = threading.local()
        self._graph_hidden: dict[tuple[int, int, int], torch.Tensor] = {}
        self.keep_hidden = keep_hidden
        if keep_hidden:
            _final_norm(model).register_forward_hook(self._record_hidden)
        if self.compile_decode:
            self.start_compile()

    def _record_hidden(self, _module: Any, _args: Any, output: torch.Tensor) -> None:
        self._hidden.value = output

    @property
    def prefill_chunk(self) -> int:
        return self.prefill_chunks[0]

    @prefill_chunk.setter
    def prefill_chunk(self, size: int) -> None:
        """Tests shrink the chunks to see several per append (one size, then)."""
        self.prefill_chunks = (size,)
        self._chunk_bufs = {
            size: (
                torch.zeros((1, size), dtype=torch.long, device=self.device),
                torch.zeros((1, size), dtype=torch.long, device=self.device),
            )
        }

    @property
    def _chunk_ids(self) -> torch.Tensor:
        return self._chunk_bufs[self.prefill_chunks[0]][0]

    @property
    def _chunk_pos(self) -> torch.Tensor:
        return self._chunk_bufs[self.prefill_chunks[0]][1]

    # --- compilation ------------------------------------------------------------------------------------

    def start_compile(self) -> None:
        """Compile the decoder layers on a background thread; requests run eagerly until the swap."""
        if self._background is not None:
            return
        install_attention(self.model)
        # One per model: its layers' forward is wrapped once, and a later engine reuses what was compiled.
        regions = getattr(self.model, "_agentkit_regions", None)
        if not isinstance(regions, RegionalCompiler):
            regions = RegionalCompiler(self.model)
            self.model._agentkit_regions = regions
        self.regions = regions
        if not self.regions.available:
            self.compile_decode = False
            return
        self._background = BackgroundCompile(self._compile_scratch, self._on_compiled)
        self._background.start()

    @property
    def compile_status(self) -> CompileStatus:
        if self._background is not None:
            status = self._background.status
            if status.state == "ready" and not self.compiled_in_use:
                return CompileStatus("ready", "swapped in at the next request", status.seconds)
            return status
        if not self.static:
            return CompileStatus("off", "eager (growing cache)")
        if self.use_graphs and not self._eager_graphs_failed:
            return CompileStatus("off", "eager, replayed as CUDA graphs")
        return CompileStatus("off", "eager")

    def wait_compiled(self, timeout: float | None = None) -> CompileStatus:
        """Block until the background compilation ends (for benchmarks and ``warm_up``)."""
        if self._background is not None:
            self._background.wait(timeout)
        return self.compile_status

    def _compile_scratch(self) -> None:
        """Compile every layer kind for the decode step and the prefill chunks, against a scratch cache.

        Runs on the background thread. The scratch cache is small and private: a request may be using the real
        one meanwhile. Shapes are dynamic, so the code compiled here serves the real cache's sizes and views.
        """
        use_persistent_cache()
        size = min(self.max_cache_len, 2048)
        views = [b for b in self.buckets if b <= size][:2] or [size]
        stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None  # type: ignore[no-untyped-call]
        assert self.regions is not None
        lengths = (1, *self.prefill_chunks)

        def run(ids_len: int, view: int) -> None:
            ids = torch.zeros((1, ids_len), dtype=torch.long, device=self.device)
            pos = torch.arange(ids_len, device=self.device).unsqueeze(0)
            # Keeping one position's logits hands the KV-shared layers that position alone (a view of the
            # chunk's hidden states, strided like the chunk), keeping all hands them the whole chunk: both occur.
            for keep in (1,) if ids_len == 1 else (1, 0):
                for layer in scratch.layers:  # from position 1 each time: the scratch cache never fills
                    if layer.is_initialized:
                        layer.cumulative_length.fill_(1)
                with self.regions.active():  # type: ignore[union-attr]
                    self._step_on(scratch, ids, pos, keep, view=view)

        with torch.inference_mode(), torch.cuda.stream(stream) if stream is not None else _nullcontext():
            scratch = self._new_cache(size)
            one = torch.zeros((1, 1), dtype=torch.long, device=self.device)
            self._step_on(scratch, one, one, 1, view=views[0])  # eager: allocates the layers' storage
            for view in views:
                for n in lengths:
                    if n < view:
                        run(n, view)
            if stream is not None:
                stream.synchronize()

    def _on_compiled(self) -> None:
        """On the background thread: mark the compiled step ready and capture its common graphs between requests."""
        self._compiled_ready = True
        if not self.use_graphs:
            return
        for n in (1, *self.prefill_chunks):
            with self.lock:  # one capture at a time, so a request waits at most for one
                if self._released:
                    return
                self._swap_in()
                if self.cache is None:
                    self.cache = self._new_cache()
                length = len(self.cache_ids)
                if length + n > self.max_cache_len:
                    continue
                ids, pos = (self._step_ids, self._step_pos) if n == 1 else self._chunk_bufs[n]
                torch.arange(length, length + n, out=pos[0])
                view = self._set_view(length + n + (n > 1))  # as _run picks it
                if (n, view, 1) not in self._graphs:  # the decode step, and chunks that end at a real token
                    with torch.inference_mode():
                        self._graphs[(n, view, 1)] = self._capture(ids, pos, 1, at=length)

    def _swap_in(self) -> None:
        """Start using the compiled step (caller holds ``lock``): eager graphs are dropped, compiled ones captured."""
        if self._compiled_ready and not self.compiled_in_use:
            self._graphs = {}
            self._pool = None
            self.compiled_in_use = True

    # --- cache -------------------------------------------------------------------------------------------

    def _new_cache(self, length: int | None = None) -> Any:
        cache_utils: Any = import_transformers().cache_utils
        n = self.model.config.get_text_config().num_hidden_layers
        if self.static:
            cls = _view_layer_class(cache_utils.StaticLayer)
            layers: list[Any] = [cls(max_cache_len=length or self.max_cache_len) for _ in range(n)]
        else:
            layers = [cache_utils.DynamicLayer() for _ in range(n)]
        return cache_utils.Cache(layers=layers)

    def _set_view(self, needed: int, *, exact: bool = False) -> int:
        # The whole cache at most: a chunk asks for one position past its end, which may be one past the cache.
        view = needed if exact else next((b for b in self.buckets if b >= needed), self.buckets[-1])
        for layer in self.cache.layers:
            layer.view_len = view
        return view

    def _truncate(self, length: int) -> None:
        """Forget cached positions from ``length`` on."""
        self._refeed_from = min(self._refeed_from, length)
        drop = len(self.cache_ids) - length
        if drop <= 0:
            return
        if self.static:
            self._set_length(length)
        else:
            for layer in self.cache.layers:
                if layer.is_initialized:  # layers that reuse another layer's keys/values never store any
                    layer.crop(-drop)
        del self.cache_ids[length:]

    def reset(self) -> None:
        """Forget the cached tokens. A static cache keeps its memory: the captured graphs point into it."""
        with self.lock:  # the background thread may be capturing graphs over the cache
            self._refeed_from = 0
            if self.static and self.cache is not None:
                self._set_length(0)
                self.cache_ids = []
            else:
                self.cache = None
                self.cache_ids = []

    def release(self) -> None:
        """Drop the cache and the graphs (frees their GPU memory); a compilation still running captures nothing."""
        with self.lock:
            self._released = True
            self.cache = None
            self.cache_ids = []
            self._refeed_from = 0
            self._graphs = {}
            self._pool = None

    def prepare(self, ids: Sequence[int]) -> int:
        """Make the cache hold a prefix of ``ids``; return how many prompt tokens it already holds (reused).

        At least one prompt token is always left to prefill: its logits choose the first new token.
        """
        if self.cache is None:
            self.cache = self._new_cache()
        common = 0
        limit = min(len(ids) - 1, len(self.cache_ids))
        while common < limit and ids[common] == self.cache_ids[common]:
            common += 1
        self._truncate(common)
        return common

    # --- forward passes ----------------------------------------------------------------------------------

    def _forward(self, ids: Sequence[int], **inputs: Any) -> torch.Tensor:
        """Prefill ``ids`` after the cached prefix; return the logits of the last position ``[1, vocab]``.

        ``inputs`` go to the model as well (the media features of a multimodal prompt, see ``_media``).
        """
        start = len(self.cache_ids)
        if self.static and start == 0 and not inputs and len(ids) <= self.fresh_prefill_max:
            return self._prefill_fresh(ids)
        if self.static:
            self._set_view(start + len(ids), exact=True)  # eager: no graph to share, so no bucket to round to
        input_ids = torch.tensor([list(ids)], dtype=torch.long, device=self.device)
        positions = torch.arange(start, start + len(ids), device=self.device).unsqueeze(0)
        out = self.model(
            input_ids=input_ids,
            position_ids=positions,
            use_cache=True,
            **{self._cache_arg: self.cache},
            logits_to_keep=1,
            **inputs,
        )
        self.cache_ids.extend(ids)
        if inputs:
            self._refeed_from = len(self.cache_ids)
        last: torch.Tensor = out.logits[:, -1, :]
        return last

    def _prefill_fresh(self, ids: Sequence[int]) -> torch.Tensor:
        """Prefill into an empty static cache the way stock transformers does, then copy the keys/values over.

        A growing cache gives attention exactly the prompt's positions and lets SDPA take its causal fast path;
        over the static cache the same pass reads a padded view through an explicit mask. The copy is one
        device-to-device write per layer.
        """
        cache_utils: Any = import_transformers().cache_utils
        temp = cache_utils.Cache(layers=[cache_utils.DynamicLayer() for _ in self.cache.layers])
        input_ids = torch.tensor([list(ids)], dtype=torch.long, device=self.device)
        positions = torch.arange(len(ids), device=self.device).unsqueeze(0)
        out = self.model(
            input_ids=input_ids, position_ids=positions, use_cache=True, **{self._cache_arg: temp}, logits_to_keep=1
        )
        n = len(ids)
        for mine, theirs in zip(self.cache.layers, temp.layers, strict=True):
            if not theirs.is_initialized:
                continue  # a layer that reuses another layer's keys/values
            if not mine.is_initialized:
                mine.lazy_initialization(theirs.keys, theirs.values)
            mine.keys[:, :, :n].copy_(theirs.keys)
            mine.values[:, :, :n].copy_(theirs.values)
        self._set_length(n)
        self.cache_ids.extend(ids)
        last: torch.Tensor = out.logits[:, -1, :]
        return last

    def _prefill(self, ids: Sequence[int]) -> torch.Tensor:
        """Prefill ``ids`` after the cached prefix, by the fastest path available; return the last logits.

        Captured chunks cost no host time, but read the weights once per chunk and attend over a padded view; an
        eager pass reads them once but launches every kernel from Python, which is what a prompt of a few
        hundred tokens mostly waits for (about 50 ms for an E4B-sized model, whatever the GPU). So: chunks up
        to ``graph_prefill_max`` tokens (``compiled_graph_max`` once the compiled step is in, prompts into an
        empty cache included), one eager pass above that.
        """
        if self.static:
            if self.compiled_in_use:
                limit = self.compiled_graph_max
                if not self.cache.layers[0].is_initialized:
                    self._allocate()
            else:
                limit = self.graph_prefill_max if self.cache_ids else 0
            if len(ids) <= limit:
                return self._prefill_chunks(ids)
        return self._forward(ids)

    def _allocate(self) -> None:
        """Allocate a new static cache's layers with one eager token (then forgotten).

        The compiled layers were traced over allocated storage; an unallocated layer would make them compile
        again, in the middle of a request.
        """
        one = torch.zeros((1, 1), dtype=torch.long, device=self.device)
        self._step_on(self.cache, one, one, 1, view=self.buckets[0])
        self._set_length(0)

    def _prefill_chunks(self, ids: Sequence[int]) -> torch.Tensor:
        """Prefill in fixed-size chunks (see ``_chunk_plan``) through the captured graphs.

        Every chunk ends at a real token: the last one starts early enough to be full, feeding again the cached
        tokens before it (their keys/values are written again, the same values). So only the last position's
        logits are asked for, and transformers then runs Gemma 4's KV-shared layers (the last 18 of E4B's 42)
        on that one position: they write no cache, so the other positions' outputs are never needed.

        A chunk the cache cannot fill that way (a prompt shorter than the chunk) is padded at the end instead,
        with all logits kept. Padding is safe with this cache: pad positions come after the real tokens (causal
        attention keeps them out of the real tokens' view), and the write position is then set back to the end
        of the real tokens, so the next tokens overwrite the padding before any query can see it.
        """
        logits: torch.Tensor | None = None
        for c, part in self._chunk_plan(ids):
            chunk_ids, chunk_pos = self._chunk_bufs[c]
            start = len(self.cache_ids)
            # Where the chunk starts: early enough to end at ``part``, never among media positions.
            at = start - max(0, min(c - len(part), start - self._refeed_from))
            if at + c > self.max_cache_len:  # the padding would run past the cache: no padding, eager
                logits = self._forward(part)
                continue
            window = [*self.cache_ids[at:start], *part]
            chunk_ids[0, : len(window)] = torch.tensor(window, dtype=torch.long)
            torch.arange(at, at + c, out=chunk_pos[0])
            self._set_length(at)
            if len(window) == c:
                logits = self._run(chunk_ids, chunk_pos, 1, at=at)[:, -1, :].clone()
            else:
                chunk_ids[0, len(window) :] = 0
                logits = self._run(chunk_ids, chunk_pos, 0, at=at)[:, len(window) - 1, :].clone()
            self._set_length(start + len(part))
            self.cache_ids.extend(part)
        assert logits is not None
        return logits

    def _chunk_plan(self, ids: Sequence[int]) -> list[tuple[int, list[int]]]:
        """(chunk size, tokens) pieces: the largest chunk only ever full, then 64 (up to 64 left) or 256 a piece.

        A large chunk reads the weights once for many tokens but, run for a short tail, would compute a long
        window of cached tokens again; so the tail takes the small sizes, and a short append one small chunk.
        """
        *small, largest = self.prefill_chunks
        pieces: list[tuple[int, list[int]]] = []
        i = 0
        if small:
            while len(ids) - i >= largest:
                pieces.append((largest, list(ids[i : i + largest])))
                i += largest
        rest = len(ids) - i
        sizes = small or [largest]
        c = sizes[0] if rest <= sizes[0] else sizes[-1]
        pieces.extend((c, list(ids[j : j + c])) for j in range(i, len(ids), c))
        return pieces

    def forward_block(self, ids: Sequence[int], *, pad_to: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Feed ``ids`` after the cache; return their logits ``[n, vocab]`` and last hidden states ``[n, hidden]``.

        For speculative decoding (needs ``keep_hidden``): one pass verifies a drafted block, and the caller rolls
        back what the target rejects with :meth:`truncate`. On the static cache the block is padded to ``pad_to``
        tokens, so every round replays the same captured graph (padding is safe: see ``_prefill_chunks``).
        """
        n, start = len(ids), len(self.cache_ids)
        size = max(n, pad_to)
        if self.static and start + size <= self.max_cache_len:
            if size not in self._chunk_bufs:
                self._chunk_bufs[size] = (
                    torch.zeros((1, size), dtype=torch.long, device=self.device),
                    torch.zeros((1, size), dtype=torch.long, device=self.device),
                )
            block_ids, block_pos = self._chunk_bufs[size]
            block_ids.zero_()
            block_ids[0, :n] = torch.tensor(list(ids), dtype=torch.long)
            torch.arange(start, start + size, out=block_pos[0])
            logits = self._run(block_ids, block_pos, 0)[0, :n].clone()
            self._set_length(start + n)
        else:
            if self.static:
                self._set_view(start + n, exact=True)
            input_ids = torch.tensor([list(ids)], dtype=torch.long, device=self.device)
            positions = torch.arange(start, start + n, device=self.device).unsqueeze(0)
            kw = {self._cache_arg: self.cache}
            out = self.model(input_ids=input_ids, position_ids=positions, use_cache=True, logits_to_keep=0, **kw)
            logits = out.logits[0]
        hidden: torch.Tensor = self._hidden.value[0, :n].clone()
        self.cache_ids.extend(ids)
        return logits, hidden

    def truncate(self, length: int) -> None:
        """Forget cached positions from ``length`` on (drafted tokens the target rejected)."""
        self._truncate(length)

    def _set_length(self, length: int) -> None:
        with torch.inference_mode():  # the cache's tensors were created in inference mode
            for layer in self.cache.layers:
                if layer.is_initialized:
                    layer.cumulative_length.fill_(length)

    def _decode_step(self, token: torch.Tensor, token_id: int) -> torch.Tensor:
        """Feed one generated token (``token`` on the device, ``token_id`` its value); return the next logits."""
        if not self.static:
            return self._forward([token_id])
        self._step_ids.copy_(token.view(1, 1))
        self._step_pos.fill_(len(self.cache_ids))
        logits = self._run(self._step_ids, self._step_pos, 1)
        self.cache_ids.append(token_id)
        # A replayed CUDA graph overwrites its output on the next replay: keep a copy.
        return logits[:, -1, :].clone()

    def _step_on(self, cache: Any, ids: torch.Tensor, pos: torch.Tensor, keep: int, *, view: int) -> torch.Tensor:
        """One forward pass of ``ids`` at positions ``pos`` over ``cache`` (its attention view set to ``view``)."""
        for layer in cache.layers:
            layer.view_len = view
        kw = {self._cache_arg: cache}
        if ids.shape[1] > 1:
            # A padding mask over the whole view (all real): transformers then always builds the causal mask.
            # Without it, a pass from position 0 leaves full-attention layers maskless, which compiled layers
            # would have to be compiled for once more (``_run`` keeps chunks shorter than their view for the
            # same reason: a pass exactly as long as its view gets no mask either).
            if self._view_mask.shape[1] < view:
                self._view_mask = torch.ones((1, view), dtype=torch.long, device=self.device)
            kw["attention_mask"] = self._view_mask[:, :view]
        out = self.model(input_ids=ids, position_ids=pos, use_cache=True, logits_to_keep=keep, **kw)
        logits: torch.Tensor = out.logits
        return logits

    def _step(self, ids: torch.Tensor, pos: torch.Tensor, keep: int) -> torch.Tensor:
        """One forward pass over the engine's cache, through the compiled layers once they are swapped in."""
        view = self.cache.layers[0].view_len
        if self.compiled_in_use and self.regions is not None:
            with self.regions.active():
                return self._step_on(self.cache, ids, pos, keep, view=view)
        return self._step_on(self.cache, ids, pos, keep, view=view)

    def _run(self, ids: torch.Tensor, pos: torch.Tensor, keep: int, *, at: int | None = None) -> torch.Tensor:
        """One forward pass over the static input buffers ``ids``/``pos``: a graph replay where graphs are on.

        ``at`` is the cache position the pass writes from (the cache's length is already set there); by default
        the end of the cached tokens.
        """
        at = len(self.cache_ids) if at is None else at
        # One position more for a chunk: a view exactly as long as the chunk would get no mask (see _step_on).
        view = self._set_view(at + ids.shape[1] + (ids.shape[1] > 1))
        # While the compilation runs, the eager step is captured too (thread-local capture mode: the compiling
        # thread's CUDA calls do not disturb it): a replay does not compete with the compiler for the GIL.
        if not self.use_graphs or (self._eager_graphs_failed and not self.compiled_in_use):
            return self._step(ids, pos, keep)
        key = (ids.shape[1], view, keep)
        if key not in self._graphs:
            try:
                self._graphs[key] = self._capture(ids, pos, keep, at=at)
            except Exception as exc:  # a step that cannot be captured still runs, uncaptured
                self._set_length(at)
                self._eager_graphs_failed = f"{type(exc).__name__}: {exc}"
                if self.compiled_in_use and self.regions is not None:
                    self.compiled_in_use = False  # the compiled step is not replayable: back to eager
                    self._compiled_ready = False
                    self._background = None
                    self.compile_decode = False
                log.warning("transformers: CUDA graph capture failed, running uncaptured: %s", exc)
                return self._step(ids, pos, keep)
        graph, captured = self._graphs[key]
        graph.replay()
        if self.keep_hidden:
            self._hidden.value = self._graph_hidden[key]
        return captured

    def _capture(self, ids: torch.Tensor, pos: torch.Tensor, keep: int, *, at: int) -> tuple[Any, torch.Tensor]:
        """Run (compiling if needed) and capture one forward pass as a CUDA graph over the static buffers.

        Captured by hand rather than with ``mode="reduce-overhead"``: a replay then costs one launch and no
        Python guard checks, and the decode and chunk graphs share one memory pool without re-recording.
        Thread-local capture mode: the background compilation may make CUDA calls from its own thread meanwhile.
        """
        length = at
        side = torch.cuda.Stream(self.device)  # type: ignore[no-untyped-call]
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(3):  # autotune and settle the allocator before capturing
                self._step(ids, pos, keep)
                self._set_length(length)
        torch.cuda.current_stream(self.device).wait_stream(side)
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool, capture_error_mode="thread_local"):
            out = self._step(ids, pos, keep)
        if self.keep_hidden:
            self._graph_hidden[(ids.shape[1], self.cache.layers[0].view_len, keep)] = self._hidden.value
        self._set_length(length)  # capturing records the cache write without running it; keep lengths exact
        return graph, out

    def warm_up(self, steps: int = 3) -> None:
        """Finish compiling and capture the decode and chunked-prefill graphs now, instead of on first use."""
        self.wait_compiled()
        bos = self.tokenizer.bos_token_id or 0
        prompt = [bos] * 2
        for _ in range(2):  # the second call appends to the cache: it goes through the chunked prefill
            self.greedy(prompt, steps)
            prompt = [*self.cache_ids, *([bos] * (self.prefill_chunks[-1] // 2 + 1))]
        self.reset()

    # --- the loop ----------------------------------------------------------------------------------------

    def budget(
        self, ids: Sequence[int], max_new_tokens: int, temperature: float, seed: int | None
    ) -> tuple[int, torch.Generator | None]:
        """How many tokens may follow ``ids`` in the cache, and the sampling generator (None when greedy).

        Shared by the plain loop and speculative decoding, so both refuse a full context the same way.
        """
        if len(ids) >= self.max_cache_len:
            raise ContextTooLong(
                f"the prompt has {len(ids)} tokens but the context holds {self.max_cache_len}: {self.limit_why}. "
                "Or start a new session, or shorten the conversation",
                backend="transformers",
            )
        generator: torch.Generator | None = None
        if temperature > 0:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(seed if seed is not None else secrets.randbits(63))
        return min(max_new_tokens, self.max_cache_len - len(ids)), generator

    def greedy(self, ids: Sequence[int], max_new_tokens: int) -> GenerationResult:
        """``max_new_tokens`` greedy tokens after ``ids``, no stop and no text callback (warm-up, checks)."""
        return self.generate(ids, max_new_tokens=max_new_tokens, **greedy_options())

    def begin(self, ids: Sequence[int]) -> int:
        """Start a request (caller holds ``lock``, in inference mode): swap the compiled step in, reuse the cache.

        Returns how many prompt tokens the cache already holds. Only here, between requests, does the step
        change: a generation never switches midway. Shared by ``generate`` and speculative decoding.
        """
        self._released = False
        self._swap_in()
        return self.prepare(ids)

    def generate(
        self,
        ids: Sequence[int],
        *,
        max_new_tokens: int,
        stop_ids: frozenset[int],
        temperature: float,
        top_p: float,
        top_k: int,
        seed: int | None,
        on_text: Callable[[str], None],
        cancel: threading.Event,
        stop_texts: Sequence[str] = (),
        logits_processors: Sequence[LogitsProcessor] = (),
        id_to_stop: Callable[[int], str | None] = lambda _i: None,
    ) -> GenerationResult:
        """Generate after ``ids``, calling ``on_text`` with each text delta; stop on a stop id or text."""
        max_new_tokens, generator = self.budget(ids, max_new_tokens, temperature, seed)
        with self.lock, torch.inference_mode():
            cached = self.begin(ids)
            logits = self._prefill(ids[cached:])
            out = TokenOutput(
                self.tokenizer,
                on_text,
                stop_ids=stop_ids,
                stop_texts=stop_texts,
                id_to_stop=id_to_stop,
                max_new_tokens=max_new_tokens,
                cancel=cancel,
            )
            all_ids = list(ids)
            while out.n < max_new_tokens and not cancel.is_set():
                logits = apply_processors(logits_processors, all_ids, logits)
                token = sample_next(logits, temperature=temperature, top_p=top_p, top_k=top_k, generator=generator)
                token_id = int(token.item())
                all_ids.append(token_id)
                out.push(token_id)
                if out.stop is not None or out.n >= max_new_tokens:
                    break
                logits = self._decode_step(token, token_id)
            out.finish()
        return out.result(ids, all_ids, cached)


def _final_norm(model: Any) -> Any:
    """The text decoder's final norm: its output is the last hidden state (causal LM or multimodal model)."""
    decoder = model.get_decoder()
    norm = getattr(decoder, "norm", None) or getattr(getattr(decoder, "language_model", None), "norm", None)
    if norm is None:
        raise TypeError(f"{type(model).__name__} has no final norm to read its last hidden state from")
    return norm


def _view_layer_class(base: type) -> type:
    """A static cache layer that shows attention only its first ``view_len`` positions (set by the engine)."""
    global _VIEW_LAYER
    if _VIEW_LAYER is None:

        class ViewStaticLayer(base):  # type: ignore[misc]
            view_len: int = 0

            def lazy_initialization(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> None:
                # The base marks the storage a static address, which makes dynamo specialize compiled code on
                # its size; the engine captures its own graphs and compiles against a smaller scratch cache.
                mark = torch._dynamo.mark_static_address
                torch._dynamo.mark_static_address = lambda *_a, **_k: None
                try:
                    super().lazy_initialization(key_states, value_states, *args, **kwargs)
                finally:
                    torch._dynamo.mark_static_address = mark

            def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
                keys, values = super().update(key_states, value_states, *args, **kwargs)
                n = self.view_len or self.max_cache_len
                return keys[:, :, :n], values[:, :, :n]

            def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
                return self.view_len or self.max_cache_len, 0

        _VIEW_LAYER = ViewStaticLayer
    return _VIEW_LAYER


_VIEW_LAYER: type | None = None
