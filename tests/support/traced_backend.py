"""A stand-in for one colour of a service on loopback that, like the real services, continues the caller's trace.

Every GET is answered 200 with ``{"colour": ...}``. Given an OTLP/HTTP endpoint (Jaeger's, say), each request is
one SERVER span whose parent is the W3C ``traceparent`` the request carried, exported at once by the OpenTelemetry
SDK under the Resource a Deployment gives its pods (OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, see
core/blue_green.py). Without one it answers untraced: a service that does not continue traces.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator


class TracedBackend:
    """``otlp_endpoint`` is the base URL of an OTLP/HTTP receiver (``http://127.0.0.1:4318``), or None."""

    def __init__(self, service: str, colour: str, otlp_endpoint: str | None = None, environment: str = "dev",
                 version: str = "1.0.0", continues_traces: bool = True) -> None:
        """``continues_traces`` False: it exports spans, each the root of a trace of its own (a service whose
        instrumentation does not read the incoming trace context)."""
        self.service, self.colour, self.continues_traces = service, colour, continues_traces
        self.seen_headers: list[dict[str, str]] = []
        self.provider: TracerProvider | None = None
        if otlp_endpoint is not None:
            # What the SDK builds from a Deployment's OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
            self.provider = TracerProvider(resource=Resource.create({
                "service.name": service, "deployment.environment": environment, "service.version": version,
                "service.color": colour}))
            # Simple, not batched: each span is exported when it ends, so a test need not wait for a batch.
            self.provider.add_span_processor(SimpleSpanProcessor(
                OTLPSpanExporter(endpoint=f"{otlp_endpoint.rstrip('/')}/v1/traces", timeout=10)))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        backend = self
        tracer = self.provider.get_tracer(__name__) if self.provider else None
        propagator = TraceContextTextMapPropagator()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_GET(self) -> None:  # noqa: N802
                backend.seen_headers.append(dict(self.headers))
                if tracer is None:
                    return self._answer()
                path = urlsplit(self.path).path
                # The getter matches names exactly and Go's net/http sends `Traceparent`: lower-case them.
                carrier = {name.lower(): value for name, value in self.headers.items()}
                with tracer.start_as_current_span(
                        f"GET {path}", context=propagator.extract(carrier) if backend.continues_traces else None,
                        kind=SpanKind.SERVER,
                        attributes={"http.request.method": "GET", "url.path": path,
                                    "server.address": "127.0.0.1", "server.port": backend.port}) as span:
                    self._answer()
                    span.set_attribute("http.response.status_code", 200)

            def _answer(self) -> None:
                body = json.dumps({"colour": backend.colour}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def start(self) -> "TracedBackend":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self.provider is not None:
            self.provider.force_flush()
            self.provider.shutdown()

    def __enter__(self) -> "TracedBackend":
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
