"""The rules of every real stack, checked by promtool and unit-tested by promtool with synthetic series.

For every alert: it fires at its threshold once its ``for`` has passed (and is still pending a minute before), and
it does not fire just below the threshold. Thresholds are met with a 5% margin (``ABOVE``/``BELOW``); increments
over a baseline (post-deploy, canary) with 10% of the increment, e.g. a canary at +1.1 and +0.9 points.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.alerting.rules import rule_specs
from core.alerting.settings import AlertingSettings, load_alerting
from core.settings import StackSettings
from tests.core.test_alerting_rules import OUTSIDE_PROD, PROD_ALERTS
from tests.support.stacks import STACKS, catalogue, set_path, settings, stack_config

ABOVE, BELOW = 1.05, 0.95
INCREMENT_ABOVE, INCREMENT_BELOW = 1.1, 0.9
TRAFFIC = 600_000.0  # requests per minute: enough that even a 3-day rate clears any minimum from the first minute
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
SWITCH = 30  # minute at which traffic moves to the active colour in the post-deploy scenarios
BASELINE_ERRORS = 0.002
BASELINE_P95 = 0.3


def alerting_of(stack: str) -> tuple[StackSettings, AlertingSettings]:
    stack_settings = settings(stack)
    return stack_settings, load_alerting(stack, stack_settings.environment, None, {}, live=False)


def write_rules(stack: str, directory: Path) -> dict[str, Path]:
    stack_settings, alerting = alerting_of(stack)
    files = {}
    for scope, spec in rule_specs(stack_settings, alerting, catalogue()).items():
        files[scope] = directory / f"{stack}-{scope}.rules.yaml"
        files[scope].write_text(yaml.safe_dump(spec, sort_keys=False))
    return files


def run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("stack", STACKS)
def test_every_stacks_rules_pass_promtool_check(stack: str, promtool: str, tmp_path: Path) -> None:
    files = write_rules(stack, tmp_path)
    result = run([promtool, "check", "rules", *map(str, files.values())])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(files)


def test_promtool_rejects_a_broken_rule(promtool: str, tmp_path: Path) -> None:
    """The check above can fail: a rule with a parse error is refused."""
    broken = tmp_path / "broken.rules.yaml"
    broken.write_text(yaml.safe_dump({"groups": [{"name": "x", "rules": [{"alert": "X", "expr": "rate(up[5m]"}]}]}))
    result = run([promtool, "check", "rules", str(broken)])
    output = result.stdout + result.stderr
    assert result.returncode != 0
    # Refused for the parse error, not e.g. for a file promtool could not read.
    assert '"X": could not parse expression: 1:12: parse error: unclosed left parenthesis' in output, output


# Synthetic series. --------------------------------------------------------------------------------------------

def series(name: str, labels: dict[str, str], values: list[float | None]) -> dict[str, str]:
    """A promtool input series; None is a missing sample (the series does not exist yet)."""
    text = ", ".join(f'{key}="{value}"' for key, value in labels.items())
    return {"series": f"{name}{{{text}}}", "values": " ".join("_" if v is None else _number(v) for v in values)}


def _number(value: float) -> str:
    return format(Decimal(repr(float(value))).normalize(), "f")


def counter(per_minute: float, minutes: int, start: int = 0, stop: int | None = None) -> list[float]:
    """Cumulative count at each minute: increasing by ``per_minute`` from ``start`` until ``stop``."""
    end = minutes if stop is None else stop
    return [per_minute * max(0, min(t, end) - start) for t in range(minutes + 1)]


def gauge(values: float | list[float], minutes: int) -> list[float]:
    return values if isinstance(values, list) else [values] * (minutes + 1)


def quantile_buckets(phi: float, value: float) -> dict[str, float]:
    """Cumulative share of observations per ``le`` such that histogram_quantile(phi) interpolates to ``value``."""
    upper_index = next(i for i, bound in enumerate(BUCKETS) if bound >= value)
    assert upper_index > 0 and value < BUCKETS[-1]
    low, high = BUCKETS[upper_index - 1], BUCKETS[upper_index]
    position = (value - low) / (high - low)
    if position <= phi:
        below, inside = (phi - position) / (1 - position), None
    else:
        below, inside = 0.0, phi / position
    shares = {}
    for bound in BUCKETS:
        if bound < low:
            shares[bound] = 0.0
        elif bound == low:
            shares[bound] = below
        elif bound == high:
            shares[bound] = 1.0 if inside is None else inside
        else:
            shares[bound] = 1.0
    return {**{_number(bound): share for bound, share in shares.items()}, "+Inf": 1.0}


@dataclass
class Service:
    """Builds promtool test groups for one service of one stack."""

    stack: StackSettings
    alerting: AlertingSettings
    name: str
    rules: dict[str, dict[str, Any]]
    groups: list[dict[str, Any]] = field(default_factory=list)
    covered: dict[str, set[str]] = field(default_factory=dict)

    @property
    def active(self) -> str:
        return self.stack.services[self.name].active

    @property
    def standby(self) -> str:
        return self.stack.services[self.name].standby_colour

    def labels(self, **extra: str) -> dict[str, str]:
        return {"namespace": self.stack.namespace, "app": self.name, **extra}

    def documented(self, alert: str) -> tuple[str, str]:
        """The alert's severity and wait as the seeds and docs/alerting.md give them, not as the rule says: a
        page rendered as a warning, or a wait longer than documented, fails the scenario."""
        if self.stack.environment.value != "prod" and alert in OUTSIDE_PROD:
            return OUTSIDE_PROD[alert]
        return PROD_ALERTS[alert]

    def minutes_for(self, alert: str) -> int:
        value = self.documented(alert)[1]
        number, unit = int(value[:-1]), value[-1]
        return number * {"m": 1, "h": 60}[unit]

    def expected(self, alert: str, series_labels: dict[str, str]) -> dict[str, Any]:
        rule = self.rules[alert]
        labels = {**series_labels, **rule["labels"], "severity": self.documented(alert)[0]}
        annotations = {key: re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], text)
                       for key, text in rule["annotations"].items()}
        return {"exp_labels": labels, "exp_annotations": annotations}

    def fires(self, alert: str, inputs: list[dict[str, str]], first_true: int, series_labels: dict[str, str]) -> None:
        """Pending a minute before ``for`` has passed since the condition became true, firing when it has."""
        at = first_true + self.minutes_for(alert)
        self.groups.append({"interval": "1m", "input_series": inputs, "alert_rule_test": [
            {"eval_time": f"{at - 1}m", "alertname": alert, "exp_alerts": []},
            {"eval_time": f"{at}m", "alertname": alert, "exp_alerts": [self.expected(alert, series_labels)]},
        ]})
        self.covered.setdefault(alert, set()).add("fires")

    def silent(self, alert: str, inputs: list[dict[str, str]], first_true: int) -> None:
        at = first_true + self.minutes_for(alert) + 1
        self.groups.append({"interval": "1m", "input_series": inputs, "alert_rule_test": [
            {"eval_time": f"{at}m", "alertname": alert, "exp_alerts": []}]})
        self.covered.setdefault(alert, set()).add("silent")

    # Inputs. ------------------------------------------------------------------------------------------------

    def pod(self, colour: str, version: str | None = None) -> dict[str, str]:
        """The labels the PodMonitor gives a colour's series: by default the version the stack runs on it."""
        return self.labels(color=colour, version=version or str(self.stack.services[self.name].image(colour).version))

    def requests(self, colour: str, per_minute: float, error_ratio: float, minutes: int, start: int = 0,
                 stop: int | None = None, version: str | None = None) -> list[dict[str, str]]:
        result = [series("http_requests_total", {**self.pod(colour, version), "code": "200"},
                         counter(per_minute * (1 - error_ratio), minutes, start, stop))]
        if error_ratio:
            # A 5xx series exists from the first 5xx on, as a client library creates it.
            errors: list[float | None] = counter(per_minute * error_ratio, minutes, start, stop)
            errors[:start] = [None] * start
            result.append(series("http_requests_total", {**self.pod(colour, version), "code": "500"}, errors))
        return result

    def requests_by_minute(self, colour: str, per_minute: float, error_ratios: list[float]) -> list[dict[str, str]]:
        """Requests at ``per_minute`` whose 5xx share changes over the run: ``error_ratios[i]`` during minute i."""
        ok, failed = [0.0], [0.0]
        for ratio in error_ratios:
            ok.append(ok[-1] + per_minute * (1 - ratio))
            failed.append(failed[-1] + per_minute * ratio)
        return [series("http_requests_total", {**self.pod(colour), "code": code}, values)
                for code, values in (("200", ok), ("500", failed))]

    def latency(self, colour: str, per_minute: float, phi: float, value: float, minutes: int, start: int = 0,
                stop: int | None = None, version: str | None = None) -> list[dict[str, str]]:
        return [series("http_request_duration_seconds_bucket", {**self.pod(colour, version), "le": le},
                       counter(per_minute * share, minutes, start, stop))
                for le, share in quantile_buckets(phi, value).items()]

    def up(self, colour: str, value: float, minutes: int) -> dict[str, str]:
        return series("up", self.pod(colour), gauge(value, minutes))

    # Scenarios, one per kind of alert. ---------------------------------------------------------------------

    def error_ratio(self, alert: str, threshold: float) -> None:
        minutes = self.minutes_for(alert) + 3
        self.fires(alert, self.requests(self.active, TRAFFIC, threshold * ABOVE, minutes), 1, self.labels())
        self.silent(alert, self.requests(self.active, TRAFFIC, threshold * BELOW, minutes), 1)

    def absolute_latency(self, alert: str, phi: float, threshold: float) -> None:
        minutes = self.minutes_for(alert) + 3
        for factor in (ABOVE, BELOW):
            inputs = (self.requests(self.active, TRAFFIC, 0, minutes)
                      + self.latency(self.active, TRAFFIC, phi, threshold * factor, minutes))
            if factor == ABOVE:
                self.fires(alert, inputs, 1, self.labels())
            else:
                self.silent(alert, inputs, 1)

    def switched(self, minutes: int, active_errors: float, baseline_errors: float = BASELINE_ERRORS,
                 active_p95: float | None = None) -> list[dict[str, str]]:
        """Traffic on the standby colour until SWITCH, on the active colour from then on."""
        inputs = (self.requests(self.standby, TRAFFIC, baseline_errors, minutes, stop=SWITCH)
                  + self.requests(self.active, TRAFFIC, active_errors, minutes, start=SWITCH))
        if active_p95 is not None:
            inputs += (self.latency(self.standby, TRAFFIC, 0.95, BASELINE_P95, minutes, stop=SWITCH)
                       + self.latency(self.active, TRAFFIC, 0.95, active_p95, minutes, start=SWITCH))
        return inputs

    def post_deploy(self) -> None:
        t = self.alerting.thresholds
        increase = t.baseline_error_increase_points / 100
        alert = "PostDeployErrorRateAboveBaseline"
        minutes = SWITCH + self.minutes_for(alert) + 3
        first_true, labels = SWITCH + 1, self.labels(color=self.active)
        self.fires(alert, self.switched(minutes, BASELINE_ERRORS + increase * INCREMENT_ABOVE), first_true, labels)
        self.silent(alert, self.switched(minutes, BASELINE_ERRORS + increase * INCREMENT_BELOW), first_true)
        # No 5xx at all before the deploy: the baseline is 0, not missing.
        self.fires(alert, self.switched(minutes, increase * INCREMENT_ABOVE, baseline_errors=0), first_true, labels)
        # A fix-forward: the active colour served an older version until 10 minutes before its new one takes the
        # traffic back from the standby. A colour-only check sees a colour that served 15 minutes ago; the new
        # version never did, so it is judged.
        left = SWITCH - 10
        fix_forward = (self.requests(self.active, TRAFFIC, BASELINE_ERRORS, minutes, stop=left, version="0.0.1")
                       + self.requests(self.standby, TRAFFIC, BASELINE_ERRORS, minutes, start=left, stop=SWITCH)
                       + self.requests(self.active, TRAFFIC, BASELINE_ERRORS + increase * INCREMENT_ABOVE, minutes,
                                       start=SWITCH))
        self.fires(alert, fix_forward, first_true, labels)
        # The same version back on the active colour after 10 minutes on the standby, failing more: no new traffic
        # (the absolute error-rate alerts watch it).
        def served_twice(errors_before: float, errors_after: float) -> list[dict[str, str]]:
            return [series("http_requests_total", {**self.pod(self.active), "code": code},
                           [before + after for before, after in zip(
                               counter(TRAFFIC * share(errors_before), minutes, stop=left),
                               counter(TRAFFIC * share(errors_after), minutes, start=SWITCH))])
                    for code, share in (("200", lambda e: 1 - e), ("500", lambda e: e))]

        self.silent(alert, served_twice(BASELINE_ERRORS, BASELINE_ERRORS + increase * INCREMENT_ABOVE)
                    + self.requests(self.standby, TRAFFIC, BASELINE_ERRORS, minutes, start=left, stop=SWITCH),
                    first_true)
        # No deploy: the active colour's release, quiet (half the minimum rate) until SWITCH, then busy and failing
        # more: the morning's first busy minutes are no new traffic (the absolute error-rate alerts watch them).
        quiet = self.alerting.min_request_rate * 60 / 2
        self.silent(alert, [series("http_requests_total", {**self.pod(self.active), "code": code},
                                   [before + after for before, after in zip(
                                       counter(quiet * share(BASELINE_ERRORS), minutes, stop=SWITCH),
                                       counter(TRAFFIC * share(BASELINE_ERRORS + increase * INCREMENT_ABOVE),
                                               minutes, start=SWITCH))])
                            for code, share in (("200", lambda e: 1 - e), ("500", lambda e: e))], first_true)
        self.served_share(alert)
        alert = "PostDeployLatencyAboveBaseline"
        growth = t.baseline_p95_increase_percent / 100
        self.fires(alert, self.switched(minutes, 0, active_p95=BASELINE_P95 * (1 + growth * INCREMENT_ABOVE)),
                   first_true, labels)
        self.silent(alert, self.switched(minutes, 0, active_p95=BASELINE_P95 * (1 + growth * INCREMENT_BELOW)),
                    first_true)

    def served_share(self, alert: str) -> None:
        """A colour is new to traffic when its version carried less than half of the service's requests before
        the window (docs/alerting.md). The active colour's version serves ``share`` of the requests until SWITCH,
        the standby the rest, both at the baseline; from SWITCH on the active colour takes them all, failing 1.1x
        the allowed increase more. At 60% it was already serving: silent (the absolute alerts watch it). At 40%
        it is new traffic, judged against the baseline: firing."""
        increase = self.alerting.thresholds.baseline_error_increase_points / 100
        after = BASELINE_ERRORS + increase * INCREMENT_ABOVE
        # Its 5-minute ratio is all post-switch from SWITCH + 5 and the wait has passed by SWITCH + 7; the baseline
        # and the share 15 minutes back are still from before SWITCH until SWITCH + 15.
        at = SWITCH + 10
        minutes = at + 1
        assert self.minutes_for(alert) <= 3

        def inputs(share: float) -> list[dict[str, str]]:
            active = [series("http_requests_total", {**self.pod(self.active), "code": code},
                             [before + later for before, later in zip(
                                 counter(TRAFFIC * share * part(BASELINE_ERRORS), minutes, stop=SWITCH),
                                 counter(TRAFFIC * part(after), minutes, start=SWITCH))])
                      for code, part in (("200", lambda e: 1 - e), ("500", lambda e: e))]
            return active + self.requests(self.standby, TRAFFIC * (1 - share), BASELINE_ERRORS, minutes, stop=SWITCH)

        for share, firing in ((0.6, False), (0.4, True)):
            self.groups.append({"interval": "1m", "input_series": inputs(share), "alert_rule_test": [
                {"eval_time": f"{at}m", "alertname": alert,
                 "exp_alerts": [self.expected(alert, self.labels(color=self.active))] if firing else []}]})

    def canary(self) -> None:
        alert = "CanaryErrorRateAboveStable"
        increase = self.alerting.thresholds.canary_error_increase_points / 100
        minutes = self.minutes_for(alert) + 3
        stable_errors = 0.005

        def inputs(canary_errors: float) -> list[dict[str, str]]:
            return (self.requests(self.active, TRAFFIC, stable_errors, minutes)
                    + self.requests(self.standby, TRAFFIC * 0.05, canary_errors, minutes))

        self.fires(alert, inputs(stable_errors + increase * INCREMENT_ABOVE), 1, self.labels(color=self.standby))
        self.silent(alert, inputs(stable_errors + increase * INCREMENT_BELOW), 1)

    def canary_latency(self) -> None:
        alert = "CanaryLatencyAboveStable"
        growth = self.alerting.thresholds.baseline_p95_increase_percent / 100
        minutes = self.minutes_for(alert) + 3

        def inputs(canary_p95: float) -> list[dict[str, str]]:
            return (self.requests(self.active, TRAFFIC, 0.0, minutes)
                    + self.requests(self.standby, TRAFFIC * 0.05, 0.0, minutes)
                    + self.latency(self.active, TRAFFIC, 0.95, BASELINE_P95, minutes)
                    + self.latency(self.standby, TRAFFIC * 0.05, 0.95, canary_p95, minutes))

        self.fires(alert, inputs(BASELINE_P95 * (1 + growth * INCREMENT_ABOVE)), 1, self.labels(color=self.standby))
        self.silent(alert, inputs(BASELINE_P95 * (1 + growth * INCREMENT_BELOW)), 1)

    def burn_windows(self, alert: str, factor: float, long: int, short: int) -> None:
        """The multi-window burn rate: errors at 4x the alert's limit only in its long window (they stopped more than
        a short window ago) or only in its short window (after a clean long window) raise nothing; in both, it
        fires. A single-window rule fires in one of the silent cases (the long window alone, in the first)."""
        errors = 4 * factor * (100 - self.alerting.slo_percent) / 100
        at = 2 * short + 2
        stopped = [errors] * short + [0.0] * (at - short)
        burst = [0.0] * long + [errors] * short
        self.groups += [
            {"interval": "1m", "input_series": self.requests_by_minute(self.active, TRAFFIC, ratios),
             "alert_rule_test": [{"eval_time": f"{len(ratios)}m", "alertname": alert, "exp_alerts": expected}]}
            for ratios, expected in ((stopped, []), (burst, []),
                                     ([errors] * at, [self.expected(alert, self.labels())]))]

    def resources(self) -> None:
        t = self.alerting.thresholds
        limits = catalogue().services[self.name].resources.limits
        cores, memory = limits.cpu_millicores / 1000, limits.memory_mib * 1024 * 1024
        pod = {"namespace": self.stack.namespace, "pod": f"{self.name}-{self.active}-0"}
        container = {**pod, "container": self.name}
        for level, percent in (("Critical", t.resource_critical_percent), ("High", t.resource_warning_percent)):
            alert = f"ServiceCpu{level}"
            minutes = self.minutes_for(alert) + 8
            for factor in (ABOVE, BELOW):
                inputs = [series("container_cpu_usage_seconds_total", container,
                                 counter(cores * percent / 100 * factor * 60, minutes))]
                # A rate over 5 minutes is exact once 5 minutes of samples exist.
                self.fires(alert, inputs, 5, pod) if factor == ABOVE else self.silent(alert, inputs, 5)
            alert = f"ServiceMemory{level}"
            minutes = self.minutes_for(alert) + 3
            for factor in (ABOVE, BELOW):
                inputs = [series("container_memory_working_set_bytes", container,
                                 gauge(memory * percent / 100 * factor, minutes))]
                self.fires(alert, inputs, 0, pod) if factor == ABOVE else self.silent(alert, inputs, 0)
        alert = "ServiceMemoryTrendingUp"
        horizon = 4 * 3600
        minutes = self.minutes_for(alert) + 3
        for factor, at in ((ABOVE, 1), (BELOW, self.minutes_for(alert) + 2)):
            # A straight line from half the limit whose forecast crosses `factor` x limit at minute `at`.
            slope = memory * (factor - 0.5) / (at * 60 + horizon)
            inputs = [series("container_memory_working_set_bytes", container,
                             [memory * 0.5 + slope * 60 * t for t in range(minutes + 1)])]
            self.fires(alert, inputs, 1, pod) if factor == ABOVE else self.silent(alert, inputs, 1)

    def no_data(self) -> None:
        minutes = 20
        active = self.labels(color=self.active)
        alert = "ServiceUnreachable"
        self.fires(alert, [self.up(self.active, 0, minutes), self.up(self.standby, 1, minutes)], 0, active)
        self.fires(alert, [self.up(self.standby, 1, minutes)], 0, active)  # no pod of the active colour at all
        self.silent(alert, [self.up(self.active, 1, minutes), self.up(self.standby, 0, minutes)], 0)
        if "StandbyColourDown" in self.rules:
            alert = "StandbyColourDown"
            self.fires(alert, [self.up(self.active, 1, minutes), self.up(self.standby, 0, minutes)], 0,
                       self.labels(color=self.standby))
            # No pod of the standby at all (pending, unschedulable): no `up` series, still down.
            self.fires(alert, [self.up(self.active, 1, minutes)], 0, self.labels(color=self.standby))
            self.silent(alert, [self.up(self.active, 1, minutes), self.up(self.standby, 1, minutes)], 0)
        alert = "MetricsNotReporting"
        self.fires(alert, [series("http_requests_total", self.labels(color=self.active, code="200"),
                                  gauge(100, minutes))], 1, self.labels())
        self.silent(alert, self.requests(self.active, 1, 0, minutes), 1)
        alert = "ServiceMetricsMissing"
        histogram = self.latency(self.active, 60, 0.95, 0.2, minutes)
        requests = self.requests(self.active, 60, 0, minutes)
        up = [self.up(self.active, 1, minutes)]
        self.fires(alert, up, 0, self.labels())
        self.fires(alert, up + requests, 0, self.labels())  # the latency histogram alone is missing
        self.silent(alert, up + requests + histogram, 0)

    def idle(self) -> None:
        """Below the minimum request rate nothing latency-based fires, however slow the requests are, and a handful
        of failures (fewer than min_failed_requests over the whole run) raises no ratio alert, however large the
        share; with no requests at all only the dead-man's switch speaks, at the environment's severity."""
        minutes = 30
        quiet = [name for name in self.rules if name.startswith(("ServiceErrorRate", "ServiceLatency", "ErrorBudget",
                                                                 "PostDeploy", "Canary"))]
        half = self.alerting.min_request_rate * 60 / 4  # requests per minute, each colour: half the minimum in all
        handful = self.alerting.min_failed_requests / 4 / minutes  # each colour: a quarter of the count in the run
        for per_minute, error_ratio in ((half, 0.0), (handful, 0.5)):
            inputs = []
            for colour in (self.active, self.standby):
                inputs += (self.requests(colour, per_minute, error_ratio, minutes)
                           + self.latency(colour, per_minute, 0.99, 9, minutes) + [self.up(colour, 1, minutes)])
            self.groups.append({"interval": "1m", "input_series": inputs, "alert_rule_test": [
                {"eval_time": f"{at}m", "alertname": name, "exp_alerts": []} for name in quiet for at in (10, 30)]})
        flat = []
        for colour in (self.active, self.standby):
            flat += ([series("http_requests_total", self.labels(color=colour, code="200"), gauge(0, minutes))]
                     + self.latency(colour, 0, 0.95, 0.2, minutes) + [self.up(colour, 1, minutes)])
        self.groups.append({"interval": "1m", "input_series": flat, "alert_rule_test": [
            *({"eval_time": "20m", "alertname": name, "exp_alerts": []} for name in quiet),
            {"eval_time": "20m", "alertname": "MetricsNotReporting",
             "exp_alerts": [self.expected("MetricsNotReporting", self.labels())]},
        ]})

    def quiet_outage(self) -> None:
        """Below the minimum rate, every request failing: the 5-minute error-ratio alerts fire once
        min_failed_requests fail within 5 minutes (5% more), and stay quiet just below it (5% fewer)."""
        alerts = ["ServiceErrorRateCritical", "ServiceErrorRateHigh", "ServiceErrorRateAboveRollbackTrigger"]
        at = 5 + max(self.minutes_for(alert) for alert in alerts) + 2  # the 5-minute window full since minute 5
        for factor in (ABOVE, BELOW):
            per_minute = self.alerting.min_failed_requests * factor / 5
            assert per_minute < self.alerting.min_request_rate * 60  # below the rate guard
            inputs = self.requests(self.active, per_minute, 1.0, at + 1) + [self.up(self.active, 1, at + 1)]
            self.groups.append({"interval": "1m", "input_series": inputs, "alert_rule_test": [
                {"eval_time": f"{at}m", "alertname": alert,
                 "exp_alerts": [self.expected(alert, self.labels())] if factor == ABOVE else []}
                for alert in alerts]})

    def build(self) -> None:
        t = self.alerting.thresholds
        self.error_ratio("ServiceErrorRateCritical", t.error_rate_critical_percent / 100)
        self.error_ratio("ServiceErrorRateHigh", t.error_rate_warning_percent / 100)
        self.error_ratio("ServiceErrorRateAboveRollbackTrigger", t.error_rate_rollback_percent / 100)
        budget = (100 - self.alerting.slo_percent) / 100
        for alert, factor in (("ErrorBudgetBurnFast", 14.4), ("ErrorBudgetBurnMedium", 6),
                              ("ErrorBudgetBurnSlow", 1)):
            self.error_ratio(alert, factor * budget)
        self.absolute_latency("ServiceLatencyP99Critical", 0.99, t.p99_critical_seconds)
        self.absolute_latency("ServiceLatencyP99AboveRollbackTrigger", 0.99, t.p99_rollback_seconds)
        self.absolute_latency("ServiceLatencyP95High", 0.95, t.p95_warning_seconds)
        self.post_deploy()
        if self.stack.services[self.name].canary.weight:  # the canary alerts exist only during a canary
            self.canary()
            self.canary_latency()
        self.resources()
        self.no_data()
        self.idle()
        self.quiet_outage()


