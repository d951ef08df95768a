"""Tiny random-weight Gemma 4 models with a real tokenizer, for tests and CPU servers.

Tests of the in-process backend (and a real vLLM server on CPU) need a model that runs the genuine
Gemma 4 code paths — sliding and full attention, per-layer embeddings, the generation loop — without a
download. :func:`build_tiny_gemma4` writes such a model directory in about a second: a byte-level BPE
tokenizer trained in-process on a small built-in corpus, with every Gemma 4 control token as a special token
(one id each, decoded verbatim), and a ``Gemma4ForCausalLM`` with seeded random weights. The output is
gibberish, which is fine: tests force the text they need with a logits processor, and timing does not depend
on weight values. :func:`build_tiny_drafter` adds a matching ``Gemma4AssistantForCausalLM`` (the
multi-token-prediction drafter) for the speculative-decoding path.

Needs the ``[transformers]`` extra. torch, transformers and tokenizers are imported only when called, but
importing this module without them raises ``ImportError`` at once: ``pytest.importorskip`` on this module is
then a real check (it used to pass in a ``.[dev]`` virtualenv, and every test using it errored instead).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentkit.backends.transformers.compat import patch_gemma4_assistant_kv_sharing
from agentkit.gemma4.tokens import CONTROL_TOKENS, EOS, STOP_MARKERS

_MISSING = [m for m in ("torch", "transformers", "tokenizers") if importlib.util.find_spec(m) is None]
if _MISSING:
    raise ImportError(
        f"agentkit.testing.tiny_model needs {', '.join(_MISSING)} (the transformers extra): in the agentkit "
        "checkout, pip install torch==2.13.0, then pip install -e '.[transformers]'"
    )


def _transformers() -> Any:
    """transformers, imported when a model is built (seconds); ``Any`` because it is largely untyped."""
    return importlib.import_module("transformers")


__all__ = [
    "MEDIA_TOKENS",
    "SPECIAL_TOKENS",
    "TINY_CHAT_TEMPLATE",
    "build_tiny_drafter",
    "build_tiny_gemma4",
    "build_tiny_gemma4_multimodal",
    "build_tiny_tokenizer",
    "tiny_text_config",
]

#: Ids 0-4 follow the real Gemma tokenizer (pad, eos, bos, unk, mask); the control tokens come right after.
SPECIAL_TOKENS: tuple[str, ...] = (
    "<pad>",
    EOS,
    "<bos>",
    "<unk>",
    "<mask>",
    *(t for t in sorted(CONTROL_TOKENS) if t not in (EOS, "<bos>")),
)

#: The named media tokens of the real Gemma 4 tokenizer: the placeholder the prompt carries (``<|image|>``,
#: repeated once per soft token after expansion) and the markers around an expanded image or audio clip.
MEDIA_TOKENS: dict[str, str] = {
    "image_token": "<|image|>",
    "boi_token": "<|image>",
    "eoi_token": "<image|>",
    "audio_token": "<|audio|>",
    "boa_token": "<|audio>",
    "eoa_token": "<audio|>",
}
_MEDIA_MARKERS = ("<|image>", "<image|>", "<|audio>", "<audio|>")  # the ones not already control tokens

# Enough text for the BPE trainer to learn common English pieces, the call syntax and some non-ASCII, so
# ordinary prompts are a few hundred tokens rather than thousands of single bytes.
_CORPUS: tuple[str, ...] = (
    "The quick brown fox jumps over the lazy dog. What is the weather in Paris today?",
    "It is sunny and 21 degrees in Paris. The weather in London is rainy with 14 degrees.",
    "You are a helpful assistant. Answer the question, then stop. Call a tool when you need facts.",
    "call:get_weather{city:Paris} response:get_weather{temperature:21,unit:celsius,value:sunny}",
    "declaration:get_weather{description:Get the current weather,parameters:{properties:{city:"
    "{description:The city name,type:STRING}},required:[city],type:OBJECT}}",
    "def add(a: int, b: int) -> int:\n    return a + b\n\nprint(add(2, 3))\n",
    "import json\nwith open('data.json') as f:\n    data = json.load(f)\n",
    "Hello! How can I help you today? Thank you, that was very useful.",
    "Привет, мир! Grüße aus München. 世界你好. ünïcödé ✓ café naïve résumé",
    "system user model thought search fetch read write file files directory result error",
    "The answer is 42. Two plus two is four. Three plus three is six.",
)


def tiny_text_config(vocab_size: int, **overrides: Any) -> Any:
    """The ``Gemma4TextConfig`` of the tiny model (ENVIRONMENT.md's recipe); ``overrides`` replace fields."""
    fields: dict[str, Any] = {
        "vocab_size": vocab_size,
        "vocab_size_per_layer_input": vocab_size,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 32,
        "hidden_size_per_layer_input": 16,
        "layer_types": ["sliding_attention", "full_attention"],
        "sliding_window": 32,
        "max_position_embeddings": 2048,
        "pad_token_id": 0,
        "eos_token_id": 1,
        "bos_token_id": 2,
    }
    fields.update(overrides)
    return _transformers().Gemma4TextConfig(**fields)


# A Gemma 4 chat template for text conversations without tools, written after the protocol doc's prompt
# layout. Tool declarations are deliberately not rendered: a request with tools then renders differently from
# agentkit's prompt, which is exactly the drift the transformers backend warns about.
TINY_CHAT_TEMPLATE = (
    "{%- macro text(content) -%}"
    "{%- if content is string -%}{{ content | trim }}"
    "{%- else -%}{%- for part in content -%}"
    "{%- if part.type == 'image' -%}<|image|>{%- elif part.type == 'audio' -%}<|audio|>"
    "{%- elif part.type == 'text' -%}{{ part.text | trim }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{%- endmacro -%}"
    "{{ bos_token }}"
    "{%- set first = messages[0] if messages else none -%}"
    "{%- set has_system = first is not none and first.role in ['system', 'developer'] -%}"
    "{%- if enable_thinking or has_system -%}"
    "<|turn>system\n{% if enable_thinking %}<|think|>\n{% endif %}"
    "{%- if has_system %}{{ text(first.content) }}{% endif %}<turn|>{{ '\\n' }}"
    "{%- endif -%}"
    "{%- for m in messages[1 if has_system else 0:] -%}"
    "{%- set role = 'model' if m.role == 'assistant' else m.role -%}"
    "{%- set body = text(m.content) -%}"
    "{%- if role == 'model' and '<channel|>' in body %}{% set body = body.split('<channel|>')[-1] %}{% endif -%}"
    "<|turn>{{ role }}\n{{ body }}<turn|>{{ '\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "<|turn>model\n{% if not enable_thinking %}<|channel>thought\n<channel|>{% endif %}"
    "{%- endif -%}"
)


def build_tiny_tokenizer(
    *,
    merges: int = 400,
    chat_template: str | None = TINY_CHAT_TEMPLATE,
    corpus: Sequence[str] = _CORPUS,
    media: bool = False,
) -> Any:
    """Train a byte-level BPE tokenizer in-process with every Gemma 4 control token as one special token.

    ``media=True`` also adds the image/audio begin and end markers and names the media tokens the way the real
    tokenizer does (``tokenizer.image_token``, ``boi_token`` ...), which multimodal processing reads. The default
    vocabulary is left as it was, so text-only models keep their token ids.
    """
    hf = _transformers()
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    special = [*SPECIAL_TOKENS, *_MEDIA_MARKERS] if media else list(SPECIAL_TOKENS)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(
        vocab_size=len(special) + len(alphabet) + merges,
        special_tokens=special,
        initial_alphabet=alphabet,
        show_progress=False,
    )
    tok.train_from_iterator(list(corpus) * 4, trainer=trainer)
    fast = hf.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token=EOS,
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        additional_special_tokens=[t for t in special if t not in ("<pad>", EOS, "<bos>", "<unk>", "<mask>")],
        **({"extra_special_tokens": dict(MEDIA_TOKENS)} if media else {}),
    )
    if chat_template is not None:
        fast.chat_template = chat_template
    return fast


