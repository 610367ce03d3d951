"""The error-rate gate: a colour's 5xx ratio against the stable colour's, from Prometheus.

Seed 000 §2 rolls a canary back when its error rate exceeds the baseline by 1 percentage point; §9 allows a
freshly promoted colour 0.5 points over the pre-deployment baseline. A reading without data is its own verdict:
the caller decides what no data means (a canary cannot be promoted on it; see docs/release.md).
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict

from core.alerting.rules import ERRORS, REQUESTS

Verdict = Literal["pass", "fail", "no-data"]


def error_ratio_query(namespace: str, service: str, colour: str, window: str) -> str:
    """PromQL for one colour's share of 5xx responses over ``window``.

    A colour that answered no 5xx has no 5xx series: ``or vector(0)`` counts it as 0 rather than as no data;
    a colour that served no request has no (or a zero) denominator, which is no data.
    """
    selector = f'namespace="{namespace}", app="{service}", color="{colour}"'
    return (f"(sum(rate({REQUESTS}{{{selector}, {ERRORS}}}[{window}])) or vector(0))"
            f" / sum(rate({REQUESTS}{{{selector}}}[{window}]))")


def ratio_from_result(result: list[dict]) -> float | None:
    """The ratio of an instant query's vector result; None when it is empty or not a number (0 / 0)."""
    if not result:
        return None
    value = float(result[0]["value"][1])
    return None if math.isnan(value) or math.isinf(value) else value


class GateReading(BaseModel):
    """One look at the gate: both ratios (None without data), the threshold and what they mean together."""

    model_config = ConfigDict(frozen=True)

    candidate: float | None
    baseline: float | None
    threshold_pp: float
    verdict: Verdict

    def describe(self) -> str:
        show = lambda ratio: "no data" if ratio is None else f"{ratio * 100:.2f}%"  # noqa: E731
        text = f"errors {show(self.candidate)} vs baseline {show(self.baseline)} (limit +{self.threshold_pp:g} pp)"
        return f"{text}: {self.verdict}"


def judge(candidate: float | None, baseline: float | None, threshold_pp: float) -> GateReading:
    """Fail when the candidate's error ratio exceeds the baseline's by more than ``threshold_pp`` points."""
    if candidate is None or baseline is None:
        verdict: Verdict = "no-data"
    elif (candidate - baseline) * 100 > threshold_pp + 1e-9:
        verdict = "fail"
    else:
        verdict = "pass"
    return GateReading(candidate=candidate, baseline=baseline, threshold_pp=threshold_pp, verdict=verdict)
