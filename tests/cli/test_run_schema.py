"""``agentkit run --schema``: validated JSON on stdout, clear errors for bad schema files and import paths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agentkit.cli import main
from agentkit.cli.common import EXIT_FAILED, EXIT_USAGE

Q = '<|"|>'
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "temp": {"type": "number", "maximum": 60}},
    "required": ["city", "temp"],
}


def final(body: str) -> str:
    return f"<|tool_call>call:final_result{{{body}}}<tool_call|><|tool_response>"


@pytest.fixture
def schema_file(tmp_path: Path) -> Path:
    path = tmp_path / "weather.schema.json"
    path.write_text(json.dumps(SCHEMA))
    return path


def test_schema_file_prints_only_the_validated_json(scripted, schema_file, capsys) -> None:  # type: ignore[no-untyped-def]
    url = scripted(
        [
            f"Let me answer.{final(f'city:{Q}Paris{Q},temp:99')}",  # fails maximum: told, retried
            final(f"city:{Q}Paris{Q},temp:18.5"),
        ]
    )
    assert main(["run", "--backend", url, "--schema", str(schema_file), "weather in Paris"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {"city": "Paris", "temp": 18.5}
    assert out.count("\n") == 1
    assert "Let me answer." in err and "99 is greater than the maximum of 60" in err


def test_an_answer_whose_own_ok_field_is_false_is_not_shown_as_a_failure(scripted, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    # A tool result with "ok": false is shown as a failed tool (✗); final_result's result is the answer itself.
    path = tmp_path / "check.schema.json"
    path.write_text(json.dumps({"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}))
    assert main(["run", "--backend", scripted([final("ok:false")]), "--schema", str(path), "is it ok?"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {"ok": False}
    assert "✗" not in err and "✓ final_result" in err


def test_module_class_schema(scripted, tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "mymodels.py").write_text(
        textwrap.dedent(
            """
            from datetime import date
            from pydantic import BaseModel

            class Event(BaseModel):
                title: str
                day: date
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "mymodels", raising=False)
    url = scripted(['```json\n{"title": "Launch", "day": "2026-11-27"}\n```<turn|>'])
    assert main(["run", "--backend", url, "--schema", "mymodels:Event", "when?"]) == 0
    out, _ = capsys.readouterr()
    assert out == '{"title":"Launch","day":"2026-11-27"}\n'  # pydantic's serialisation of the instance


def test_terminal_controls_in_strings_are_escaped(scripted, schema_file, capsys) -> None:  # type: ignore[no-untyped-def]
    url = scripted([final(f"city:{Q}Pa\u009b2Jris\u202e{Q},temp:1")])
    assert main(["run", "--backend", url, "--schema", str(schema_file), "x"]) == 0
    out, _ = capsys.readouterr()
    assert "\u009b" not in out and "\u202e" not in out
    assert json.loads(out)["city"] == "Pa\u009b2Jris\u202e"


def test_json_events_carry_the_object(scripted, schema_file, capsys) -> None:  # type: ignore[no-untyped-def]
    url = scripted([final(f"city:{Q}Oslo{Q},temp:-3")])
    assert main(["run", "--json", "--backend", url, "--schema", str(schema_file), "x"]) == 0
    last = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert last["type"] == "run_finished" and last["output"] == {"city": "Oslo", "temp": -3}


def test_answer_that_never_validates_fails_with_a_clear_error(scripted, schema_file, capsys) -> None:  # type: ignore[no-untyped-def]
    url = scripted(["It is warm.<turn|>"] * 3)
    assert main(["run", "--backend", url, "--schema", str(schema_file), "x"]) == EXIT_FAILED
    out, err = capsys.readouterr()
    assert "It is warm." not in out and "{" not in out
    assert "agentkit: error: the model's answer did not fit the output schema after 3 attempts" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("{not json", "is not valid JSON (line 1, column 2"),
        ("[1, 2]", "must hold a JSON Schema object"),
        ('{"type": "nonsense"}', "not a valid JSON Schema"),
    ],
)
def test_bad_schema_files(scripted, tmp_path, capsys, content, message) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "s.json"
    if content is not None:
        path.write_text(content)
    assert main(["run", "--backend", scripted(["x<turn|>"]), "--schema", str(path), "x"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("no_such_module_xyz:Model", "cannot import module 'no_such_module_xyz'"),
        ("json:NoSuchThing", "module 'json' has no attribute 'NoSuchThing'"),
        ("json:dumps", "dumps is a function, not a type"),
        ("models.py", "neither a JSON Schema file"),
        ("broken_models_xyz:Model", "importing 'broken_models_xyz' failed: ZeroDivisionError"),
        ("json:JSONDecodeError", "cannot be used for structured output"),
    ],
)
def test_bad_import_paths(scripted, tmp_path, monkeypatch, capsys, value, message) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "broken_models_xyz.py").write_text("x = 1 / 0\n")
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--backend", scripted(["x<turn|>"]), "--schema", value, "x"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_real_process_stdout_is_the_json(tmp_path: Path, schema_file: Path) -> None:
    outputs = tmp_path / "out.json"
    outputs.write_text(json.dumps(["Thinking aloud. " + final(f"city:{Q}Rome{Q},temp:25")]))
    env = {**os.environ, "AGENTKIT_HOME": str(tmp_path / "home"), "AGENTKIT_CONFIG": str(tmp_path / "c.toml")}
    proc = subprocess.run(
        [sys.executable, "-m", "agentkit.cli", "run", "-b", f"scripted:{outputs}", "--schema", str(schema_file), "x"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == '{"city": "Rome", "temp": 25}\n'


def test_batch_schema_records_objects_and_validation_failures(scripted, schema_file, tmp_path, executor_name) -> None:  # type: ignore[no-untyped-def]
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text('{"id": "oslo", "task": "Oslo?"}\n{"id": "mars", "task": "Mars?"}\n')
    results = tmp_path / "results.jsonl"
    url = scripted([final(f"city:{Q}Oslo{Q},temp:-3")] + ["Too hot to say.<turn|>"] * 3)
    args = ["batch", str(tasks), "-o", str(results), "-c", "1", "--backend", url, "--schema", str(schema_file)]
    if executor_name == "ray":  # the schema travels to the workers with the rest of the recipe
        args.append("--ray")
    assert main(args) == EXIT_FAILED  # one task failed
    by_id = {r["id"]: r for r in map(json.loads, results.read_text().splitlines())}
    assert by_id["oslo"]["ok"] is True and by_id["oslo"]["output"] == {"city": "Oslo", "temp": -3}
    assert by_id["mars"]["ok"] is False and by_id["mars"]["error_type"] == "OutputValidationError"


def test_batch_bad_schema_is_refused_before_any_task(scripted, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text('"hello"\n')
    results = tmp_path / "results.jsonl"
    args = ["batch", str(tasks), "-o", str(results), "--backend", scripted([]), "--schema", "nope:Nothing"]
    assert main(args) == EXIT_USAGE
    assert "cannot import module 'nope'" in capsys.readouterr().err and not results.exists()
