"""Agent steps on a conversation with an image (and a sound clip), in process: KV reuse against a full re-prefill.

One conversation: a user message with a picture, a clip and a question, then answers and follow-ups, one
step each, as an agent's turn grows. Every step is timed twice, side by side in the same rounds: with the cache
kept (the picture and the clip were encoded and prefilled on step 1; later steps prefill only their new tokens)
and with the cache dropped before the step (towers and prefill run again over the whole conversation). Printed:
median ms per step of each, their ratio, how many tokens each prefilled, and how often the vision and audio
towers ran.

By default the model is the tiny random-weight one of the tests (agentkit.testing.tiny_model), built in a temp
dir, so the figures show the engine's own overhead; ``--model`` takes a real multimodal checkpoint (a Hub id or
directory, e.g. google/gemma-4-E2B-it) and ``--device`` where to run it.

Run: ``python tools/bench/transformers_media.py [--model DIR] [--device cpu|cuda] [--steps 6] [--rounds 5]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from agentkit.testing.samples import png, wav


async def _step(backend: Any, messages: list[dict[str, Any]], max_tokens: int) -> tuple[float, Any]:
    from agentkit.backends.base import GenerationDone, GenerationRequest, SamplingParams
    from agentkit.gemma4.render import render

    request = GenerationRequest(
        prompt=render(messages), messages=messages, sampling=SamplingParams(temperature=0.0, max_tokens=max_tokens)
    )
    start = time.perf_counter()
    done = None
    async for event in backend.stream(request):
        if isinstance(event, GenerationDone):
            done = event
    return time.perf_counter() - start, done


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a multimodal Gemma 4 checkpoint (default: the tiny test model)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--steps", type=int, default=6, help="steps after the first (default 6)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=8)
    args = parser.parse_args()

    import torch

    from agentkit.backends.transformers import TransformersBackend

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            from agentkit.testing.tiny_model import build_tiny_gemma4_multimodal

            model = str(build_tiny_gemma4_multimodal(Path(tmp) / "tiny"))
        backend = TransformersBackend(model, device=args.device)
        towers = {"vision": 0, "audio": 0}
        inner = backend._model.model
        inner.vision_tower.register_forward_hook(lambda *_: towers.__setitem__("vision", towers["vision"] + 1))
        has_audio = inner.audio_tower is not None
        if has_audio:
            inner.audio_tower.register_forward_hook(lambda *_: towers.__setitem__("audio", towers["audio"] + 1))
        parts: list[dict[str, Any]] = [{"type": "image", "image": png(320, 240, (200, 120, 10))}]
        if has_audio:
            parts.append({"type": "audio", "audio": wav(2.0, 16000)})
        parts.append({"type": "text", "text": "What do you see and hear? Answer briefly."})
        conversation: list[list[dict[str, Any]]] = [[{"role": "user", "content": parts}]]
        for i in range(args.steps):
            conversation.append(
                [
                    *conversation[-1],
                    {"role": "assistant", "content": f"Answer number {i}: an orange picture and a tone."},
                    {"role": "user", "content": f"Follow-up {i}: and what else is there?"},
                ]
            )
        times: dict[str, list[float]] = {"reuse": [], "no reuse": []}
        prefilled: dict[str, list[int]] = {"reuse": [], "no reuse": []}
        runs: dict[str, dict[str, int]] = {"reuse": {"vision": 0, "audio": 0}, "no reuse": {"vision": 0, "audio": 0}}
        await _step(backend, conversation[0], args.max_tokens)  # warm-up: first-call costs out of the figures
        for _ in range(args.rounds):
            for mode in ("reuse", "no reuse"):
                backend.reset_cache()
                await _step(backend, conversation[0], args.max_tokens)  # step 1: encodes the media in both modes
                for messages in conversation[1:]:
                    if mode == "no reuse":
                        backend.reset_cache()
                    before = dict(towers)
                    elapsed, done = await _step(backend, messages, args.max_tokens)
                    times[mode].append(elapsed)
                    prefilled[mode].append(done.usage.prompt_tokens - done.usage.cached_tokens)
                    for tower in towers:
                        runs[mode][tower] += towers[tower] - before[tower]
        await backend.aclose()
    device = backend._device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"model: {args.model or 'tiny random-weight Gemma 4 (vision + audio)'} on {name}")
    print(f"{args.steps} steps after the first, {args.rounds} rounds, {args.max_tokens} new tokens a step")
    for mode in ("reuse", "no reuse"):
        ms = statistics.median(times[mode]) * 1000
        tokens = statistics.median(prefilled[mode])
        print(
            f"  {mode:>8}: {ms:8.1f} ms/step (median), {tokens:6.0f} tokens prefilled/step, "
            f"towers ran vision {runs[mode]['vision']}x audio {runs[mode]['audio']}x"
        )
    ratio = statistics.median(times["no reuse"]) / statistics.median(times["reuse"])
    print(f"  no reuse / reuse: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
