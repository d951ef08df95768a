"""CLI test helpers: an isolated home (sessions, config) and scripted backends written to files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

Q = '<|"|>'


def call(name: str, **args: str) -> str:
    """A raw Gemma 4 tool call followed by the hand-over marker, as the model writes it."""
    body = ",".join(f"{k}:{Q}{v}{Q}" for k, v in sorted(args.items()))
    return f"<|tool_call>call:{name}{{{body}}}<tool_call|><|tool_response>"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Sessions and config under tmp_path; no AGENTKIT_* settings leak in from the machine."""
    home = tmp_path / "home"
    for var in ("AGENTKIT_BACKEND", "AGENTKIT_MODEL", "AGENTKIT_THINKING", "AGENTKIT_TOOLS", "AGENTKIT_WORKSPACE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AGENTKIT_HOME", str(home))
    monkeypatch.setenv("AGENTKIT_CONFIG", str(tmp_path / "config.toml"))
    yield home


@pytest.fixture
def scripted(tmp_path: Path):  # type: ignore[no-untyped-def]
    """``scripted(["Hi<turn|>"])`` writes the outputs to a file and returns the backend URL for it."""
    counter = iter(range(1000))

    def make(outputs: list[str]) -> str:
        path = tmp_path / f"outputs-{next(counter)}.json"
        path.write_text(json.dumps(outputs), encoding="utf-8")
        return f"scripted:{path}"

    return make