def build_tiny_gemma4(
    out_dir: str | Path,
    *,
    vocab_extra: int = 0,
    seed: int = 0,
    with_chat_template: bool = True,
    kv_shared_layers: int = 0,
    **config_overrides: Any,
) -> Path:
    """Write a tiny random-weight ``Gemma4ForCausalLM`` and its tokenizer to ``out_dir``; return the path.

    ``AutoTokenizer``/``AutoModelForCausalLM.from_pretrained(out_dir)`` and vLLM load the result. The model's
    vocabulary is the tokenizer's plus ``vocab_extra`` unused rows, rounded up to a multiple of 64 (as real
    checkpoints pad theirs). Generation stops on the Gemma 4 stop markers. ``seed`` fixes the weights.

    ``kv_shared_layers > 0`` appends that many layers which reuse earlier layers' key/value states, as E2B/E4B
    do; a drafter (:func:`build_tiny_drafter`) needs it, because it reads the states those layers share.
    ``config_overrides`` replace fields of :func:`tiny_text_config`.
    """
    import torch

    hf = _transformers()

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer(chat_template=TINY_CHAT_TEMPLATE if with_chat_template else None)
    vocab = -(-(len(tokenizer) + vocab_extra) // 64) * 64
    if kv_shared_layers:
        # Sharers alternate like the rest and end on full attention (the model requires that of its last layer).
        tail = [
            "sliding_attention" if (kv_shared_layers - i) % 2 == 0 else "full_attention"
            for i in range(kv_shared_layers)
        ]
        config_overrides = {
            "num_hidden_layers": 2 + kv_shared_layers,
            "layer_types": ["sliding_attention", "full_attention", *tail],
            "num_kv_shared_layers": kv_shared_layers,
            **config_overrides,
        }
    config = tiny_text_config(vocab, **config_overrides)
    config.architectures = ["Gemma4ForCausalLM"]
    torch.manual_seed(seed)
    model = hf.Gemma4ForCausalLM(config).eval()
    stop_ids = [tokenizer.convert_tokens_to_ids(m) for m in STOP_MARKERS]
    model.generation_config = hf.GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=stop_ids,
        pad_token_id=tokenizer.pad_token_id,
    )
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


