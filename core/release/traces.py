"""Seed 000 §9: after a switch, traces must flow end to end, through KrakenD into the colour that now serves.

Read from a trace store's answer in the Jaeger query API's format (``GET /api/traces``): what counts is a span of
the service, from a pod of the new colour (the ``service.color`` resource attribute every Deployment sets), whose
parent is a span of the gateway. A trace that starts at the service (a health check that bypassed the gateway) or
stops at the gateway (a service that does not continue the trace context) does not count.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError

COLOUR_ATTRIBUTE = "service.color"  # core.blue_green sets both in OTEL_RESOURCE_ATTRIBUTES
ENVIRONMENT_ATTRIBUTE = "deployment.environment"
CONFIDENCE = 1 - 1e-6  # of at least one sampled request among the probes: a good release is flipped back by
# sampling alone once in a million checks (0.999 did it once in 1,300 prod promotions, too often to page for)


class _Reading(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Tag(_Reading):
    key: str
    value: Any = None


class Reference(_Reading):
    refType: str
    spanID: str


class Span(_Reading):
    spanID: str
    processID: str
    references: list[Reference] = Field(default_factory=list)


class Process(_Reading):
    serviceName: str
    tags: list[Tag] = Field(default_factory=list)

    def tag(self, key: str) -> Any:
        return next((tag.value for tag in self.tags if tag.key == key), None)


class Trace(_Reading):
    traceID: str
    spans: list[Span] = Field(default_factory=list)
    processes: dict[str, Process] = Field(default_factory=dict)

    def reaches(self, service: str, colour: str | None) -> bool:
        return any(self._is(span, service, colour) for span in self.spans)

    def through(self, gateway: str, service: str, colour: str) -> bool:
        """A span of ``service``'s ``colour`` pods whose parent span is the gateway's."""
        return any(self._is(span, service, colour) and any(self._is(parent, gateway, None)
                                                           for parent in self._parents(span))
                   for span in self.spans)

    def orphaned(self, service: str, colour: str) -> bool:
        """A span of the colour names a parent the store does not hold: the caller's spans never reached it."""
        held = {span.spanID for span in self.spans}
        return any(self._is(span, service, colour) and any(
            reference.refType == "CHILD_OF" and reference.spanID not in held for reference in span.references)
            for span in self.spans)

    def _parents(self, span: Span) -> list[Span]:
        spans = {other.spanID: other for other in self.spans}
        return [spans[reference.spanID] for reference in span.references
                if reference.refType == "CHILD_OF" and reference.spanID in spans]

    def _is(self, span: Span, service: str, colour: str | None) -> bool:
        process = self.processes.get(span.processID)
        return process is not None and process.serviceName == service and (
            colour is None or process.tag(COLOUR_ATTRIBUTE) == colour)


class TracesError(ValueError):
    """The trace store's answer is not the query API's."""

    SHAPE = "not the Jaeger query API's answer (no data list)"


class TraceReading(NamedTuple):
    """Of the traces found with spans of the service: how many reached the colour, and how many of those came
    through the gateway; and where the others stop: traces of the gateway without the service, and spans of the
    colour whose parent the store does not hold."""

    found: int
    reached: int
    through_gateway: int
    gateway_only: int = 0
    orphaned: int = 0

    def describe(self) -> str:
        return (f"{self.through_gateway} of {self.found} traces through the gateway into the colour"
                if self.through_gateway else f"{self.reached} of {self.found} traces reached the colour, none "
                                             "through the gateway")


def read_traces(answer: object, *, gateway: str, service: str, colour: str) -> TraceReading:
    """Count what a ``GET /api/traces?service=<service>`` answer shows; a body of another shape is a TracesError."""
    data = answer.get("data") if isinstance(answer, Mapping) else None
    if not isinstance(data, list):
        raise TracesError(TracesError.SHAPE)
    try:
        traces = [Trace.model_validate(trace) for trace in data]
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(map(str, first["loc"]))
        raise TracesError(f"a trace of another shape ({f'{where}: ' if where else ''}{first['msg']})") from None
    reached = [trace for trace in traces if trace.reaches(service, colour)]
    return TraceReading(found=sum(trace.reaches(service, None) for trace in traces), reached=len(reached),
                        through_gateway=sum(trace.through(gateway, service, colour) for trace in reached),
                        gateway_only=sum(trace.reaches(gateway, None) and not trace.reaches(service, None)
                                         for trace in traces),
                        orphaned=sum(trace.orphaned(service, colour) for trace in reached))


def trace_problem(reading: TraceReading, *, service: str, colour: str) -> str | None:
    """None once one trace went end to end; otherwise where the traces stop."""
    if reading.through_gateway:
        return None
    if reading.reached:
        because = (
            "the gateway's spans do not reach the trace store (the service's name a parent it does not hold)"
            if reading.orphaned and not reading.gateway_only else
            f"{service} on {colour} does not continue the gateway's trace: its spans start traces of their own"
            if reading.gateway_only else
            "the gateway sends no spans to the trace store or does not pass the trace context on")
        return f"{_traces(reading.reached)} reached {service} on {colour} but none through the gateway: {because}"
    return (f"no trace reached {service} on {colour}" + (f" ({_traces(reading.found)} of {service} from other pods)"
                                                          if reading.found else "")
            + f": {service} on {colour} sends no spans to the trace store or does not continue the gateway's trace")


def _traces(count: int) -> str:
    return f"{count} trace" + ("" if count == 1 else "s")


def probes_needed(sample_rate: float) -> int:
    """Requests through the gateway for at least one sampled trace with CONFIDENCE at the gateway's sample rate."""
    if not 0 < sample_rate <= 1:
        raise ValueError(f"a sample rate is above 0 and at most 1, not {sample_rate}")
    if sample_rate == 1:
        return 1
    return math.ceil(math.log(1 - CONFIDENCE) / math.log(1 - sample_rate))
