"""Every example runs as written, against ScriptedBackend instead of a model server.

The built-in tools are the real ones; only their outer seams are replaced: the search engine client, the
DNS resolver and HTTP transport of fetch_url, and the person answering approval questions.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from agentkit import Approval, ToolCallRequest
from agentkit.backends.base import GenerationRequest
from agentkit.testing import ScriptedBackend
from agentkit.tools import make_fetch_url, make_web_search

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
Q = '<|"|>'


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def call(name: str, *, hand_over: bool = True, **args: Any) -> str:
    """A raw Gemma 4 tool call; ``hand_over=False`` for all but the last of several calls in one output."""

    def value(v: Any) -> str:
        return json.dumps(v) if isinstance(v, int | float) else f"{Q}{v}{Q}"

    body = ",".join(f"{k}:{value(v)}" for k, v in sorted(args.items()))
    return f"<|tool_call>call:{name}{{{body}}}<tool_call|>" + ("<|tool_response>" if hand_over else "")


# -- research assistant ---------------------------------------------------------------------------


class FakeDDGS:
    """Speaks the part of ddgs.DDGS that web_search uses."""

    def text(self, query: str, **kwargs: Any) -> list[dict[str, str]]:
        return [
            {"title": "Gemma 4 model card", "href": "https://ai.example.org/gemma4", "body": "Sizes E2B to 31B."},
            {"title": "Gemma 4 on laptops", "href": "https://blog.example.org/laptop", "body": "E4B fits."},
        ]


PAGES = {
    "/gemma4": "<html><body><h1>Gemma 4</h1><p>Gemma 4 comes in E2B, E4B, 26B A4B and 31B sizes.</p></body></html>",
    "/laptop": "<html><body><h1>Laptops</h1><p>E4B runs well on a 16 GB laptop.</p></body></html>",
}


def fake_web(request: httpx.Request) -> httpx.Response:
    page = PAGES.get(request.url.path)
    if page is None:
        return httpx.Response(404, text="not found")
    return httpx.Response(200, text=page, headers={"Content-Type": "text/html; charset=utf-8"})


async def public_dns(host: str, port: int) -> list[str]:
    return ["93.184.216.34"]  # a public address, so the private-address guard lets it through


def test_research_assistant_cites_the_pages_it_read(capsys: pytest.CaptureFixture[str]) -> None:
    mod = load("research_assistant")
    backend = ScriptedBackend(
        [
            "<|channel>thought\nSearch first.<channel|>" + call("web_search", query="Gemma 4 sizes laptop"),
            call("fetch_url", hand_over=False, url="https://ai.example.org/gemma4")
            + call("fetch_url", url="https://blog.example.org/laptop"),
            "Gemma 4 comes in E2B, E4B, 26B A4B and 31B [1]; E4B suits a laptop [2].\n\n"
            "Sources:\n[1] https://ai.example.org/gemma4\n[2] https://blog.example.org/laptop<turn|>",
        ]
    )
    agent = mod.build_agent(
        backend,
        search=make_web_search(client_factory=FakeDDGS),
        fetch=make_fetch_url(resolver=public_dns, transport=httpx.MockTransport(fake_web)),
    )
    assert mod.main(["Which Gemma 4 fits a laptop?"], agent=agent) == 0
    out = capsys.readouterr().out
    assert "E4B suits a laptop [2]" in out
    assert "[1] https://ai.example.org/gemma4" in out and "[2] https://blog.example.org/laptop" in out
    # The pages' text really reached the model, in the tool responses.
    assert "E4B runs well on a 16 GB laptop" in backend.prompts[2]


def test_research_assistant_flags_citations_to_pages_it_never_read(capsys: pytest.CaptureFixture[str]) -> None:
    mod = load("research_assistant")
    backend = ScriptedBackend([call("web_search", query="x"), "Made up [3].<turn|>"])
    agent = mod.build_agent(backend, search=make_web_search(client_factory=FakeDDGS))
    assert mod.main(["x"], agent=agent) == 1
    captured = capsys.readouterr()
    assert "none: the answer is not backed" in captured.out
    assert "[3]" in captured.err


# -- data analyst ---------------------------------------------------------------------------------

ANALYSIS = """import csv, collections
rows = list(csv.DictReader(open("sales.csv")))
totals = collections.Counter()
for r in rows:
    totals[r["region"]] += int(r["revenue"])
