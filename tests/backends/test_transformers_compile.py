"""Background compilation of the in-process engine, on CPU with the tiny model (inductor's C++ backend).

The GPU runs the same code with CUDA graphs on top (test_transformers_cuda.py); here the parts that do not
need a GPU are checked: the first request is served while compilation is still running, the compiled step is
swapped in between requests and computes the same tokens, it serves cache sizes and views it was not
compiled for without compiling again, and compiled code lands in agentkit's cache directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from agentkit.backends.transformers import _compile as hf_compile  # noqa: E402
from agentkit.backends.transformers._engine import Engine  # noqa: E402
from agentkit.testing.tiny_model import build_tiny_gemma4  # noqa: E402

pytestmark = [pytest.mark.transformers]


def _generate(engine: Engine, ids: list[int], n: int = 8) -> list[int]:
    res = engine.greedy(ids, n)
    assert res.token_ids is not None
    return list(res.token_ids)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root = build_tiny_gemma4(tmp_path_factory.mktemp("tiny") / "model", kv_shared_layers=1)
    return AutoModelForCausalLM.from_pretrained(root).eval(), AutoTokenizer.from_pretrained(root)


def test_compile_status_reads_for_people() -> None:
    assert "background" in str(hf_compile.CompileStatus("compiling", seconds=12))
    assert "eager" in str(hf_compile.CompileStatus("failed", "RuntimeError: boom"))
    assert str(hf_compile.CompileStatus("ready", seconds=3)) == "compiled (3 s)"


def test_compile_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(hf_compile.ENV_CACHE_DIR, str(tmp_path / "cc"))
    assert hf_compile.compile_cache_dir() == tmp_path / "cc"
    monkeypatch.delenv(hf_compile.ENV_CACHE_DIR)
    assert hf_compile.compile_cache_dir().name == "torch-compile"


def test_regional_compiler_finds_the_text_decoder_layers(tiny: tuple[Any, Any]) -> None:
    model, _tok = tiny
    layers = hf_compile.decoder_layers(model)
    assert len(layers) == model.config.num_hidden_layers
    assert [layer.layer_idx for layer in layers] == list(range(len(layers)))


@pytest.mark.slow
def test_first_request_is_served_while_compiling_then_the_compiled_step_takes_over(
    tiny: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    model, tok = tiny
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv(hf_compile.ENV_CACHE_DIR, str(tmp_path / "compile-cache"))
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.delenv("TRITON_CACHE_DIR", raising=False)
    ids = tok.encode("The quick brown fox jumps over the lazy dog. " * 6, add_special_tokens=False)
    reference = Engine(model, tok, device=torch.device("cpu"), max_cache_len=8192, compile_decode=False)
    expected = _generate(reference, ids)
    expected_append = _generate(reference, [*reference.cache_ids, *ids[:40]])
    long_ids = ids * 40  # past the scratch cache the compilation ran against: a 4096 view
    reference.reset()
    expected_long = _generate(reference, long_ids, 4)
    # A long append after it: chunks of 256, the last one starting early enough to end at the last token.
    expected_long_append = _generate(reference, [*reference.cache_ids, *ids * 7], 4)
    reference.reset()
    expected_mid = _generate(reference, ids * 18, 4)  # a whole 1,024-token chunk, then a 256 one

    # Hold the compilation until the first request is done: that request cannot have waited for it.
    gate = threading.Event()
    original = Engine._compile_scratch

    def gated(self: Engine) -> None:
        assert gate.wait(600)
        original(self)

    monkeypatch.setattr(Engine, "_compile_scratch", gated)
    engine = Engine(model, tok, device=torch.device("cpu"), max_cache_len=8192, compile_decode=True, static=True)
    try:
        assert engine.compile_status.state == "compiling"
        assert _generate(engine, ids) == expected
        assert not engine.compiled_in_use
        gate.set()
        status = engine.wait_compiled(timeout=900)
        assert status.state == "ready", str(status)
        engine.reset()
        with torch.compiler.set_stance("fail_on_recompile"):  # a request never compiles
            assert _generate(engine, ids) == expected
            assert engine.compiled_in_use
            assert _generate(engine, [*engine.cache_ids, *ids[:40]]) == expected_append  # chunked prefill
            engine.reset()
            assert _generate(engine, long_ids, 4) == expected_long
            assert engine.cache.layers[0].view_len == 4096
            assert _generate(engine, [*engine.cache_ids, *ids * 7], 4) == expected_long_append
            engine.reset()
            assert [c for c, _ in engine._chunk_plan(ids * 18)] == [1024, 256]
            assert _generate(engine, ids * 18, 4) == expected_mid
        files, size = hf_compile.cache_size(tmp_path / "compile-cache")
        assert files and size, "nothing was written to the persistent compile cache"
    finally:
        gate.set()
        engine.wait_compiled(timeout=900)
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_gemma4(tmp_path_factory.mktemp("tiny-dir") / "model")


async def test_every_generation_of_a_backend_runs_on_one_thread(tiny_dir: Path) -> None:
    """CUDA libraries cache per-thread state; a thread per request rebuilt it each time (+150 ms to first token)."""
    from agentkit.backends.base import GenerationRequest, SamplingParams
    from agentkit.backends.transformers import TransformersBackend
    from agentkit.gemma4.prompt import Prompt

    threads: list[threading.Thread] = []

    def note_thread(_ids: Any, scores: Any) -> Any:
        threads.append(threading.current_thread())
        return scores

    backend = TransformersBackend(tiny_dir, device="cpu", logits_processors=[note_thread])
    request = GenerationRequest(Prompt.trusted("<bos>Hello"), sampling=SamplingParams(temperature=0.0, max_tokens=2))
    for _ in range(2):
        async for _event in backend.stream(request):
            pass
    assert len(threads) == 4 and len(set(threads)) == 1
    assert threads[0] is not threading.main_thread()


def test_doctor_shows_where_compilation_stands(tiny_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from agentkit.cli import main

    main(["doctor", "--backend", f"transformers:{tiny_dir}", "--no-probe"])
    out = capsys.readouterr().out
    assert "compile" in out and "eager (growing cache)" in out


def test_a_copy_of_a_model_with_compiled_layers_runs_its_own_weights(tiny: tuple[Any, Any]) -> None:
    """The layers dispatch through their class, not through wrappers bound to the original instances."""
    import copy

    model, _tok = tiny
    regions = getattr(model, "_agentkit_regions", None) or hf_compile.RegionalCompiler(model)
    model._agentkit_regions = regions
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.inference_mode():
        before = model(input_ids=ids).logits
        twin = copy.deepcopy(model)
        assert torch.equal(twin(input_ids=ids).logits, before)
        for p in hf_compile.decoder_layers(twin)[0].mlp.parameters():
            p.zero_()
        assert not torch.equal(twin(input_ids=ids).logits, before)  # the copy's own (changed) weights
        assert torch.equal(model(input_ids=ids).logits, before)  # the original's untouched


EXITS = """
import atexit, gc

