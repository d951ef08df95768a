"""Traces from the command line, when the standard OpenTelemetry environment asks for them.

With ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) set, every agent a command runs
is traced (:mod:`agentkit.tracing`) and the spans go to that endpoint over OTLP/HTTP: the variables every
OpenTelemetry SDK reads, so ``agentkit run`` joins an existing collector or Jaeger setup with no flag of its
own. ``OTEL_SERVICE_NAME`` names the service (``agentkit`` otherwise); ``OTEL_SDK_DISABLED=true`` turns it off.
Without the variables nothing is imported.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator

__all__ = ["traces_from_environment"]

_ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


@contextlib.contextmanager
def traces_from_environment() -> Iterator[None]:
    """Trace the agents run inside, to the OTLP endpoint the environment names; send what is left on exit."""
    wanted = any(os.environ.get(name) for name in _ENDPOINTS)
    if not wanted or os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        yield
        return
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        warnings.warn(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but the OpenTelemetry packages are not installed, so no traces "
            "are sent: pip install 'agentkit[otel]'",
            stacklevel=1,
        )
        yield
        return
    from agentkit.tracing import instrument, uninstrument

    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": "agentkit"}
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    instrument(provider)
    try:
        yield
    finally:
        uninstrument()
        provider.shutdown()
