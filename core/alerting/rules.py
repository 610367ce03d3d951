"""Prometheus rules of one environment: recording rules and alerts per service, and the environment's Watchdog.

Every expression selects one namespace and one service, so a PrometheusRule per service can be read, tested and
updated alone. The metric contract the expressions rely on is in docs/alerting.md: request counters and latency
histograms labelled ``namespace, app, color, code`` (the PodMonitor below attaches the first three), cAdvisor's
container metrics, and ``up``.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from core import labels
from core.alerting.events import EventKind
from core.alerting.settings import AlertingSettings
from core.catalogue import ENVIRONMENT_SCOPE, Catalogue, ServiceSpec
from core.environment import SERVICE_TIER, Manifest
from core.settings import StackSettings

VERSION = "version"  # the metric label of the pod's app.kubernetes.io/version
REQUESTS = "http_requests_total"
DURATION_BUCKETS = "http_request_duration_seconds_bucket"
CPU = "container_cpu_usage_seconds_total"
MEMORY = "container_memory_working_set_bytes"
ERRORS = 'code=~"5.."'
BURN_WINDOWS = ("5m", "30m", "1h", "6h", "3d")
BASELINE_WINDOW = "1h"
SERVED_SHARE = 0.5  # of the service's requests: a version carrying at least this much was already serving
MEMORY_FORECAST_HOURS = 4

# How long a condition must hold before the alert fires. Seeds give 3 minutes for the 5xx rollback trigger
# (002) and 5 minutes for metrics not reporting (003); the rest follow the usual practice of a short wait for a
# page and a longer one for a warning, and the SRE workbook's waits for multi-window burn rates.
FOR = {
    "ServiceErrorRateCritical": "2m",
    "ServiceErrorRateHigh": "5m",
    "ServiceErrorRateAboveRollbackTrigger": "3m",
    "PostDeployErrorRateAboveBaseline": "2m",
    "PostDeployLatencyAboveBaseline": "2m",
    "CanaryErrorRateAboveStable": "2m",
    "CanaryLatencyAboveStable": "2m",
    "ServiceLatencyP99Critical": "5m",
    "ServiceLatencyP99AboveRollbackTrigger": "5m",
    "ServiceLatencyP95High": "10m",
    "ErrorBudgetBurnFast": "2m",
    "ErrorBudgetBurnMedium": "15m",
    "ErrorBudgetBurnSlow": "1h",
    "ServiceCpuCritical": "5m",
    "ServiceCpuHigh": "15m",
    "ServiceMemoryCritical": "5m",
    "ServiceMemoryHigh": "15m",
    "ServiceMemoryTrendingUp": "15m",
    "ServiceUnreachable": "2m",
    "CanaryColourUnreachable": "2m",
    "StandbyColourDown": "5m",
    "MetricsNotReporting": "5m",
    "ServiceMetricsMissing": "10m",
}
WATCHDOG = "Watchdog"
# Conditions that fail a deployment (seed 000 §2, §9): labelled event=deployment-failed, but conditions that end, so
# routed apart from the one-off events (resolved notifications, the usual repeat).
DEPLOYMENT_CONDITIONS = ("PostDeployErrorRateAboveBaseline", "PostDeployLatencyAboveBaseline",
                         "CanaryErrorRateAboveStable", "CanaryLatencyAboveStable")
RULE_LABEL = "release-infra/alerting"


def rule_specs(settings: StackSettings, alerting: AlertingSettings, catalogue: Catalogue) -> dict[str, Manifest]:
    """PrometheusRule specs keyed by service, plus ``environment`` for the Watchdog."""
    specs = {service: service_rules(settings, alerting, service, catalogue.services[service])
             for service in settings.services}
    specs[ENVIRONMENT_SCOPE] = environment_rules(settings)
    return specs


def environment_rules(settings: StackSettings) -> Manifest:
    """The dead-man's switch: always firing, so its silence at the receiving end means the pipeline is broken."""
    namespace = settings.namespace
    return {"groups": [{
        "name": f"release-infra/{namespace}/environment",
        "rules": [{
            "alert": WATCHDOG,
            "expr": "vector(1)",
            "labels": {"severity": "none", "environment": settings.environment.value, "namespace": namespace},
            "annotations": {
                "summary": f"Alerting pipeline of {settings.environment.value} is alive",
                "description": "Always firing. The dead-man's-switch service raises an incident when it stops "
                               "hearing this alert: Prometheus, its rules or Alertmanager are down.",
            },
        }],
    }]}


