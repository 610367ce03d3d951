"""Alerting settings of one stack: the seeds' thresholds as per-environment defaults, overridable in config.

The stack key ``release-infra:alerting`` (an object, optional) holds every threshold; the webhook URLs and the
routing key are separate secret keys (``pulumi config set --secret``), so the thresholds stay readable while the
credentials stay encrypted. This module must not import ``core.settings``: that module imports this one.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal, Mapping

from pydantic import AfterValidator, Field, ValidationError

from core.catalogue import Strict
from core.errors import MISSING, NO_VALUE, SECRET, ConfigError, Problem
from core.names import EnvironmentName
from core.validation import key_path, problems_from, unknown_key

PREFIX = "release-infra:"  # core.settings.PROJECT + ":"; a test keeps the two equal
KEY = "alerting"
Severity = Literal["critical", "warning", "info"]
Percent = Annotated[float, Field(gt=0, le=100)]
Points = Annotated[float, Field(gt=0, le=100, description="Percentage points.")]
Seconds = Annotated[float, Field(gt=0, le=600)]
SlackChannel = Annotated[str, Field(pattern=r"^#[a-z0-9][a-z0-9._-]{0,79}$")]


def http_url(url: str) -> str:
    """No user:password@, query, fragment or token-like path segment (a webhook's): the URL is an input of every
    deployment-events resource, so it is in the state in plain text."""
    if len(url) > 2048 or not re.fullmatch(r"https?://[^\s/?#@]+(?:/[^\s?#]*)?", url):
        raise ValueError("must be an http(s) URL without credentials or a query, e.g. "
                         "http://alertmanager.monitoring:9093")
    if any(TOKEN.fullmatch(segment) and re.search(r"\d", segment) for segment in url.split("/")[3:]):
        raise ValueError("has a path segment like a token: Alertmanager's own URL holds none, and this one is kept "
                         "in the state in plain text")
    return url


HttpUrl = Annotated[str, AfterValidator(http_url)]

SLACK = "a Slack incoming-webhook URL (https://...)"
# Secret config keys -> what they hold. Each is its own key so `pulumi config set --secret KEY` encrypts it alone.
SLACK_DEPLOYMENTS = "alerting_slack_deployments_url"
SLACK_INCIDENTS = "alerting_slack_incidents_url"
SLACK_ALERTS = "alerting_slack_alerts_url"
PAGERDUTY = "alerting_pagerduty_routing_key"
WATCHDOG = "alerting_watchdog_url"
SECRET_KEYS: dict[str, str] = {
    SLACK_DEPLOYMENTS: f"{SLACK} posting to the deployments channel",
    SLACK_INCIDENTS: f"{SLACK} posting to the incidents channel",
    SLACK_ALERTS: f"{SLACK} posting to the environment's alerts channel",
    PAGERDUTY: "a PagerDuty Events v2 routing key of the on-call service",
    WATCHDOG: "the URL of an external dead-man's-switch service the Watchdog alert pings",
}
CONFIG_KEYS = (KEY, *SECRET_KEYS)  # every top-level stack key this module owns
# A credential pasted into a plain field: a URL with a path past its first segment (a webhook: Slack's is
# /services/T.../B.../token), or a token (Slack's xox?-, a PagerDuty routing key). Errors land in CI logs.
WEBHOOK_URL = re.compile(r"(?i)\s*(https?://[^\s/?#@]+/[^\s/?#]+/)\S+\s*")
TOKEN = re.compile(r"\s*(?:xox[a-z]-\S+|[A-Za-z0-9]{20,64})\s*")


class Thresholds(Strict):
    """Alert thresholds; the defaults are the seeds' numbers (000 §2 and §9, 002, 003)."""

    error_rate_critical_percent: Percent = Field(5.0, description="003 critical: 5xx share of requests.")
    error_rate_warning_percent: Percent = Field(2.0, description="003 warning: 5xx share of requests.")
    error_rate_rollback_percent: Percent = Field(0.1, description="002 rollback trigger: 5xx share for 3 minutes.")
    baseline_error_increase_points: Points = Field(0.5, description="000 §9: after a deploy, above the baseline.")
    canary_error_increase_points: Points = Field(1.0, description="000 §2: canary colour above the stable one.")
    baseline_p95_increase_percent: Annotated[float, Field(gt=0, le=1000)] = Field(
        10.0, description="000 §9: after a deploy, P95 latency above the baseline by more than this.")
    p99_rollback_seconds: Seconds = Field(1.0, description="002 rollback trigger: P99 latency.")
    p99_critical_seconds: Seconds = Field(5.0, description="003 critical: P99 latency.")
    p95_warning_seconds: Seconds = Field(2.0, description="003 warning: P95 latency.")
    resource_critical_percent: Percent = Field(95.0, description="003 critical: CPU or memory of the limit.")
    resource_warning_percent: Percent = Field(80.0, description="003 warning: CPU or memory of the limit.")


# A lower level must stay below its higher level, or the warning would fire only after the page.
ORDERED_LEVELS = (("error_rate_warning_percent", "error_rate_critical_percent"),
                  ("resource_warning_percent", "resource_critical_percent"),
                  ("p99_rollback_seconds", "p99_critical_seconds"))


def _page_can_fire(slo: float) -> float:
    if 14.4 * (100 - slo) >= 100:
        raise ValueError("leaves an error budget so large that a 14.4x burn would need more than 100% errors, so "
                         "the page could never fire: use an SLO above 93.06")
    return slo


class Channels(Strict):
    """Slack channel names shown in notifications; the webhook URL decides where a message lands."""

    deployments: SlackChannel = "#deployments"
    incidents: SlackChannel = "#incidents"
    alerts: SlackChannel = Field(description="Warnings of this environment; default #alerts-<environment>.")


class AlertingSettings(Strict):
    """What the rules and the routing of one stack are built from. Holds no secret value, only which are set."""

    stack: str
    environment: EnvironmentName
    slo_percent: Annotated[float, Field(gt=0, lt=100), AfterValidator(_page_can_fire)] = Field(
        description="Availability SLO (percent of requests without a 5xx) the burn-rate alerts protect.")
    min_request_rate: float = Field(gt=0, le=100000, description=(
        "Requests per second below which ratio and latency alerts stay quiet (but see min_failed_requests): a "
        "handful of requests on an idle environment is no evidence."))
    min_failed_requests: int = Field(ge=1, le=1000000, description=(
        "Failed requests within 5 minutes that make the 5-minute error-ratio alerts count below min_request_rate: "
        "a quiet service failing every request is an outage, not noise."))
    page_on_call: bool = Field(description="Critical alerts and rollbacks page on-call (PagerDuty).")
    metrics_not_reporting_severity: Severity = Field(description=(
        "Severity of a service answering no request for 5 minutes: critical where traffic never stops."))
    post_deploy_window_minutes: int = Field(15, ge=5, le=120, description=(
        "How long after a colour starts taking traffic it is compared with the pre-deploy baseline."))
    thresholds: Thresholds = Thresholds()
    channels: Channels
    alertmanager_url: HttpUrl | None = Field(None, description=(
        "Alertmanager that deployment events are posted to; without it events are only recorded."))
    configured_secrets: frozenset[str] = frozenset()

    @property
    def error_budget(self) -> float:
        return (100 - self.slo_percent) / 100

    @property
    def watchdog_configured(self) -> bool:
        return WATCHDOG in self.configured_secrets


USER_KEYS = tuple(name for name in AlertingSettings.model_fields
                  if name not in {"stack", "environment", "configured_secrets"})


def defaults(environment: EnvironmentName) -> dict[str, Any]:
    """Per-environment defaults. Prod always has traffic and an on-call rota; the other three may sit idle."""
    prod = environment == "prod"
    return {
        "slo_percent": {"prod": 99.9, "test": 99.5, "sandbox": 99.5, "dev": 99.0}[environment],
        "min_request_rate": 1.0 if prod else 0.2,
        "min_failed_requests": 10 if prod else 30,
        "page_on_call": prod,
        "metrics_not_reporting_severity": "critical" if prod else "info",
        "channels": {"alerts": f"#alerts-{environment}"},
    }


def required_secrets(settings: AlertingSettings) -> tuple[str, ...]:
    """Prod needs the dead-man's switch too: without it the Watchdog goes to a null receiver and a broken
    alerting pipeline goes unnoticed where it matters most."""
    keys = [SLACK_DEPLOYMENTS, SLACK_INCIDENTS, SLACK_ALERTS]
    if settings.page_on_call:
        keys.append(PAGERDUTY)
    if settings.environment == "prod":
        keys.append(WATCHDOG)
    return tuple(keys)


def load_alerting(stack: str, environment: str, raw: Any, secrets: Mapping[str, Any], *,
                  live: bool) -> AlertingSettings:
    """Validate ``release-infra:alerting`` (absent, an object or its JSON text) and the secret keys.

    ``secrets`` maps the secret keys the stack sets to their values; the values are checked for shape and never
    kept or shown. ``live`` is true when the stack deploys to a cluster: notifications are then delivered, so every
    secret a receiver needs and the Alertmanager URL must be set. When rendering manifests the program hands the
    receivers no secret at all (a rendered file holds Secrets in plain text), so none needs to be set.
    """
    source = f'stack "{stack}"'
    kind = getattr(environment, "value", environment)
    problems: list[Problem] = []
    path = lambda *parts: key_path(PREFIX, parts)  # noqa: E731
    raw = _decode(raw)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise refused(source, [Problem(path(KEY), raw, "must be an object of alerting settings")])
    merged = _merge(defaults(kind) if kind in ("sandbox", "dev", "test", "prod") else {}, raw)
    for name in raw:
        if name not in USER_KEYS:
            problems.append(Problem(path(KEY, name), NO_VALUE, unknown_key(name, USER_KEYS)))
            merged.pop(name, None)
    configured = frozenset(key for key, value in secrets.items() if key in SECRET_KEYS and value is not None)
    problems += [problem for key in sorted(configured) if (problem := _secret_problem(key, secrets[key]))]
    try:
        settings = AlertingSettings.model_validate(
            {**merged, "stack": stack, "environment": kind, "configured_secrets": configured})
    except ValidationError as error:
        raise refused(source, problems + problems_from(error, PREFIX + KEY, AlertingSettings)) from None
    if kind == "prod" and not settings.page_on_call:
        problems.append(Problem(path(KEY, "page_on_call"), False, "prod pages on-call for a rollback and a critical "
                                "alert (seed 000 §12); it cannot be switched off"))
    for low, high in ORDERED_LEVELS:
        if getattr(settings.thresholds, low) >= getattr(settings.thresholds, high):
            problems.append(Problem(path(KEY, "thresholds", low), getattr(settings.thresholds, low),
                                    f"must be below {high} ({getattr(settings.thresholds, high):g})"))
    if live:
        for key in (key for key in required_secrets(settings) if key not in configured):
            why = ("prod's Watchdog must reach it, or a broken alerting pipeline goes unnoticed" if key == WATCHDOG
                   else "a stack with a cluster delivers notifications")
            problems.append(Problem(path(key), MISSING, f"a secret holding {SECRET_KEYS[key]} (pulumi config set "
                                    f"--secret {key} ...); {why}"))
        if settings.alertmanager_url is None:
            problems.append(Problem(path(KEY, "alertmanager_url"), MISSING,
                                    "the Alertmanager URL deployment events are posted to; a stack with a cluster "
                                    "delivers notifications"))
    if problems:
        raise refused(source, problems)
    return settings


def refused(source: str, problems: list[Problem]) -> ConfigError:
    """The error for these problems, with any credential pasted into a plain alerting key cut short."""
    return ConfigError(source, [_pasted_credential(problem) for problem in problems])


def _pasted_credential(problem: Problem) -> Problem:
    """A webhook URL or token in a plain field is shown cut short (``https://hooks.slack.com/services/...``), with
    the secret key it belongs in: the error is printed in CI logs, the secret key is encrypted."""
    shown, kinds = _cut(problem.value)
    if not kinds:
        return problem
    channel = re.search(r"\.channels\.(\w+)$", problem.path)
    slack = f"alerting_slack_{channel.group(1) if channel else '<channel>'}_url"
    kind = kinds[0]
    key = PAGERDUTY if kind == "a routing key" else slack
    return Problem(problem.path, shown, f"{problem.allowed}; this looks like {kind}, a credential: it belongs in the "
                                        f"secret key {key} (pulumi config set --secret {key} ...)")


def _cut(value: Any) -> tuple[Any, list[str]]:
    """``value`` with every webhook URL or token in it cut short, and what kinds of credential those were."""
    if isinstance(value, str):
        if url := WEBHOOK_URL.fullmatch(value):
            return url.group(1) + "...", ["a webhook URL"]
        if TOKEN.fullmatch(value):
            return SECRET, ["a token" if "xox" in value else "a routing key"]
        return value, []
    if isinstance(value, (list, dict)):
        items = [(key, _cut(item)) for key, item in (value.items() if isinstance(value, dict) else enumerate(value))]
        shown = [item for _, (item, _) in items]
        return (dict(zip(value, shown)) if isinstance(value, dict) else shown), [k for _, (_, ks) in items for k in ks]
    return value, []


def _secret_problem(key: str, value: Any) -> Problem | None:
    """The shape of a secret value; the Problem shows "[secret]", never the value."""
    if not isinstance(value, str) or not value.strip():
        return Problem(key_path(PREFIX, (key,)), "[secret]", f"must be {SECRET_KEYS[key]}")
    if key == PAGERDUTY:
        if not re.fullmatch(r"[A-Za-z0-9]{20,64}", value):
            return Problem(key_path(PREFIX, (key,)), "[secret]", "must be a PagerDuty routing key: 20 to 64 letters "
                                                                  "and digits")
    elif not re.fullmatch(r"https://[^\s/?#]+/\S*", value):
        return Problem(key_path(PREFIX, (key,)), "[secret]", f"must be {SECRET_KEYS[key]}")
    return None


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for name, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(name), dict):
            merged[name] = _merge(merged[name], value)
        else:
            merged[name] = value
    return merged


def _decode(value: Any) -> Any:
    """Pulumi hands structured config to programs as JSON text."""
    if isinstance(value, str) and value[:1] == "{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
