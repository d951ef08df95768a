"""The README's code runs as written (against ScriptedBackend through AGENTKIT_BACKEND)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def python_blocks(text: str) -> list[str]:
    return [part.split("```", 1)[0] for part in text.split("```python\n")[1:]]


def run_first_block(
    heading: str, tmp_path: Path, outputs: list[str], *, after: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the first Python block under README's ``heading`` (plus ``after``) on a scripted model's ``outputs``."""
    section = (ROOT / "README.md").read_text().split(heading, 1)[1]
    script = tmp_path / "outputs.json"
    script.write_text(json.dumps(outputs))
    env = {**os.environ, "AGENTKIT_BACKEND": f"scripted:{script}", **(env or {})}
    code = python_blocks(section)[0] + after
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)


def test_build_an_agent_in_ten_lines(tmp_path: Path) -> None:
    proc = run_first_block(
        "## Build an agent in 10 lines",
        tmp_path,
        [
            '<|tool_call>call:get_weather{city:<|"|>Paris<|"|>}<tool_call|><|tool_response>',
            "It is 18 °C and cloudy in Paris.<turn|>",
        ],
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "It is 18 °C and cloudy in Paris."


def test_mcp_section_runs_against_mcp_server_time(tmp_path: Path) -> None:
    check = "\nimport json\nprint(json.dumps([m for m in agent.messages if m['role'] == 'tool']))"
    proc = run_first_block(
        "## MCP\n",
        tmp_path,
        [
            '<|tool_call>call:get_current_time{timezone:<|"|>Asia/Tokyo<|"|>}<tool_call|><|tool_response>',
            "It is morning in Tokyo.<turn|>",
        ],
        after=check,
    )
    assert proc.returncode == 0, proc.stderr
    answer, tool_messages = proc.stdout.strip().splitlines()
    assert answer == "It is morning in Tokyo."
    (message,) = json.loads(tool_messages)  # mcp-server-time really answered, and the answer went back
    assert message["name"] == "get_current_time" and message["content"]["structured"]["timezone"] == "Asia/Tokyo"


def test_structured_output(tmp_path: Path) -> None:
    q = '<|"|>'
    proc = run_first_block(
        "## Structured output",
        tmp_path,
        [
            # negative total: refused by Field(ge=0), told to the model, answered again
            f"<|tool_call>call:final_result{{customer:{q}ACME Corp{q},lines:[],total:-3.75}}"
            "<tool_call|><|tool_response>",
            f"<|tool_call>call:final_result{{customer:{q}ACME Corp{q},lines:[{q}2 bolts{q},{q}1 nut{q}],"
            "total:3.75}<tool_call|><|tool_response>",
        ],
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ACME Corp 3.75"


def test_tracing_sends_spans_over_otlp(tmp_path: Path, otlp_receiver: tuple[str, list[bytes]]) -> None:
    """The README's tracing snippet, exporting over real OTLP/HTTP to a loopback receiver."""
    import pytest

    trace_service = pytest.importorskip("opentelemetry.proto.collector.trace.v1.trace_service_pb2")
    url, received = otlp_receiver
    proc = run_first_block(
        "## Tracing",
        tmp_path,
        [
            '<|tool_call>call:get_weather{city:<|"|>Paris<|"|>}<tool_call|><|tool_response>',
            "It is 18 °C and cloudy in Paris.<turn|>",
        ],
        env={"OTEL_EXPORTER_OTLP_ENDPOINT": url},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "It is 18 °C and cloudy in Paris."
    spans = []
    for body in received:
        request = trace_service.ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource_spans in request.resource_spans:
            service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}["service.name"]
            assert service == "weather-agent"
            spans += [s for scope in resource_spans.scope_spans for s in scope.spans]
    names = sorted(s.name for s in spans)
    assert names == sorted(
        [
            "invoke_agent agentkit",
            "step 1",
            "step 2",
            "chat scripted-gemma4",
            "chat scripted-gemma4",
            "execute_tool get_weather",
        ]
    )
    tool_span = next(s for s in spans if s.name == "execute_tool get_weather")
    attributes = {a.key: a.value for a in tool_span.attributes}
    assert attributes["gen_ai.tool.name"].string_value == "get_weather"
    assert attributes["gen_ai.operation.name"].string_value == "execute_tool"