def service_rules(settings: StackSettings, alerting: AlertingSettings, service: str, spec: ServiceSpec) -> Manifest:
    rules = _Rules(settings, alerting, service, spec)
    return {"groups": [{"name": f"release-infra/{settings.namespace}/{service}",
                        "rules": rules.recording() + rules.alerts()}]}


def pod_monitor(settings: StackSettings) -> Manifest:
    """Scrapes every service pod's metrics port and attaches the labels the rules select on: app, color, and the
    version the pod runs (a colour that serves a new version has just taken traffic, whatever it served before).

    The operator adds ``namespace`` itself; ``up`` gets the same labels, so a colour with no answering pod is seen.
    """
    relabel = [{"sourceLabels": [f"__meta_kubernetes_pod_label_{_meta(pod_label)}"], "targetLabel": name,
                "action": "replace"}
               for name, pod_label in ((labels.APP, labels.APP), (labels.COLOR, labels.COLOR),
                                       (VERSION, labels.VERSION))]
    return {
        "metadata": metadata(settings, "release-infra-services"),
        "spec": {
            "selector": {"matchLabels": {labels.TIER: SERVICE_TIER}},
            "namespaceSelector": {"matchNames": [settings.namespace]},
            "podMetricsEndpoints": [{"port": "metrics", "path": "/metrics", "interval": "30s",
                                     "relabelings": relabel}],
        },
    }


def _meta(pod_label: str) -> str:
    """A pod label's name as Prometheus' Kubernetes discovery writes it: anything but a letter, digit or _ as _."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", pod_label)


def metadata(settings: StackSettings, name: str) -> dict[str, Any]:
    """Labelled so the platform's Prometheus and Alertmanager select these objects (docs/alerting.md)."""
    return {"name": name, "namespace": settings.namespace,
            "labels": {**labels.common(settings), RULE_LABEL: "true"}}


def number(value: float | Decimal) -> str:
    """A threshold as PromQL text, never in exponent form; thresholds are computed in Decimal so that
    14.4 x (100 - 99.9)% reads 0.0144, not 0.014400000000000013."""
    return format(Decimal(str(value)).normalize(), "f")


def fraction(percent: float) -> Decimal:
    return Decimal(str(percent)) / 100