def build_tiny_gemma4_multimodal(
    out_dir: str | Path,
    *,
    audio: bool = True,
    bidirectional_vision: bool = True,
    seed: int = 0,
    **text_overrides: Any,
) -> Path:
    """Write a tiny random-weight ``Gemma4ForConditionalGeneration`` with vision (and audio) towers; return the path.

    The layout is a real checkpoint's: ``config.json`` (a ``Gemma4Config`` naming the media token ids), the
    weights, a tokenizer with the media tokens (:data:`MEDIA_TOKENS`) and ``processor_config.json`` holding the
    image processor and the audio feature extractor, which ``AutoImageProcessor`` / ``AutoFeatureExtractor``
    load. The towers are a layer each; an image becomes at most 70 soft tokens (the processor's smallest
    budget) and half a second of audio 13. ``audio=False`` leaves the audio tower out, as in 26B/31B;
    ``bidirectional_vision`` lets image tokens attend to each other (``use_bidirectional_attention="vision"``,
    as the larger checkpoints do), which the engine must then tell the model on every prefill that holds an image.
    """
    import torch

    hf = _transformers()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer(media=True)
    vocab = -(-len(tokenizer) // 64) * 64
    if bidirectional_vision:
        text_overrides.setdefault("use_bidirectional_attention", "vision")
    text = tiny_text_config(vocab, **text_overrides)
    vision = hf.Gemma4VisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=16,
        patch_size=2,
        pooling_kernel_size=3,
        position_embedding_size=64,
    )
    # The subsampler's first width must stay 128 (a mel bin count): transformers sizes its projection from it.
    audio_config = (
        hf.Gemma4AudioConfig(
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            subsampling_conv_channels=[128, 4],
            output_proj_dims=32,
        )
        if audio
        else None
    )
    ids = tokenizer.convert_tokens_to_ids
    config = hf.Gemma4Config(
        text_config=text,
        vision_config=vision,
        audio_config=audio_config,
        image_token_id=ids(MEDIA_TOKENS["image_token"]),
        boi_token_id=ids(MEDIA_TOKENS["boi_token"]),
        eoi_token_id=ids(MEDIA_TOKENS["eoi_token"]),
        audio_token_id=ids(MEDIA_TOKENS["audio_token"]),
        boa_token_id=ids(MEDIA_TOKENS["boa_token"]),
        eoa_token_index=ids(MEDIA_TOKENS["eoa_token"]),
        video_token_id=ids("<|video|>"),
    )
    config.architectures = ["Gemma4ForConditionalGeneration"]
    torch.manual_seed(seed)
    model = hf.Gemma4ForConditionalGeneration(config).eval()
    model.generation_config = hf.GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=[tokenizer.convert_tokens_to_ids(m) for m in STOP_MARKERS],
        pad_token_id=tokenizer.pad_token_id,
    )
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    # The Pil image processor: the default one needs torchvision, which a CPU-only torch build cannot have.
    image_processor = hf.Gemma4ImageProcessorPil(patch_size=2, max_soft_tokens=70, pooling_kernel_size=3)
    processor: dict[str, Any] = {
        "processor_class": "Gemma4Processor",
        "image_seq_length": 70,
        "audio_seq_length": 750,
        "image_processor": image_processor.to_dict(),
    }
    if audio:
        processor["feature_extractor"] = hf.Gemma4AudioFeatureExtractor().to_dict()
    (out / "processor_config.json").write_text(json.dumps(processor, indent=2, default=str), encoding="utf-8")
    return out


