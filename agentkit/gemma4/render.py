"""Render a conversation into a Gemma 4 prompt, byte for byte as the reference chat template does.

Written in Python rather than by running the template so that every piece knows where it came from:
turn markers, declarations and call syntax are *trusted* segments; user text, tool results, model text,
thinking and every string value are *untrusted* (see :mod:`agentkit.gemma4.prompt`). The tools' declaration
block is written by :mod:`agentkit.gemma4.declarations`, the segments collected by ``_writer``; this module
writes the turns.

Layout (the protocol doc has the details; ``tests/data/render_vectors.json`` pins the bytes)::

    <bos><|turn>system\\n[<|think|>\\n][system text][<|tool>declaration:…<tool|>…]<turn|>\\n
    <|turn>user\\n[media][text]<turn|>\\n
    <|turn>model\\n[<|channel>thought\\n…\\n<channel|>][text]<|tool_call>…<tool_call|>
        <|tool_response>response:…<tool_response|>…[final text]<turn|>\\n
    [generation prompt]

One user request is one model turn, however many tool rounds it takes: consecutive assistant and tool
messages share a turn. Where the template leaves the history underdetermined this module chooses:

- An assistant message's text goes where the model wrote it, before its calls, when a later assistant
  message continues the turn or when its calls still wait for results. Only the template's own case — the
  last message of the turn with calls, results and text — renders the text after the results and closes
  the turn (``assistant_text_and_call`` vector).
- ``reasoning_content`` is kept only for tool-calling messages after the last user message (the turn in
  progress); any ``<|channel>…<channel|>`` span in assistant content is always stripped.
- Tool results are named by the call whose id matches, else the message's ``name``, else ``unknown``.
- A tool message's image/audio/video parts render as placeholders right after its ``<tool_response|>``,
  as the template published 2026-07-09 does (its ``format_tool_response_block`` is followed by the parts'
  ``<|image|>``/``<|audio|>``/``<|video|>``); the text parts, joined, are the response value.
- A model turn left open (results, or calls still waiting, with no answer) is closed with ``<turn|>``
  when a user or system message follows, so every turn in the history is well-formed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ._writer import _Out, _trusted_run, _untrusted_run
from .declarations import Declarations, SupportsOpenAITool, _declarations
from .prompt import Prompt
from .tokens import (
    AUDIO,
    BOS,
    CHANNEL_END,
    CHANNEL_START,
    IMAGE,
    THINK,
    TOOL_CALL_END,
    TOOL_CALL_START,
    TOOL_RESPONSE_END,
    TOOL_RESPONSE_START,
    TURN_END,
    TURN_START,
    VIDEO,
)
from .values import write_value

__all__ = [
    "Declarations",
    "SupportsOpenAITool",
    "generation_prompt",
    "render",
    "render_prompt",
    "render_tool_results",
]

_MEDIA = {"image": IMAGE, "image_url": IMAGE, "audio": AUDIO, "input_audio": AUDIO, "video": VIDEO}


def generation_prompt(enable_thinking: bool) -> str:
    """What opens the model's turn: with thinking off, an already-closed empty thought channel."""
    if enable_thinking:
        return f"{TURN_START}model\n"
    return f"{TURN_START}model\n{CHANNEL_START}thought\n{CHANNEL_END}"


# -- message content ---------------------------------------------------------------------------------


def _parts(content: Any) -> list[Mapping[str, Any]]:
    if isinstance(content, Mapping):
        return [content]
    if isinstance(content, list | tuple):
        return [p if isinstance(p, Mapping) else {"type": "text", "text": str(p)} for p in content]
    return []


def _joined_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(str(p.get("text") or "") for p in _parts(content) if p.get("type", "text") == "text")


def strip_thinking(text: str) -> str:
    """Model content without ``<|channel>…<channel|>`` spans, trimmed (what the template feeds back)."""
    if CHANNEL_START not in text and CHANNEL_END not in text:
        return text.strip()
    kept = [part.split(CHANNEL_START, 1)[0] for part in text.split(CHANNEL_END)]
    return "".join(kept).strip()