def count():  # registered first, so it runs after agentkit's exit hook (atexit runs the last registered first)
    from torch.multiprocessing.reductions import StorageWeakRef

    gc.collect()
    print("alive", sum(type(o) is StorageWeakRef for o in gc.get_objects()), flush=True)

atexit.register(count)
import torch
import agentkit.backends.transformers
torch.compile(lambda x: x * 2 + 1, backend="aot_eager")(torch.ones(4))
"""


def test_a_process_that_compiled_leaves_torch_nothing_to_free_at_teardown() -> None:
    """Compiling leaves fake tensors in torch's class attributes; freed during the interpreter's teardown, after
    torch.storage was cleared, each of their StorageWeakRefs printed an ignored AttributeError on stderr."""
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", EXITS], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["alive", "0"]  # none left for the teardown
    assert "Exception ignored" not in proc.stderr


def test_a_chunk_that_ends_at_the_last_cache_slot_still_runs(tiny: tuple[Any, Any]) -> None:
    """A chunk's view reaches one position past its end; at the very end of the cache that is the whole cache."""
    model, tok = tiny
    ids = tok.encode("The quick brown fox jumps over the lazy dog. " * 100, add_special_tokens=False)
    assert len(ids) >= 970
    reference = Engine(model, tok, device=torch.device("cpu"), max_cache_len=1024, compile_decode=False)
    engine = Engine(model, tok, device=torch.device("cpu"), max_cache_len=1024, compile_decode=False, static=True)
    history = ids[:960]
    for e in (reference, engine):
        e.greedy(history, 1)
    # As after an image: nothing cached may be fed again, so the 64-token chunk starts at 960 and ends at 1,024.
    engine._refeed_from = len(engine.cache_ids)
    follow = [*history, *ids[960:970]]
    assert _generate(engine, follow, 1) == _generate(reference, follow, 1)
