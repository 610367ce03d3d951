"""The release's trace check after a switch (seed 000 §9) against real parts: the public gateway as Dev and Prod
render it, stand-in services that continue its traces, and Jaeger's query API. Only the gateway's OTLP exporter is
changed: it points at Jaeger on loopback (or, for one test, at a closed port)."""

from __future__ import annotations

import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from core.release.traces import TraceReading
from release_infra_tools import probes
from release_infra_tools.probes import PublicGateway, TraceStore, TraceStoreError, trace_problem_after_switch
from tests.support.gateway_harness import krakend_binary, public_gateway
from tests.support.jaeger import JaegerServer
from tests.support.servers import free_port
from tests.support.stacks import settings
from tests.support.traced_backend import TracedBackend

SERVICE, WAIT = "payin-api", 8.0  # seconds a failing check waits: more than the gateway's 5 s export batches


@pytest.fixture(scope="module")
def krakend() -> Path:
    return krakend_binary()


@pytest.fixture
def jaeger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JaegerServer]:
    """One per test (it starts in a tenth of a second): a test's traces are not the next one's."""
    with JaegerServer(tmp_path_factory.mktemp("jaeger")) as server:
        yield server


def public(gateway_url: str, stack: str = "dev") -> PublicGateway:
    """The stack's public gateway as the release's trace check sees it."""
    stack_settings = settings(stack)
    return PublicGateway.of(gateway_url, stack_settings.environment, stack_settings.gateway.rate_limit)


def check(jaeger: JaegerServer, gateway_url: str, colour: str, stack: str = "dev",
          wait: float = WAIT, store: TraceStore | None = None) -> tuple[str | None, str]:
    store = store or TraceStore(jaeger.query_url, 5)
    try:
        return trace_problem_after_switch(store, public(gateway_url, stack), service=SERVICE, colour=colour,
                                          environment=settings(stack).environment.value, wait=wait, timeout=5,
                                          sleep=time.sleep)
    finally:
        store.close()


def test_a_trace_through_the_gateway_into_the_colour_passes(krakend: Path, jaeger: JaegerServer,
                                                            tmp_path: Path) -> None:
    with TracedBackend(SERVICE, "blue", jaeger.otlp_http_url) as backend, \
            public_gateway(krakend, tmp_path, "dev", backend.url, jaeger.otlp_grpc_port) as gateway:
        started = time.monotonic()
        problem, seen = check(jaeger, gateway, "blue", wait=30)
        took = time.monotonic() - started
    assert problem is None, seen
    assert re.fullmatch(rf"traces: \d+ of \d+ traces through the gateway into the colour, after 1 requests "
                        rf"through {gateway} \(1 x HTTP 200\)", seen), seen
    assert took < 15  # one batch of the gateway's exporter, not the whole wait


