"""Images and audio for the in-process engine: placeholders expanded, features computed, KV cache kept.

agentkit's prompt carries one ``<|image|>`` / ``<|audio|>`` per media part (a user's, or one a tool
returned), in a trusted segment, so untrusted text can never stand for media. Gemma 4 reads an image as
``<|image>`` + N soft tokens + ``<image|>`` (audio: ``<|audio>`` … ``<audio|>``), N decided by the image
processor (the resized patch grid) or by the audio feature extractor (the mel frames after the audio tower's
two stride-2 convolutions), exactly as ``Gemma4Processor`` expands them. The processor class itself is not
used: it builds a video processor that needs torchvision, which a CPU-only torch cannot have, so the image
processor and the feature extractor are loaded on their own (from the checkpoint's ``processor_config.json``)
and the expansion is done here, token by token, only for placeholders of trusted segments; the model's own
ids pass through untouched.

KV reuse: the engine reuses the longest common prefix of token ids. Two pictures of the same size expand to the
same ids, so ids alone cannot tell whether the cache holds *this* picture: every span the cache holds is
recorded with its content's digest, and reuse stops at the first span that differs. A span the cache holds is
never encoded or prefilled again; the features of a new one are computed once, on the step that prefills it,
and all new spans go through the model in one forward pass (with ``mm_token_type_ids`` from the start of the
sequence, which the bidirectional attention over image tokens of the larger models needs).
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import math
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentkit.errors import ContextTooLong, UserError
from agentkit.gemma4.encode import encode_trusted, encode_untrusted
from agentkit.gemma4.prompt import Prompt
from agentkit.gemma4.tokens import AUDIO, IMAGE, VIDEO
from agentkit.messages import (
    MEDIA_PART_TYPES,
    AudioPart,
    ImagePart,
    TextPart,
    ToolResult,
    UserMessage,
    VideoPart,
    is_remote,
    media_bytes,
    media_part,
    media_type,
)

from ..base import GenerationRequest

__all__ = ["MediaEncoder", "MediaItem", "conversation_media"]

_AUDIO_MIMES = {"audio/wav", "audio/mpeg", "audio/flac", "audio/ogg"}
_MAX_COUNTS = 1024  # soft-token counts remembered by digest (a few bytes each)
# Media come from tools, MCP servers and web pages, and a few kilobytes of PNG or FLAC can claim gigabytes once
# decoded (a 20,000 x 8,000 picture of one colour, hours of silence). The picture's size is read from its header
# and refused before any pixel is decoded; audio is decoded in blocks and stops at the clip limit. 64 megapixels
# keeps every camera photo (50 MP phones); the image processor shrinks each picture to a few hundred soft tokens.
MAX_IMAGE_PIXELS = 64_000_000
# The formats a picture is opened as. Pillow knows dozens more, and opens by content whatever the caller
# meant: EPS/PS data is rendered by running Ghostscript on it, and formats like PSD, TGA or FLI are rarely used
# parsers with a history of memory-safety bugs. Media from a tool or an MCP server get the common formats only
# (Pillow's JPEG opener also reads phone pictures with several frames, MPO).
_IMAGE_FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP")
_MAX_AUDIO_CHANNELS = 16
_MAX_AUDIO_RATE = 384_000
_AUDIO_BLOCK = 65_536  # frames decoded at a time


@dataclass(frozen=True, slots=True)
class MediaItem:
    """One picture or clip of the conversation: its kind, its bytes and a digest of both."""

    kind: str  # "image", "audio" or "video"
    data: bytes
    digest: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", hashlib.sha256(self.kind.encode() + b"\0" + self.data).hexdigest())


def conversation_media(request: GenerationRequest) -> list[MediaItem]:
    """The media of ``request`` in prompt order: the one place that reads media off a request.

    The renderer writes a placeholder for each media part of a *user* message and for each image/audio a tool
    returned (after that tool's response; system messages carry text only), so those are read here, in
    conversation order. A request whose messages carry no media (a hand-built prompt) takes ``request.media``
    as it is.
    """
    items: list[MediaItem] = []
    for message in request.conversation:
        if isinstance(message, ToolResult):
            parts: tuple[Any, ...] = message.media
        elif isinstance(message, UserMessage) and not isinstance(message.content, str):
            parts = message.content
        else:
            continue
        for part in parts:
            if not isinstance(part, TextPart):
                items.append(MediaItem(part.type, _data(part)))
    if not items:
        for entry in request.media:
            typed = media_part(entry, "image")
            data = _data(typed)
            named = isinstance(entry, Mapping) and entry.get("type") in MEDIA_PART_TYPES
            kind = typed.type if named else ("audio" if media_type(data) in _AUDIO_MIMES else "image")
            items.append(MediaItem(kind, data))
    return items


def _data(part: ImagePart | AudioPart | VideoPart) -> bytes:
    if is_remote(part):
        raise UserError(
            f"the in-process engine does not download media ({(part.url or '')[:60]}): fetch the file and pass its "
            "bytes or a pathlib.Path"
        )
    return media_bytes(part)


@dataclass(frozen=True, slots=True)
class _Span:
    """Where one media item sits in the expanded ids: ``[start, end)``, its begin and end markers included."""

    start: int
    end: int
    item: MediaItem


class MediaEncoder:
    """A multimodal model's media path: expansion, features, and which media spans the engine's cache holds."""

    def __init__(self, model: Any, tokenizer: Any, image_processor: Any, feature_extractor: Any, max_audio: int):
        config = model.config
        self.model = model
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.feature_extractor = feature_extractor
        self.max_audio_tokens = max_audio
        self.audio = getattr(config, "audio_config", None) is not None and feature_extractor is not None
        self.bidirectional = getattr(config.get_text_config(), "use_bidirectional_attention", None) == "vision"
        self.image_id = int(config.image_token_id)
        self.audio_id = int(config.audio_token_id)
        eoa = getattr(config, "eoa_token_id", None)
        self.markers = {
            "image": (int(config.boi_token_id), int(config.eoi_token_id)),
            "audio": (int(config.boa_token_id), int(eoa if eoa is not None else config.eoa_token_index)),
        }
        ids = tokenizer.convert_tokens_to_ids
        self.placeholders = {ids(IMAGE): "image", ids(AUDIO): "audio", ids(VIDEO): "video"}
        self.soft_ids = frozenset({self.image_id, self.audio_id, int(getattr(config, "video_token_id", -1))})
        self.cached: dict[int, tuple[int, str]] = {}  # span start -> (end, digest) of what the engine's cache holds
        self.received: list[bytes] = []  # the media of the last request, for diagnostics and the contract tests
        self._counts: OrderedDict[str, int] = OrderedDict()

    # --- loading ---------------------------------------------------------------------------------------------

    @classmethod
    def load(cls, hf: Any, model: Any, tokenizer: Any, source: str | None) -> MediaEncoder | None:
        """The encoder for ``model`` if it has a vision tower and its processors load from ``source``; else None."""
        config = model.config
        if getattr(config, "vision_config", None) is None or source is None:
            return None
        try:
            image_processor = hf.AutoImageProcessor.from_pretrained(source)
        except (OSError, ValueError):
            return None  # a checkpoint without its processor files reads text only
        feature_extractor = None
        if getattr(config, "audio_config", None) is not None:
            try:
                feature_extractor = hf.AutoFeatureExtractor.from_pretrained(source)
            except (OSError, ValueError):
                feature_extractor = None
        max_audio = 750  # Gemma4Processor's audio_seq_length default: 30 s at 40 ms a token
        settings = Path(source) / "processor_config.json"
        if settings.is_file():
            max_audio = int(json.loads(settings.read_text(encoding="utf-8")).get("audio_seq_length", max_audio))
        return cls(model, tokenizer, image_processor, feature_extractor, max_audio)

    @classmethod
    def from_processor(cls, model: Any, tokenizer: Any, processor: Any) -> MediaEncoder | None:
        """The encoder for an already loaded model, from a ``Gemma4Processor`` (or anything with its parts)."""
        if getattr(model.config, "vision_config", None) is None or processor is None:
            return None
        image_processor = getattr(processor, "image_processor", processor)
        feature_extractor = getattr(processor, "feature_extractor", None)
        return cls(
            model, tokenizer, image_processor, feature_extractor, int(getattr(processor, "audio_seq_length", 750))
        )

    # --- a request -------------------------------------------------------------------------------------------

    def prefill(self, engine: Any, request: GenerationRequest) -> tuple[list[int], int]:
        """Expand the prompt, reuse what the cache holds, prefill the rest but the last token; (ids, reused).

        Runs on the engine's worker thread. The last token is left for ``engine.generate``, whose logits choose
        the first new token; it is never a soft token (the expansion ends every span with its end marker).
        """
        items = conversation_media(request)
        self.received = [item.data for item in items]
        fresh: dict[str, dict[str, Any]] = {}  # features computed for this request, by digest
        ids, spans = self.expand(request.prompt, items, fresh)
        if len(ids) >= engine.max_cache_len:
            raise ContextTooLong(
                f"the prompt has {len(ids)} tokens, its media included, but the context holds {engine.max_cache_len}: "
                f"{engine.limit_why}. Or send smaller or fewer media, or start a new session",
                backend="transformers",
            )
        common = engine.prepare(ids)
        for span in spans:
            if span.start >= common:
                break
            if (
                span.end <= common
                and self.cached.get(span.start) == (span.end, span.item.digest)
                and engine.cache_ids[span.start : span.end] == ids[span.start : span.end]
            ):
                continue
            common = span.start  # the cache holds other media (or part of this one) here
            break
        engine._truncate(common)
        self.forget_after(common)
        last = len(ids) - 1
        todo = [s for s in spans if s.start >= common]
        for start, end, inside in self._pieces(ids, common, last, todo):
            inputs = self._inputs(inside, fresh)
            if inside and self.bidirectional:
                inputs["mm_token_type_ids"] = self._token_types(spans, end)
            engine._forward(ids[start:end], **inputs)
        for span in todo:
            self.cached[span.start] = (span.end, span.item.digest)
        return ids, common

    def forget_after(self, length: int) -> None:
        """The cache was cut to ``length`` tokens: spans that reach past it are gone."""
        self.cached = {s: v for s, v in self.cached.items() if v[0] <= length}

    def expand(
        self, prompt: Prompt, items: Sequence[MediaItem], fresh: dict[str, dict[str, Any]]
    ) -> tuple[list[int], list[_Span]]:
        """The prompt's token ids with every placeholder of a trusted segment expanded to its item's soft tokens."""
        ids: list[int] = []
        spans: list[_Span] = []
        pending: Iterator[MediaItem] = iter(items)
        placeholders = 0
        for seg in prompt.segments:
            if seg.ids is not None:  # the model's own output: sent as it was generated
                ids.extend(seg.ids)
                continue
            if not seg.trusted:
                ids.extend(encode_untrusted(self.tokenizer, seg.text))
                continue
            for tid in encode_trusted(self.tokenizer, seg.text):
                kind = self.placeholders.get(tid)
                if kind is None:
                    ids.append(tid)
                    continue
                placeholders += 1
                item = next(pending, None)
                if item is None or item.kind != kind:
                    raise UserError(self._mismatch(items, kind, placeholders))
                n = self._count(item, fresh)
                begin, end = self.markers[kind]
                start = len(ids)
                ids.append(begin)
                ids.extend([self.image_id if kind == "image" else self.audio_id] * n)
                ids.append(end)
                spans.append(_Span(start, len(ids), item))
        if next(pending, None) is not None:
            raise UserError(self._mismatch(items, None, placeholders))
        return ids, spans

    @staticmethod
    def _mismatch(items: Sequence[MediaItem], kind: str | None, placeholders: int) -> str:
        given = ", ".join(i.kind for i in items) or "none"
        if kind is None:
            return (
                f"the request carries {len(items)} media items ({given}) but its prompt has {placeholders} media "
                "placeholders: put each image/audio in a user message as a content part"
            )
        return (
            f"media placeholder {placeholders} of the prompt is {kind} but the request's media are: {given}; "
            "give one media part per placeholder, in order"
        )

    # --- features --------------------------------------------------------------------------------------------

    def _count(self, item: MediaItem, fresh: dict[str, dict[str, Any]]) -> int:
        """Soft tokens for ``item``: remembered by digest, else from its features (computed once, kept for the call)."""
        if item.kind == "video":
            raise UserError(
                "video is not supported by the in-process engine (Gemma 4's video processor needs torchvision): "
                "send frames as images, or use a vllm:// backend"
            )
        if item.kind == "audio" and not self.audio:
            raise UserError(
                f"{self._name()} has no audio encoder: of Gemma 4, E2B and E4B hear audio (26B and 31B read text and "
                "images only). Use one of those, or leave the audio out"
            )
        n = self._counts.get(item.digest)
        if n is None:
            features = self._features(item)
            fresh[item.digest] = features
            n = int(features.pop("n"))
            self._counts[item.digest] = n
            if len(self._counts) > _MAX_COUNTS:
                self._counts.popitem(last=False)
        else:
            self._counts.move_to_end(item.digest)
        return n

    def _features(self, item: MediaItem) -> dict[str, Any]:
        if item.kind == "image":
            out = self.image_processor(images=[_open_image(item.data)], return_tensors="pt")
            return {
                "pixel_values": out["pixel_values"],
                "image_position_ids": out["image_position_ids"],
                "n": int(out["num_soft_tokens_per_image"][0]),
            }
        rate = int(getattr(self.feature_extractor, "sampling_rate", 16_000))
        limit = self.max_audio_tokens * 4 * int(getattr(self.feature_extractor, "hop_length", rate // 100))
        wave = _decode_audio(item.data, rate, max_seconds=limit / rate)
        out = self.feature_extractor([wave], return_tensors="pt")
        return {
            "input_features": out["input_features"],
            "input_features_mask": out["input_features_mask"],
            "n": _audio_tokens(out["input_features_mask"][0].tolist()),
        }

    def _inputs(self, spans: Sequence[_Span], fresh: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """The model's keyword inputs for the media of ``spans`` (in order), on the model's device and dtype."""
        import torch

        images: list[dict[str, Any]] = []
        clips: list[dict[str, Any]] = []
        for span in spans:
            features = fresh.get(span.item.digest)
            if features is None:  # counted on an earlier step, evicted from the cache since: encode it again
                features = self._features(span.item)
                features.pop("n")
                fresh[span.item.digest] = features
            (images if span.item.kind == "image" else clips).append(features)
        device, dtype = self.model.device, self.model.dtype
        inputs: dict[str, Any] = {}
        if images:
            inputs["pixel_values"] = torch.cat([f["pixel_values"] for f in images]).to(device, dtype)
            inputs["image_position_ids"] = torch.cat([f["image_position_ids"] for f in images]).to(device)
        if clips:
            frames = max(f["input_features"].shape[1] for f in clips)
            feats = torch.zeros((len(clips), frames, clips[0]["input_features"].shape[2]))
            mask = torch.zeros((len(clips), frames), dtype=torch.bool)
            for i, f in enumerate(clips):  # padded to the longest clip, as the processor batches them
                feats[i, : f["input_features"].shape[1]] = f["input_features"][0]
                mask[i, : f["input_features_mask"].shape[1]] = f["input_features_mask"][0].bool()
            inputs["input_features"] = feats.to(device, dtype)
            inputs["input_features_mask"] = mask.to(device)
        return inputs

    def _token_types(self, spans: Sequence[_Span], length: int) -> Any:
        """``mm_token_type_ids`` for positions ``[0, length)``: 1 on image soft tokens, 3 on audio ones."""
        import torch

        types = torch.zeros((1, length), dtype=torch.long)
        for span in spans:
            if span.start < length:
                types[0, span.start + 1 : min(span.end - 1, length)] = 1 if span.item.kind == "image" else 3
        return types.to(self.model.device)

    def _pieces(
        self, ids: Sequence[int], start: int, end: int, spans: Sequence[_Span]
    ) -> list[tuple[int, int, list[_Span]]]:
        """The forward passes that prefill ``ids[start:end]``: one, unless soft-token ids stray outside the spans.

        The model takes every soft-token id of its input for a slot of the media it is given, so a soft-token id
        the model wrote itself (kept verbatim in the history) must go through a pass without media.
        """
        if start >= end:
            return []
        expected = sum(s.end - s.start - 2 for s in spans)
        if sum(1 for i in ids[start:end] if i in self.soft_ids) == expected:
            return [(start, end, list(spans))]
        cuts = sorted({start, end, *(s.start for s in spans), *(s.end for s in spans)})
        return [(a, b, [s for s in spans if a <= s.start and s.end <= b]) for a, b in itertools.pairwise(cuts)]

    def _name(self) -> str:
        return str(getattr(self.model, "name_or_path", "") or "this model")


def _audio_tokens(mask: Sequence[Any]) -> int:
    """Soft tokens of one clip: its valid mel frames after two stride-2 convolutions (``Gemma4Processor``'s count)."""
    valid = list(mask)
    for _ in range(2):
        valid = valid[::2][: (len(valid) - 1) // 2 + 1]
    return int(sum(bool(v) for v in valid))


def _open_image(data: bytes) -> Any:
    """An RGB picture from its bytes, turned upright as its EXIF says (what transformers' ``load_image`` does)."""
    try:
        from PIL import Image, ImageOps, UnidentifiedImageError
    except ImportError as exc:
        raise UserError("images in process need Pillow: pip install pillow") from exc
    try:
        image = Image.open(io.BytesIO(data), formats=_IMAGE_FORMATS)  # reads the header only
        width, height = image.size
        if width * height > MAX_IMAGE_PIXELS:
            raise UserError(
                f"the image is {width} x {height} pixels ({len(data)} bytes); at most {MAX_IMAGE_PIXELS:,} pixels are "
                "decoded (a small file can claim gigabytes of pixels): scale it down and send it again"
            )
        image.load()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UserError(
            f"cannot read the image ({len(data)} bytes): {exc}. Send a PNG, JPEG, GIF, WebP or BMP"
        ) from exc
    return ImageOps.exif_transpose(image).convert("RGB")


def _decode_audio(data: bytes, rate: int, *, max_seconds: float | None = None) -> Any:
    """Mono samples at ``rate`` Hz: decoded with soundfile, resampled with soxr (what ``librosa.load`` does).

    Decoded in blocks, never past ``max_seconds``: a clip's header may claim any length, and a few kilobytes of
    FLAC or Ogg can hold hours of silence, so the length is found by decoding, and decoding stops at the limit.
    """
    try:
        import numpy as np
        import soundfile
        import soxr
    except ImportError as exc:
        raise UserError(
            "audio in process needs soundfile and soxr: in the agentkit checkout, pip install -e '.[transformers]'"
        ) from exc
    try:
        with soundfile.SoundFile(io.BytesIO(data)) as clip:
            source_rate, channels = int(clip.samplerate), int(clip.channels)
            if not 0 < source_rate <= _MAX_AUDIO_RATE or not 0 < channels <= _MAX_AUDIO_CHANNELS:
                raise UserError(
                    f"the audio claims {source_rate} Hz and {channels} channels; send a clip of at most "
                    f"{_MAX_AUDIO_RATE} Hz and {_MAX_AUDIO_CHANNELS} channels"
                )
            most = math.inf if max_seconds is None else max_seconds * source_rate
            blocks: list[Any] = []
            frames = 0
            while True:
                block = clip.read(_AUDIO_BLOCK, dtype="float32", always_2d=True)
                if not len(block):
                    break
                frames += len(block)
                if frames > most:
                    raise UserError(
                        f"the audio is longer than {max_seconds:.0f} s; Gemma 4 hears at most {max_seconds:.0f} s "
                        "per clip: cut it into parts and send them one by one"
                    )
                blocks.append(block.mean(axis=1))
    except (RuntimeError, TypeError, ValueError) as exc:  # soundfile.LibsndfileError is a RuntimeError
        raise UserError(f"cannot read the audio ({len(data)} bytes): {exc}. Send WAV, FLAC, OGG or MP3") from exc
    mono = np.concatenate(blocks) if blocks else np.zeros(0, dtype="float32")
    if int(source_rate) != rate and len(mono):
        mono = soxr.resample(mono, int(source_rate), rate)
    if not len(mono) or not math.isfinite(float(abs(mono).max())):
        raise UserError("the audio holds no samples (or only invalid ones)")
    return mono