def _user_content(out: _Out, content: Any) -> None:
    if isinstance(content, str):
        out.u(content.strip())
        return
    for part in _parts(content):
        kind = part.get("type", "text")
        if kind == "text":
            out.u(str(part.get("text") or "").strip())
        elif kind in _MEDIA:
            out.t(_MEDIA[kind])


def _system_content(out: _Out, content: Any) -> None:
    if isinstance(content, str) or content is None:
        out.u((content or "").strip())
        return
    for part in _parts(content):
        if part.get("type", "text") == "text":
            out.u(str(part.get("text") or "").strip() + " ")


def _arguments(raw: Any) -> Any:
    """OpenAI sends arguments as a JSON string, Ollama and HF as a mapping; both render as a mapping."""
    if isinstance(raw, str):
        try:
            decoded = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError:
            return raw
        return decoded
    return {} if raw is None else raw


def _call(out: _Out, call: Mapping[str, Any]) -> None:
    fn = call.get("function", call)
    out.t(f"{TOOL_CALL_START}call:")
    out.u(str(fn.get("name") or "unknown"))
    args = _arguments(fn.get("arguments"))
    if isinstance(args, Mapping):
        write_value(args, out.emit)
    else:  # not a mapping (bad JSON from a client): keep the text, inert, inside the braces
        out.t("{")
        out.u(str(args))
        out.t("}")
    out.t(TOOL_CALL_END)


def _tool_content(content: Any) -> tuple[Any, tuple[str, ...]]:
    """A tool message's content as a response value and the media that follow it.

    As the template: content parts give their text joined untrimmed as the value, and each image/audio/video
    part a placeholder after the response; mappings and other values stay as they are.
    """
    if isinstance(content, list) and content and all(isinstance(p, Mapping) and "type" in p for p in content):
        kinds = tuple(str(p["type"]) for p in content if p["type"] in _MEDIA)
        return _joined_text(content), kinds
    return ("" if content is None else content), ()


def _media_after(out: _Out, kinds: Sequence[str]) -> None:
    """The placeholders of a result's media, right after its ``<tool_response|>`` (trusted: agentkit's own)."""
    for kind in kinds:
        out.t(_MEDIA[kind])


def _response_body(out: _Out, name: str, value: Any) -> None:
    out.t("response:")
    out.u(name)
    if isinstance(value, Mapping):
        write_value(value, out.emit)
    else:
        out.t("{value:")
        write_value(value, out.emit)
        out.t("}")
    out.t(TOOL_RESPONSE_END)


def render_tool_results(results: Sequence[tuple[str, Any] | tuple[str, Any, Sequence[str]]]) -> Prompt:
    """The text the runtime appends after the model's ``<|tool_response>`` hand-over, for each result.

    The model already wrote the first ``<|tool_response>``, so the first result starts at ``response:``;
    the others are whole blocks. A mapping result renders as ``{k:v,…}``, anything else as ``{value:…}``.
    A result given as ``(name, value, kinds)`` is followed by one media placeholder per kind (``image``,
    ``audio``, ``video``), where the template writes a tool message's media parts.
    """
    out = _Out()
    for i, result in enumerate(results):
        if i:
            out.t(TOOL_RESPONSE_START)
        _response_body(out, result[0], result[1])
        if len(result) > 2:
            _media_after(out, result[2])
    return out.prompt()


# -- the conversation ---------------------------------------------------------------------------------


_ROLES = ("system", "developer", "user", "assistant", "tool")
_ROLE_SET = frozenset(_ROLES)
_USER_OPEN = f"{TURN_START}user\n"
_SYSTEM_OPEN = f"{TURN_START}system\n"  # developer messages too
_MODEL_OPEN = f"{TURN_START}model\n"
_TURN_CLOSE = f"{TURN_END}\n"


