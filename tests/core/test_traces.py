"""Reading the trace store's answer after a switch: only a trace through the gateway into the new colour counts."""

from __future__ import annotations

from typing import Any

import pytest

from core.release.traces import TraceReading, TracesError, probes_needed, read_traces, trace_problem

SERVICE, GATEWAY = "payin-api", "gateway"


def span(span_id: str, process: str, parent: str | None = None, ref_type: str = "CHILD_OF") -> dict[str, Any]:
    return {"traceID": "t", "spanID": span_id, "operationName": "GET", "processID": process,
            "references": [{"refType": ref_type, "traceID": "t", "spanID": parent}] if parent else [],
            "startTime": 1_765_000_000_000_000, "duration": 1200, "tags": [], "logs": [], "warnings": None}


def process(name: str, colour: str | None = None) -> dict[str, Any]:
    tags = [{"key": "deployment.environment", "type": "string", "value": "dev"}]
    if colour:
        tags.append({"key": "service.color", "type": "string", "value": colour})
    return {"serviceName": name, "tags": tags}


def trace(*spans: dict[str, Any], colour: str = "green") -> dict[str, Any]:
    return {"traceID": "t", "spans": list(spans), "warnings": None,
            "processes": {"p1": process(GATEWAY), "p2": process(SERVICE, colour)}}


def answer(*traces: dict[str, Any]) -> dict[str, Any]:
    return {"data": list(traces), "total": 0, "limit": 0, "offset": 0, "errors": None}


def read(payload: object, colour: str = "green") -> TraceReading:
    return read_traces(payload, gateway=GATEWAY, service=SERVICE, colour=colour)


THROUGH = trace(span("a", "p1"), span("b", "p1", "a"), span("c", "p2", "b"))


def test_a_span_of_the_colour_under_a_gateway_span_is_end_to_end() -> None:
    reading = read(answer(THROUGH))
    assert reading == TraceReading(found=1, reached=1, through_gateway=1)
    assert trace_problem(reading, service=SERVICE, colour="green") is None
    assert reading.describe() == "1 of 1 traces through the gateway into the colour"


def test_the_old_colour_does_not_count() -> None:
    reading = read(answer(THROUGH), colour="blue")
    assert reading == TraceReading(found=1, reached=0, through_gateway=0)
    assert trace_problem(reading, service=SERVICE, colour="blue") == (
        "no trace reached payin-api on blue (1 trace of payin-api from other pods): payin-api on blue sends no "
        "spans to the trace store or does not continue the gateway's trace")


def test_a_trace_that_starts_at_the_service_bypassed_the_gateway() -> None:
    direct = trace(span("c", "p2"), span("d", "p2", "c"))  # a health check straight to the Service
    reading = read(answer(direct))
    assert reading == TraceReading(found=1, reached=1, through_gateway=0)
    assert trace_problem(reading, service=SERVICE, colour="green") == (
        "1 trace reached payin-api on green but none through the gateway: the gateway sends no spans to the trace "
        "store or does not pass the trace context on")


def test_a_parent_the_store_does_not_hold_is_not_the_gateway() -> None:
    """The gateway passed the context on but its spans never reached the store."""
    reading = read(answer(trace(span("c", "p2", "lost"))))
    assert reading == TraceReading(found=1, reached=1, through_gateway=0, orphaned=1)
    assert trace_problem(reading, service=SERVICE, colour="green") == (
        "1 trace reached payin-api on green but none through the gateway: the gateway's spans do not reach the trace "
        "store (the service's name a parent it does not hold)")


def test_a_service_that_starts_traces_of_its_own_does_not_continue_the_gateways() -> None:
    """The gateway's trace holds no span of the service; the service's spans are roots of traces of their own."""
    reading = read(answer(trace(span("a", "p1"), span("b", "p1", "a")), trace(span("c", "p2"))))
    assert reading == TraceReading(found=1, reached=1, through_gateway=0, gateway_only=1)
    assert trace_problem(reading, service=SERVICE, colour="green") == (
        "1 trace reached payin-api on green but none through the gateway: payin-api on green does not continue the "
        "gateway's trace: its spans start traces of their own")


def test_a_follows_from_reference_is_not_a_parent() -> None:
    assert read(answer(trace(span("a", "p1"), span("c", "p2", "a", ref_type="FOLLOWS_FROM")))).through_gateway == 0


def test_one_end_to_end_trace_among_others_is_enough() -> None:
    reading = read(answer(trace(span("c", "p2")), THROUGH, trace(span("a", "p1"))))
    assert reading == TraceReading(found=2, reached=2, through_gateway=1, gateway_only=1)
    assert trace_problem(reading, service=SERVICE, colour="green") is None


def test_no_traces_at_all() -> None:
    reading = read(answer())
    assert trace_problem(reading, service=SERVICE, colour="green") == (
        "no trace reached payin-api on green: payin-api on green sends no spans to the trace store or does not "
        "continue the gateway's trace")


@pytest.mark.parametrize(("payload", "message"), [
    ("<html>proxy</html>", "not the Jaeger query API's answer (no data list)"),
    ({"data": None, "errors": [{"code": 500}]}, "not the Jaeger query API's answer (no data list)"),
    ({"data": [{"spans": []}]}, "a trace of another shape (traceID: Field required)"),
    ({"data": [{"traceID": "t", "spans": [{"spanID": "a"}]}]},
     "a trace of another shape (spans.0.processID: Field required)"),
    ({"data": ["t"]}, "a trace of another shape (Input should be a valid dictionary or instance of Trace)"),
])
def test_an_answer_of_another_shape_is_refused(payload: object, message: str) -> None:
    with pytest.raises(TracesError) as raised:
        read(payload)
    assert str(raised.value) == message


@pytest.mark.parametrize(("rate", "needed"), [(1.0, 1), (0.5, 20), (0.25, 49), (0.01, 1375)])
def test_enough_requests_for_one_sampled_trace_in_a_million_runs(rate: float, needed: int) -> None:
    assert probes_needed(rate) == needed
    assert (1 - rate) ** needed <= 1e-6 < (1 - rate) ** (needed - 1) or needed == 1


@pytest.mark.parametrize("rate", [0.0, -0.1, 1.5])
def test_a_sample_rate_outside_0_to_1_is_refused(rate: float) -> None:
    with pytest.raises(ValueError):
        probes_needed(rate)
