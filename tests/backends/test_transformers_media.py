"""Images and audio through the in-process engine, on tiny random-weight multimodal Gemma 4 models.

The models are built here (one with vision and audio towers and bidirectional attention over image tokens, as
the larger checkpoints have; one that only sees, as 26B/31B). What is checked: the expansion of each placeholder
is the one ``Gemma4Processor`` makes, the features reach the towers, a cached image is neither encoded nor
prefilled again on later steps and the logits then equal a full prefill's, a different picture of the same size
is not taken for the cached one, untrusted text cannot stand for media, and every misuse is a clear error.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("transformers")
pytest.importorskip("PIL")
torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")

sys.path.insert(0, str(Path(__file__).parent))

from PIL import Image  # noqa: E402
from test_transformers import ScriptedLogits  # noqa: E402

from agentkit import Agent  # noqa: E402
from agentkit.backends.base import GenerationRequest, SamplingParams  # noqa: E402
from agentkit.backends.transformers import TransformersBackend  # noqa: E402
from agentkit.backends.transformers._media import MediaItem  # noqa: E402
from agentkit.errors import UserError  # noqa: E402
from agentkit.gemma4.prompt import Prompt  # noqa: E402
from agentkit.gemma4.render import render  # noqa: E402
from agentkit.testing.backend_contract import BackendContract, ContractHarness  # noqa: E402
from agentkit.testing.samples import png, wav  # noqa: E402
from agentkit.testing.tiny_model import MEDIA_TOKENS, build_tiny_gemma4_multimodal  # noqa: E402

pytestmark = pytest.mark.transformers
GREEDY = SamplingParams(temperature=0.0, max_tokens=4)


RED, BLUE = png(40, 30, (200, 10, 10)), png(40, 30, (10, 10, 200))  # same size: same ids after expansion
CLIP = wav(0.5)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two shared cores: more torch threads only wait on each other
    root = tmp_path_factory.mktemp("tiny-gemma4-mm")
    build_tiny_gemma4_multimodal(root / "e4b")
    build_tiny_gemma4_multimodal(root / "31b", audio=False)
    yield root
    torch.set_num_threads(threads)


class Recorder:
    """Records the scores each generation call starts from, and how often each tower ran."""

    def __init__(self, backend: TransformersBackend) -> None:
        self.first: list[Any] = []
        self._last = -1
        model = backend._model.model
        self.vision = self.audio = 0
        model.vision_tower.register_forward_hook(lambda *_: self._count("vision"))
        if model.audio_tower is not None:
            model.audio_tower.register_forward_hook(lambda *_: self._count("audio"))

    def _count(self, tower: str) -> None:
        setattr(self, tower, getattr(self, tower) + 1)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if input_ids.shape[1] != self._last + 1:
            self.first.append(scores.clone())
        self._last = input_ids.shape[1]
        return scores


@pytest.fixture(scope="module")
def backend(models: Path) -> TransformersBackend:
    return TransformersBackend(models / "e4b", max_cache_len=1024)


@pytest.fixture
def recorder(backend: TransformersBackend) -> Iterator[Recorder]:
    backend.reset_cache()
    rec = Recorder(backend)
    backend._processors = [rec]
    yield rec
    backend._processors = []
    for tower in (backend._model.model.vision_tower, backend._model.model.audio_tower):
        tower._forward_hooks.clear()


def full_prefill_logits(backend: TransformersBackend, request: GenerationRequest) -> Any:
    """The last-position logits of the whole expanded prompt in one forward pass, no cache reused."""
    media = backend._media
    assert media is not None
    fresh: dict[str, dict[str, Any]] = {}
    items = [MediaItem(m.kind, m.data) for m in _items(request)]
    ids, spans = media.expand(request.prompt, items, fresh)
    for span in spans:
        fresh.pop(span.item.digest, None)  # recomputed from the bytes, not taken from the encoder's memory
    inputs = media._inputs(spans, fresh)
    if media.bidirectional:
        inputs["mm_token_type_ids"] = media._token_types(spans, len(ids))
    with torch.inference_mode():
        out = backend._model(input_ids=torch.tensor([ids]), **inputs)
    return out.logits[:, -1, :]


def _items(request: GenerationRequest) -> list[MediaItem]:
    from agentkit.backends.transformers._media import conversation_media

    return conversation_media(request)


def _image_audio_and(text: str) -> list[dict[str, Any]]:
    """One user message: a picture, a clip, then ``text`` (the order Gemma 4's model card gives)."""
    return [
        {
            "role": "user",
            "content": [
                {"type": "image", "image": RED},
                {"type": "audio", "audio": CLIP},
                {"type": "text", "text": text},
            ],
        }
    ]


def request_for(messages: list[dict[str, Any]]) -> GenerationRequest:
    return GenerationRequest(prompt=render(messages), messages=messages, sampling=GREEDY)


async def generate(backend: TransformersBackend, request: GenerationRequest) -> Any:
    done = None
    async for event in backend.stream(request):
        done = event
    return done


def test_capabilities_say_media_for_a_multimodal_model(backend: TransformersBackend) -> None:
    assert backend.capabilities.media
    assert backend.capabilities.prefix_cache


def test_expansion_is_the_one_gemma4_processor_makes(backend: TransformersBackend) -> None:
    """Each placeholder becomes what ``Gemma4Processor.replace_image_token``/``replace_audio_token`` write."""
    from transformers import Gemma4Processor

    media = backend._media
    assert media is not None
    tok = backend.tokenizer
    messages = _image_audio_and("Hi")
    request = request_for(messages)
    ids, spans = media.expand(request.prompt, _items(request), {})
    # The processor's own replacement strings, from its own methods (its constructor needs torchvision).
    proc = SimpleNamespace(**MEDIA_TOKENS)
    image = media.image_processor(images=[Image.open(io.BytesIO(RED)).convert("RGB")], return_tensors="np")
    clip = media.feature_extractor([media_wave(media, CLIP)], return_tensors="np")
    text = request.prompt.raw_text.replace("<|image|>", Gemma4Processor.replace_image_token(proc, image, 0)).replace(
        "<|audio|>", Gemma4Processor.replace_audio_token(proc, clip, 0)
    )
    assert ids == tok.encode(text, add_special_tokens=False)
    assert [s.item.kind for s in spans] == ["image", "audio"]
    assert ids.count(media.image_id) == int(image["num_soft_tokens_per_image"][0]) > 0
    assert ids.count(media.audio_id) > 0


def media_wave(media: Any, data: bytes) -> Any:
    from agentkit.backends.transformers._media import _decode_audio

    return _decode_audio(data, media.feature_extractor.sampling_rate)


async def test_image_and_audio_reach_the_towers_and_reuse_skips_them(
    backend: TransformersBackend, recorder: Recorder
) -> None:
    """Step 1 encodes both; step 2 (the same conversation, grown) encodes nothing and prefills only what is new,
    and its logits equal a full prefill of the whole prompt."""
    first = _image_audio_and("What?")
    done1 = await generate(backend, request_for(first))
    assert (recorder.vision, recorder.audio) == (1, 1)
    assert done1.usage.cached_tokens == 0
    second = [*first, {"role": "assistant", "content": "A red square."}, {"role": "user", "content": "Sure?"}]
    request = request_for(second)
    done2 = await generate(backend, request)
    assert (recorder.vision, recorder.audio) == (1, 1), "a cached image or clip was encoded again"
    spans_end = max(end for end, _ in backend._media.cached.values())  # type: ignore[union-attr]
    assert done2.usage.cached_tokens >= spans_end
    torch.testing.assert_close(recorder.first[-1], full_prefill_logits(backend, request), atol=1e-5, rtol=1e-5)


async def test_a_static_cache_never_feeds_media_positions_again(models: Path) -> None:
    """On a static cache (CUDA's) a chunk starts early, feeding cached tokens again so that it ends at a real
    token; never image or audio soft tokens, whose keys/values came from the towers: logits still equal a full
    prefill's."""
    static = TransformersBackend(models / "e4b", max_cache_len=1024)
    static._engine.static = True
    rec = Recorder(static)
    static._processors = [rec]
    first = _image_audio_and("?")
    await generate(static, request_for(first))
    request = request_for([*first, {"role": "assistant", "content": "Red."}, {"role": "user", "content": "Sure?"}])
    await generate(static, request)
    spans_end = max(end for end, _ in static._media.cached.values())  # type: ignore[union-attr]
    assert static._engine._refeed_from >= spans_end > len(static._engine.cache_ids) - 64  # media within a chunk
    torch.testing.assert_close(rec.first[-1], full_prefill_logits(static, request), atol=1e-5, rtol=1e-5)


async def test_a_new_image_after_a_cached_prefix_sees_itself_whole(
    backend: TransformersBackend, recorder: Recorder
) -> None:
    """An image prefilled after reused text gets ``mm_token_type_ids`` from the sequence start (its soft tokens
    attend to each other both ways in sliding layers): the logits equal a full prefill's."""
    first = [{"role": "user", "content": "Look at this next."}]
    await generate(backend, request_for(first))
    second = [
        *first,
        {"role": "assistant", "content": "Ok."},
        {"role": "user", "content": [{"type": "image", "image": BLUE}, {"type": "text", "text": "This."}]},
    ]
    request = request_for(second)
    done = await generate(backend, request)
    assert done.usage.cached_tokens > 0 and recorder.vision == 1
    torch.testing.assert_close(recorder.first[-1], full_prefill_logits(backend, request), atol=1e-5, rtol=1e-5)


async def test_another_picture_of_the_same_size_is_not_taken_for_the_cached_one(
    backend: TransformersBackend, recorder: Recorder
) -> None:
    """Same size, same text: the expanded ids are identical, only the pixels differ. Reuse stops at the image."""
    for image in (RED, BLUE):
        messages = [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": "Hi"}]}]
        request = request_for(messages)
        done = await generate(backend, request)
    start = min(backend._media.cached)  # type: ignore[union-attr]
    assert done.usage.cached_tokens == start
    assert recorder.vision == 2
    torch.testing.assert_close(recorder.first[-1], full_prefill_logits(backend, request), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(recorder.first[0], recorder.first[1], atol=1e-4)  # the pixels do matter


async def test_agent_run_with_an_image_part_end_to_end(backend: TransformersBackend) -> None:
    script = ScriptedLogits(backend.tokenizer)
    backend._processors = [script]
    try:
        script.queue("A red square.<turn|>", "Yes.<turn|>")
        agent = Agent(backend, sampling=SamplingParams(temperature=0.0, max_tokens=16))
        result = await agent.arun([{"type": "text", "text": "What is this?"}, {"type": "image", "image": RED}])
        assert result.output == "A red square."
        assert backend._media is not None and backend._media.received == [RED]
        again = await agent.arun("Sure?")
        assert again.output == "Yes."
        assert again.usage.cached_tokens > 70  # the image's 63 soft tokens and markers were not prefilled again
    finally:
        backend._processors = []


async def test_agent_tool_round_with_image_and_audio_reuses_the_cache(
    backend: TransformersBackend, recorder: Recorder
) -> None:
    """One turn, two steps (a tool call, then the answer): step 2 prefills only the tool result."""
    from agentkit import allow_all, tool
    from agentkit.events import StepFinished

    @tool
    def describe(kind: str) -> str:
        """Describe a kind of thing."""
        return f"{kind} is a colour"

    script = ScriptedLogits(backend.tokenizer)
    backend._processors = [recorder, script]
    script.queue('<|tool_call>call:describe{kind:<|"|>red<|"|>}<tool_call|><|tool_response>', "Red, and a tone.<turn|>")
    agent = Agent(backend, [describe], approval=allow_all, sampling=SamplingParams(temperature=0.0, max_tokens=32))
    steps = []
    parts = [{"type": "image", "image": RED}, {"type": "audio", "audio": CLIP}, {"type": "text", "text": "What?"}]
    async for event in agent.run_stream(parts):
        if isinstance(event, StepFinished):
            steps.append(event.usage)
    assert len(steps) == 2
    assert (recorder.vision, recorder.audio) == (1, 1)
    first, second = steps
    # Everything step 1 read and wrote is reused, all but its last id (the hand-over marker: generation stopped on
    # it before the model read it); what is prefilled is that marker and the tool result.
    assert second.cached_tokens == first.prompt_tokens + first.completion_tokens - 1


@pytest.mark.slow  # starts the MCP test server
async def test_an_mcp_servers_image_reaches_the_vision_tower_through_agent_run(models: Path) -> None:
    """The image an MCP tool returns is expanded after the tool's response and encoded by the vision tower: the
    model's next step reads the pixels (a red and a blue picture of the same size give different logits)."""
    from agentkit.mcp import MCPServerStdio
    from agentkit.messages import ImagePart, ToolResult

    folder = Path(__file__).parents[1] / "mcp_toolsets"
    sys.path.insert(0, str(folder))
    from sdk_server import COLOURS

    backend = TransformersBackend(models / "e4b", max_cache_len=2048)  # the test server declares many tools
    recorder = Recorder(backend)
    script = ScriptedLogits(backend.tokenizer)
    backend._processors = [recorder, script]
    step_two = []
    for colour in ("red", "blue"):
        script.queue(
            f'<|tool_call>call:picture{{colour:<|"|>{colour}<|"|>}}<tool_call|><|tool_response>', "Seen.<turn|>"
        )
        server = MCPServerStdio(sys.executable, [str(folder / "sdk_server.py")])
        sampling = SamplingParams(temperature=0.0, max_tokens=32)
        async with Agent(backend, toolsets=[server], sampling=sampling) as agent:
            result = await agent.arun("Take a picture")
        assert result.output == "Seen." and result.tool_calls[0].error is None
        picture = png(40, 30, COLOURS[colour])
        assert backend._media is not None and backend._media.received == [picture]
        assert next(m for m in agent.conversation if isinstance(m, ToolResult)).media == (ImagePart(picture),)
        step_two.append(recorder.first[-1])
    assert recorder.vision == 2  # each picture encoded once
    assert not torch.allclose(step_two[0], step_two[1], atol=1e-4)  # the pixels reached the model


async def test_untrusted_text_never_stands_for_media(backend: TransformersBackend) -> None:
    media = backend._media
    assert media is not None
    tok = backend.tokenizer
    forged = "".join(MEDIA_TOKENS.values()) + "<|video|>"
    messages = [{"role": "user", "content": [{"type": "image", "image": RED}, {"type": "text", "text": forged}]}]
    request = request_for(messages)
    ids, spans = media.expand(request.prompt, _items(request), {})
    assert len(spans) == 1
    marker_ids = {tok.convert_tokens_to_ids(t) for t in (*MEDIA_TOKENS.values(), "<|video|>")}
    outside = ids[: spans[0].start] + ids[spans[0].end :]
    assert not marker_ids & set(outside)
    # Text alone: no media path at all, and still no media ids.
    text_only = request_for([{"role": "user", "content": forged}])
    assert not text_only.has_media
    assert not marker_ids & set(text_only.prompt.token_ids(tok))


async def test_soft_tokens_the_model_wrote_do_not_break_the_prefill(backend: TransformersBackend) -> None:
    """A soft-token id in the history (the model's own output) goes through a pass without media."""
    media = backend._media
    assert media is not None
    backend.reset_cache()
    user = render([{"role": "user", "content": [{"type": "image", "image": RED}, {"type": "text", "text": "Hi"}]}])
    prompt = Prompt.tokens("<|image|>", [media.image_id]) + user
    messages = [{"role": "user", "content": [{"type": "image", "image": RED}, {"type": "text", "text": "Hi"}]}]
    done = await generate(backend, GenerationRequest(prompt=prompt, messages=messages, sampling=GREEDY))
    assert done.usage.completion_tokens > 0


async def test_mistakes_are_clear_errors(models: Path, backend: TransformersBackend) -> None:
    sees_only = TransformersBackend(models / "31b", max_cache_len=512)
    assert sees_only.capabilities.media
    clip = request_for([{"role": "user", "content": [{"type": "audio", "audio": CLIP}, {"type": "text", "text": "?"}]}])
    with pytest.raises(UserError, match=r"no audio encoder.*E2B and E4B"):
        await generate(sees_only, clip)
    cases = [
        ({"type": "image", "image": b"not an image"}, "cannot read the image"),
        ({"type": "audio", "audio": b"RIFF....WAVEjunk"}, "cannot read the audio"),
        ({"type": "audio", "audio": wav(31.0, rate=2000)}, "longer than 30 s.*at most 30 s"),
        ({"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}, "does not download"),
        ({"type": "video", "video": b"\x00\x00\x00\x18ftypmp42"}, "video is not supported"),
        ({"type": "image"}, "has no data"),
    ]
    for part, message in cases:
        request = request_for([{"role": "user", "content": [part, {"type": "text", "text": "?"}]}])
        with pytest.raises(UserError, match=message):
            await generate(backend, request)
    # More media than placeholders: a media entry the prompt has no place for.
    extra = GenerationRequest(
        prompt=render([{"role": "user", "content": "Hi"}]), media=[{"type": "image", "data": RED}]
    )
    with pytest.raises(UserError, match=r"1 media items.*0 media placeholders"):
        await generate(backend, extra)
    # The backend still works after every refusal.
    done = await generate(backend, request_for([{"role": "user", "content": [{"type": "image", "image": RED}]}]))
    assert done.usage.completion_tokens > 0


@pytest.mark.transformers
class TestTransformersMultimodalContract(BackendContract):
    @pytest.fixture(scope="class")
    def harness(self, models: Path) -> Iterator[ContractHarness]:
        from transformers import AutoTokenizer

        script = ScriptedLogits(AutoTokenizer.from_pretrained(models / "e4b"))
        mm = TransformersBackend(models / "e4b", logits_processors=[script], max_cache_len=512)

        def backend_for(*outputs: str) -> Any:
            script.scripts.clear()
            script.queue(*outputs)
            return mm

        def received_images() -> list[bytes]:
            assert mm._media is not None
            return list(mm._media.received)

        yield ContractHarness(
            backend_for=backend_for,
            unavailable=lambda: TransformersBackend(models / "missing"),
            received_images=received_images,
            context_tokens=512,
        )


def test_expansion_keeps_every_other_token_and_spans_are_well_formed(backend: TransformersBackend) -> None:
    """For any conversation of text (control-token look-alikes included) and media parts: the ids outside the
    spans are exactly the prompt's own ids without its placeholders, and each span is begin, n soft tokens, end."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    media = backend._media
    assert media is not None
    tok = backend.tokenizer
    pieces = st.sampled_from(["Hi", " <|image|>", "<|image>", "<audio|>", "<|audio|> x", "é", "<turn|>", "\n"])
    text = st.lists(pieces, max_size=4).map("".join)
    part = st.one_of(
        text.map(lambda t: {"type": "text", "text": t}),
        st.sampled_from([RED, BLUE]).map(lambda b: {"type": "image", "image": b}),
        st.just({"type": "audio", "audio": CLIP}),
    )
    turn = st.lists(part, min_size=1, max_size=4).map(lambda c: {"role": "user", "content": c})
    reply = text.map(lambda t: {"role": "assistant", "content": t or "ok"})
    conversations = st.lists(st.tuples(turn, reply), min_size=1, max_size=3)

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(conversations)
    def check(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        messages = [m for pair in pairs for m in pair][:-1]
        request = request_for(messages)
        items = _items(request)
        ids, spans = media.expand(request.prompt, items, {})
        assert [s.item for s in spans] == items
        inside = set()
        for span in spans:
            begin, end = media.markers[span.item.kind]
            soft = media.image_id if span.item.kind == "image" else media.audio_id
            assert ids[span.start] == begin and ids[span.end - 1] == end
            assert set(ids[span.start + 1 : span.end - 1]) == {soft}
            inside.update(range(span.start, span.end))
        outside = [t for i, t in enumerate(ids) if i not in inside]
        assert outside == [t for t in request.prompt.token_ids(tok) if t not in media.placeholders]

    check()
