"""examples/invoice_extractor.py runs as written against raw Gemma 4 outputs: retry on a cross-field error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentkit.gemma4 import format_tool_call

from .test_examples import load

GOOD = {
    "number": "2026-117",
    "issued": "2026-03-03",
    "seller": "ACME Tools Ltd",
    "buyer": "Northwind Garden Supplies",
    "currency": "EUR",
    "lines": [
        {"description": "galvanised bolts M8", "quantity": 40, "unit_price": 0.35},
        {"description": "hinge, heavy duty", "quantity": 12, "unit_price": 4.2},
    ],
    "total": 64.4,
}


def answer(arguments: dict[str, object]) -> str:
    return format_tool_call("final_result", arguments) + "<|tool_response>"


def test_lines_that_do_not_add_up_are_sent_back_and_fixed(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    example = load("invoice_extractor")
    folder = tmp_path / "invoices"
    folder.mkdir()
    (folder / "a.txt").write_text(example.SAMPLE)
    (folder / "b.txt").write_text("not an invoice at all")
    misread = {**GOOD, "lines": [{**GOOD["lines"][0], "unit_price": 0.53}, GOOD["lines"][1]]}  # type: ignore[index]
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps([answer(misread), answer(GOOD), *["I cannot find an invoice here.<turn|>"] * 3]))
    monkeypatch.setenv("AGENTKIT_BACKEND", f"scripted:{outputs}")
    assert example.main([str(folder)]) == 1  # b.txt failed, a.txt did not
    out, err = capsys.readouterr()
    assert "a.txt: 2026-117 from ACME Tools Ltd, 64.40 EUR" in out
    assert "b.txt: failed: the model's answer did not fit Invoice after 3 attempts" in err
    saved = json.loads((folder / "a.json").read_text())
    assert saved["lines"][0]["unit_price"] == 0.35 and saved["issued"] == "2026-03-03"
    assert not (folder / "b.json").exists()
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_the_model_is_told_why(tmp_path: Path) -> None:
    example = load("invoice_extractor")
    from agentkit.testing import ScriptedBackend

    misread = {**GOOD, "total": 99.0}
    backend = ScriptedBackend([answer(misread), answer(GOOD)])
    invoice = example.extract(example.build_agent(backend), example.SAMPLE)
    assert invoice.total == 64.4
    assert "the lines add up to 64.40, not the total 99.00; check each line" in backend.prompts[1]
    with pytest.raises(example.OutputValidationError):
        example.extract(example.build_agent(ScriptedBackend([answer(misread)] * 3)), example.SAMPLE)
