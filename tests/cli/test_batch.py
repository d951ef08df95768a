"""``agentkit batch``: results appended per task, errors recorded, resume, timeouts, crash-safe output.

Tests taking ``executor_name`` run twice: with the local executor and on the session's Ray cluster (tests/conftest.py),
since both must behave alike.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from agentkit import Agent
from agentkit.backends.base import GenerationRequest
from agentkit.cli import main
from agentkit.cli.batch import BatchTask, read_done, read_tasks, run_batch
from agentkit.errors import UserError
from agentkit.testing import ScriptedBackend


def answer_by_task(request: GenerationRequest) -> str:
    """A model that answers each task with its own text upper-cased (order-independent under concurrency)."""
    last_user = request.messages[-1]["content"]
    if "explode" in last_user:
        raise RuntimeError("the model server crashed on this one")
    return f"{last_user.upper()}<turn|>"


def write_tasks(path: Path, lines: list[object]) -> Path:
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    return path


def records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def quiet() -> Console:
    return Console(file=open("/dev/null", "w"))


def on(executor_name: str) -> list[str]:
    """The command-line flags that pick the executor (the test session is already connected to its cluster)."""
    return ["--ray"] if executor_name == "ray" else []


async def test_runs_every_task_and_records_failures_without_stopping(tmp_path: Path, executor_name: str) -> None:
    backend = ScriptedBackend([answer_by_task] * 10)
    tasks = [BatchTask("a", "alpha"), BatchTask("b", "please explode"), BatchTask("c", "gamma")]
    out = tmp_path / "results.jsonl"
    summary = await run_batch(
        tasks, out, lambda: Agent(backend), concurrency=3, console=quiet(), executor=executor_name
    )
    assert (summary.ok, summary.failed, summary.skipped) == (2, 1, 0)
    by_id = {r["id"]: r for r in records(out)}
    assert by_id["a"]["output"] == "ALPHA" and by_id["a"]["ok"] is True
    assert by_id["c"]["output"] == "GAMMA"
    assert by_id["b"]["ok"] is False and "crashed" in str(by_id["b"]["error"])


def recovered(request: GenerationRequest) -> str:
    return "recovered<turn|>"


async def test_resume_skips_finished_tasks_and_retry_failed_reruns_errors(tmp_path: Path, executor_name: str) -> None:
    out = tmp_path / "results.jsonl"
    tasks = [BatchTask("a", "alpha"), BatchTask("b", "please explode")]
    first = await run_batch(
        tasks, out, lambda: Agent(ScriptedBackend([answer_by_task] * 5)), console=quiet(), executor=executor_name
    )
    assert (first.ok, first.failed) == (1, 1)
    before = out.read_text(encoding="utf-8")
    # Every task a rerun would run answers "recovered": what the file says afterwards shows what ran.
    again = await run_batch(
        tasks, out, lambda: Agent(ScriptedBackend([recovered] * 5)), console=quiet(), executor=executor_name
    )
    assert (again.skipped, again.ok, again.failed) == (2, 0, 0)  # nothing to do: both ids are in the output
    assert out.read_text(encoding="utf-8") == before
    retried = await run_batch(
        tasks,
        out,
        lambda: Agent(ScriptedBackend([recovered] * 5)),
        retry_failed=True,
        console=quiet(),
        executor=executor_name,
    )
    assert (retried.skipped, retried.ok, retried.failed) == (1, 1, 0)
    assert [(r["id"], r["output"]) for r in records(out)] == [("a", "ALPHA"), ("b", "recovered")]


async def test_per_task_timeout_is_recorded(tmp_path: Path, executor_name: str) -> None:
    slow = ScriptedBackend(["slow " * 500 + "<turn|>"], delay_s=0.01)
    out = tmp_path / "results.jsonl"
    summary = await run_batch(
        [BatchTask("t", "take your time")],
        out,
        lambda: Agent(slow),
        timeout_s=0.2,
        console=quiet(),
        executor=executor_name,
    )
    assert summary.failed == 1
    (rec,) = records(out)
    assert rec["ok"] is False and rec["error"] == "timed out after 0.2s"


def test_a_line_cut_off_by_a_crash_is_dropped_and_the_task_reruns(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    good = json.dumps({"id": "a", "task": "alpha", "ok": True, "output": "ALPHA"})
    out.write_text(good + "\n" + '{"id": "b", "task": "be', encoding="utf-8")  # killed mid-write
    assert list(read_done(out)) == ["a"]
    assert out.read_text(encoding="utf-8") == good + "\n"  # clean line boundary for the next append


def test_an_output_file_that_is_not_ours_is_refused_and_left_untouched(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\nlast line without a newline", encoding="utf-8")
    with pytest.raises(UserError, match="not an agentkit batch results file"):
        read_done(notes)
    assert notes.read_text(encoding="utf-8") == "my notes\nlast line without a newline"
    # A task file given as -o by mistake: its lines must not count as finished tasks.
    tasks = write_tasks(tmp_path / "tasks.jsonl", [{"id": "a", "task": "one"}])
    with pytest.raises(UserError, match=r"tasks.jsonl:1 is not an agentkit batch result"):
        read_done(tasks)
    with pytest.raises(UserError, match="is not a file"):
        read_done(tmp_path)


def test_batch_command_refuses_a_foreign_output_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tasks = write_tasks(tmp_path / "tasks.jsonl", ["x"])
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me", encoding="utf-8")
    assert main(["batch", str(tasks), "-o", str(notes), "--backend", "scripted:x"]) == 2
    assert "left untouched" in capsys.readouterr().err
    assert notes.read_text(encoding="utf-8") == "keep me"
    assert main(["batch", str(tasks), "-o", str(tmp_path), "--backend", "scripted:x"]) == 2
    assert "is not a file" in capsys.readouterr().err


def test_task_file_forms_and_mistakes(tmp_path: Path) -> None:
    ok = write_tasks(tmp_path / "t.jsonl", [{"id": "x", "task": "one"}, "two", {"task": "three"}])
    assert read_tasks(ok) == [BatchTask("x", "one"), BatchTask("2", "two"), BatchTask("3", "three")]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task": "fine"}\n{not json}\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"bad.jsonl:2"):
        read_tasks(bad)
    dup = write_tasks(tmp_path / "dup.jsonl", [{"id": "a", "task": "x"}, {"id": "a", "task": "y"}])
    with pytest.raises(UserError, match="duplicate id"):
        read_tasks(dup)
    latin1 = tmp_path / "latin1.jsonl"
    latin1.write_bytes('{"task": "café"}\n'.encode("latin-1"))
    with pytest.raises(UserError, match="is not UTF-8 text"):
        read_tasks(latin1)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(UserError, match="has no tasks"):
        read_tasks(empty)


def test_batch_command_end_to_end(tmp_path: Path, scripted, capsys, executor_name: str) -> None:  # type: ignore[no-untyped-def]
    tasks = write_tasks(tmp_path / "tasks.jsonl", [{"id": "q1", "task": "first"}, {"id": "q2", "task": "second"}])
    out = tmp_path / "results.jsonl"
    url = scripted(["Answer one.<turn|>", "Answer two.<turn|>"])
    assert main(["batch", str(tasks), "-o", str(out), "--concurrency", "1", "--backend", url, *on(executor_name)]) == 0
    assert [(r["id"], r["output"]) for r in records(out)] == [("q1", "Answer one."), ("q2", "Answer two.")]
    assert "2 ok, 0 failed, 0 skipped" in capsys.readouterr().err
    # Rerunning the same command is a no-op resume (the scripted backend has no outputs left for a rerun).
    assert main(["batch", str(tasks), "-o", str(out), "--backend", scripted([]), *on(executor_name)]) == 0
    assert "0 ok, 0 failed, 2 skipped" in capsys.readouterr().err
    assert len(records(out)) == 2


def test_batch_exits_1_when_a_task_failed(tmp_path: Path, scripted, executor_name: str) -> None:  # type: ignore[no-untyped-def]
    tasks = write_tasks(tmp_path / "tasks.jsonl", ["only one output is scripted", "so this one fails"])
    out = tmp_path / "results.jsonl"
    url = scripted(["ok<turn|>"])
    assert main(["batch", str(tasks), "-o", str(out), "-c", "1", "--backend", url, *on(executor_name)]) == 1
    recs = records(out)
    assert [r["ok"] for r in recs] == [True, False]
    assert "no output left" in str(recs[1]["error"])


def test_resume_refuses_ids_that_now_name_other_tasks(tmp_path: Path, scripted, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "results.jsonl"
    tasks = write_tasks(tmp_path / "tasks.jsonl", ["first question", "second question"])
    assert (
        main(["batch", str(tasks), "-o", str(out), "-c", "1", "--backend", scripted(["A.<turn|>", "B.<turn|>"])]) == 0
    )
    # A line inserted at the top renumbers the bare-string tasks: "2" is now "first question".
    write_tasks(tasks, ["new question", "first question", "second question"])
    capsys.readouterr()
    assert main(["batch", str(tasks), "-o", str(out), "--backend", scripted([])]) == 2
    assert "for other task text" in capsys.readouterr().err
    assert len(records(out)) == 2  # nothing was appended or skipped


def test_batch_refuses_to_overwrite_its_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tasks = write_tasks(tmp_path / "tasks.jsonl", ["x"])
    assert main(["batch", str(tasks), "-o", str(tasks), "--backend", "scripted:x"]) == 2
    assert "must differ" in capsys.readouterr().err


def test_sessions_are_saved_only_when_asked(tmp_path: Path, scripted, executor_name: str) -> None:  # type: ignore[no-untyped-def]
    from agentkit import SessionStore

    tasks = write_tasks(tmp_path / "tasks.jsonl", ["one"])
    plain, saved = tmp_path / "plain.jsonl", tmp_path / "saved.jsonl"
    via = on(executor_name)
    assert main(["batch", str(tasks), "-o", str(plain), "--backend", scripted(["a<turn|>"]), *via]) == 0
    assert records(plain)[0]["session_id"] is None and SessionStore().list() == []
    url = scripted(["a<turn|>"])
    assert main(["batch", str(tasks), "-o", str(saved), "--save-sessions", "--backend", url, *via]) == 0
    (info,) = SessionStore().list()
    assert records(saved)[0]["session_id"] == info.id


def test_plain_text_lines_are_tasks_as_in_examples_batch_script(tmp_path: Path) -> None:
    questions = tmp_path / "questions.txt"
    questions.write_text(
        'Convert 5 miles to kilometres.\n\n"Hamlet" was written by whom?\n{"id": "q9", "task": "json too"}\n'
        '"a JSON string"\n[1, 2] is a list?\n',
        encoding="utf-8",
    )
    assert read_tasks(questions) == [
        BatchTask("1", "Convert 5 miles to kilometres."),
        BatchTask("3", '"Hamlet" was written by whom?'),  # starts with a quote but is not one JSON string
        BatchTask("q9", "json too"),
        BatchTask("5", "a JSON string"),
        BatchTask("6", "[1, 2] is a list?"),
    ]
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"id": "a", "task": "unterminated}\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"broken.jsonl:1: starts like JSON but is not valid JSON"):
        read_tasks(broken)
    no_task = tmp_path / "no_task.jsonl"
    no_task.write_text('{"id": "a", "question": "where is the task key?"}\n', encoding="utf-8")
    with pytest.raises(UserError, match=r'needs a "task" string'):
        read_tasks(no_task)


def test_plain_text_batch_end_to_end(tmp_path: Path, scripted, executor_name: str) -> None:  # type: ignore[no-untyped-def]
    questions = tmp_path / "questions.txt"
    questions.write_text("first question\nsecond question\n", encoding="utf-8")
    out = tmp_path / "results.jsonl"
    url = scripted(["A<turn|>", "B<turn|>"])
    assert main(["batch", str(questions), "-o", str(out), "-c", "1", "--backend", url, *on(executor_name)]) == 0
    assert [(r["id"], r["task"], r["output"]) for r in records(out)] == [
        ("1", "first question", "A"),
        ("2", "second question", "B"),
    ]


def test_a_rerun_exits_1_while_failures_remain_and_retry_replaces_them_once(
    tmp_path: Path, scripted, capsys: pytest.CaptureFixture[str], executor_name: str
) -> None:  # type: ignore[no-untyped-def]
    via = on(executor_name)
    tasks = write_tasks(tmp_path / "tasks.jsonl", [{"id": "a", "task": "one"}, {"id": "b", "task": "two"}])
    out = tmp_path / "results.jsonl"
    assert main(["batch", str(tasks), "-o", str(out), "-c", "1", "--backend", scripted(["A<turn|>"]), *via]) == 1
    capsys.readouterr()
    # A plain rerun skips both: the failure is still the recorded result, so the batch is not done.
    assert main(["batch", str(tasks), "-o", str(out), "--backend", scripted([]), *via]) == 1
    err = capsys.readouterr().err
    assert "0 ok, 0 failed, 2 skipped" in err and "1 task(s) failed" in err and "(b)" in err
    assert "--retry-failed" in err
    # Retrying replaces the failed record: every id once, in the file's order, and the exit status is 0.
    assert main(["batch", str(tasks), "-o", str(out), "--retry-failed", "--backend", scripted(["B<turn|>"]), *via]) == 0
    assert [(r["id"], r["ok"], r.get("output")) for r in records(out)] == [("a", True, "A"), ("b", True, "B")]
    assert "failed in" not in capsys.readouterr().err


def test_a_retry_that_fails_again_keeps_one_record(tmp_path: Path, scripted) -> None:  # type: ignore[no-untyped-def]
    tasks = write_tasks(tmp_path / "tasks.jsonl", [{"id": "a", "task": "one"}])
    out = tmp_path / "results.jsonl"
    for _ in range(3):
        assert main(["batch", str(tasks), "-o", str(out), "--retry-failed", "--backend", scripted([])]) == 1
    (rec,) = records(out)
    assert rec["id"] == "a" and rec["ok"] is False


def test_a_run_cut_at_max_tokens_is_recorded_in_words(tmp_path: Path, scripted, executor_name: str) -> None:  # type: ignore[no-untyped-def]
    tasks = write_tasks(tmp_path / "tasks.jsonl", ["write a lot"])
    out = tmp_path / "results.jsonl"
    url = scripted(["word " * 400 + "<turn|>"])
    args = ["batch", str(tasks), "-o", str(out), "--max-tokens", "10", "--backend", url, *on(executor_name)]
    assert main(args) == 1  # the sampling settings reach the workers
    (rec,) = records(out)
    assert rec["stop_reason"] == "max_tokens" and "cut off at the token limit" in str(rec["error"])


def test_a_task_or_result_line_nested_too_deeply_is_a_clear_error(tmp_path: Path) -> None:
    """json's decoder recurses per level: 100k nested lists in one line raised a raw RecursionError."""
    deep = "[" * 100_000 + "]" * 100_000
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text('{"task": "x", "a": ' + deep + "}\n")
    with pytest.raises(UserError, match=r"tasks\.jsonl:1: nested too deeply"):
        read_tasks(tasks)
    tasks.write_text('"' + "[" * 100_000 + '"\n')  # a JSON string line: the text is the task
    assert read_tasks(tasks)[0].task == "[" * 100_000
    results = tmp_path / "results.jsonl"
    results.write_text(deep + "\n")
    with pytest.raises(UserError, match="is not an agentkit batch result"):
        read_done(results)
