"""What a release looks at: a colour's health endpoints, the synthetic-transaction hook, Prometheus and the traces
of requests through the gateway."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from collections import Counter
from email.utils import parsedate_to_datetime
from typing import Any, Callable, NamedTuple, Sequence

import httpx

from core.catalogue import ServiceSpec, health_path
from core.errors import without_credentials
from core.gateway import gateway_name, health_max_rate, joins_callers_traces, trace_sample_rate
from core.release.gate import (GateReading, LatencyReading, error_ratio_query, judge, judge_latency, p95_query,
                               ratio_from_result)
from core.release.traces import (COLOUR_ATTRIBUTE, ENVIRONMENT_ATTRIBUTE, TraceReading, TracesError, probes_needed,
                                 read_traces, trace_problem)
from core.settings import EnvironmentKind, RateLimit

SYNTHETIC_PRODUCTS = ("payin", "payout")  # seed 000 §9: synthetic Pay-In and Pay-Out transactions
# What httpx raises besides its HTTPError: a malformed URL (InvalidURL) and the rest. A probe reports them as it
# reports a refused connection; escaping, they would skip the walk's flip back or rollback (ReleaseOptions also
# checks the URLs before anything changes).
REQUEST_ERRORS = (httpx.HTTPError, httpx.InvalidURL, httpx.CookieConflict, httpx.StreamError)


class PrometheusError(Exception):
    """Prometheus could not be asked: not the same as a question without data."""


def health_problems(base_url: str, spec: ServiceSpec, timeout: float) -> list[str]:
    """Every health endpoint of the catalogue must answer 200; one entry per endpoint that did not."""
    problems = []
    paths = [path for path in (spec.health.readiness, spec.health.liveness, spec.health.startup) if path]
    with httpx.Client(timeout=timeout) as client:
        for path in paths:
            url = base_url + path
            try:
                status = client.get(url).status_code
            except REQUEST_ERRORS as error:
                problems.append(f"{without_credentials(url)}: {type(error).__name__}")
                continue
            if status != 200:
                problems.append(f"{without_credentials(url)}: HTTP {status}")
    return problems


def missing_hook(hook: str | None, spec: ServiceSpec, service: str) -> str | None:
    """Why a promotion of ``service`` cannot switch without a hook; known before anything changes."""
    if spec.product in SYNTHETIC_PRODUCTS and not hook:
        return (f"{service} is a {spec.product} service: the standard requires synthetic transactions before a "
                "switch; give --synthetic-hook (or RELEASE_SYNTHETIC_HOOK)")
    return None


def synthetic_problem(hook: str | None, spec: ServiceSpec, *, service: str, environment: str, base_url: str,
                      timeout: float) -> str | None:
    """Run the hook for Pay-In and Pay-Out; None when it passed or the product needs none."""
    if spec.product not in SYNTHETIC_PRODUCTS or not hook:
        return missing_hook(hook, spec, service)
    env = dict(os.environ, RELEASE_BASE_URL=base_url, RELEASE_SERVICE=service, RELEASE_PRODUCT=spec.product,
               RELEASE_ENVIRONMENT=environment)
    try:
        result = subprocess.run(shlex.split(hook), env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"synthetic-transaction hook did not finish in {timeout:g}s"
    except OSError as error:
        return f"synthetic-transaction hook cannot run: {error.strerror}"
    if result.returncode != 0:
        said = (result.stderr.strip() or result.stdout.strip()).splitlines()
        return f"synthetic-transaction hook failed (exit {result.returncode})" + (f": {said[-1]}" if said else "")
    return None


class Prometheus:
    """Instant queries against the HTTP API."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url.rstrip("/")
        self.client = httpx.Client(timeout=timeout)

    def error_ratio(self, namespace: str, service: str, colour: str, window: str) -> float | None:
        return self._instant(error_ratio_query(namespace, service, colour, window))

    def p95(self, namespace: str, service: str, colour: str, window: str) -> float | None:
        """Seconds; None when the colour served no request in the window."""
        return self._instant(p95_query(namespace, service, colour, window))

    def _instant(self, query: str) -> float | None:
        """A body that is not the API's answer (a proxy's page, a success without a vector) is a PrometheusError:
        escaping as a traceback, it would leave a canary at its step instead of rolling it back."""
        shown = without_credentials(self.url)
        try:
            response = self.client.get(f"{self.url}/api/v1/query", params={"query": query})
            body = response.json()
        except (*REQUEST_ERRORS, ValueError) as error:
            raise PrometheusError(f"Prometheus at {shown} cannot be queried: {type(error).__name__}") from None
        if not isinstance(body, dict):
            raise PrometheusError(f"Prometheus at {shown} answered HTTP {response.status_code} with JSON that is not "
                                  "the query API's (not an object)")
        if response.status_code != 200 or body.get("status") != "success":
            raise PrometheusError(f"Prometheus at {shown} refused the query: "
                                  f"{body.get('error', response.status_code)}")
        try:
            return ratio_from_result(body["data"]["result"])
        except (KeyError, IndexError, TypeError, ValueError) as error:
            raise PrometheusError(f"Prometheus at {shown} answered without a vector in data.result "
                                  f"({type(error).__name__})") from None

    def gate(self, namespace: str, service: str, candidate: str, baseline: str, window: str,
             threshold_pp: float, fallback_baseline: float | None = None) -> GateReading:
        """Candidate colour against baseline colour; a baseline without traffic (a canary at 100%, a colour
        just switched away from) falls back to the last baseline the caller saw."""
        baseline_ratio = self.error_ratio(namespace, service, baseline, window)
        if baseline_ratio is None:
            baseline_ratio = fallback_baseline
        return judge(self.error_ratio(namespace, service, candidate, window), baseline_ratio, threshold_pp)

    def latency_gate(self, namespace: str, service: str, candidate: str, baseline: str, window: str,
                     threshold_percent: float, fallback_baseline: float | None = None) -> LatencyReading:
        """The gate's P95 counterpart (seed 000 §2 watches a canary's latency too), with the same fallback."""
        baseline_p95 = self.p95(namespace, service, baseline, window)
        return judge_latency(self.p95(namespace, service, candidate, window),
                             fallback_baseline if baseline_p95 is None else baseline_p95, threshold_percent)

    def close(self) -> None:
        self.client.close()