print(totals.most_common(1)[0])
"""


@pytest.mark.bwrap
@pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap (apt-get install bubblewrap)")
def test_data_analyst_runs_the_models_code_in_the_sandbox(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mod = load("data_analyst")
    seen: dict[str, str] = {}

    def answer(request: GenerationRequest) -> str:
        # The model reads the sandbox's real output from the tool response before answering.
        seen["prompt"] = request.prompt.text
        return "North had the highest revenue: 45,000.<turn|>"

    backend = ScriptedBackend([call("list_dir", path="."), call("run_python", code=ANALYSIS), answer])
    assert mod.main([], backend=backend, workspace=tmp_path) == 0
    assert "('North', 45000)" in seen["prompt"]
    captured = capsys.readouterr()
    assert "North had the highest revenue" in captured.out
    assert "--- running ---" in captured.err and "('North', 45000)" in captured.err


def test_data_analyst_policy_allows_only_sandboxed_code() -> None:
    mod = load("data_analyst")

    def request(name: str, side_effects: bool) -> ToolCallRequest:
        return ToolCallRequest("c1", name, {}, side_effects)

    assert mod.sandboxed_code_is_fine(request("run_python", True)) is Approval.ALLOW
    assert mod.sandboxed_code_is_fine(request("write_file", True)) is Approval.ASK
    assert mod.sandboxed_code_is_fine(request("read_file", False)) is Approval.ALLOW


# -- file organiser -------------------------------------------------------------------------------


def test_file_organiser_moves_only_what_the_person_approves(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mod = load("file_organiser")
    for name in ("report.pdf", "cat.jpg", "notes.txt"):
        (tmp_path / name).write_text(name)
    asked: list[str] = []

    async def person(request: ToolCallRequest) -> Approval:
        asked.append(request.arguments["source"])
        return Approval.DENY if request.arguments["source"] == "notes.txt" else Approval.ALLOW

    backend = ScriptedBackend(
        [
            call("list_dir", path="."),
            call("move_file", hand_over=False, source="report.pdf", destination="documents/report.pdf")
            + call("move_file", source="cat.jpg", destination="images/cat.jpg"),
            call("move_file", source="notes.txt", destination="documents/notes.txt"),
            call("move_file", source="../escape.txt", destination="x.txt"),
            "Moved the report and the photo; you kept notes.txt where it was.<turn|>",
        ]
    )
    assert mod.main([str(tmp_path)], backend=backend, ask=person) == 0
    assert (tmp_path / "documents" / "report.pdf").read_text() == "report.pdf"
    assert (tmp_path / "images" / "cat.jpg").read_text() == "cat.jpg"
    assert (tmp_path / "notes.txt").exists() and not (tmp_path / "documents" / "notes.txt").exists()
    assert sorted(asked) == ["../escape.txt", "cat.jpg", "notes.txt", "report.pdf"]
    err = capsys.readouterr().err
    assert "denied" in err and "outside the folder" in err


# -- batch script ---------------------------------------------------------------------------------


def test_batch_script_runs_tasks_concurrently_and_reports_failures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mod = load("batch_script")

    def model(request: GenerationRequest) -> str:
        question = request.messages[0 if request.messages[0]["role"] == "user" else 1]["content"]
        if request.messages[-1]["role"] == "tool":
            return f"The result is {request.messages[-1]['content']['value']}.<turn|>"
        if "Celsius" in question:
            return call("calculator", expression="37 * 9 / 5 + 32")
        return "About 8 km.<turn|>"

    questions = tmp_path / "q.txt"
    questions.write_text("Convert 37 degrees Celsius to Fahrenheit.\nConvert 5 miles to km.\n", encoding="utf-8")
    backend = ScriptedBackend([model] * 10)
    assert mod.main([str(questions)], backend=backend) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["index"] for r in lines] == [0, 1]
    assert lines[0]["output"] == "The result is 98.6." and lines[0]["tool_calls"] == 1
    assert lines[1]["output"] == "About 8 km."
    exhausted = ScriptedBackend([])  # every task fails: reported per line, exit code 1
    assert mod.main([str(questions)], backend=exhausted) == 1
    out = capsys.readouterr()
    assert all(not json.loads(line)["ok"] for line in out.out.splitlines())
    assert "0 ok, 2 failed" in out.err


def test_batch_script_calculator_refuses_code() -> None:
    mod = load("batch_script")
    assert mod.calculator.fn("2 ** 10 / 4") == 256.0
    with pytest.raises(ValueError):
        mod.calculator.fn("__import__('os').system('true')")
    with pytest.raises(ValueError):
        mod.calculator.fn("9 ** 9 ** 9")


# -- TUI demo -------------------------------------------------------------------------------------


async def test_tui_demo_plays_its_scripted_turn_and_writes_a_screenshot(tmp_path: Path) -> None:
    from agentkit.tui.widgets import AgentTurn, ApprovalScreen, ToolCard

    mod = load("tui_demo")
    app = mod.build_demo_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        prompt = app.query_one("#prompt")
        prompt.value = "Which model for my laptop?"
        await prompt.action_submit()
        for _ in range(1000):
            if isinstance(app.screen, ApprovalScreen):
                break
            await pilot.pause(0.01)
        assert isinstance(app.screen, ApprovalScreen), "the demo asks before saving its note"
        await pilot.press("y")
        for _ in range(1000):
            if not app.running:
                break
            await pilot.pause(0.01)
        assert "Gemma 4 E4B" in app.query(AgentTurn).last().text
        assert [c.tool_name for c in app.query(ToolCard)] == ["search_docs", "save_note"]
    assert mod.NOTES["laptop model"].startswith("Use gemma4:e4b")
    svg = tmp_path / "shot.svg"
    await mod.save_screenshot(svg, tmp_path / "home")
    assert svg.read_text(encoding="utf-8").startswith("<svg") and "search_docs" in svg.read_text(encoding="utf-8")


async def test_tui_demo_says_what_to_type_and_answers_every_question(tmp_path: Path) -> None:
    """Seen in tmux: the demo opened on an empty box with no hint what to ask, and a second question failed with
    "ScriptedBackend has no output left for call 4 (it was given 3)"."""
    from textual.widgets import Static

    from agentkit.tui.widgets import AgentTurn, ApprovalScreen, PromptArea

    async def wait_for(pilot: Any, done: Callable[[], bool], what: str) -> None:
        for _ in range(1000):
            if done():
                return
            await pilot.pause(0.01)
        raise AssertionError(f"the demo never reached: {what}")

    mod = load("tui_demo")
    app = mod.build_demo_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        prompt = app.query_one("#prompt", PromptArea)
        assert prompt.text == mod.QUESTION  # ready to send
        assert "Press Enter to send the question" in str(app.query_one("#welcome", Static).render())
        for n, (send, answer) in enumerate([("enter", "y"), ("enter", "n")], start=1):
            if n > 1:
                prompt.set_text("And for a phone?")
            await pilot.press(send)
            await wait_for(pilot, lambda: isinstance(app.screen, ApprovalScreen), f"question {n} asks for the note")
            await pilot.press(answer)
            await wait_for(pilot, lambda n=n: not app.running and len(app.query(AgentTurn)) == n, f"answer {n}")
            turn = app.query(AgentTurn).last()
            assert "Gemma 4 E4B" in turn.text and not turn.query(".turn-status.-error")


# -- user mistakes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "args"),
    [("research_assistant", []), ("data_analyst", []), ("file_organiser", ["."]), ("batch_script", [])],
)
def test_a_bad_backend_url_is_one_error_line_not_a_traceback(name: str, args: list[str], tmp_path: Path) -> None:
    env = {**os.environ, "AGENTKIT_BACKEND": "foo://x", "AGENTKIT_HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "error: invalid backend 'foo://x'" in proc.stderr


def test_missing_input_files_are_named_not_a_traceback(tmp_path: Path) -> None:
    csv, questions = tmp_path / "missing.csv", tmp_path / "missing.txt"
    with pytest.raises(SystemExit, match=re.escape(f"no such CSV file: {csv}")):
        load("data_analyst").main([str(csv), "q"], backend=ScriptedBackend([]))
    with pytest.raises(SystemExit, match=re.escape(f"cannot read questions from {questions}")):
        load("batch_script").main([str(questions)], backend=ScriptedBackend([]))


def test_tui_demo_refuses_a_pipe_instead_of_waiting_for_keys(tmp_path: Path) -> None:

    script = Path(__file__).resolve().parents[2] / "examples" / "tui_demo.py"
    done = subprocess.run(
        [sys.executable, str(script)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "AGENTKIT_HOME": str(tmp_path)},
    )
    assert done.returncode == 1 and "needs a terminal" in done.stderr