def unit_tests(stack: str, directory: Path) -> tuple[Path, dict[str, dict[str, set[str]]]]:
    stack_settings, alerting = alerting_of(stack)
    files = write_rules(stack, directory)
    specs = rule_specs(stack_settings, alerting, catalogue())
    groups: list[dict[str, Any]] = []
    coverage: dict[str, dict[str, set[str]]] = {}
    for name in stack_settings.services:
        rules = {rule["alert"]: rule for rule in specs[name]["groups"][0]["rules"] if "alert" in rule}
        service = Service(stack_settings, alerting, name, rules)
        service.build()
        for group in service.groups:
            group["rule_files_scope"] = name
        groups += service.groups
        coverage[name] = service.covered
    watchdog = next(rule for rule in specs["environment"]["groups"][0]["rules"])
    # Severity none: the dead-man's-switch service hears it, nobody is notified (docs/alerting.md).
    groups.append({"interval": "1m", "input_series": [], "rule_files_scope": "environment", "alert_rule_test": [
        {"eval_time": "0m", "alertname": "Watchdog",
         "exp_alerts": [{"exp_labels": {**watchdog["labels"], "severity": "none"},
                         "exp_annotations": watchdog["annotations"]}]}]})
    test_files = []
    for scope, path in files.items():
        scoped = [{key: value for key, value in group.items() if key != "rule_files_scope"}
                  for group in groups if group["rule_files_scope"] == scope]
        test_file = directory / f"{stack}-{scope}.test.yaml"
        test_file.write_text(yaml.safe_dump({"rule_files": [path.name], "evaluation_interval": "1m",
                                             "tests": scoped}, sort_keys=False))
        test_files.append(test_file)
    return test_files, coverage


