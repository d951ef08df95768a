"""The session store: atomic writes, clear errors, foreign files left alone."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from agentkit import Session, SessionStore
from agentkit.errors import SessionCorrupt, SessionNotFound, UserError
from agentkit.testing.samples import png


def make(store: SessionStore, title: str = "t", n: int = 2) -> Session:
    s = Session(title=title, backend="scripted", model="m")
    s.messages = [{"role": "user", "content": f"m{i}"} for i in range(n)]
    store.save(s)
    return s


def test_save_load_list_rename_delete_export(tmp_path: Path) -> None:
    store = SessionStore(tmp_path)
    a = make(store, "first")
    time.sleep(0.01)
    b = make(store, "second", n=3)
    assert store.load(a.id).messages == a.messages
    assert [i.id for i in store.list()] == [b.id, a.id]
    assert store.list()[0].message_count == 3
    store.rename(a.id, "  renamed ")
    assert store.load(a.id).title == "renamed"
    out = tmp_path / "export" / "a.json"
    data = store.export(a.id, out)
    assert json.loads(out.read_text()) == data
    assert data["format"] == "agentkit.session"
    store.delete(a.id)
    with pytest.raises(SessionNotFound, match="agentkit sessions list"):
        store.load(a.id)


def test_corrupt_and_foreign_files_are_reported_and_never_overwritten(tmp_path: Path) -> None:
    store = SessionStore(tmp_path)
    (tmp_path / "broken.json").write_text('{"format": "agentkit.session", "messages": [')
    (tmp_path / "foreign.json").write_text('{"hello": "world"}')
    with pytest.raises(SessionCorrupt, match="not valid JSON"):
        store.load("broken")
    with pytest.raises(SessionCorrupt, match="not an agentkit session"):
        store.load("foreign")
    with pytest.raises(SessionCorrupt, match="left untouched"):
        store.save(Session(id="foreign"))
    with pytest.raises(SessionCorrupt):
        store.delete("foreign")
    assert (tmp_path / "foreign.json").read_text() == '{"hello": "world"}'
    assert store.list() == []  # unreadable files are skipped by list, reported by load


def test_ids_cannot_escape_the_directory(tmp_path: Path) -> None:
    store = SessionStore(tmp_path)
    for bad in ("../x", "/etc/passwd", "a/b", ""):
        with pytest.raises(UserError, match="invalid session id"):
            store.load(bad)


def test_newer_format_is_refused(tmp_path: Path) -> None:
    (tmp_path / "new.json").write_text('{"format": "agentkit.session", "version": 99}')
    with pytest.raises(SessionCorrupt, match="newer agentkit"):
        SessionStore(tmp_path).load("new")


WRITER = textwrap.dedent(
    """
    import sys
    from agentkit import Session, SessionStore
    store = SessionStore(sys.argv[1])
    s = Session(id="victim")
    i = 0
    while True:
        i += 1
        # Big enough that a write takes a while, so kills land mid-write.
        s.messages = [{"role": "user", "content": f"v{i} " + "x" * 200_000}]
        store.save(s)
        print(i, flush=True)
    """
)


def test_killing_a_writer_mid_write_leaves_a_readable_version(tmp_path: Path) -> None:
    store = SessionStore(tmp_path)
    for round_ in range(5):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=os.environ.copy()
        )
        assert proc.stdout is not None
        # Wait for a few completed saves, then kill at an arbitrary point of a later one.
        for _ in range(3 + round_):
            proc.stdout.readline()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        session = store.load("victim")
        content = session.messages[0]["content"]
        assert content.startswith("v") and content.endswith("x" * 200_000)


def test_fields_of_the_wrong_type_are_reported_on_load_and_skipped_by_list(tmp_path: Path) -> None:
    store = SessionStore(tmp_path)
    store.save(Session(id="good", title="fine"))
    damaged = {"format": "agentkit.session", "version": 1, "title": 7, "messages": [{"role": "user", "content": "x"}]}
    (tmp_path / "damaged.json").write_text(json.dumps(damaged))
    with pytest.raises(SessionCorrupt, match="'title' must be a string"):
        store.load("damaged")
    assert [i.id for i in store.list()] == ["good"]  # one bad file does not break the listing
    (tmp_path / "damaged.json").write_text(json.dumps({**damaged, "title": "", "thinking": 5}))
    with pytest.raises(SessionCorrupt, match="'thinking' must be a list"):
        store.load("damaged")
    (tmp_path / "damaged.json").write_text(json.dumps({**damaged, "title": "", "messages": None}))
    with pytest.raises(SessionCorrupt, match="'messages' must be a list of message objects"):
        store.load("damaged")


def test_a_copied_session_file_is_its_own_session(tmp_path: Path) -> None:
    store = SessionStore(tmp_path)
    store.save(Session(id="original", title="v1", messages=[{"role": "user", "content": "hi"}]))
    (tmp_path / "backup.json").write_bytes((tmp_path / "original.json").read_bytes())
    copy = store.load("backup")
    assert copy.id == "backup"
    copy.title = "edited copy"
    store.save(copy)
    assert store.load("original").title == "v1"  # saving the copy never overwrites what it was copied from
    assert sorted(i.id for i in store.list()) == ["backup", "original"]


def test_two_agents_on_one_session_take_turns_and_lose_nothing(tmp_path: Path) -> None:
    """Two writers of one session (two `agentkit run -s ID`, or a run while the TUI has it open)."""
    import asyncio

    from agentkit import Agent
    from agentkit.events import Notice
    from agentkit.testing import ScriptedBackend

    store = SessionStore(tmp_path)
    first = Agent(ScriptedBackend(["one<turn|>", "three<turn|>"]), store=store)
    first.run("1")
    second = Agent(ScriptedBackend(["two<turn|>"]), store=store, session_id=first.session_id)
    second.run("2")
    # The first agent's copy is stale: it reloads from disk before its next turn instead of overwriting "2".
    events: list[object] = []

    async def go() -> None:
        async for e in first.run_stream("3"):
            events.append(e)

    asyncio.run(go())
    assert any(isinstance(e, Notice) and "continued elsewhere" in e.message for e in events)
    contents = [m["content"] for m in store.load(first.session_id).messages]
    assert contents == ["1", "one", "2", "two", "3", "three"]


def test_concurrent_runs_on_one_session_wait_for_the_lock(tmp_path: Path) -> None:
    import asyncio

    from agentkit import Agent
    from agentkit.testing import ScriptedBackend

    store = SessionStore(tmp_path)
    a = Agent(ScriptedBackend(["first answer<turn|>", "a again, slowly<turn|>"], delay_s=0.01), store=store)
    a.run("hello")  # saved: the session exists
    b = Agent(ScriptedBackend(["b answers<turn|>"]), store=store, session_id=a.session_id)

    async def both() -> None:
        started = asyncio.Event()

        async def run_a() -> None:
            async for _ in a.run_stream("from a"):
                started.set()

        async def run_b() -> None:
            await started.wait()  # a holds the lock now
            await b.arun("from b")

        await asyncio.gather(run_a(), run_b())

    asyncio.run(both())
    contents = [m["content"] for m in store.load(a.session_id).messages]
    assert contents[2:] == ["from a", "a again, slowly", "from b", "b answers"]
    # b saw a's finished turn: it waited for the lock, then reloaded the session.
    assert "a again, slowly" in b.backend.prompts[0]  # type: ignore[attr-defined]


# -- hostile files in the sessions folder --------------------------------------------------------------


@pytest.mark.timeout(60)  # the FIFO used to block list() forever: a hang fails here instead of stalling CI
def test_one_bad_file_is_reported_and_skipped_never_fatal_or_blocking(tmp_path: Path) -> None:
    store = SessionStore(tmp_path)
    good = make(store, "good")
    (tmp_path / "deep.json").write_text("[" * 100_000, encoding="utf-8")  # RecursionError in json
    os.mkfifo(tmp_path / "fifo.json")  # no writer: a blocking open never returns
    (tmp_path / "folder.json").mkdir()
    (tmp_path / "latin1.json").write_bytes(b'{"format": "\xe9"}')
    os.symlink("/dev/zero", tmp_path / "zero.json")  # endless bytes
    infos, problems = store.scan()
    assert [i.id for i in infos] == [good.id]
    assert sorted(problems) == ["deep.json", "fifo.json", "folder.json", "latin1.json", "zero.json"]
    assert "nested too deeply" in problems["deep.json"]
    assert "not a regular file" in problems["fifo.json"] and "not a regular file" in problems["zero.json"]
    assert [i.id for i in store.list()] == [good.id]
    for name in ("deep", "fifo", "zero"):
        with pytest.raises(SessionCorrupt):
            store.load(name)
    with pytest.raises(SessionCorrupt, match="not a regular file"):
        store.save(Session(id="fifo"))  # never blocks on, nor replaces, what is not a session file
    assert store.revision("good") is None and store.revision(good.id) == 1
    with pytest.raises(SessionCorrupt):
        store.revision("fifo")


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SessionStore(tmp_path)
    big = make(store, "big", n=50)
    monkeypatch.setattr("agentkit.sessions.MAX_SESSION_BYTES", 1000)
    with pytest.raises(SessionCorrupt, match="more than a session may be"):
        store.load(big.id)
    assert store.scan()[1].keys() == {f"{big.id}.json"}


@pytest.mark.parametrize("bad", ["abc\n", "abc\r", "\nabc", "a b", "a/b", "..", ".hidden", "a" * 129, "ab\x00"])
def test_session_ids_are_matched_whole(tmp_path: Path, bad: str) -> None:
    with pytest.raises(UserError, match="invalid session id"):
        SessionStore(tmp_path).load(bad)


@pytest.mark.parametrize("length", [200, 228, 241, 242, 250, 255])
def test_export_names_up_to_the_file_system_limit_work(tmp_path: Path, length: int) -> None:
    store = SessionStore(tmp_path / "s")
    s = make(store)
    target = tmp_path / ("e" * (length - 5) + ".json")
    store.export(s.id, target)
    assert json.loads(target.read_text(encoding="utf-8"))["id"] == s.id


def test_a_name_over_the_limit_is_a_clear_user_error(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "s")
    s = make(store)
    for name in ("e" * 256, "é" * 128):  # 256 bytes, in ASCII and in two-byte characters
        with pytest.raises(UserError, match="at most 255"):
            store.export(s.id, tmp_path / name)


def test_atomic_writes_are_private_unless_asked_to_keep_the_files_mode(tmp_path: Path) -> None:
    from agentkit.sessions import atomic_write_text

    convo = tmp_path / "s.json"
    atomic_write_text(convo, "{}")
    assert convo.stat().st_mode & 0o777 == 0o600  # conversations: the owner only
    results = tmp_path / "results.jsonl"
    results.write_text("old\n")
    results.chmod(0o644)
    atomic_write_text(results, "new\n", private=False)  # a batch rewriting its results file
    assert results.read_text() == "new\n" and results.stat().st_mode & 0o777 == 0o644


def test_media_bytes_in_a_saved_session_come_back_as_the_same_media(tmp_path: Path) -> None:
    """A picture given as bytes is saved as base64 text (it was written as "b'\\x89PNG...'", which no backend can
    read back), and a continued session sends the very same bytes (same digest: an in-process cache still hits)."""
    from agentkit.backends.base import GenerationRequest
    from agentkit.gemma4.render import render

    picture, clip = b"\x89PNG\r\n\x1a\n\x00\x01binary", bytearray(b"RIFF\x00\x00WAVEdata")
    message = {"role": "user", "content": [{"type": "image", "image": picture}, {"type": "audio", "audio": clip}]}
    store = SessionStore(tmp_path)
    session = Session(messages=[message])
    store.save(session)
    saved = (tmp_path / f"{session.id}.json").read_text(encoding="utf-8")
    assert base64.b64encode(picture).decode() in saved and "b'" not in saved  # base64 text, no Python repr
    loaded = store.load(session.id).messages
    # The bytes come back as the bytes that were given (the session file's TypeAdapter decodes the base64).
    assert loaded == [
        {"role": "user", "content": [{"type": "image", "image": picture}, {"type": "audio", "audio": bytes(clip)}]}
    ]
    from agentkit.backends.transformers._media import conversation_media

    before = conversation_media(GenerationRequest(prompt=render([message]), messages=[message]))
    after = conversation_media(GenerationRequest(prompt=render(loaded), messages=loaded))
    assert [(m.kind, m.data, m.digest) for m in after] == [(m.kind, m.data, m.digest) for m in before]
    assert [m.data for m in after] == [picture, bytes(clip)]


@pytest.mark.parametrize("target", ["fifo", "/dev/null", "folder"])
def test_a_media_path_in_a_session_file_reads_only_regular_files(tmp_path: Path, target: str) -> None:
    """A session file names its pictures by path; one naming a FIFO hung the resumed run forever on read."""
    import threading

    from agentkit.backends._openai_media import openai_part
    from agentkit.messages import ImagePart, UserMessage

    if target == "fifo":
        path = tmp_path / "shot.png"
        os.mkfifo(path)
    elif target == "folder":
        path = tmp_path / "shots"
        path.mkdir()
    else:
        path = Path(target)
    store = SessionStore(tmp_path / "sessions")
    # A fingerprint, so that the file is read at all (without one it never is: the test below).
    store.save(Session(id="s", conversation=[UserMessage((ImagePart(path=str(path), sha256="0" * 64),))]))
    (part,) = store.load("s").conversation[0].content  # type: ignore[union-attr]
    outcome: list[BaseException | dict[str, object]] = []

    def send() -> None:
        try:
            outcome.append(openai_part(part))
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=send, daemon=True)
    worker.start()
    worker.join(10)
    if worker.is_alive():  # the old code: blocked on the FIFO; let it go, and fail
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(10)
        pytest.fail("reading the session's media path blocked")
    assert len(outcome) == 1 and isinstance(outcome[0], UserError), outcome
    assert "not a regular file" in str(outcome[0]) or "Is a directory" in str(outcome[0])


@pytest.mark.parametrize(
    "secret",
    ["-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n", "API_KEY=sk-1\n", "é" * 3000],
    ids=["key", "env", "utf8"],
)
def test_a_media_path_in_a_session_file_never_sends_a_text_file(tmp_path: Path, secret: str) -> None:
    """A session file can name any file as a picture: ~/.ssh/id_ed25519 or a .env went to the server base64."""
    from agentkit.backends._openai_media import openai_part
    from agentkit.backends.ollama import ollama_messages
    from agentkit.messages import ImagePart, UserMessage, to_chat

    path = tmp_path / "id_ed25519"
    path.write_text(secret, encoding="utf-8")
    store = SessionStore(tmp_path / "sessions")
    store.save(Session(id="s", conversation=[UserMessage((ImagePart(path=str(path), sha256="0" * 64),))]))
    loaded = store.load("s").conversation
    with pytest.raises(UserError, match="it is text"):
        to_chat(loaded, openai_part)  # vLLM
    with pytest.raises(UserError, match="it is text"):
        ollama_messages(to_chat(loaded))  # Ollama


@pytest.mark.parametrize(
    "content",
    [
        b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n",
        bytes.fromhex("308204a40201000282010100") + bytes(range(256)),  # a DER private key
        b"GnomeKeyring\n\r\x00\n" + bytes(range(256)),
        png(),  # a picture of someone's passport is still theirs: not a place the user named
    ],
    ids=["openssh", "der", "keyring", "picture"],
)
def test_a_session_file_written_by_someone_else_cannot_have_agentkit_read_a_file(
    tmp_path: Path, content: bytes
) -> None:
    """A session file names its media files by path. One written by hand (a shared or downloaded session, or one
    a tool wrote into the sessions folder) named a key, a keyring or any picture of the user's, and resuming it
    sent the file to the model's server. Now a file part is read back only with the fingerprint agentkit
    recorded when the user attached the file, and only while the file still has those bytes: someone who
    does not already know a file's bytes cannot have it read."""
    from agentkit.backends._openai_media import openai_part
    from agentkit.messages import to_chat

    secret = tmp_path / "secret"
    secret.write_bytes(content)
    sessions = tmp_path / "sessions"
    sessions.mkdir()
    forged = {
        "format": "agentkit.session",
        "version": 2,
        "revision": 1,
        "id": "s",
        "messages": [
            {"role": "user", "content": [{"type": "image", "path": str(secret)}, {"type": "text", "text": "hi"}]}
        ],
    }
    (sessions / "s.json").write_text(json.dumps(forged))
    v1 = {"format": "agentkit.session", "version": 1, "id": "v1", "messages": forged["messages"]}
    (sessions / "v1.json").write_text(json.dumps(v1))
    for session_id in ("s", "v1"):
        loaded = SessionStore(sessions).load(session_id).conversation
        with pytest.raises(UserError, match="without the fingerprint agentkit records when you attach a file"):
            to_chat(loaded, openai_part)


def test_a_file_the_user_attached_is_sent_again_from_the_session_while_it_is_unchanged(tmp_path: Path) -> None:
    from agentkit.backends._openai_media import openai_part
    from agentkit.messages import ImagePart, UserMessage, to_chat

    picture = tmp_path / "cat.png"
    picture.write_bytes(png())
    store = SessionStore(tmp_path / "sessions")
    store.save(Session(id="s", conversation=[UserMessage((ImagePart(path=str(picture)),))]))
    loaded = store.load("s").conversation
    url = to_chat(loaded, openai_part)[0]["content"][0]["image_url"]["url"]
    assert base64.b64decode(url.split(",")[1]) == png()
    picture.write_bytes(png(color=(0, 0, 255)))  # another file in its place
    with pytest.raises(UserError, match="changed since it was attached"):
        to_chat(loaded, openai_part)
