"""Traces flow end to end: a caller's trace goes through the real gateway, as Dev renders it, to a service that
continues it, and both export to a real Jaeger where the query API shows one trace.

The preview gateway of Dev keeps the caller's trace headers (see ``outside`` in core/gateway.py), so the trace the
test starts is the one Jaeger holds. Only the gateway's OTLP exporter is changed: it points at Jaeger on loopback.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any, Iterator

import pytest

from core.catalogue import health_path
from core.gateway import GatewayRole, gateway_name, krakend_config
from core.settings import StackSettings
from tests.support.gateway_harness import exporting_to, krakend_binary, request, running_gateway
from tests.support.jaeger import JaegerServer, span_services, tags
from tests.support.stacks import catalogue, settings
from tests.support.traced_backend import TracedBackend

ROLE: GatewayRole = "preview"
GATEWAY = gateway_name(ROLE)


@pytest.fixture(scope="module")
def krakend() -> Path:
    return krakend_binary()


@pytest.fixture(scope="module")
def jaeger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JaegerServer]:
    with JaegerServer(tmp_path_factory.mktemp("jaeger")) as server:
        yield server


@pytest.fixture()
def dev() -> StackSettings:
    return settings("dev")


def standby_backends(dev: StackSettings, otlp_endpoint: str | None) -> dict[str, TracedBackend]:
    """A backend per service, answering as its standby colour: what the preview gateway reaches."""
    return {name: TracedBackend(name, release.standby_colour, otlp_endpoint, environment=dev.environment.value).start()
            for name, release in dev.services.items()}


def gateway_config(dev: StackSettings, backends: dict[str, TracedBackend], jaeger: JaegerServer) -> dict[str, Any]:
    return exporting_to(krakend_config(dev, catalogue(), ROLE, url=lambda service, _role: backends[service].url),
                        jaeger.otlp_grpc_port)


def traced_get(port: int, path: str) -> tuple[str, str]:
    """GET ``path`` through the gateway as a caller whose sampled trace is new; return its trace and span IDs."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    status, body = request(port, "GET", path, {"traceparent": f"00-{trace_id}-{span_id}-01"})
    assert status == 200, body
    return trace_id, span_id


def test_each_service_continues_the_gateways_trace(krakend: Path, jaeger: JaegerServer, tmp_path: Path,
                                                   dev: StackSettings) -> None:
    backends = standby_backends(dev, jaeger.otlp_http_url)
    try:
        with running_gateway(krakend, gateway_config(dev, backends, jaeger), tmp_path) as port:
            sent = {service: traced_get(port, health_path(service)) for service in backends}
            traces = {service: jaeger.wait_for_trace(trace_id, {GATEWAY, service})
                      for service, (trace_id, _) in sent.items()}
    finally:
        for backend in backends.values():
            backend.stop()
    for service, trace in traces.items():
        _, caller_span = sent[service]
        services = span_services(trace)
        spans = {span["spanID"]: span for span in trace["spans"]}
        assert set(services.values()) == {GATEWAY, service}
        # The gateway joined the caller's trace: its server span is the caller's span's child.
        [entry] = [span for span in trace["spans"] if services[span["spanID"]] == GATEWAY
                   and tags(span)["span.kind"] == "server"]
        assert [(ref["refType"], ref["spanID"]) for ref in entry["references"]] == [("CHILD_OF", caller_span)]
        # The service's server span is the child of the gateway's request to it.
        [server] = [span for span in trace["spans"] if services[span["spanID"]] == service]
        assert tags(server)["span.kind"] == "server"
        [(kind, parent)] = [(ref["refType"], ref["spanID"]) for ref in server["references"]]
        assert kind == "CHILD_OF" and services.get(parent) == GATEWAY, server["references"]
        readiness = catalogue().services[service].health.readiness
        expected = {"span.kind": "client", "krakend.stage": "backend-request",
                    "krakend.endpoint.route": health_path(service), "url.full": f"{backends[service].url}{readiness}"}
        client = tags(spans[parent])
        assert {key: client.get(key) for key in expected} == expected, client
        # The colour that answered is on the service's process: the preview gateway reached the standby colour.
        process = tags(trace["processes"][server["processID"]])
        assert (process["service.color"], process["deployment.environment"]) == \
            (dev.services[service].standby_colour, "dev")


def test_a_service_that_does_not_continue_traces_leaves_the_gateways_spans_only(
        krakend: Path, jaeger: JaegerServer, tmp_path: Path, dev: StackSettings) -> None:
    backends = standby_backends(dev, otlp_endpoint=None)
    service = "payin-api"
    try:
        with running_gateway(krakend, gateway_config(dev, backends, jaeger), tmp_path) as port:
            trace_id, _ = traced_get(port, health_path(service))
            trace = jaeger.wait_for_trace(trace_id, {GATEWAY})
    finally:
        for backend in backends.values():
            backend.stop()
    services = span_services(trace)
    assert set(services.values()) == {GATEWAY}
    assert any(tags(span)["span.kind"] == "client" for span in trace["spans"])  # the gateway did call it
    # The gateway handed the trace on; the service just did not continue it.
    seen = {name.lower(): value for name, value in backends[service].seen_headers[-1].items()}
    assert seen["traceparent"].split("-")[1] == trace_id
