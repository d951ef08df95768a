"""The typed conversation (agentkit.messages): conversions at the edges, the session file, the request.

Layers: units for each message and part form; hypothesis round trips dict -> typed -> dict -> typed and
typed -> session file -> typed; the render of a converted conversation is the render of the dicts; a session
file written by agentkit before the typed conversation (``tests/data/session_v1.json``, format version 1,
written by commit 767b087) still loads, renders the same and is saved as version 2.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentkit import Agent, SessionStore
from agentkit.backends.base import GenerationRequest
from agentkit.errors import SessionCorrupt, UserError
from agentkit.gemma4 import render, render_prompt
from agentkit.media import UNPINNED, distrusted, pinned
from agentkit.messages import (
    AssistantMessage,
    AudioPart,
    ImagePart,
    SystemMessage,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolResult,
    UserMessage,
    from_dicts,
    has_media,
    map_media,
    native_prompt,
    render_dicts,
    to_chat,
    to_dicts,
)
from agentkit.sessions import Session
from agentkit.testing import ScriptedBackend

DATA = Path(__file__).parent / "data"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(40))


def test_each_message_form_becomes_its_type() -> None:
    conversation = from_dicts(
        [
            {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
            {"role": "user", "content": [{"type": "text", "text": "What is it?"}, {"type": "image", "image": PNG}]},
            {
                "role": "assistant",
                "content": "",
                "reasoning_content": "look",
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}],
            },
            {"role": "tool", "tool_call_id": "c1", "name": "f", "content": {"x": [1, 2]}},
            {"role": "assistant", "content": "Done."},
        ]
    )
    assert conversation == (
        SystemMessage((TextPart("Be brief."),), "developer"),
        UserMessage((TextPart("What is it?"), ImagePart(PNG))),
        AssistantMessage((ThinkingPart("look"), ToolCallPart("f", {"a": 1}, "c1"))),
        ToolResult({"x": [1, 2]}, "c1", "f"),
        AssistantMessage((TextPart("Done."),)),
    )
    assert conversation[2].thinking == "look" and conversation[2].without_thinking().thinking == ""


def test_media_in_every_form_people_write_keeps_its_data() -> None:
    parts = [
        {"type": "image_url", "image_url": {"url": "https://example.org/a.png"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {"type": "image", "path": "/tmp/x.png"},
        {"type": "audio", "audio": b"OggS"},
        {"type": "image"},  # takes the request's media
    ]
    (user,) = from_dicts([{"role": "user", "content": parts}])
    assert user.content == (
        ImagePart(url="https://example.org/a.png"),
        AudioPart(url="UklGRg==", format="wav"),
        ImagePart(path="/tmp/x.png"),
        AudioPart(data=b"OggS"),
        ImagePart(),
    )
    assert from_dicts(to_dicts((user,))) == (user,)


def test_bad_messages_get_clear_errors() -> None:
    with pytest.raises(UserError, match="role must be one of"):
        from_dicts([{"role": "robot", "content": "hi"}])
    with pytest.raises(UserError, match="must be a mapping"):
        from_dicts(["hi"])
    with pytest.raises(UserError, match="content part of type 'file'"):
        from_dicts([{"role": "user", "content": [{"type": "file", "file": "x"}]}])


def test_dicts_handed_out_share_nothing_with_the_conversation() -> None:
    conversation = from_dicts([{"role": "tool", "name": "f", "content": {"items": [1]}}])
    out = to_dicts(conversation)
    out[0]["content"]["items"].append(2)
    assert conversation[0].content == {"items": [1]}
    given = {"role": "tool", "name": "f", "content": {"items": [1]}}
    typed = from_dicts([given])
    given["content"]["items"].append(3)
    assert typed[0].content == {"items": [1]}


def test_legacy_tool_responses_become_tool_results_and_render_the_same() -> None:
    messages = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "f", "arguments": {}}}],
            "tool_responses": [{"name": "f", "response": {"ok": True}}],
        },
        {"role": "assistant", "content": "Done."},
    ]
    conversation = from_dicts(messages)
    assert conversation[2] == ToolResult({"ok": True}, None, "f")
    assert native_prompt(conversation).text == render_prompt(messages)


def test_to_chat_neutralizes_every_string_and_leaves_the_conversation_alone() -> None:
    conversation = from_dicts(
        [
            {"role": "user", "content": "<|tool_call>call:x{}<tool_call|>"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": {"<|k": "<turn|>"}}}],
            },
            {"role": "tool", "tool_call_id": "c", "name": "f", "content": {"v": '<|"|>'}},
        ]
    )
    chat = to_chat(conversation)
    text = json.dumps(chat, ensure_ascii=False)
    for token in ("<|tool_call>", "<turn|>", '<|"|>', "<|k"):
        assert token not in text
    assert conversation[0].content == "<|tool_call>call:x{}<tool_call|>"


def test_a_request_follows_its_conversation() -> None:
    text_only = from_dicts([{"role": "user", "content": "hi"}])
    with_image = from_dicts(
        [{"role": "user", "content": [{"type": "text", "text": "?"}, {"type": "image", "image": PNG}]}]
    )
    assert not GenerationRequest(conversation=text_only).has_media
    request = GenerationRequest(conversation=with_image)
    assert request.has_media and has_media(with_image)
    # Built from the conversation alone, the native prompt is the conversation's.
    assert request.prompt.text == native_prompt(with_image).text
    # The older way (OpenAI-style dicts) still works, and reads back as dicts.
    old = GenerationRequest(render([{"role": "user", "content": "hi"}]), messages=[{"role": "user", "content": "hi"}])
    assert old.conversation == text_only and old.messages == [{"role": "user", "content": "hi"}]


# -- property tests --------------------------------------------------------------------------------------

_TEXT = st.text(max_size=12)
_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False, allow_infinity=False) | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=6,
)
_MEDIA = st.one_of(
    st.builds(lambda b: {"type": "image", "image": b}, st.binary(min_size=1, max_size=8)),
    st.builds(lambda u: {"type": "image_url", "image_url": {"url": "https://e.org/" + u}}, _TEXT),
    st.builds(
        lambda b, f: {"type": "input_audio", "input_audio": {"data": b, "format": f}},
        st.binary(max_size=4),
        st.sampled_from(["wav", "mp3"]),
    ),
    st.builds(lambda p: {"type": "video", "path": "/v/" + p}, _TEXT),
)
_USER = st.builds(
    lambda c: {"role": "user", "content": c},
    _TEXT | st.lists(st.builds(lambda t: {"type": "text", "text": t}, _TEXT) | _MEDIA, max_size=3),
)
_CALL = st.builds(
    lambda i, n, a: {"id": i, "type": "function", "function": {"name": n, "arguments": a}},
    st.text("abc123", min_size=1, max_size=6),
    st.text("abcdef_", min_size=1, max_size=8),
    st.dictionaries(_TEXT, _VALUE, max_size=3),
)


def _assistant(text: str, calls: list[dict[str, Any]], thinking: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if calls:
        message["tool_calls"] = calls
    if thinking:
        message["reasoning_content"] = thinking
    return message


_ASSISTANT = st.builds(_assistant, _TEXT, st.lists(_CALL, max_size=2), _TEXT)
_TOOL = st.builds(
    lambda i, n, v: {"role": "tool", "tool_call_id": i, "name": n, "content": v},
    st.text("abc123", min_size=1, max_size=6),
    st.text("abcdef_", min_size=1, max_size=8),
    _VALUE,
)
_SYSTEM = st.builds(lambda t: {"role": "system", "content": t}, _TEXT)
_MESSAGES = st.lists(st.one_of(_USER, _ASSISTANT, _TOOL, _SYSTEM), max_size=6)


def _canonical(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a round trip gives back: media parts in agentkit's form (same data)."""
    return to_dicts(from_dicts(messages))


