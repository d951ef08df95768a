"""A scripted demo of the agentkit TUI: no model server needed.

    python examples/tui_demo.py                      # open the TUI with three saved sessions
    python examples/tui_demo.py --screenshot docs/tui.svg

The "model" is a ScriptedBackend replaying raw Gemma 4 outputs: a question waits in the message box (press
Enter), and whatever you ask it thinks, searches the (canned) docs, asks to save a note (a side effect, so you
get the approval dialog), and answers, as often as you ask. Type ``/``
for the commands (``/export``, ``/copy``, ``/tools``, ...); the "Summarise sales.csv" session shows a
``run_python`` card with its program highlighted.
Sessions go to a temporary folder unless AGENTKIT_HOME is set.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

from rich.text import Text

from agentkit import AgentOptions, Session, SessionStore, tool
from agentkit.backends import GenerationRequest
from agentkit.messages import ToolResult, UserMessage
from agentkit.testing import ScriptedBackend
from agentkit.tui import AgentkitApp

Q = '<|"|>'  # Gemma 4's string delimiter

NOTES: dict[str, str] = {}


@tool
def search_docs(query: str) -> list[dict[str, str]]:
    """Search the Gemma 4 documentation.

    Args:
        query: what to look for.
    """
    return [
        {
            "title": "Gemma 4 model card",
            "snippet": "E2B and E4B run on laptops and phones; 26B A4B and 31B need a GPU.",
        },
        {"title": "Running Gemma 4 locally", "snippet": "ollama pull gemma4:e4b — about 3 GB at 4-bit."},
    ]


@tool(side_effects=True)
def save_note(title: str, text: str) -> str:
    """Save a note for later.

    Args:
        title: a short title.
        text: the note.
    """
    NOTES[title] = text
    return f"saved note {title!r} ({len(text)} characters)"


def demo_outputs() -> list[str]:
    """One full turn: think, search, save a note (asks approval), answer."""
    return [
        "<|channel>thought\nThe user wants a size for a laptop. Let me check the docs first.<channel|>"
        f"<|tool_call>call:search_docs{{query:{Q}Gemma 4 sizes for laptops{Q}}}<tool_call|><|tool_response>",
        "<|channel>thought\nE4B fits. I'll save a note as asked.<channel|>"
        f"<|tool_call>call:save_note{{text:{Q}Use gemma4:e4b on the laptop (about 3 GB).{Q},"
        f"title:{Q}laptop model{Q}}}<tool_call|><|tool_response>",
        "For a laptop, pick **Gemma 4 E4B**:\n\n"
        "- runs on CPU or a small GPU, about **3 GB** at 4-bit\n"
        "- `ollama pull gemma4:e4b`, then `agentkit chat`\n\n"
        "I saved a note titled *laptop model*.<turn|>",
    ]


def demo_model(request: GenerationRequest) -> str:
    """The demo turn's next output for any question: the step is the number of tool results since the question,
    so every message gets the whole turn again (a cancelled one too)."""
    conversation = request.conversation
    asked = max((i for i, m in enumerate(conversation) if isinstance(m, UserMessage)), default=-1)
    done = sum(isinstance(m, ToolResult) for m in conversation[asked + 1 :])
    outputs = demo_outputs()
    return outputs[min(done, len(outputs) - 1)]


QUESTION = "Which Gemma 4 size fits on my laptop? Save a note."

WELCOME = Text.assemble(
    ("◆ agentkit TUI demo\n\n", "bold"),
    "A scripted stand-in plays the model (no Gemma 4 is running): whatever you ask, it searches canned docs, "
    "asks before saving a note, and answers.\n\n",
    "Press Enter to send the question in the message box, then y to allow the note. Ctrl+S shows three saved "
    "chats.\n\n",
    ("Enter sends · Ctrl+J new line · / commands · Esc cancels · Ctrl+Q quits", "dim"),
)


def saved_sessions() -> list[Session]:
    """Three finished conversations, so the sidebar and a replayed chat have something to show."""
    t0 = 1_790_000_000.0
    laptop = Session(
        id="demo-laptop",
        title="Which Gemma 4 fits a laptop?",
        created_at=t0,
        updated_at=t0 + 300,
        backend="scripted",
        model="scripted-gemma4",
        messages=[
            {"role": "user", "content": "Which Gemma 4 size fits on my laptop? Save a note."},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "search_docs", "arguments": {"query": "Gemma 4 sizes for laptops"}},
                    }
                ],
            },
            {
                "role": "tool",
                "tool_call_id": "call_1",
                "name": "search_docs",
                "content": search_docs.fn("Gemma 4 sizes for laptops"),
            },
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {
                            "name": "save_note",
                            "arguments": {"text": "Use gemma4:e4b on the laptop.", "title": "laptop model"},
                        },
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_2", "name": "save_note", "content": {"error": "denied by the user"}},
            {
                "role": "assistant",
                "content": "Pick **Gemma 4 E4B**:\n\n- about **3 GB** at 4-bit\n- `ollama pull gemma4:e4b`\n\n"
                "You declined the note, so nothing was saved.",
            },
        ],
        thinking=[{"turn": 0, "text": "The user wants a laptop-sized model; check the docs first."}],
        tool_calls=[
            {"call_id": "call_1", "name": "search_docs", "duration_s": 0.42},
            {"call_id": "call_2", "name": "save_note", "duration_s": 1.8},
        ],
    )
    lisbon = Session(
        id="demo-lisbon",
        title="Plan three days in Lisbon",
        created_at=t0 - 86400,
        updated_at=t0 - 86000,
        backend="scripted",
        model="scripted-gemma4",
        messages=[
            {"role": "user", "content": "Plan three days in Lisbon."},
            {"role": "assistant", "content": "Day 1: Alfama and the castle. Day 2: Belém. Day 3: Sintra."},
        ],
    )
    code = (
        "import pandas as pd\n\n"
        'sales = pd.read_csv("sales.csv")\n'
        'share = sales.groupby("region")["revenue"].sum() / sales["revenue"].sum()\n'
        "print(share.round(2).sort_values(ascending=False))"
    )
    csv = Session(
        id="demo-sales",
        title="Summarise sales.csv by region",
        created_at=t0 - 2 * 86400,
        updated_at=t0 - 2 * 86400 + 60,
        backend="scripted",
        model="scripted-gemma4",
        messages=[
            {"role": "user", "content": "Summarise sales.csv by region."},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "call_3",
                        "type": "function",
                        "function": {"name": "run_python", "arguments": {"code": code}},
                    }
                ],
            },
            {
                "role": "tool",
                "tool_call_id": "call_3",
                "name": "run_python",
                "content": {"stdout": "region\nNorth    0.41\nSouth    0.33\nWest     0.26\n", "exit_code": 0},
            },
            {"role": "assistant", "content": "North leads with 41% of revenue; South grew fastest (+12%)."},
        ],
        tool_calls=[{"call_id": "call_3", "name": "run_python", "duration_s": 1.3}],
    )
    return [laptop, lisbon, csv]


def build_demo_app(home: Path, *, outputs: list[str] | None = None, **app_options: object) -> AgentkitApp:
    """The demo app with its saved sessions in ``home``; ``app_options`` go to :class:`AgentkitApp`."""
    store = SessionStore(home / "sessions")
    for session in reversed(saved_sessions()):  # saved oldest first: the store orders by last save
        store.save(session)
    # Without outputs of its own, the demo plays its turn for every request (the backend counts requests).
    scripts = [demo_model] * 10_000 if outputs is None else outputs
    backend = ScriptedBackend(scripts, chunk_size=4, delay_s=0.02)
    if app_options.get("session_id") is None:  # a new chat: say what to do, with the question ready
        app_options = {"welcome": WELCOME, "prompt": QUESTION, **app_options}
    return AgentkitApp(
        backend,
        options=AgentOptions(tools=[search_docs, save_note], thinking=True),
        store=store,
        backend_url="scripted:demo",
        **app_options,  # type: ignore[arg-type]
    )


async def save_screenshot(path: Path, home: Path) -> None:
    """Open the replayed laptop conversation at 100x32 and write an SVG."""
    app = build_demo_app(home, session_id="demo-laptop", show_sidebar=True)
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.pause()
        app.query_one("#chat").scroll_home(animate=False)
        await pilot.pause()
        app.save_screenshot(filename=path.name, path=str(path.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--screenshot", metavar="SVG", help="write a screenshot instead of opening the app")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(os.environ.get("AGENTKIT_HOME") or tmp)
        if args.screenshot:
            asyncio.run(save_screenshot(Path(args.screenshot), home))
            print(f"wrote {args.screenshot}")
        elif not (sys.stdin.isatty() and sys.stdout.isatty()):
            # The app would write screen codes into the pipe and wait forever for keys.
            sys.exit("tui_demo.py needs a terminal (or --screenshot SVG to write a picture instead)")
        else:
            build_demo_app(home).run()


if __name__ == "__main__":
    main()
