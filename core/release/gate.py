"""The gates: a colour's 5xx ratio and its P95 latency against the stable colour's, from Prometheus.

Seed 000 §2 rolls a canary back when its error rate exceeds the baseline by 1 percentage point and watches its
latency; §9 allows a freshly promoted colour 0.5 points over the pre-deployment baseline and a P95 at most 10%
above it. A reading without data is its own verdict: the caller decides what no data means (a canary cannot be
promoted on it; see docs/release.md).
"""

from __future__ import annotations

import math
from typing import Callable, Literal

from pydantic import BaseModel, ConfigDict

from core.alerting.rules import DURATION_BUCKETS, ERRORS, REQUESTS

Verdict = Literal["pass", "fail", "no-data"]


def error_ratio_query(namespace: str, service: str, colour: str, window: str) -> str:
    """PromQL for one colour's share of 5xx responses over ``window``.

    A colour that answered no 5xx has no 5xx series: ``or vector(0)`` counts it as 0 rather than as no data;
    a colour that served no request has no (or a zero) denominator, which is no data.
    """
    selector = _selector(namespace, service, colour)
    return (f"(sum(rate({REQUESTS}{{{selector}, {ERRORS}}}[{window}])) or vector(0))"
            f" / sum(rate({REQUESTS}{{{selector}}}[{window}]))")


def p95_query(namespace: str, service: str, colour: str, window: str) -> str:
    """PromQL for one colour's P95 latency over ``window``, from the histogram the latency alerts read. A colour that
    served no request has no quantile (NaN), which is no data."""
    return (f"histogram_quantile(0.95, sum by (le) "
            f"(rate({DURATION_BUCKETS}{{{_selector(namespace, service, colour)}}}[{window}])))")


def _selector(namespace: str, service: str, colour: str) -> str:
    return f'namespace="{namespace}", app="{service}", color="{colour}"'


def ratio_from_result(result: list[dict]) -> float | None:
    """The value (a ratio, a quantile) of an instant query's vector result; None when it is empty or not a number
    (0 / 0)."""
    if not result:
        return None
    value = float(result[0]["value"][1])
    return None if math.isnan(value) or math.isinf(value) else value


class Reading(BaseModel):
    """One look at a gate: the candidate colour's value and the baseline's (None without data), and what they mean
    together."""

    model_config = ConfigDict(frozen=True)

    candidate: float | None
    baseline: float | None
    verdict: Verdict

    def _described(self, what: str, show: Callable[[float], str], limit: str) -> str:
        shown = lambda value: "no data" if value is None else show(value)  # noqa: E731
        return f"{what} {shown(self.candidate)} vs baseline {shown(self.baseline)} (limit +{limit}): {self.verdict}"


class GateReading(Reading):
    """The error-rate gate's: 5xx ratios, and a limit in percentage points over the baseline."""

    threshold_pp: float

    def describe(self) -> str:
        return self._described("errors", lambda ratio: f"{ratio * 100:.2f}%", f"{self.threshold_pp:g} pp")


class LatencyReading(Reading):
    """The latency gate's: P95s in seconds, and a limit in percent above the baseline."""

    threshold_percent: float

    def describe(self) -> str:
        return self._described("P95", lambda p95: f"{p95 * 1000:.1f}ms", f"{self.threshold_percent:g}%")


def _verdict(candidate: float | None, baseline: float | None, over: Callable[[float, float], bool]) -> Verdict:
    """No data when either colour has none; otherwise a fail when the candidate is over the baseline's limit."""
    if candidate is None or baseline is None:
        return "no-data"
    return "fail" if over(candidate, baseline) else "pass"


def judge(candidate: float | None, baseline: float | None, threshold_pp: float) -> GateReading:
    """Fail when the candidate's error ratio exceeds the baseline's by more than ``threshold_pp`` points."""
    verdict = _verdict(candidate, baseline, lambda ours, theirs: (ours - theirs) * 100 > threshold_pp + 1e-9)
    return GateReading(candidate=candidate, baseline=baseline, threshold_pp=threshold_pp, verdict=verdict)


def judge_latency(candidate: float | None, baseline: float | None, threshold_percent: float) -> LatencyReading:
    """Fail when the candidate's P95 is more than ``threshold_percent`` above the baseline's."""
    verdict = _verdict(candidate, baseline,
                       lambda ours, theirs: ours > theirs * (1 + threshold_percent / 100) * (1 + 1e-9))
    return LatencyReading(candidate=candidate, baseline=baseline, threshold_percent=threshold_percent, verdict=verdict)
