"""Data analyst: the model writes Python that runs in a sandbox over a CSV in its workspace.

    AGENTKIT_BACKEND=ollama://localhost:11434/gemma4:e4b python examples/data_analyst.py sales.csv \\
        "Which region had the highest revenue, and how did each region trend by month?"

Without a CSV argument, a small sample ``sales.csv`` is written to a fresh workspace. The code the model
writes runs under bubblewrap with no network, and only the workspace folder is writable, so running
it without asking is safe; that is this example's approval policy (everything else with side effects
would still be asked about). Needs bubblewrap: ``sudo apt-get install bubblewrap``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from agentkit import Agent, Approval, Backend, RunResult, ToolCallRequest, backend_from_url, default_policy
from agentkit.errors import AgentkitError
from agentkit.events import RunFinished, TextDelta, ToolCallFinished, ToolCallStarted
from agentkit.tools import PythonSandbox, Workspace

SYSTEM = """You are a data analyst. The data is in CSV files in your working directory (/workspace).
Look at the file first (list_dir, read_file), then answer by writing and running Python with run_python.
Use only the standard library (csv, statistics, collections). Print the numbers you rely on.
Give the answer in a few sentences with the key figures; do not invent numbers you did not compute."""

DEFAULT_QUESTION = "Which region had the highest total revenue, and how did each region trend by month?"

SAMPLE_CSV = """month,region,units,revenue
2026-01,North,120,14400
2026-01,South,80,8800
2026-01,West,95,10450
2026-02,North,130,15600
2026-02,South,92,10120
2026-02,West,90,9900
2026-03,North,125,15000
2026-03,South,110,12100
2026-03,West,88,9680
"""


def sandboxed_code_is_fine(request: ToolCallRequest) -> Approval:
    """Allow run_python (confined: no network, only the workspace writable); ask about anything else."""
    return Approval.ALLOW if request.name == "run_python" else default_policy(request)


def build_agent(backend: Backend, workspace_dir: Path) -> Agent:
    workspace = Workspace(workspace_dir)
    readers = [t for t in workspace.tools() if t.name in ("list_dir", "read_file")]
    sandbox = PythonSandbox(workspace, timeout_s=60, memory_mb=512)
    return Agent(
        backend,
        tools=[*readers, sandbox.as_tool()],
        system=SYSTEM,
        approval=sandboxed_code_is_fine,
        max_steps=10,
    )


async def analyse(agent: Agent, question: str) -> RunResult:
    result: RunResult | None = None
    async for event in agent.run_stream(question):
        if isinstance(event, TextDelta):
            print(event.text, end="", flush=True)
        elif isinstance(event, ToolCallStarted) and event.name == "run_python":
            print("\n--- running ---\n" + str(event.arguments.get("code", "")).rstrip(), file=sys.stderr)
        elif isinstance(event, ToolCallFinished) and event.name == "run_python":
            shown = event.error or getattr(event.result, "stdout", "") or getattr(event.result, "stderr", "")
            print(f"--- output ---\n{str(shown).rstrip()}\n", file=sys.stderr)
        elif isinstance(event, RunFinished):
            result = event.result
    print()
    assert result is not None
    return result


def backend_from_env() -> Backend:
    url = os.environ.get("AGENTKIT_BACKEND")
    if not url:
        sys.exit("set AGENTKIT_BACKEND, e.g. AGENTKIT_BACKEND=ollama://localhost:11434/gemma4:e4b")
    return backend_from_url(url)


def main(argv: Sequence[str] | None = None, backend: Backend | None = None, workspace: Path | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    csv_path = Path(args.pop(0)) if args and args[0].endswith(".csv") else None
    question = " ".join(args) or DEFAULT_QUESTION
    if csv_path is not None and not csv_path.is_file():
        sys.exit(f"no such CSV file: {csv_path}")
    with tempfile.TemporaryDirectory(prefix="agentkit-analyst-") as tmp:
        ws = workspace or Path(tmp)
        if csv_path is not None:
            shutil.copy(csv_path, ws / csv_path.name)
        elif not any(ws.glob("*.csv")):
            (ws / "sales.csv").write_text(SAMPLE_CSV, encoding="utf-8")
        agent = build_agent(backend or backend_from_env(), ws)
        result = asyncio.run(analyse(agent, question))
    return 0 if result.ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AgentkitError as exc:  # server not running, model not pulled, bad URL: the message says what to do
        sys.exit(f"error: {exc}")
