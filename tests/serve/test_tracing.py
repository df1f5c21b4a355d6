"""With an OTLP endpoint configured, predict → score → log arrive as spans at a collector
(a local HTTP server taking OTLP/HTTP protobuf, decoded with OpenTelemetry's own proto)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

from fastapi.testclient import TestClient

from costaware.models.registry import Registry
from costaware.serve.app import build_service, create_app

from ..conftest import make_settings
from . import helpers as h


class _Collector(BaseHTTPRequestHandler):
    bodies: list[tuple[str, bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Collector.bodies.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_spans_of_a_prediction_reach_the_otlp_endpoint(tmp_path: Path) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    collector = HTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    settings = make_settings(tmp_path / "home")
    train = h.weeks(0, 3)
    reg = Registry(settings.mlflow_uri, settings.mlflow_artifacts)
    version = h.register(reg, h.train(train, tmp_path / "m", "v1", rounds=10), "r1", train, 70.0)
    h.champion(reg, version)
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.server_port}"}
    service = build_service("elec2", settings, env)
    try:
        with TestClient(create_app(service)) as client:
            r = client.post("/predict", json={"rows": h.rows(h.weeks(4, 4).iloc[:3])})
            assert r.status_code == 200
        # Leaving the client ran the app's shutdown, which exports the batched spans.
        spans = []
        for path, body in _Collector.bodies:
            assert path == "/v1/traces"
            req = ExportTraceServiceRequest.FromString(body)
            for rs in req.resource_spans:
                for ss in rs.scope_spans:
                    spans += list(ss.spans)
        by_name = {s.name: s for s in spans}
        assert {"predict", "score", "log"} <= set(by_name)
        # score and log are children of predict, in one trace.
        root = by_name["predict"]
        for child in ("score", "log"):
            assert by_name[child].parent_span_id == root.span_id
            assert by_name[child].trace_id == root.trace_id
    finally:
        collector.shutdown()