class TraceStoreError(Exception):
    """The trace store could not be asked: not the same as an answer without the traces."""


class TraceStore:
    """The Jaeger query API (``/api/services``, ``/api/traces``) of the store the gateway and services export to."""

    SEARCH_LIMIT = 500  # the newest traces of the colour; the probes' own are also fetched by their IDs

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url.rstrip("/")
        self.client = httpx.Client(timeout=timeout)

    def check(self, *services: str) -> None:
        """Asked before a switch: a store that cannot answer, or one that holds no span of the gateway or the
        service (not the store they export to), would fail the first look after the switch and flip back."""
        known = self._data(self._get("/api/services", {}))  # a store that holds nothing says null
        missing = [service for service in services if service not in known]
        if missing:
            raise TraceStoreError(f"the trace store at {self._shown} holds no spans of {', '.join(missing)}: it is "
                                  "not the store they export to, or they export none")

    def reading(self, *, gateway: str, service: str, colour: str, environment: str, since: float,
                trace_ids: Sequence[str] = ()) -> TraceReading:
        """The probes' traces by ID (where the gateway joins its callers' traces) and the newest traces of
        ``service`` on ``colour`` in ``environment`` (stores are shared) that started after ``since`` (seconds
        since the epoch, on the gateway's clock)."""
        answers = [self._get(f"/api/traces/{trace_id}", {}, missing=True) for trace_id in trace_ids]
        tags = {COLOUR_ATTRIBUTE: colour, ENVIRONMENT_ATTRIBUTE: environment}
        answers.append(self._get("/api/traces", {"service": service, "tags": json.dumps(tags),
                                                 "start": int(since * 1e6), "limit": self.SEARCH_LIMIT}))
        found = [trace for answer in answers for trace in self._data(answer)]
        # A probe's trace is also among the newest of the colour: counted once. Other shapes go on, to be refused.
        unique = list({trace["traceID"]: trace for trace in found if isinstance(trace, dict) and "traceID" in trace}
                      .values()) + [trace for trace in found if not (isinstance(trace, dict) and "traceID" in trace)]
        try:
            return read_traces({"data": unique}, gateway=gateway, service=service, colour=colour)
        except TracesError as error:
            raise TraceStoreError(f"the trace store at {self._shown} answered {error}") from None

    @property
    def _shown(self) -> str:
        return without_credentials(self.url)

    def _data(self, answer: object) -> list[Any]:
        """An answer's data (none for a trace the store does not hold); an answer with errors is not one."""
        data = answer.get("data") if isinstance(answer, dict) else None
        if answer is not None and not (isinstance(answer, dict) and (data is None or isinstance(data, list))):
            raise TraceStoreError(f"the trace store at {self._shown} answered {TracesError.SHAPE}")
        errors = answer.get("errors") if isinstance(answer, dict) else None
        if errors:
            first = errors[0].get("msg", errors[0]) if isinstance(errors, list) and isinstance(errors[0], dict) \
                else errors
            raise TraceStoreError(f"the trace store at {self._shown} answered with errors: {str(first)[:200]}")
        return data or []

    def _get(self, path: str, params: dict[str, object], missing: bool = False) -> object:
        """The JSON answer; None for a 404 where ``missing`` (a trace the store does not hold)."""
        try:
            response = self.client.get(self.url + path, params=params)
            if missing and response.status_code == 404:
                return None
            body = response.json() if response.status_code == 200 else None
        except (*REQUEST_ERRORS, ValueError) as error:
            raise TraceStoreError(f"the trace store at {self._shown} cannot be queried: {type(error).__name__}") \
                from None
        if body is None:
            raise TraceStoreError(f"the trace store at {self._shown} answered HTTP {response.status_code} to {path}")
        return body

    def close(self) -> None:
        self.client.close()


