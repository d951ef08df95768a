"""Events are told apart by type: one class per kind, fixed --json names, and no import cycle with the loop."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import typing
from pathlib import Path

import pytest

import agentkit.events as events
from agentkit import Agent, gemma4, tool
from agentkit.cli.run import ERROR_EVENT, event_to_json
from agentkit.testing import ScriptedBackend

ROOT = Path(__file__).resolve().parents[1]

# What `agentkit run --json` has always called each event; scripts depend on these exact strings.
DOCUMENTED = {
    "ThinkingDelta": "thinking_delta",
    "TextDelta": "text_delta",
    "ToolCallStarted": "tool_call_started",
    "ToolCallFinished": "tool_call_finished",
    "Notice": "notice",
    "StepFinished": "step_finished",
    "PartialOutput": "partial_output",
    "RunFinished": "run_finished",
}


def test_every_event_type_has_its_fixed_json_name() -> None:
    members = set(typing.get_args(events.AgentEvent))
    assert set(events.EVENT_NAMES) == members
    assert {cls.__name__: name for cls, name in events.EVENT_NAMES.items()} == DOCUMENTED


def test_the_readme_documents_every_json_name() -> None:
    paragraph = (ROOT / "README.md").read_text().split("agentkit run --json", 1)[1].split("## Terminal assistant")[0]
    for name in [*DOCUMENTED.values(), ERROR_EVENT]:
        assert f"`{name}`" in paragraph, name


def test_one_text_delta_and_one_thinking_delta_class() -> None:
    import agentkit.backends as backends

    assert events.TextDelta is gemma4.TextDelta is gemma4.ContentDelta
    assert events.ThinkingDelta is gemma4.ThinkingDelta
    with pytest.deprecated_call():
        assert backends.TextDelta is backends.RawDelta  # the old name of the backends' raw chunk
    classes = {
        name
        for module in (events, gemma4, backends, backends.base)
        for name, value in vars(module).items()
        if isinstance(value, type) and value.__name__ in {"TextDelta", "ThinkingDelta", "ContentDelta"}
    }
    assert classes <= {"TextDelta", "ThinkingDelta", "ContentDelta"}


def test_a_runs_json_lines_carry_the_fixed_names_in_order() -> None:
    @tool
    def shout(word: str) -> str:
        """Say a word loudly.

        Args:
            word: the word.
        """
        return word.upper()

    backend = ScriptedBackend(
        [
            '<|channel>thought\nhm\n<channel|><|tool_call>call:shout{word:<|"|>hey<|"|>}<tool_call|><|tool_response>',
            "Done.<turn|>",
        ]
    )

    async def run() -> list[dict[str, typing.Any]]:
        agent = Agent(backend, tools=[shout], thinking=True)
        return [json.loads(json.dumps(event_to_json(e))) async for e in agent.run_stream("go")]

    lines = asyncio.run(run())
    kinds = list(dict.fromkeys(line["type"] for line in lines))
    expected = ["thinking_delta", "tool_call_started", "tool_call_finished", "step_finished", "text_delta"]
    assert kinds == [*expected, "run_finished"]
    started = next(line for line in lines if line["type"] == "tool_call_started")
    assert started["name"] == "shout" and started["arguments"] == {"word": "hey"} and started["step"] == 1
    assert "".join(line["text"] for line in lines if line["type"] == "text_delta") == "Done."
    assert lines[-1]["output"] == "Done." and lines[-1]["ok"] is True
    with pytest.raises(TypeError, match="not an agent event: str"):
        event_to_json("text")  # type: ignore[arg-type]


def test_events_do_not_import_the_loop_and_import_agentkit_loads_nothing_heavy() -> None:
    code = (
        "import sys, agentkit.events, agentkit\n"
        "assert 'agentkit.agent' not in sys.modules, 'events imported the loop'\n"
        "heavy = sorted(m for m in ('httpx', 'pydantic', 'textual', 'rich', 'agentkit.tools') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
        "from agentkit.agent import RunResult, RunTimings\n"
        "assert RunResult is agentkit.RunResult is agentkit.events.RunResult and RunTimings is agentkit.RunTimings\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr


def test_the_cli_help_imports_no_engine_client_tool_or_ui_library() -> None:
    code = (
        "import sys\nfrom agentkit.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = ('httpx', 'pydantic', 'textual', 'rich', 'ollama', 'agentkit.agent', 'agentkit.tools')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"