def test_the_probes_trace_is_found_among_many_newer_ones_and_whatever_this_machines_clock_says(
        krakend: Path, jaeger: JaegerServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Health checks straight to the Service (traces of the colour without the gateway) outnumber what one search
    returns, and the machine running the release is 30 seconds behind the cluster: the probe's trace, fetched by
    its ID, still counts."""
    with TracedBackend(SERVICE, "blue", jaeger.otlp_http_url) as backend, \
            public_gateway(krakend, tmp_path, "dev", backend.url, jaeger.otlp_grpc_port) as gateway:
        monkeypatch.setattr(TraceStore, "SEARCH_LIMIT", 20)
        monkeypatch.setattr(probes, "this_machines_clock", lambda: time.time() - 30)

        def direct_traffic(seconds: float) -> None:
            for _ in range(25):
                httpx.get(f"{backend.url}/health/ready", timeout=5)
            time.sleep(seconds)
        problem, seen = trace_problem_after_switch(
            TraceStore(jaeger.query_url, 5), public(gateway), service=SERVICE, colour="blue", environment="dev",
            wait=30, timeout=5, sleep=direct_traffic)
    assert problem is None, seen


def test_a_store_that_fails_for_a_while_is_asked_again_until_the_wait_ends(
        krakend: Path, jaeger: JaegerServer, tmp_path: Path) -> None:
    class Flaky(TraceStore):
        failures = 2

        def reading(self, **asked: Any) -> TraceReading:
            if self.failures:
                self.failures -= 1
                raise TraceStoreError("the trace store at ... answered HTTP 502 to /api/traces")
            return super().reading(**asked)

    with TracedBackend(SERVICE, "blue", jaeger.otlp_http_url) as backend, \
            public_gateway(krakend, tmp_path, "dev", backend.url, jaeger.otlp_grpc_port) as gateway:
        flaky = Flaky(jaeger.query_url, 5)
        assert check(jaeger, gateway, "blue", wait=30, store=flaky)[0] is None
        assert flaky.failures == 0
        down = Flaky(f"http://127.0.0.1:{free_port()}", 2)
        problem, _ = check(jaeger, gateway, "blue", store=down)
    assert problem is not None and re.fullmatch(
        r"the trace store at http://127\.0\.0\.1:\d+ cannot be queried: ConnectError, until the trace check's wait "
        rf"ended; after 1 requests through {gateway} \(1 x HTTP 200\)", problem), problem


@pytest.mark.parametrize("skew", [0, 30, -30])
def test_prod_sends_enough_requests_for_its_sample_rate_and_its_gateway_starts_the_traces(
        krakend: Path, jaeger: JaegerServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, skew: int) -> None:
    """Prod's gateway faces clients: it ignores the requests' trace context and samples a quarter of them, so only
    a search finds its traces, from the gateway's clock whatever this machine's says (``skew`` seconds off)."""
    monkeypatch.setattr(probes, "this_machines_clock", lambda: time.time() + skew)
    with TracedBackend(SERVICE, "green", jaeger.otlp_http_url, environment="prod") as backend, \
            public_gateway(krakend, tmp_path, "prod", backend.url, jaeger.otlp_grpc_port) as gateway:
        problem, seen = check(jaeger, gateway, "green", stack="prod", wait=30)
    assert problem is None, seen
    assert seen.endswith(f"after 49 requests through {gateway} (49 x HTTP 200)"), seen
    through = int(re.match(r"traces: (\d+) of", seen)[1])  # type: ignore[index]
    assert 1 <= through < 49, seen  # sampled, not all: the gateway's own traces, at its rate


def test_traces_into_the_other_colour_do_not_count(krakend: Path, jaeger: JaegerServer, tmp_path: Path) -> None:
    """The traffic still reaches the old colour (a switch that did not take effect)."""
    with TracedBackend(SERVICE, "green", jaeger.otlp_http_url) as backend, \
            public_gateway(krakend, tmp_path, "dev", backend.url, jaeger.otlp_grpc_port) as gateway:
        problem, seen = check(jaeger, gateway, "blue")
    assert problem is not None and problem.startswith(
        f"no trace reached {SERVICE} on blue (1 trace of {SERVICE} from other pods): {SERVICE} on blue sends no "
        "spans to the trace store or does not continue the gateway's trace; traces: 0 of 1 traces reached the "
        "colour, none through the gateway"), problem


def test_a_service_that_exports_spans_but_does_not_continue_the_trace_is_named(
        krakend: Path, jaeger: JaegerServer, tmp_path: Path) -> None:
    with TracedBackend(SERVICE, "blue", jaeger.otlp_http_url, continues_traces=False) as backend, \
            public_gateway(krakend, tmp_path, "dev", backend.url, jaeger.otlp_grpc_port) as gateway:
        problem, _ = check(jaeger, gateway, "blue")
    assert problem is not None and problem.startswith(
        f"1 trace reached {SERVICE} on blue but none through the gateway: {SERVICE} on blue does not continue the "
        "gateway's trace: its spans start traces of their own; "), problem


def test_a_service_that_does_not_continue_the_trace_fails(krakend: Path, jaeger: JaegerServer,
                                                          tmp_path: Path) -> None:
    with TracedBackend(SERVICE, "blue", otlp_endpoint=None) as backend, \
            public_gateway(krakend, tmp_path, "dev", backend.url, jaeger.otlp_grpc_port) as gateway:
        problem, _ = check(jaeger, gateway, "blue")
    assert problem == (f"no trace reached {SERVICE} on blue: {SERVICE} on blue sends no spans to the trace store or "
                       "does not continue the gateway's trace; traces: 0 of 0 traces reached the colour, none through "
                       f"the gateway, after 1 requests through {gateway} (1 x HTTP 200)")


def test_a_gateway_whose_spans_never_reach_the_store_fails(krakend: Path, jaeger: JaegerServer,
                                                           tmp_path: Path) -> None:
    """It passes the trace context on, so the service's span names a parent the store does not hold."""
    with TracedBackend(SERVICE, "blue", jaeger.otlp_http_url) as backend, \
            public_gateway(krakend, tmp_path, "dev", backend.url, free_port()) as gateway:
        problem, _ = check(jaeger, gateway, "blue")
    assert problem is not None and problem.startswith(
        f"1 trace reached {SERVICE} on blue but none through the gateway: the gateway's spans do not reach the trace "
        "store (the service's name a parent it does not hold); traces: 1 of 1 traces reached the colour, none "
        "through the gateway"), problem


def test_a_gateway_that_answers_nothing_fails_without_waiting(jaeger: JaegerServer) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    problem, _ = check(jaeger, closed, "blue", wait=60)
    assert problem == f"the gateway cannot be reached: 3 requests through {closed} (3 x ConnectError)"
    assert time.monotonic() - started < 10


def test_a_trace_store_that_is_not_there_cannot_be_asked() -> None:
    store = TraceStore(f"http://127.0.0.1:{free_port()}", 2)
    with pytest.raises(TraceStoreError, match=r"^the trace store at http://127\.0\.0\.1:\d+ cannot be queried: "
                                              r"ConnectError$"):
        store.check()
    store.close()


def test_the_real_store_answers_the_check_before_a_switch_and_says_whose_spans_it_lacks(
        krakend: Path, jaeger: JaegerServer, tmp_path: Path) -> None:
    store = TraceStore(jaeger.query_url, 5)
    with pytest.raises(TraceStoreError, match=rf"^the trace store at {jaeger.query_url} holds no spans of gateway, "
                                              f"{SERVICE}: it is not the store they export to, or they export none$"):
        store.check("gateway", SERVICE)  # a fresh store: nothing exported to it yet
    with TracedBackend(SERVICE, "blue", jaeger.otlp_http_url) as backend, \
            public_gateway(krakend, tmp_path, "dev", backend.url, jaeger.otlp_grpc_port) as gateway:
        assert check(jaeger, gateway, "blue", wait=30)[0] is None
    store.check("gateway", SERVICE)
    reading = store.reading(gateway="gateway", service="no-such-service", colour="blue", environment="dev",
                            since=time.time() - 60)
    assert (reading.found, reading.through_gateway) == (0, 0)
    store.close()


class Answers(ThreadingHTTPServer):
    """A stand-in gateway answering each request as ``script`` says in turn: a status, or "hang" (no answer)."""

    def __init__(self, script: list[int | str]) -> None:
        answers = iter(script)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                answer = next(answers, "hang")
                if answer == "hang":
                    time.sleep(3)
                    return
                self.send_response(int(answer))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass
        super().__init__(("127.0.0.1", 0), Handler)
        self.daemon_threads = True
        threading.Thread(target=self.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


def test_only_requests_answered_with_success_count_and_a_refused_one_is_tried_again_later() -> None:
    gateway, slept = Answers([503, 200, 200]), []
    probes_ = probes.through_gateway(public(gateway.url), SERVICE, 2, 2, time.monotonic() + 30, slept.append)
    gateway.shutdown()
    assert (len(probes_.trace_ids), dict(probes_.answers)) == (2, {"HTTP 503": 1, "HTTP 200": 2})
    assert slept == [probes.RETRY_AFTER, 0.2]  # a second after the 503, then at half the route's limit


def test_the_traces_get_the_whole_wait_after_the_last_request() -> None:
    """Prod's 49 requests take about 10 seconds at the health routes' limit, and the spans of the last ones leave
    the gateway in a batch seconds later: the wait for them starts when the requests end, not with them."""
    class Empty(TraceStore):
        asked: list[float] = []

        def reading(self, **_: Any) -> TraceReading:
            self.asked.append(time.monotonic())
            return TraceReading(found=0, reached=0, through_gateway=0)

    gateway, store, wait = Answers([200] * 49), Empty("http://127.0.0.1:9", 1), 2.0
    problem, seen = trace_problem_after_switch(store, public(gateway.url, "prod"), service=SERVICE, colour="blue",
                                               environment="prod", wait=wait, timeout=2, sleep=time.sleep)
    gateway.shutdown()
    requests = int(re.search(r"after (\d+) requests", seen)[1])  # type: ignore[index]
    assert 5 <= requests < 49, seen  # the requests' own time ran out at 0.2 s apart
    assert problem is not None and store.asked[-1] - store.asked[0] >= wait - 0.1, store.asked


def test_the_requests_keep_to_half_of_a_lower_health_route_limit() -> None:
    gateway, slept = Answers([200, 200, 200]), []
    probes.through_gateway(public(gateway.url)._replace(health_rate=4), SERVICE, 3, 2, time.monotonic() + 30,
                           slept.append)
    gateway.shutdown()
    assert slept == [0.5, 0.5]


def test_a_gateway_that_stops_answering_ends_the_requests_after_three_failures() -> None:
    """Not 3 x 49 requests each waiting for its timeout, while live traffic stays on the colour."""
    gateway = Answers([200, 200])
    started = time.monotonic()
    probes_ = probes.through_gateway(public(gateway.url, "prod"), SERVICE, 49, 0.5, time.monotonic() + 60,
                                     lambda _: None)
    gateway.shutdown()
    assert dict(probes_.answers) == {"HTTP 200": 2, "ReadTimeout": 3}
    assert time.monotonic() - started < 5


def test_the_requests_stop_when_the_wait_ends() -> None:
    gateway = Answers([500] * 100)
    probes_ = probes.through_gateway(public(gateway.url, "prod"), SERVICE, 49, 2, time.monotonic() - 1,
                                     lambda _: None)
    gateway.shutdown()
    assert sum(probes_.answers.values()) == 0 and probes_.unanswered(gateway.url) == (
        f"the gateway cannot be reached: 0 requests through {gateway.url} ()")