def build_tiny_drafter(out_dir: str | Path, target: str | Path, *, seed: int = 1) -> Path:
    """Write a tiny ``Gemma4AssistantForCausalLM`` (MTP drafter) matching the tiny model in ``target``.

    The drafter shares the target's vocabulary and reads its last layers' key/value states, so it must
    agree with the target on vocabulary, head size and layer types, and the target must share key/value states
    (``build_tiny_gemma4(..., kv_shared_layers=1)``). Its weights are random (seeded), which makes it a poor
    guesser — exactly what a test of "speculative output equals plain output" wants.
    """
    import torch

    hf = _transformers()
    patch_gemma4_assistant_kv_sharing()

    # The raw config.json, not the config object: per-layer fields (the full-attention head size) are only
    # readable there without tripping transformers' heterogeneous-config guard.
    text = json.loads((Path(target) / "config.json").read_text(encoding="utf-8"))
    text = text.get("text_config", text)
    shared = (
        "hidden_size",
        "intermediate_size",
        "num_attention_heads",
        "num_key_value_heads",
        "head_dim",
        "sliding_window",
        "max_position_embeddings",
        "rope_parameters",
    )
    # Full-attention layers have their own head size (``global_head_dim``), stored per layer in config.json.
    full = [i for i, t in enumerate(text["layer_types"]) if t == "full_attention"]
    per_layer = text.get("per_layer_config") or {}
    global_head_dim = per_layer.get(str(full[0]), {}).get("head_dim", 512)
    draft_text = tiny_text_config(
        text["vocab_size"],
        global_head_dim=global_head_dim,
        **{k: text[k] for k in shared if k in text},
        num_hidden_layers=2,
        layer_types=["sliding_attention", "full_attention"],
        vocab_size_per_layer_input=0,
        hidden_size_per_layer_input=0,
    )
    config = hf.Gemma4AssistantConfig(text_config=draft_text, backbone_hidden_size=text["hidden_size"])
    config.architectures = ["Gemma4AssistantForCausalLM"]
    torch.manual_seed(seed)
    drafter = hf.Gemma4AssistantForCausalLM(config).eval()
    # generate() reads the draft length from the drafter's generation config (as real drafters ship it).
    drafter.generation_config = hf.GenerationConfig(num_assistant_tokens=4, num_assistant_tokens_schedule="constant")
    out = Path(out_dir)
    drafter.save_pretrained(out, safe_serialization=True)
    (out / "agentkit_tiny.json").write_text(json.dumps({"target": str(target)}), encoding="utf-8")
    return out