@pytest.mark.parametrize("stack", STACKS)
def test_every_alert_fires_at_its_threshold_after_its_for_and_not_below(stack: str, promtool: str,
                                                                          tmp_path: Path) -> None:
    test_files, coverage = unit_tests(stack, tmp_path)
    stack_settings, alerting = alerting_of(stack)
    specs = rule_specs(stack_settings, alerting, catalogue())
    for service, covered in coverage.items():
        alerts = {rule["alert"] for rule in specs[service]["groups"][0]["rules"] if "alert" in rule}
        assert set(covered) == alerts, f"{service}: alerts without a scenario: {alerts - set(covered)}"
        assert all(kinds == {"fires", "silent"} for kinds in covered.values()), covered
    result = subprocess.run([promtool, "test", "rules", *(path.name for path in test_files)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    assert result.stdout.count("SUCCESS") == len(test_files)


def canary_service(weight: int) -> Service:
    """prod's Pay-In during a canary at ``weight``: its rules as that update renders them."""
    config = set_path(stack_config("prod"), "services.payin-api.canary", {"weight": weight})
    stack_settings, alerting = settings("prod", config), alerting_of("prod")[1]
    rules = {rule["alert"]: rule for rule in rule_specs(stack_settings, alerting, catalogue())["payin-api"]["groups"][0]
             ["rules"] if "alert" in rule}
    return Service(stack_settings, alerting, "payin-api", rules)


def run_groups(promtool: str, service: Service, tmp_path: Path, only: str | None = None) -> subprocess.CompletedProcess:
    """``only``: that alert and the recording rules it reads, where days of series make every rule costly."""
    specs = rule_specs(service.stack, service.alerting, catalogue())
    if only:
        [group] = specs["payin-api"]["groups"]
        kept = [service.rules[only]]
        while more := [rule for rule in group["rules"] if rule not in kept
                       and any(rule.get("record", "?") in read["expr"] for read in kept)]:
            kept += more
        group["rules"] = [rule for rule in group["rules"] if rule in kept]  # in order: records before the alert
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(specs["payin-api"]))
    (tmp_path / "test.yaml").write_text(yaml.safe_dump({"rule_files": ["rules.yaml"], "evaluation_interval": "1m",
                                                        "tests": service.groups}))
    return subprocess.run([promtool, "test", "rules", "test.yaml"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.parametrize("weight", [5, 100])
def test_during_a_canary_both_colours_are_watched_as_serving(weight: int, promtool: str, tmp_path: Path) -> None:
    """The canary colour takes gateway traffic, so no pod of it answering is a page, not the standby's warning;
    the active colour is watched as always (it still serves the Service's own callers)."""
    service = canary_service(weight)
    assert "StandbyColourDown" not in service.rules
    minutes = 20
    # Its own alert: ServiceUnreachable inhibits the service's other pages, which still matter while the active
    # colour serves.
    for alert, down, up in (("CanaryColourUnreachable", service.standby, service.active),
                            ("ServiceUnreachable", service.active, service.standby)):
        service.fires(alert, [service.up(down, 0, minutes), service.up(up, 1, minutes)], 0, service.labels(color=down))
        service.fires(alert, [service.up(up, 1, minutes)], 0, service.labels(color=down))
        service.silent(alert, [service.up(down, 1, minutes), service.up(up, 0, minutes)], 0)
    result = run_groups(promtool, service, tmp_path)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]


def test_a_canary_failing_or_slower_than_stable_fires_and_one_just_under_does_not(promtool: str,
                                                                                   tmp_path: Path) -> None:
    """At 5%: 1.1 points over the stable colour's 5xx share fires, 0.9 does not; the same for P95 at +10%."""
    service = canary_service(5)
    service.canary()
    service.canary_latency()
    assert set(service.covered) == {"CanaryErrorRateAboveStable", "CanaryLatencyAboveStable"}
    result = run_groups(promtool, service, tmp_path)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]


def test_a_canary_at_100_percent_is_held_to_the_stable_colours_last_hour(promtool: str, tmp_path: Path) -> None:
    """At 100% the stable colour takes no gateway request, so the canary is compared with its share while it
    still served: +1.1 points fires, +0.9 does not."""
    service = canary_service(100)
    alert = "CanaryErrorRateAboveStable"
    increase = service.alerting.thresholds.canary_error_increase_points / 100
    minutes = SWITCH + service.minutes_for(alert) + 3

    def inputs(canary_errors: float) -> list[dict[str, str]]:
        return (service.requests(service.active, TRAFFIC, BASELINE_ERRORS, minutes, stop=SWITCH)
                + service.requests(service.standby, TRAFFIC, canary_errors, minutes, start=SWITCH))

    labels = service.labels(color=service.standby)
    service.fires(alert, inputs(BASELINE_ERRORS + increase * INCREMENT_ABOVE), SWITCH + 1, labels)
    service.silent(alert, inputs(BASELINE_ERRORS + increase * INCREMENT_BELOW), SWITCH + 1)
    result = run_groups(promtool, service, tmp_path)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    # Below 100% the rule is the live comparison, which a stable colour with no traffic cannot make.
    assert "[1h]" not in canary_service(50).rules[alert]["expr"] and "[1h]" in service.rules[alert]["expr"]


def test_a_quiet_services_first_canary_step_is_judged_on_its_share_of_the_minimum_rate(promtool: str,
                                                                                      tmp_path: Path) -> None:
    """prod's minimum is 1 request/s for the service: at 5% the canary gets a twentieth of it. Held to the whole
    rate, the canary of a service with 10 requests/s (0.5 on the canary) could fail 3 points worse unseen."""
    service = canary_service(5)
    alert = "CanaryErrorRateAboveStable"
    minutes = service.minutes_for(alert) + 3
    minimum = service.alerting.min_request_rate * 60  # requests per minute

    def inputs(per_minute: float) -> list[dict[str, str]]:
        return (service.requests(service.active, per_minute * 0.95, 0.005, minutes)
                + service.requests(service.standby, per_minute * 0.05, 0.035, minutes))

    service.fires(alert, inputs(minimum * 10), 1, service.labels(color=service.standby))
    service.silent(alert, inputs(minimum * 0.5), 1)  # below the minimum, a ratio means nothing
    result = run_groups(promtool, service, tmp_path)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]


