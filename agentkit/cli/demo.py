"""``agentkit demo``: a whole agent session with no model server, to see what agentkit does before installing one.

Only the model is pretend: a scripted stand-in writes native Gemma 4 output (thinking, tool calls, an
answer) and reacts to what the tools really returned. Everything else is the real thing, on the same path
as ``agentkit run``: the file tools and the bubblewrap sandbox work in a fresh temporary folder, calls with
side effects are asked about on the terminal (or need ``--yes``), and the answer streams. The final answer
quotes the numbers the sandboxed code printed, so a sandbox that fails shows up as a failure, not as a
canned success.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from agentkit.backends.base import GenerationRequest
from agentkit.options import AgentOptions

from .common import EXIT_OK, terminal_safe
from .config import Settings

__all__ = ["DEMO_TASK", "SALES_CSV", "demo_app", "demo_backend", "demo_command", "demo_model", "demo_settings"]

Q = '<|"|>'  # Gemma 4's string delimiter

DEMO_TASK = "Which month had the highest revenue in sales.csv? Write a short report to report.md."

SALES_CSV = """month,units,revenue
2026-01,120,2400.00
2026-02,95,1995.50
2026-03,143,3146.00
2026-04,160,3680.00
2026-05,151,3322.00
2026-06,134,2948.00
"""

ANALYSIS = """import csv

with open("sales.csv", newline="") as f:
    rows = list(csv.DictReader(f))