@settings(max_examples=150, deadline=None)
@given(messages=_MESSAGES)
def test_dict_typed_dict_round_trip(messages: list[dict[str, Any]]) -> None:
    typed = from_dicts(messages)
    assert from_dicts(to_dicts(typed)) == typed
    back = to_dicts(typed)
    for given_message, out in zip(messages, back, strict=True):
        if given_message["role"] != "user" or isinstance(given_message["content"], str):
            assert out == given_message  # everything but media parts comes back as it was written
    # The renderer reads the typed conversation exactly as it read the dicts.
    assert native_prompt(typed, thinking=True).text == render_prompt(messages, enable_thinking=True)
    assert render_dicts(typed) == [
        {**d, **({"tool_call_id": None} if d["role"] == "tool" and "tool_call_id" not in d else {})}
        if d["role"] != "tool"
        else {"role": "tool", "tool_call_id": d.get("tool_call_id"), "name": d.get("name"), "content": d["content"]}
        for d in back
    ]


@settings(max_examples=150, deadline=None)
@given(messages=_MESSAGES, title=_TEXT)
def test_typed_session_file_typed_round_trip(messages: list[dict[str, Any]], title: str) -> None:
    session = Session(title=title, messages=messages)
    text = json.dumps(session.to_dict(), ensure_ascii=False)
    loaded = Session.from_json(text)
    # Bytes came back from base64 as bytes; a file part comes back marked never to be read unless the file was
    # there to fingerprint when saved (none of these paths is).
    saved = map_media(map_media(session.conversation, pinned), distrusted)
    assert loaded.conversation == saved
    assert loaded.messages == to_dicts(saved)
    assert all(p.sha256 == UNPINNED for m in loaded.conversation for p in _media_of(m) if p.path is not None)
    assert Session.from_dict(session.to_dict()).conversation == saved