@pytest.mark.parametrize("weight", [25, 100])
def test_a_slower_canary_is_seen_at_every_weight(weight: int, promtool: str, tmp_path: Path) -> None:
    """Seed 000 §2 watches a canary's latency: P95 10% over stable's fires, just under does not; at 100% stable's
    P95 is its last hour, while it still served."""
    service = canary_service(weight)
    alert = "CanaryLatencyAboveStable"
    growth = service.alerting.thresholds.baseline_p95_increase_percent / 100
    start = SWITCH if weight == 100 else 0
    minutes = start + service.minutes_for(alert) + 3
    stop = SWITCH if weight == 100 else None

    stable = TRAFFIC if weight == 100 else TRAFFIC * (100 - weight) / 100  # at 100%: all of it, until the switch

    def inputs(canary_p95: float) -> list[dict[str, str]]:
        return (service.requests(service.active, stable, 0.0, minutes, stop=stop)
                + service.latency(service.active, stable, 0.95, BASELINE_P95, minutes, stop=stop)
                + service.requests(service.standby, TRAFFIC * weight / 100, 0.0, minutes, start=start)
                + service.latency(service.standby, TRAFFIC * weight / 100, 0.95, canary_p95, minutes, start=start))

    service.fires(alert, inputs(BASELINE_P95 * (1 + growth * INCREMENT_ABOVE)), start + 1,
                  service.labels(color=service.standby))
    service.silent(alert, inputs(BASELINE_P95 * (1 + growth * INCREMENT_BELOW)), start + 1)
    result = run_groups(promtool, service, tmp_path)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]


