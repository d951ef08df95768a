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


def test_build_an_agent_in_ten_lines(tmp_path: Path) -> None:
    section = (ROOT / "README.md").read_text().split("## Build an agent in 10 lines", 1)[1]
    code = python_blocks(section)[0]
    outputs = tmp_path / "outputs.json"
    outputs.write_text(
        json.dumps(
            [
                '<|tool_call>call:get_weather{city:<|"|>Paris<|"|>}<tool_call|><|tool_response>',
                "It is 18 °C and cloudy in Paris.<turn|>",
            ]
        )
    )
    env = {**os.environ, "AGENTKIT_BACKEND": f"scripted:{outputs}"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "It is 18 °C and cloudy in Paris."


def test_mcp_section_runs_against_mcp_server_time(tmp_path: Path) -> None:
    section = (ROOT / "README.md").read_text().split("## MCP\n", 1)[1]
    code = python_blocks(section)[0]
    outputs = tmp_path / "outputs.json"
    outputs.write_text(
        json.dumps(
            [
                '<|tool_call>call:get_current_time{timezone:<|"|>Asia/Tokyo<|"|>}<tool_call|><|tool_response>',
                "It is morning in Tokyo.<turn|>",
            ]
        )
    )
    env = {**os.environ, "AGENTKIT_BACKEND": f"scripted:{outputs}"}
    check = "\nimport json\nprint(json.dumps([m for m in agent.messages if m['role'] == 'tool']))"
    proc = subprocess.run([sys.executable, "-c", code + check], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    answer, tool_messages = proc.stdout.strip().splitlines()
    assert answer == "It is morning in Tokyo."
    (message,) = json.loads(tool_messages)  # mcp-server-time really answered, and the answer went back
    assert message["name"] == "get_current_time" and message["content"]["structured"]["timezone"] == "Asia/Tokyo"


def test_structured_output(tmp_path: Path) -> None:
    section = (ROOT / "README.md").read_text().split("## Structured output", 1)[1]
    code = python_blocks(section)[0]
    outputs = tmp_path / "outputs.json"
    q = '<|"|>'
    outputs.write_text(
        json.dumps(
            [
                # negative total: refused by Field(ge=0), told to the model, answered again
                f"<|tool_call>call:final_result{{customer:{q}ACME Corp{q},lines:[],total:-3.75}}"
                "<tool_call|><|tool_response>",
                f"<|tool_call>call:final_result{{customer:{q}ACME Corp{q},lines:[{q}2 bolts{q},{q}1 nut{q}],"
                "total:3.75}<tool_call|><|tool_response>",
            ]
        )
    )
    env = {**os.environ, "AGENTKIT_BACKEND": f"scripted:{outputs}"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ACME Corp 3.75"


def test_tracing_sends_spans_over_otlp(tmp_path: Path) -> None:
    """The README's tracing snippet, exporting over real OTLP/HTTP to a loopback receiver."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    import pytest

    trace_service = pytest.importorskip("opentelemetry.proto.collector.trace.v1.trace_service_pb2")
    received: list[bytes] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        section = (ROOT / "README.md").read_text().split("## Tracing", 1)[1]
        code = python_blocks(section)[0]
        outputs = tmp_path / "outputs.json"
        outputs.write_text(
            json.dumps(
                [
                    '<|tool_call>call:get_weather{city:<|"|>Paris<|"|>}<tool_call|><|tool_response>',
                    "It is 18 °C and cloudy in Paris.<turn|>",
                ]
            )
        )
        env = {
            **os.environ,
            "AGENTKIT_BACKEND": f"scripted:{outputs}",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{server.server_port}",
        }
        proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    finally:
        server.shutdown()
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