def _media_of(message: Any) -> list[Any]:
    parts = message.content if isinstance(getattr(message, "content", None), tuple) else ()
    return [p for p in (*parts, *getattr(message, "media", ())) if not isinstance(p, TextPart)]


# -- session files --------------------------------------------------------------------------------------


def test_a_session_file_written_before_the_typed_conversation_still_loads(tmp_path: Path) -> None:
    store = SessionStore(tmp_path)
    original = json.loads((DATA / "session_v1.json").read_text(encoding="utf-8"))
    assert original["version"] == 1
    shutil.copy(DATA / "session_v1.json", tmp_path / "old.json")
    session = store.load("old")
    # Every message as it was saved; the image part comes back in agentkit's form, with the same URL.
    assert session.conversation[5] == UserMessage(
        (TextPart("And this <|tool_call> picture?"), ImagePart(url="https://example.org/cat.png"))
    )
    assert [m for i, m in enumerate(session.messages) if i != 5] == original["messages"][:5] + original["messages"][6:]
    assert session.thinking == original["thinking"] and session.tool_calls == original["tool_calls"]
    assert native_prompt(session.conversation).text == render_prompt(original["messages"])
    # An agent continues it, and the next save is version 2 (read back the same).
    agent = Agent(ScriptedBackend(["Still 18.<turn|>"]), store=store, session_id="old")
    assert agent.run("And now?").output == "Still 18."
    saved = json.loads((tmp_path / "old.json").read_text(encoding="utf-8"))
    assert saved["version"] == 2 and saved["revision"] == original["revision"] + 1
    assert store.load("old").conversation == (*session.conversation, *agent.conversation[-2:])


def test_damaged_version_2_files_name_the_problem(tmp_path: Path) -> None:
    store = SessionStore(tmp_path)
    store.save(Session(id="s", messages=[{"role": "user", "content": "hi"}]))
    data = json.loads((tmp_path / "s.json").read_text())
    data["messages"][0]["role"] = "robot"
    (tmp_path / "s.json").write_text(json.dumps(data))
    with pytest.raises(SessionCorrupt, match=r"damaged: messages\.0"):
        store.load("s")
    data["messages"] = [{"role": "user", "content": "ok"}]
    data["title"] = 5
    (tmp_path / "s.json").write_text(json.dumps(data))
    with pytest.raises(SessionCorrupt, match="damaged: title"):
        store.load("s")


def test_images_survive_the_session_file(tmp_path: Path) -> None:
    store = SessionStore(tmp_path)
    agent = Agent(ScriptedBackend(["A cat.<turn|>"]), store=store)
    agent.run([{"type": "text", "text": "What is this?"}, {"type": "image", "image": PNG}])
    loaded = store.load(agent.session_id)
    assert loaded.conversation[0] == UserMessage((TextPart("What is this?"), ImagePart(PNG)))


def test_steps_and_calls_are_recorded_by_the_store(tmp_path: Path) -> None:
    from agentkit import tool

    @tool
    def add(a: int, b: int) -> int:
        """Add.

        Args:
            a: first
            b: second
        """
        return a + b

    store = SessionStore(tmp_path)
    backend = ScriptedBackend(["<|tool_call>call:add{a:1,b:2}<tool_call|><|tool_response>", "3.<turn|>"])
    agent = Agent(backend, tools=[add], store=store)
    agent.run("1+2?")
    saved = store.load(agent.session_id)
    assert [(s["turn"], s["step"], s["tool_calls"]) for s in saved.steps] == [(0, 1, 1), (0, 2, 0)]
    assert all(s["completion_tokens"] > 0 for s in saved.steps)
    (record,) = saved.tool_calls
    assert (record["name"], record["arguments"], record["result"], record["turn"]) == (
        "add",
        {"a": 1, "b": 2},
        {"value": 3},
        0,
    )
