"""File organiser: sorts a messy folder into subfolders, asking before every move or write.

    AGENTKIT_BACKEND=ollama://localhost:11434/gemma4:e4b python examples/file_organiser.py ~/Downloads

The agent works only inside the given folder (the Workspace tools refuse paths outside it). Reading is
free; every change (``move_file``, ``write_file``, ``edit_file``) is marked as a side effect, so the agent
loop asks you first: answer y (once), a (always, for this tool) or n.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from agentkit import Agent, Approval, Backend, Tool, ToolCallRequest, backend_from_url, tool
from agentkit.errors import AgentkitError, ToolError
from agentkit.events import RunFinished, TextDelta, ToolCallFinished
from agentkit.tools import Workspace

SYSTEM = """You organise files. List the folder, then move each file into a subfolder named after its kind
(documents, images, data, code, archives, other) with move_file. Keep file names unchanged. Never delete
anything. If a move is refused, leave that file where it is. End with a short summary of what moved where."""

Ask = Callable[[ToolCallRequest], Awaitable[Approval]]


def make_move_file(workspace: Workspace) -> Tool:
    """A ``move_file`` tool confined to the workspace; it never overwrites an existing file."""
    root = workspace.root

    def inside(path: str) -> Path:
        target = (root / path).resolve()
        if not target.is_relative_to(root):
            raise ToolError(f"{path} is outside the folder being organised; use paths relative to it")
        return target

    @tool(side_effects=True)
    def move_file(source: str, destination: str) -> str:
        """Move (or rename) a file within the folder; missing parent folders are created.

        Args:
            source: the file's current path, relative to the folder.
            destination: the new path, relative to the folder (e.g. "images/cat.jpg").
        """
        src, dst = inside(source), inside(destination)
        if not src.is_file():
            raise ToolError(f"{source} is not a file in the folder; list_dir shows what is there")
        if dst.exists():
            raise ToolError(f"{destination} already exists; pick another name")
        dst.parent.mkdir(parents=True, exist_ok=True)
        src.rename(dst)
        return f"moved {source} -> {destination}"

    return move_file


async def ask_on_terminal(request: ToolCallRequest) -> Approval:
    """y = once, a = always for this tool, anything else = no."""
    args = ", ".join(f"{k}={v!r}" for k, v in request.arguments.items())
    answer = await asyncio.to_thread(input, f"allow {request.name}({args})? [y/a/N] ")
    return {"y": Approval.ALLOW, "a": Approval.ALWAYS}.get(answer.strip().lower()[:1], Approval.DENY)


def build_agent(backend: Backend, folder: Path, *, ask: Ask = ask_on_terminal) -> Agent:
    workspace = Workspace(folder)
    tools = [t for t in workspace.tools() if t.name != "grep"] + [make_move_file(workspace)]
    return Agent(backend, tools=tools, system=SYSTEM, ask=ask, max_steps=30)


async def organise(agent: Agent, task: str) -> int:
    ok = False
    async for event in agent.run_stream(task):
        if isinstance(event, TextDelta):
            print(event.text, end="", flush=True)
        elif isinstance(event, ToolCallFinished):
            mark = "✓" if event.ok else "✗"
            print(f"{mark} {event.name}: {event.result if event.ok else event.error}", file=sys.stderr)
        elif isinstance(event, RunFinished):
            ok = event.result.ok
    print()
    return 0 if ok else 1


def backend_from_env() -> Backend:
    url = os.environ.get("AGENTKIT_BACKEND")
    if not url:
        sys.exit("set AGENTKIT_BACKEND, e.g. AGENTKIT_BACKEND=ollama://localhost:11434/gemma4:e4b")
    return backend_from_url(url)


def main(argv: Sequence[str] | None = None, backend: Backend | None = None, ask: Ask = ask_on_terminal) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        sys.exit("usage: file_organiser.py FOLDER")
    folder = Path(args[0]).expanduser()
    if not folder.is_dir():
        sys.exit(f"{folder} is not a folder")
    agent = build_agent(backend or backend_from_env(), folder, ask=ask)
    return asyncio.run(organise(agent, "Organise this folder."))


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AgentkitError as exc:  # server not running, model not pulled, bad URL: the message says what to do
        sys.exit(f"error: {exc}")