best = max(rows, key=lambda r: float(r["revenue"]))
total = sum(float(r["revenue"]) for r in rows)
print(f"months: {len(rows)}")
print(f"total revenue: {total:.2f}")
print(f"best month: {best['month']} with {float(best['revenue']):.2f} ({best['units']} units)")
"""

BANNER = (
    "agentkit demo: a scripted stand-in plays the model (its replies are canned; no Gemma 4 is running).\n"
    "The tools, the approval questions, the sandbox and the streaming are real. Workspace: {workspace}\n"
)


def _call(name: str, **args: str) -> str:
    body = ",".join(f"{k}:{Q}{v}{Q}" for k, v in args.items())
    return f"<|tool_call>call:{name}{{{body}}}<tool_call|><|tool_response>"


def _thought(request: GenerationRequest, text: str) -> str:
    return f"<|channel>thought\n{text}<channel|>" if request.enable_thinking else ""


def _this_turn(request: GenerationRequest) -> list[dict[str, Any]]:
    """The tool results since the last user message, in order."""
    messages = list(request.messages)
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    return [dict(m) for m in messages[last_user + 1 :] if m.get("role") == "tool"]


def _error(content: Any) -> str | None:
    return _echo(content["error"]) if isinstance(content, dict) and set(content) == {"error"} else None


def _echo(value: Any) -> str:
    """Tool output the scripted model repeats, with Gemma 4 markup broken up: echoed text must stay text."""
    return str(value).replace("<|", "< |").replace("|>", "| >").replace("<turn|", "< turn|").replace("<eos>", "< eos>")


def demo_model(request: GenerationRequest) -> str:
    """The scripted model: read the CSV, analyse it in the sandbox, write a report, answer with what came back."""
    tools = {t.get("function", t).get("name") for t in request.tools}
    results = _this_turn(request)
    done = {r.get("name"): r.get("content") for r in results}
    if "read_file" not in done:
        return _thought(request, "I should look at the data before answering.") + _call("read_file", path="sales.csv")
    if "run_python" in tools and "run_python" not in done:
        return _thought(request, "Six months of figures; I'll let Python find the maximum.") + _call(
            "run_python", code=ANALYSIS
        )
    ran = done.get("run_python")
    if ran is None:
        return "I read sales.csv, but I have no Python tool here to analyse it (bubblewrap is not installed).<turn|>"
    denied = _error(ran)
    if denied is not None:
        # Said in the terminal assistant too, where there is no --yes: sending the task again asks again.
        return f"I could not run the analysis: {denied}. Ask again and allow run_python to see the figures.<turn|>"
    if not isinstance(ran, dict) or ran.get("exit_code") != 0:
        stderr = _echo(ran.get("stderr", "") if isinstance(ran, dict) else ran).strip()
        return f"The analysis failed in the sandbox, so I have no figures to report:\n\n```\n{stderr}\n```<turn|>"
    figures = _echo(ran.get("stdout", "")).strip()
    if "write_file" not in done:
        report = f"# Sales report\n\n{figures}\n\nComputed from sales.csv by the agentkit demo.\n"
        return _thought(request, "Now the report.") + _call("write_file", path="report.md", content=report)
    wrote = _error(done["write_file"])
    saved = "I saved them to report.md." if wrote is None else f"I could not save report.md ({wrote})."
    lines = "\n".join(f"- {line}" for line in figures.splitlines())
    return f"Here is what the sandboxed analysis of **sales.csv** printed:\n\n{lines}\n\n{saved}<turn|>"


def demo_backend(*, chunk_size: int = 4, delay_s: float = 0.004) -> Any:
    """A scripted backend that plays :func:`demo_model` for every request, streamed in small visible pieces."""
    from agentkit.testing import ScriptedBackend

    # The TUI's status line adds the engine's name, "(scripted)", itself.
    return ScriptedBackend([demo_model] * 200, chunk_size=chunk_size, delay_s=delay_s, model="agentkit-demo")


def _tools_available() -> tuple[str, ...]:
    return ("files", "python") if shutil.which("bwrap") else ("files",)


def demo_settings(workspace: Path, tools: tuple[str, ...] | None = None) -> Settings:
    """What the demo runs with: thinking on (so it shows), the file tools and the sandbox in ``workspace``."""
    return Settings(
        backend_url="scripted:demo",
        tools=_tools_available() if tools is None else tools,
        workspace=workspace,
        sources={"backend": "agentkit demo", "workspace": "the demo's temporary folder"},
        options=AgentOptions(thinking=True, max_steps=8),
    )


def demo_command(args: argparse.Namespace) -> int:
    root = Path(tempfile.mkdtemp(prefix="agentkit-demo-"))
    workspace = root / "workspace"
    workspace.mkdir()
    try:
        (workspace / "sales.csv").write_text(SALES_CSV, encoding="utf-8")
        tools = _tools_available()
        settings = demo_settings(workspace, tools)
        print(BANNER.format(workspace=workspace), file=sys.stderr)
        if "python" not in tools:
            print("(bubblewrap is not installed, so the demo runs without the python tool)\n", file=sys.stderr)
        if args.tui:
            return _demo_tui(settings, root / "sessions")
        from .run import run_command

        print(f"task: {DEMO_TASK}\n", file=sys.stderr)
        run_args = argparse.Namespace(
            task=DEMO_TASK, json=False, yes=args.yes, session=None, continue_last=False, no_save=True
        )
        code = run_command(run_args, settings, backend=demo_backend())
        report = workspace / "report.md"
        if report.is_file():
            text = terminal_safe(report.read_text(encoding="utf-8"))  # written from the sandbox's output
            print(f"\nreport.md in the workspace:\n{text}", file=sys.stderr)
        print(
            "This was a demo. For real answers, run a model: agentkit doctor says what is there and what to start.",
            file=sys.stderr,
        )
        return code
    finally:
        if args.keep:
            print(f"kept the demo's workspace: {workspace}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


def demo_app(settings: Settings, sessions: Path, backend: Any = None) -> Any:
    """The terminal assistant on the demo's scripted model and tools; sessions go to ``sessions``, not yours."""
    from rich.text import Text

    from agentkit import SessionStore
    from agentkit.tui import AgentkitApp

    from .common import agent_factory

    agents = agent_factory(settings, backend=backend if backend is not None else demo_backend())
    # The app takes the whole screen, so what the command line demo prints first is said here: that this is a
    # demo, and a task to send (already in the message box).
    welcome = Text.assemble(
        ("◆ agentkit demo\n\n", "bold"),
        "A scripted stand-in plays the model: its replies are canned, no Gemma 4 is running. The tools, the "
        "approval questions, the sandbox and the streaming are real, in a temporary folder with sales.csv.\n\n",
        "Press Enter to send the task in the message box. For a real model: agentkit chat.\n\n",
        ("Enter sends · Ctrl+J new line · / commands · Esc cancels · Ctrl+Q quits", "dim"),
    )
    return AgentkitApp(
        agents.backend,
        options=agents.options,
        store=SessionStore(sessions),
        backend_url="scripted:agentkit-demo",
        welcome=welcome,
        prompt=DEMO_TASK,
    )


def _demo_tui(settings: Settings, sessions: Path) -> int:
    from .chat import has_terminal

    if not has_terminal():
        from agentkit.errors import UserError

        raise UserError("agentkit demo --tui needs a terminal; without one, run agentkit demo")
    demo_app(settings, sessions).run()
    return EXIT_OK