class Probes(NamedTuple):
    """What the requests through the gateway left: the trace IDs of those it answered with success, every
    answer, and the gateway's clock (its Date header) at the first."""

    trace_ids: list[str]
    answers: Counter[str]
    since: float | None

    def sent(self, gateway_url: str) -> str:
        told = ", ".join(f"{number} x {answer}" for answer, number in self.answers.most_common())
        return f"{sum(self.answers.values())} requests through {without_credentials(gateway_url)} ({told})"

    def unanswered(self, gateway_url: str) -> str | None:
        """Why no request left a trace to look for; None when one was answered with success."""
        if self.trace_ids:
            return None
        reached = any(answer.startswith("HTTP ") for answer in self.answers)
        return (f"the gateway {'answered no request with success' if reached else 'cannot be reached'}: "
                f"{self.sent(gateway_url)}")


class PublicGateway(NamedTuple):
    """The environment's public gateway, as the trace check's requests reach it (core.gateway renders it)."""

    url: str
    sample_rate: float  # of the requests it traces
    joins_callers_traces: bool  # or starts a trace of its own for each request
    health_rate: float  # requests a second and pod its health routes allow
    name: str = gateway_name("public")  # the service name of its spans

    @classmethod
    def of(cls, url: str, environment: EnvironmentKind, limit: RateLimit) -> "PublicGateway":
        """As core.gateway renders the environment's public gateway under the stack's rate limit."""
        return cls(url, trace_sample_rate(environment), joins_callers_traces(environment), health_max_rate(limit))


this_machines_clock = time.time  # seconds since the epoch; the cluster's may be seconds apart
RETRY_AFTER = 1.0  # seconds after the route's rate limit refused a request (503) or the client's (429)
GIVE_UP_AFTER = 3  # failed requests in a row: the gateway (or the colour behind it) is not answering