@pytest.mark.parametrize(("alert", "factor", "long", "short"), [
    ("ErrorBudgetBurnFast", 14.4, 60, 5), ("ErrorBudgetBurnMedium", 6, 360, 30), ("ErrorBudgetBurnSlow", 1, 4320, 360)])
def test_a_burn_rate_alert_needs_both_of_its_windows(alert: str, factor: float, long: int, short: int, promtool: str,
                                                     tmp_path: Path) -> None:
    """A constant error ratio cannot tell a multi-window alert from a single-window one: errors that stopped, and a
    burst after a clean long window, must both stay silent at every level (prod's rules)."""
    service = canary_service(0)
    assert f"ratio_rate{long // 60}h{{" in service.rules[alert]["expr"] or f"ratio_rate{long // 1440}d{{" in \
        service.rules[alert]["expr"]
    service.burn_windows(alert, factor, long, short)
    result = run_groups(promtool, service, tmp_path, only=alert)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]


def test_metrics_that_vanish_page_as_a_count_of_0_does() -> None:
    """Series gone while the pods still answer the scrape: every ratio alert is blind, as with no requests."""
    for stack in STACKS:
        stack_settings, alerting = alerting_of(stack)
        rules = {rule["alert"]: rule for rule in rule_specs(stack_settings, alerting, catalogue())["payin-api"][
            "groups"][0]["rules"] if "alert" in rule}
        missing = rules["ServiceMetricsMissing"]["labels"]["severity"]
        assert missing == ("critical" if rules["MetricsNotReporting"]["labels"]["severity"] == "critical"
                           else "warning"), stack
    assert rules["ServiceMetricsMissing"]["labels"]["severity"] == "critical"  # prod, the last of STACKS