def _role(message: Mapping[str, Any]) -> str:
    """The message's role, checked: it is written into a turn marker, so it must be one we know."""
    role = message.get("role")
    if role not in _ROLES:
        raise ValueError(f"message role must be one of {', '.join(_ROLES)}, not {role!r}")
    return str(role)


def _results_of(
    message: Mapping[str, Any], following: Iterable[Mapping[str, Any]], call_names: Mapping[str, str]
) -> list[tuple[str, Any, tuple[str, ...]]]:
    results: list[tuple[str, Any, tuple[str, ...]]] = []
    for legacy in message.get("tool_responses") or ():
        results.append((str(legacy.get("name") or "unknown"), legacy.get("response"), ()))
    for tool_msg in following:
        call_id = tool_msg.get("tool_call_id")
        name = call_names.get(call_id) if isinstance(call_id, str) else None
        results.append((name or str(tool_msg.get("name") or "unknown"), *_tool_content(tool_msg.get("content"))))
    return results


def _model_message(
    out: _Out,
    message: Mapping[str, Any],
    results: list[tuple[str, Any, tuple[str, ...]]],
    *,
    keep_thinking: bool,
    last_of_turn: bool,
) -> tuple[str | None, bool]:
    """One assistant message (or orphan tool results) inside an open model turn.

    Returns the state it leaves (``"tool_call"``: calls wait for results, ``"tool_response"``: results
    given, ``None``: a plain answer) and whether it closed the turn.
    """
    calls = list(message.get("tool_calls") or ())
    text = strip_thinking(_joined_text(message.get("content")))
    thinking = message.get("reasoning_content") or message.get("reasoning") or message.get("thinking")
    if thinking and calls and keep_thinking:
        out.t(f"{CHANNEL_START}thought\n")
        out.u(str(thinking))
        out.t(f"\n{CHANNEL_END}")
    # The template's one case of text after the results; elsewhere text goes where the model wrote it.
    text_after_results = bool(calls and results and last_of_turn)
    if not text_after_results:
        out.u(text)
    for call in calls:
        _call(out, call)
    for name, value, kinds in results:
        out.t(TOOL_RESPONSE_START)
        _response_body(out, name, value)
        _media_after(out, kinds)
    if text_after_results:
        out.u(text)
    if results:
        state: str | None = "tool_response"
    elif calls:
        out.t(TOOL_RESPONSE_START)  # the hand-over: the model waits for these results
        return "tool_call", False
    else:
        state = None
    if state is None or (text and last_of_turn):
        out.t(f"{TURN_END}\n")
        return state, True
    return state, False


def _plain_turns(out: _Out, messages: Sequence[Mapping[str, Any]], roles: Sequence[Any], i: int) -> int:
    """Write the run of plain turns from ``i`` on (user text; answers without calls), most of any history.

    What the general path writes for each (marker, text, ``<turn|>``), in one loop without a call per piece:
    the markers between two turns make one trusted run, the text one untrusted run, each looked up in the
    memos. Outside a model turn only. Returns the index of the first message it did not write.
    """
    n = len(messages)
    segments, texts = out._segments, out._texts
    if not out._trusted:
        out._flush()
        out._trusted = True
    pending = "".join(out._parts)  # trusted text not yet closed into a run
    while i < n:
        role, message = roles[i], messages[i]
        if role == "user":
            content = message.get("content")
            if type(content) is not str:
                break
            before, text = _USER_OPEN, content.strip()
        elif role == "assistant":
            if (i + 1 < n and roles[i + 1] == "tool") or message.get("tool_calls") or message.get("tool_responses"):
                break
            content = message.get("content")
            before, text = _MODEL_OPEN, strip_thinking(content if type(content) is str else _joined_text(content))
        else:
            break
        i += 1
        if not text:
            pending += before + _TURN_CLOSE
            continue
        run = pending + before
        segment, sent = _untrusted_run(text)
        segments += (_trusted_run(run), segment)
        texts += (run, sent)
        pending = _TURN_CLOSE
    out._parts = [pending] if pending else []
    return i