def through_gateway(gateway: PublicGateway, service: str, needed: int, timeout: float, until: float,
                    sleep: Callable[[float], None]) -> Probes:
    """GETs of the service's health route through the gateway until ``needed`` were answered 2xx (at most three
    times as many tries, and not past ``until`` on the monotonic clock), each with a trace context of its own that
    asks for sampling (a gateway that keeps trace headers joins it; one facing clients starts its own). They go at
    most at half the health route's rate limit, and a request the limit refused is tried again a second later: only
    a request that reached the service can leave a trace. Three failures in a row end the tries."""
    ids: list[str] = []
    answers: Counter[str] = Counter()
    since: float | None = None
    last, failed = "", 0
    with httpx.Client(timeout=timeout) as client:
        for attempt in range(3 * needed):
            if len(ids) == needed or failed == GIVE_UP_AFTER or time.monotonic() >= until:
                break
            if attempt:
                sleep(RETRY_AFTER if last in ("HTTP 503", "HTTP 429") else 2 / gateway.health_rate)
            trace_id = os.urandom(16).hex()
            try:
                response = client.get(gateway.url + health_path(service),
                                      headers={"traceparent": f"00-{trace_id}-{os.urandom(8).hex()}-01"})
            except REQUEST_ERRORS as error:
                last, failed = type(error).__name__, failed + 1
                answers[last] += 1
                continue
            last = f"HTTP {response.status_code}"
            answers[last] += 1
            if since is None:
                since = _date(response.headers.get("date"))
            failed = 0 if response.is_success else failed + 1
            if response.is_success:
                ids.append(trace_id)
    return Probes(ids, answers, since)


def _date(header: str | None) -> float | None:
    try:
        return parsedate_to_datetime(header).timestamp() if header else None
    except (TypeError, ValueError):
        return None


def trace_problem_after_switch(store: TraceStore, gateway: PublicGateway, *, service: str, colour: str,
                               environment: str, wait: float, timeout: float,
                               sleep: Callable[[float], None]) -> tuple[str | None, str]:
    """Seed 000 §9: requests through the gateway for up to ``wait`` seconds, then up to ``wait`` seconds more for a
    trace since then to show the gateway's span as the parent of a span of ``colour``: prod's 49 requests take
    seconds, and the spans of the last ones leave the gateway in a batch seconds after them. Returns the problem
    (None when one did) and what was seen, in words. The window starts at the gateway's clock, not this machine's,
    which may run seconds apart; a store that fails to answer is asked again until the wait ends."""
    started = this_machines_clock()
    probes = through_gateway(gateway, service, probes_needed(gateway.sample_rate), timeout, time.monotonic() + wait,
                             sleep)
    sent, unanswered = probes.sent(gateway.url), probes.unanswered(gateway.url)
    if unanswered:
        return unanswered, sent
    deadline = time.monotonic() + wait
    since = (probes.since if probes.since is not None else started) - 2  # a Date header has whole seconds
    ids = probes.trace_ids if gateway.joins_callers_traces else []  # one facing clients starts traces of its own
    reading: TraceReading | None = None
    while True:
        failed: TraceStoreError | None = None
        try:
            reading = store.reading(gateway=gateway.name, service=service, colour=colour, environment=environment,
                                    since=since, trace_ids=ids)
        except TraceStoreError as error:
            failed = error
        if (reading is not None and reading.through_gateway and failed is None) or time.monotonic() >= deadline:
            if reading is None:
                return f"{failed}, until the trace check's wait ended; after {sent}", sent
            problem = trace_problem(reading, service=service, colour=colour)
            seen = f"traces: {reading.describe()}, after {sent}" + (f"; the store's last answer: {failed}"
                                                                     if failed else "")
            return (f"{problem}; {seen}" if problem else None), seen
        sleep(min(2.0, max(0.0, deadline - time.monotonic())))
