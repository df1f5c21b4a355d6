"""OpenTelemetry traces of predict → score → log, exported over OTLP/HTTP when
``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set; no
tracing at all otherwise (no spans are made, so nothing is paid for)."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def make_tracer(service_name: str, env: dict[str, str]) -> tuple[Any, Any]:
    """(tracer, its provider), or (None, None) when no endpoint is configured."""
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if not endpoint:
        return None, None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if not env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        endpoint = endpoint.rstrip("/") + "/v1/traces"  # the OTLP/HTTP spec's default path
    # A provider of our own, not the global one: Airflow or a test may have set that.
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    log.info("tracing to %s", endpoint)
    return provider.get_tracer("costaware.serve"), provider