class _Rules:
    """The rules of one service in one environment."""

    def __init__(self, settings: StackSettings, alerting: AlertingSettings, service: str, spec: ServiceSpec) -> None:
        self.settings, self.alerting, self.service, self.spec = settings, alerting, service, spec
        self.release = settings.services[service]
        self.namespace = settings.namespace
        self.environment = settings.environment.value
        self.thresholds = alerting.thresholds
        self.min_rate = number(alerting.min_request_rate)
        # A P95 "more than x% above" another: the factor it is compared with.
        self.p95_growth = number(1 + Decimal(str(alerting.thresholds.baseline_p95_increase_percent)) / 100)
        # Seed 002's triggers say "initiate rollback immediately", and seed 000 §12 sends a rollback to #incidents
        # and on-call: where the stack pages, a trigger is a page; elsewhere a warning.
        self.rollback_severity = "critical" if alerting.page_on_call else "warning"

    def sel(self, **extra: str) -> str:
        matchers = [f'namespace="{self.namespace}"', f'app="{self.service}"']
        matchers += [f'{name}="{value}"' for name, value in extra.items()]
        return ", ".join(matchers)

    def serving(self, colour: str) -> str:
        """Guard of a colour's ratio: its share of min_request_rate, as the gateway shares the requests. At 5% the
        canary gets a twentieth, and holding it to the whole rate would blind the first step of every quiet
        service's canary; at weight 0 no canary runs, and each colour is held to the whole rate."""
        weight = self.release.canary.weight
        percent = weight if colour == self.release.standby_colour else 100 - weight
        rate = number(Decimal(str(self.alerting.min_request_rate)) * (percent if weight else 100) / 100)
        return f"namespace_app_color:http_requests:rate5m{{{self.sel(color=colour)}}} >= {rate}"

    def enough_requests(self, window: str = "5m") -> str:
        return f"namespace_app:http_requests:rate{window}{{{self.sel()}}} >= {self.min_rate}"

    def traffic(self, window: str = "5m") -> str:
        """Guard of the latency and burn-rate alerts: enough requests that a quantile or a long ratio means
        something (a fixed count of failures spread over hours would page for a few)."""
        return f"on (namespace, app) {self.enough_requests(window)}"

    def failures(self) -> str:
        """Guard of the 5-minute error-ratio alerts: enough requests that the ratio means something, or enough
        failed requests that they matter at any rate. A few failures on an idle environment stay quiet; a quiet
        service failing every request is an outage."""
        return (f"on (namespace, app) ({self.enough_requests()}"
                f" or sum by (namespace, app) (namespace_app_color:http_errors:rate5m{{{self.sel()}}}) * 300"
                f" >= {self.alerting.min_failed_requests})")

    # Recording rules: shared by the alerts below and by dashboards. -----------------------------------------

    def recording(self) -> list[dict[str, Any]]:
        s = self.sel()
        rules = [
            ("namespace_app_color:http_requests:rate5m",
             f"sum by (namespace, app, color) (rate({REQUESTS}{{{s}}}[5m]))"),
            # A colour without a single 5xx has no 5xx series: count it as 0, not as missing.
            ("namespace_app_color:http_errors:rate5m",
             f"sum by (namespace, app, color) (rate({REQUESTS}{{{s}, {ERRORS}}}[5m]))"
             f" or 0 * namespace_app_color:http_requests:rate5m{{{s}}}"),
            ("namespace_app_color:http_errors:ratio_rate5m",
             f"namespace_app_color:http_errors:rate5m{{{s}}} / namespace_app_color:http_requests:rate5m{{{s}}}"),
        ]
        for window in BURN_WINDOWS:
            rules += [
                (f"namespace_app:http_requests:rate{window}",
                 f"sum by (namespace, app) (rate({REQUESTS}{{{s}}}[{window}]))"),
                (f"namespace_app:http_errors:ratio_rate{window}",
                 f"(sum by (namespace, app) (rate({REQUESTS}{{{s}, {ERRORS}}}[{window}]))"
                 f" or 0 * namespace_app:http_requests:rate{window}{{{s}}})"
                 f" / namespace_app:http_requests:rate{window}{{{s}}}"),
            ]
        rules += [
            ("namespace_app_le:http_request_duration_seconds_bucket:rate5m",
             f"sum by (namespace, app, le) (rate({DURATION_BUCKETS}{{{s}}}[5m]))"),
            ("namespace_app_color_le:http_request_duration_seconds_bucket:rate5m",
             f"sum by (namespace, app, color, le) (rate({DURATION_BUCKETS}{{{s}}}[5m]))"),
        ]
        for quantile in ("0.95", "0.99"):
            name = f"p{quantile[2:]}_5m"
            rules += [
                (f"namespace_app:http_request_duration_seconds:{name}",
                 f"histogram_quantile({quantile}, "
                 f"namespace_app_le:http_request_duration_seconds_bucket:rate5m{{{s}}})"),
                (f"namespace_app_color:http_request_duration_seconds:{name}",
                 f"histogram_quantile({quantile}, "
                 f"namespace_app_color_le:http_request_duration_seconds_bucket:rate5m{{{s}}})"),
            ]
        return [{"record": record, "expr": expr} for record, expr in rules]

    # Alerts. -------------------------------------------------------------------------------------------------

    def alert(self, name: str, expr: str, severity: str, summary: str, description: str,
              **extra_labels: str) -> dict[str, Any]:
        return {
            "alert": name,
            "expr": expr,
            "for": FOR[name],
            "labels": {"severity": severity, "environment": self.environment, "namespace": self.namespace,
                       "service": self.service, **extra_labels},
            "annotations": {"summary": summary, "description": description},
        }

    def alerts(self) -> list[dict[str, Any]]:
        return (self.error_rate() + self.after_deploy() + self.latency() + self.burn_rate() + self.resources()
                + self.no_data())

    def error_rate(self) -> list[dict[str, Any]]:
        t, s, svc, env = self.thresholds, self.sel(), self.service, self.environment
        ratio = f"namespace_app:http_errors:ratio_rate5m{{{s}}}"
        levels = [
            ("ServiceErrorRateCritical", t.error_rate_critical_percent, "critical", "seed 003: page"),
            ("ServiceErrorRateHigh", t.error_rate_warning_percent, "warning", "seed 003: warning"),
            ("ServiceErrorRateAboveRollbackTrigger", t.error_rate_rollback_percent, self.rollback_severity,
             "seed 002: a rollback trigger - roll back the latest release now"),
        ]
        return [self.alert(
            name, f"{ratio} > {number(fraction(percent))} and {self.failures()}", severity,
            f"{svc} in {env}: more than {number(percent)}% of requests fail with 5xx",
            f"The 5xx share of {svc} over 5 minutes has been above {number(percent)}% for {FOR[name]} ({why}).")
            for name, percent, severity, why in levels]

    def after_deploy(self) -> list[dict[str, Any]]:
        """Seed 000 §9 and §2: the colour that just took traffic against the baseline, and a canary against stable.

        A colour "just took traffic" when it serves at least the minimum rate now and its version did not carry at
        least half of the service's requests ``post_deploy_window_minutes`` ago: a fix-forward onto the colour a
        switch just left is new traffic too, and a quiet service getting busy on the release it ran is not (an
        absolute rate then read the morning's first busy minutes as a deploy). The baseline is the whole service over
        the hour before that.
        """
        t, svc, env = self.thresholds, self.service, self.environment
        active, standby = self.release.active, self.release.standby_colour
        window = f"{self.alerting.post_deploy_window_minutes}m"
        s, active_s = self.sel(), self.sel(color=active)
        version = self.release.image(active).version
        newly_serving = (
            f"(namespace_app_color:http_requests:rate5m{{{active_s}}} >= {self.min_rate})"
            f" unless on (namespace, app, color)"
            f" (sum by (namespace, app, color) (rate({REQUESTS}{{{active_s}, {VERSION}=\"{version}\"}}[5m]"
            f" offset {window})) >= ignoring (color) group_left ()"
            f" ({SERVED_SHARE} * sum by (namespace, app) (rate({REQUESTS}{{{s}}}[5m] offset {window}))))"
        )
        baseline_total = f"sum by (namespace, app) (rate({REQUESTS}{{{s}}}[{BASELINE_WINDOW}] offset {window}))"
        baseline_ratio = (
            f"(sum by (namespace, app) (rate({REQUESTS}{{{s}, {ERRORS}}}[{BASELINE_WINDOW}] offset {window}))"
            f" or 0 * {baseline_total}) / {baseline_total}"
        )
        baseline_p95 = (f"histogram_quantile(0.95, sum by (namespace, app, le) "
                        f"(rate({DURATION_BUCKETS}{{{s}}}[{BASELINE_WINDOW}] offset {window})))")
        failed = {"event": EventKind.FAILED.value}
        return [
            self.alert(
                "PostDeployErrorRateAboveBaseline",
                f"(namespace_app_color:http_errors:ratio_rate5m{{{active_s}}}"
                f" - ignoring (color) group_left () ({baseline_ratio}))"
                f" > {number(fraction(t.baseline_error_increase_points))}"
                f" and on (namespace, app, color) ({newly_serving})",
                "warning",
                f"{svc} in {env}: error rate after the switch to {active} exceeds the pre-deploy baseline",
                f"Since {active} took traffic, its 5xx share is more than {number(t.baseline_error_increase_points)} "
                f"percentage points above the service's share in the hour before (seed 000 §9). Roll back: switch "
                f"to {standby}.", **failed),
            self.alert(
                "PostDeployLatencyAboveBaseline",
                f"namespace_app_color:http_request_duration_seconds:p95_5m{{{active_s}}}"
                f" > ignoring (color) group_left () ({self.p95_growth} * {baseline_p95})"
                f" and on (namespace, app, color) ({newly_serving})",
                "warning",
                f"{svc} in {env}: P95 latency after the switch to {active} exceeds the baseline by more than "
                f"{number(t.baseline_p95_increase_percent)}%",
                f"Since {active} took traffic, its P95 latency is more than {number(t.baseline_p95_increase_percent)}% "
                f"above the service's P95 in the hour before (seed 000 §9). Roll back: switch to {standby}.",
                **failed),
            # Only while the gateway splits traffic: after a plain switch the colour left behind still shows a 5-minute
            # rate, and judged as a canary its old build would page "roll the canary back" onto the new one.
            *([self.canary(**failed), self.canary_latency(**failed)] if self.release.canary.weight else []),
        ]

    def canary(self, **labels: str) -> dict[str, Any]:
        """Seed 000 §2: the canary colour against the stable one, now; at 100% the gateway sends the stable colour
        nothing, so its share over the last hour, while it still served, is the baseline until that runs out."""
        t, svc, env = self.thresholds, self.service, self.environment
        active, standby = self.release.active, self.release.standby_colour
        active_s, standby_s = self.sel(color=active), self.sel(color=standby)
        points = number(t.canary_error_increase_points)
        canary = f" and on (namespace, app, color) {self.serving(standby)}"
        if self.release.canary.weight < 100:
            return self.alert(
                "CanaryErrorRateAboveStable",
                f"(namespace_app_color:http_errors:ratio_rate5m{{{standby_s}}}"
                f" - ignoring (color) group_left namespace_app_color:http_errors:ratio_rate5m{{{active_s}}})"
                f" > {number(fraction(t.canary_error_increase_points))}{canary}"
                f" and on (namespace, app) {self.serving(active)}",
                "warning",
                f"{svc} in {env}: canary {standby} fails more than stable {active}",
                f"The 5xx share of the canary colour {standby} is more than {points} percentage points above the "
                f"stable colour {active} (seed 000 §2): roll the canary back.", **labels)
        total = f"sum by (namespace, app, color) (rate({REQUESTS}{{{active_s}}}[{BASELINE_WINDOW}]))"
        stable = (f"(sum by (namespace, app, color) (rate({REQUESTS}{{{active_s}, {ERRORS}}}[{BASELINE_WINDOW}]))"
                  f" or 0 * {total}) / ({total} >= {self.min_rate})")
        return self.alert(
            "CanaryErrorRateAboveStable",
            f"(namespace_app_color:http_errors:ratio_rate5m{{{standby_s}}} - ignoring (color) group_left () ({stable}))"
            f" > {number(fraction(t.canary_error_increase_points))}{canary}",
            "warning",
            f"{svc} in {env}: canary {standby} at 100% fails more than stable {active} did",
            f"The 5xx share of the canary colour {standby}, which takes all of the gateway's requests, is more than "
            f"{points} percentage points above the stable colour {active}'s share over the last "
            f"{BASELINE_WINDOW} (seed 000 §2): roll the canary back.", **labels)

    def canary_latency(self, **labels: str) -> dict[str, Any]:
        """Seed 000 §2 watches a canary's latency as well as its errors: its P95 against the stable colour's, by
        the §9 margin; at 100%, against the stable colour's P95 over the last hour, as for errors."""
        t, svc, env = self.thresholds, self.service, self.environment
        active, standby = self.release.active, self.release.standby_colour
        active_s, standby_s = self.sel(color=active), self.sel(color=standby)
        percent = number(t.baseline_p95_increase_percent)
        canary = f" and on (namespace, app, color) {self.serving(standby)}"
        if self.release.canary.weight < 100:
            stable = (f"namespace_app_color:http_request_duration_seconds:p95_5m{{{active_s}}}"
                      f" and on (namespace, app, color) {self.serving(active)}")
            against = f"stable {active}"
        else:
            total = f"sum by (namespace, app) (rate({REQUESTS}{{{active_s}}}[{BASELINE_WINDOW}]))"
            stable = (f"histogram_quantile(0.95, sum by (namespace, app, le) "
                      f"(rate({DURATION_BUCKETS}{{{active_s}}}[{BASELINE_WINDOW}])))"
                      f" and on (namespace, app) ({total} >= {self.min_rate})")
            against = f"stable {active} over the last {BASELINE_WINDOW}"
        return self.alert(
            "CanaryLatencyAboveStable",
            f"namespace_app_color:http_request_duration_seconds:p95_5m{{{standby_s}}}"
            f" > ignoring (color) group_left () ({self.p95_growth} * ({stable})){canary}",
            "warning",
            f"{svc} in {env}: canary {standby} is more than {percent}% slower than {against}",
            f"The P95 latency of the canary colour {standby} is more than {percent}% above {against} (seed 000 §2 "
            f"watches a canary's latency, §9 sets the margin): roll the canary back.", **labels)

    def latency(self) -> list[dict[str, Any]]:
        t, s, svc, env = self.thresholds, self.sel(), self.service, self.environment
        levels = [
            ("ServiceLatencyP99Critical", "99", t.p99_critical_seconds, "critical", "seed 003: page"),
            ("ServiceLatencyP99AboveRollbackTrigger", "99", t.p99_rollback_seconds, self.rollback_severity,
             "seed 002: a rollback trigger - roll back the latest release now"),
            ("ServiceLatencyP95High", "95", t.p95_warning_seconds, "warning", "seed 003: warning"),
        ]
        # At or above: when every slow request is past the highest finite bucket, histogram_quantile answers that
        # bucket's bound, so a service whose top bucket is the threshold (5 s) would never reach "> 5".
        return [self.alert(
            name, f"namespace_app:http_request_duration_seconds:p{q}_5m{{{s}}} >= {number(seconds)}"
                  f" and {self.traffic()}", severity,
            f"{svc} in {env}: P{q} latency above {number(seconds)}s",
            f"P{q} request latency of {svc} over 5 minutes has been above {number(seconds)}s for {FOR[name]} ({why}).")
            for name, q, seconds, severity, why in levels]

    def burn_rate(self) -> list[dict[str, Any]]:
        """Multi-window burn rates against the SLO (SRE workbook): the long window proves the burn matters, the
        short one that it is still going on, so the alert stops soon after the errors do."""
        s, svc, env = self.sel(), self.service, self.environment
        budget = Decimal(str(100)) - Decimal(str(self.alerting.slo_percent))
        levels = [
            ("ErrorBudgetBurnFast", "14.4", "1h", "5m", "critical", {}),
            ("ErrorBudgetBurnMedium", "6", "6h", "30m", "critical", {}),
            ("ErrorBudgetBurnSlow", "1", "3d", "6h", "warning", {"action": "ticket"}),
        ]
        result = []
        for name, factor, long, short, severity, extra in levels:
            limit = number(Decimal(factor) * budget / 100)
            result.append(self.alert(
                name,
                f"namespace_app:http_errors:ratio_rate{long}{{{s}}} > {limit}"
                f" and namespace_app:http_errors:ratio_rate{short}{{{s}}} > {limit}"
                f" and {self.traffic(long)}",
                severity,
                f"{svc} in {env}: error budget burning at {factor}x over {long} and {short}",
                f"At this rate the {number(self.alerting.slo_percent)}% SLO's error budget is spent "
                f"{factor} times as fast as it accrues ({long} and {short} windows).",
                **extra))
        return result

    def resources(self) -> list[dict[str, Any]]:
        """Per pod, against the limits of the catalogue, which are the limits the Deployments set."""
        t, svc, env = self.thresholds, self.service, self.environment
        container = f'namespace="{self.namespace}", container="{svc}"'
        cores = number(Decimal(self.spec.resources.limits.cpu_millicores) / 1000)
        memory_bytes = str(self.spec.resources.limits.memory_mib * 1024 * 1024)
        cpu = f"sum by (namespace, pod) (rate({CPU}{{{container}}}[5m])) / {cores}"
        memory = f"max by (namespace, pod) ({MEMORY}{{{container}}}) / {memory_bytes}"
        result = []
        for resource, usage in (("Cpu", cpu), ("Memory", memory)):
            for level, percent, severity in (("Critical", t.resource_critical_percent, "critical"),
                                             ("High", t.resource_warning_percent, "warning")):
                name = f"Service{resource}{level}"
                result.append(self.alert(
                    name, f"{usage} > {number(fraction(percent))}", severity,
                    f"{svc} in {env}: pod {{{{ $labels.pod }}}} uses more than {number(percent)}% of its "
                    f"{resource.lower()} limit",
                    f"Seed 003: {resource.lower()} above {number(percent)}% of the limit for {FOR[name]}."))
        result.append(self.alert(
            "ServiceMemoryTrendingUp",
            f"max by (namespace, pod) (predict_linear({MEMORY}{{{container}}}[1h], {MEMORY_FORECAST_HOURS * 3600}))"
            f" > {memory_bytes}",
            "info",
            f"{svc} in {env}: pod {{{{ $labels.pod }}}} will reach its memory limit within "
            f"{MEMORY_FORECAST_HOURS}h",
            "Seed 003 info: resource usage trending up; logged only."))
        return result

    def no_data(self) -> list[dict[str, Any]]:
        """No silent pass: a missing pod, a missing series or a counter that stopped moving is an alert too."""
        svc, env = self.service, self.environment
        active, standby, weight = self.release.active, self.release.standby_colour, self.release.canary.weight

        def down(colour: str) -> str:
            up = f"up{{{self.sel(color=colour)}}}"
            return f"max by (namespace, app, color) ({up}) == 0 or absent({up})"

        result = [self.alert(
            "ServiceUnreachable", down(active), "critical",
            f"{svc} in {env}: no pod of the active colour {active} answers",
            f"No pod of {svc}-{active}, the colour the Service routes to, answers its metrics scrape (or none "
            f"exists): requests to {svc} fail.",
            color=active)]
        if weight:  # the canary colour takes a share of the gateway's requests: its pods serve too
            result.append(self.alert(
                "CanaryColourUnreachable", down(standby), "critical",
                f"{svc} in {env}: no pod of the canary colour {standby} answers",
                f"No pod of {svc}-{standby} answers its metrics scrape (or none exists), and the gateway sends it a "
                f"share of {svc}'s requests: those fail. Roll the canary back.",
                color=standby))
        if self.release.standby.policy == "warm" and not weight:
            result.append(self.alert(
                "StandbyColourDown", down(standby),
                "warning",
                f"{svc} in {env}: the standby colour {standby} is down; a rollback would fail",
                f"No pod of {svc}-{standby} answers its metrics scrape (or none exists, e.g. all pending): the "
                "manual rollback the standard promises for an hour after a deploy (seed 000 §4) would switch "
                "traffic to nothing.",
                color=standby))
        result += [
            self.alert(
                "MetricsNotReporting",
                f"namespace_app:http_requests:rate5m{{{self.sel()}}} == 0",
                self.alerting.metrics_not_reporting_severity,
                f"{svc} in {env}: no request counted for 5 minutes",
                "Seed 003 dead-man's switch: the request rate has been 0 for 5 minutes. Where traffic never stops "
                "this means the service or its instrumentation is broken; on an idle environment it is logged only."),
            self.alert(
                "ServiceMetricsMissing",
                f"absent({REQUESTS}{{{self.sel()}}}) or absent({DURATION_BUCKETS}{{{self.sel()}}})",
                # The same dead-man's switch as a count of 0, and every ratio alert is as blind: paged alike.
                "critical" if self.alerting.metrics_not_reporting_severity == "critical" else "warning",
                f"{svc} in {env}: request metrics are missing",
                f"Prometheus has no {REQUESTS} or no {DURATION_BUCKETS} series for {svc}: the ratio and latency "
                "alerts cannot see it. Check the PodMonitor and the service's instrumentation (docs/alerting.md)."),
        ]
        return result
