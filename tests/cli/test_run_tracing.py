"""``agentkit run`` traces to the OTLP endpoint the standard OpenTelemetry variables name (a loopback receiver)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

trace_service = pytest.importorskip("opentelemetry.proto.collector.trace.v1.trace_service_pb2")
pytest.importorskip("opentelemetry.exporter.otlp.proto.http")

CALL = '<|tool_call>call:get_weather{city:<|"|>Paris<|"|>}<tool_call|><|tool_response>'


def run_cli(tmp_path: Path, outputs: list[str], extra_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "outputs.json"
    script.write_text(json.dumps(outputs))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env |= {"AGENTKIT_HOME": str(tmp_path / "home"), "AGENTKIT_CONFIG": str(tmp_path / "c.toml"), **extra_env}
    return subprocess.run(
        [sys.executable, "-m", "agentkit.cli", "run", "--no-save", "-b", f"scripted:{script}", "hello"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def spans_in(bodies: list[bytes]) -> list[tuple[str, str]]:
    """(service name, span name) of every span received."""
    found = []
    for body in bodies:
        request = trace_service.ExportTraceServiceRequest()
        request.ParseFromString(body)
        for rs in request.resource_spans:
            service = {a.key: a.value.string_value for a in rs.resource.attributes}["service.name"]
            found += [(service, span.name) for scope in rs.scope_spans for span in scope.spans]
    return found


def test_run_sends_its_spans_when_the_endpoint_is_set(tmp_path: Path, otlp_receiver: tuple[str, list[bytes]]) -> None:
    url, bodies = otlp_receiver
    proc = run_cli(tmp_path, ["Hi there.<turn|>"], {"OTEL_EXPORTER_OTLP_ENDPOINT": url})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "Hi there.\n"
    assert sorted(spans_in(bodies)) == [
        ("agentkit", "chat scripted-gemma4"),
        ("agentkit", "invoke_agent agentkit"),
        ("agentkit", "step 1"),
    ]


def test_service_name_and_the_off_switch(tmp_path: Path, otlp_receiver: tuple[str, list[bytes]]) -> None:
    url, bodies = otlp_receiver
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_SERVICE_NAME": "nightly-report"}
    assert run_cli(tmp_path, ["Hi.<turn|>"], env).returncode == 0
    assert {service for service, _ in spans_in(bodies)} == {"nightly-report"}
    bodies.clear()
    assert run_cli(tmp_path, ["Hi.<turn|>"], {**env, "OTEL_SDK_DISABLED": "true"}).returncode == 0
    assert bodies == []


def test_a_collector_that_is_not_running_is_one_clear_line_not_a_retry_log(tmp_path: Path) -> None:
    """README's Jaeger line without Jaeger started: the exporter logged a "Transient error ... retrying" line per
    retry for about 10 s after the answer. Now the command says once where the spans could not go and what to do."""
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = run_cli(tmp_path, ["Hi.<turn|>"], {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}"})
    assert done.returncode == 0 and done.stdout.strip() == "Hi."
    assert f"could not be sent to http://127.0.0.1:{port}: is the OpenTelemetry collector running there?" in done.stderr
    assert "Transient error" not in done.stderr and "Traceback" not in done.stderr
