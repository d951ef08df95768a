"""Traces from the command line, when the standard OpenTelemetry environment asks for them.

With ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) set, every agent a command runs
is traced (:mod:`agentkit.tracing`) and the spans go to that endpoint over OTLP/HTTP: the variables every
OpenTelemetry SDK reads, so ``agentkit run`` joins an existing collector or Jaeger setup with no flag of its
own. ``OTEL_SERVICE_NAME`` names the service (``agentkit`` otherwise); ``OTEL_SDK_DISABLED=true`` turns it off.
Without the variables nothing is imported.

A command ends when its work does, so sending is bounded: without ``OTEL_EXPORTER_OTLP_(TRACES_)TIMEOUT`` the
exporter gets :data:`EXIT_TIMEOUT_S` rather than the SDK's 10 s of retries, and when the endpoint cannot be
reached (a collector not started) the command says so in one line, instead of the exporter's retry log.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["EXIT_TIMEOUT_S", "traces_from_environment"]

_ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_TIMEOUTS = ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT")
EXIT_TIMEOUT_S = 3.0  # what sending may take (retries included) unless the environment sets a timeout
_EXPORTER_LOGGER = "opentelemetry.exporter.otlp.proto.http"


@contextlib.contextmanager
def traces_from_environment() -> Iterator[None]:
    """Trace the agents run inside, to the OTLP endpoint the environment names; send what is left on exit."""
    wanted = any(os.environ.get(name) for name in _ENDPOINTS)
    if not wanted or os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        yield
        return
    name, endpoint = next((n, os.environ[n]) for n in _ENDPOINTS if os.environ.get(n))
    if "://" not in endpoint:
        # The exporter cannot form a URL from "localhost:4318" and every span would be reported as unsent, as if
        # no collector ran there; the missing scheme is the problem to name.
        print(
            f"agentkit: {name}={endpoint!r} has no scheme, so no traces are sent; write http://{endpoint} "
            "(or https://)",
            file=sys.stderr,
        )
        yield
        return
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
    except ImportError:
        warnings.warn(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but the OpenTelemetry packages are not installed, so no traces "
            "are sent: pip install -e '.[otel]' in the agentkit checkout",
            stacklevel=1,
        )
        yield
        return
    from agentkit.tracing import instrument, uninstrument

    class CountingExporter(OTLPSpanExporter):
        """Counts the spans it could not send, for one line at the end instead of a log line per retry."""

        lost = 0

        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            result = super().export(spans)
            if result is not SpanExportResult.SUCCESS:
                self.lost += len(spans)
            return result

    timeout = None if any(os.environ.get(name) for name in _TIMEOUTS) else EXIT_TIMEOUT_S
    for name in _TIMEOUTS:
        value = os.environ.get(name, "").strip()
        if value and not _positive_number(value):
            # The SDK would fall back to its 10 s of retries at exit; keep the command's bound and say why.
            print(
                f"agentkit: {name}={value!r} is not a number of seconds; sending traces waits at most "
                f"{EXIT_TIMEOUT_S:g} s",
                file=sys.stderr,
            )
            timeout = EXIT_TIMEOUT_S
    exporter = CountingExporter(timeout=timeout)
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": "agentkit"}
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    instrument(provider)
    logger = logging.getLogger(_EXPORTER_LOGGER)
    level = logger.level
    logger.setLevel(logging.CRITICAL)  # its "Transient error ... retrying" lines: the summary below says it once
    try:
        yield
    finally:
        uninstrument()
        try:
            provider.shutdown()
        finally:
            logger.setLevel(level)
        if exporter.lost:
            print(
                f"agentkit: {exporter.lost} trace span(s) could not be sent to {endpoint}: is the OpenTelemetry "
                "collector running there? (unset OTEL_EXPORTER_OTLP_ENDPOINT to stop tracing; "
                "OTEL_EXPORTER_OTLP_TIMEOUT=SECONDS to wait longer)",
                file=sys.stderr,
            )


def _positive_number(text: str) -> bool:
    try:
        return float(text) > 0
    except ValueError:
        return False