def test_requests_slower_than_the_top_bucket_page_at_its_bound(promtool: str, tmp_path: Path) -> None:
    """A histogram whose highest finite bound is the 5-second threshold: every request takes 8 s, and
    histogram_quantile answers 5, the bound. The page still fires (at or above), where "> 5" never could."""
    stack_settings, alerting = alerting_of("prod")
    specs = rule_specs(stack_settings, alerting, catalogue())
    rules = {rule["alert"]: rule for rule in specs["payin-api"]["groups"][0]["rules"] if "alert" in rule}
    service = Service(stack_settings, alerting, "payin-api", rules)
    alert = "ServiceLatencyP99Critical"
    minutes = service.minutes_for(alert) + 3
    slow = [series("http_request_duration_seconds_bucket", {**service.pod(service.active), "le": le},
                   counter(TRAFFIC * (1.0 if le == "+Inf" else 0.0), minutes)) for le in ("1", "2", "5", "+Inf")]
    service.fires(alert, service.requests(service.active, TRAFFIC, 0, minutes) + slow, 1, service.labels())
    result = run_groups(promtool, service, tmp_path)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]


def test_promtool_test_can_fail(promtool: str, tmp_path: Path) -> None:
    """The unit tests can fail: the canary alert expected at +0.9 points is reported missing."""
    service = canary_service(5)
    specs = rule_specs(service.stack, service.alerting, catalogue())
    service.canary()
    below = service.groups[1]
    below["alert_rule_test"][0]["exp_alerts"] = [service.expected("CanaryErrorRateAboveStable",
                                                                  service.labels(color=service.standby))]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(specs["payin-api"]))
    (tmp_path / "test.yaml").write_text(yaml.safe_dump({"rule_files": ["rules.yaml"], "evaluation_interval": "1m",
                                                        "tests": [below]}))
    result = subprocess.run([promtool, "test", "rules", "test.yaml"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode != 0 and "CanaryErrorRateAboveStable" in result.stdout + result.stderr