def render(
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Any] | Declarations | None = None,
    *,
    enable_thinking: bool = False,
    add_generation_prompt: bool = True,
    bos: bool = True,
) -> Prompt:
    """The prompt for ``messages`` (OpenAI/Hugging Face-style dicts) and ``tools``, as trusted/untrusted segments.

    ``tools``: OpenAI function-tool dicts, objects with ``as_openai_tool()``, or a :class:`Declarations`.
    ``bos=False`` leaves out the leading ``<bos>``: for turns that continue an earlier rendering.
    """
    out = _Out()
    if bos:
        out.t(BOS)
    loop: Sequence[Mapping[str, Any]] = messages
    first_role = _role(messages[0]) if messages else None
    if enable_thinking or tools or first_role in ("system", "developer"):
        out.t(f"{TURN_START}system\n")
        if enable_thinking:
            out.t(f"{THINK}\n")
        if first_role in ("system", "developer"):
            _system_content(out, messages[0].get("content"))
            loop = messages[1:]
        if tools:
            _declarations(out, tools)
        out.t(f"{TURN_END}\n")

    roles = [m.get("role") for m in loop]
    try:
        known = _ROLE_SET.issuperset(roles)
    except TypeError:  # an unhashable role
        known = False
    if not known:
        roles = [_role(m) for m in loop]  # raises, naming the role that is wrong
    last_user = len(roles) - 1 - roles[::-1].index("user") if "user" in roles else -1
    state: str | None = None
    turn_open = False  # consecutive assistant and tool messages share one model turn
    call_names: dict[str, str] = {}  # call id -> function name, within the model turn
    i, n = 0, len(loop)
    while i < n:
        if not turn_open and roles[i] != "tool" and (j := _plain_turns(out, loop, roles, i)) > i:
            state, i = None, j
            continue
        message, role = loop[i], roles[i]
        if role in ("assistant", "tool"):
            if not turn_open:
                out.t(_MODEL_OPEN)
                turn_open, call_names = True, {}
            j = i + 1
            while j < n and roles[j] == "tool":
                j += 1
            if (
                j == i + 1
                and role == "assistant"
                and not message.get("tool_calls")
                and not message.get("tool_responses")
            ):
                # A plain answer closing a model turn (outside one, _plain_turns wrote it).
                out.u(strip_thinking(_joined_text(message.get("content"))))
                out.t(_TURN_CLOSE)
                state, turn_open = None, False
                i = j
                continue
            if role == "assistant":
                for call in message.get("tool_calls") or ():
                    if isinstance(call.get("id"), str):
                        call_names[call["id"]] = str(call.get("function", call).get("name") or "unknown")
                results = _results_of(message, loop[i + 1 : j], call_names)
            else:  # tool results with no assistant message before them
                results, message = _results_of({}, loop[i:j], call_names), {}
            state, closed = _model_message(
                out,
                message,
                results,
                keep_thinking=i > last_user,
                last_of_turn=j >= n or roles[j] != "assistant",
            )
            turn_open = not closed
            i = j
            continue
        if turn_open:  # a model turn cut short (e.g. the user spoke while calls were pending)
            out.t(f"{TURN_END}\n")
            turn_open = False
        state = None
        if role == "user":
            out.t(_USER_OPEN)
            _user_content(out, message.get("content"))
        else:
            out.t(_SYSTEM_OPEN)
            _system_content(out, message.get("content"))
        out.t(_TURN_CLOSE)
        i += 1

    if add_generation_prompt and state is None:
        out.t(generation_prompt(enable_thinking))
    return out.prompt()


def render_prompt(
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Any] | None = None,
    *,
    enable_thinking: bool = False,
    add_generation_prompt: bool = True,
) -> str:
    """:func:`render` as text, untrusted segments neutralized: ready for a text-prompt endpoint."""
    return render(messages, tools, enable_thinking=enable_thinking, add_generation_prompt=add_generation_prompt).text
