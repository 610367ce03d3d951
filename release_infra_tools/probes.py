"""What a release looks at: a colour's health endpoints, the synthetic-transaction hook, Prometheus and the traces
of requests through the gateway."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections import Counter
from typing import Callable

import httpx

from core.catalogue import ServiceSpec, health_path
from core.errors import without_credentials
from core.gateway import HEALTH_MAX_RATE
from core.release.gate import (GateReading, LatencyReading, error_ratio_query, judge, judge_latency, p95_query,
                               ratio_from_result)
from core.release.traces import TraceReading, TracesError, probes_needed, read_traces, trace_problem

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

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url.rstrip("/")
        self.client = httpx.Client(timeout=timeout)

    def check(self) -> None:
        """Asked before a switch: a store that cannot answer would fail the first look after it and flip back."""
        self._get("/api/services", {})

    def reading(self, *, gateway: str, service: str, colour: str, since: float) -> TraceReading:
        """The traces of ``service`` that started after ``since`` (seconds since the epoch)."""
        answer = self._get("/api/traces", {"service": service, "start": int(since * 1e6),
                                           "end": int(time.time() * 1e6), "lookback": "custom", "limit": 100})
        try:
            return read_traces(answer, gateway=gateway, service=service, colour=colour)
        except TracesError as error:
            raise TraceStoreError(f"the trace store at {without_credentials(self.url)} answered {error}") from None

    def _get(self, path: str, params: dict[str, object]) -> object:
        shown = without_credentials(self.url)
        try:
            response = self.client.get(self.url + path, params=params)
            body = response.json() if response.status_code == 200 else None
        except (*REQUEST_ERRORS, ValueError) as error:
            raise TraceStoreError(f"the trace store at {shown} cannot be queried: {type(error).__name__}") from None
        if body is None:
            raise TraceStoreError(f"the trace store at {shown} answered HTTP {response.status_code} to {path}")
        return body

    def close(self) -> None:
        self.client.close()


def through_gateway(gateway_url: str, service: str, count: int, timeout: float,
                    sleep: Callable[[float], None]) -> Counter[str]:
    """``count`` GETs of the service's health route through the gateway, each with a trace context of its own
    that asks for sampling (a gateway that keeps trace headers honours it; one facing clients starts its own), a
    little under the route's rate limit apart. Returns how they were answered."""
    answers: Counter[str] = Counter()
    with httpx.Client(timeout=timeout) as client:
        for index in range(count):
            if index:
                sleep(2 / HEALTH_MAX_RATE)
            traceparent = f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01"
            try:
                response = client.get(gateway_url + health_path(service), headers={"traceparent": traceparent})
                answers[f"HTTP {response.status_code}"] += 1
            except REQUEST_ERRORS as error:
                answers[type(error).__name__] += 1
    return answers


def trace_problem_after_switch(store: TraceStore, *, gateway_url: str, gateway: str, service: str, colour: str,
                               sample_rate: float, wait: float, timeout: float,
                               sleep: Callable[[float], None]) -> tuple[str | None, str]:
    """Seed 000 §9: requests through the gateway, then up to ``wait`` seconds for one of the service's traces since
    then to show the gateway's span as the parent of a span of ``colour``. Returns the problem (None when one did)
    and what was seen, in words."""
    since = time.time() - 1  # the store's clock and this one's may differ by a little
    count = probes_needed(sample_rate)
    answers = through_gateway(gateway_url, service, count, timeout, sleep)
    told = ", ".join(f"{number} x {answer}" for answer, number in answers.most_common())
    sent = f"{count} requests through {without_credentials(gateway_url)} ({told})"
    if not any(answer.startswith("HTTP ") for answer in answers):
        return f"the gateway cannot be reached: {sent}", sent
    deadline = time.monotonic() + wait
    while True:
        reading = store.reading(gateway=gateway, service=service, colour=colour, since=since)
        if reading.through_gateway or time.monotonic() >= deadline:
            problem = trace_problem(reading, service=service, colour=colour)
            seen = f"traces: {reading.describe()}, after {sent}"
            return (f"{problem}; {seen}" if problem else None), seen
        sleep(min(2.0, max(0.0, deadline - time.monotonic())))
