"""Alertmanager routing of one environment, as a Prometheus Operator AlertmanagerConfig.

Who hears what (seed 000 §12, seed 003):

| alert | receivers |
|---|---|
| event=deployment-started, deployment-succeeded | deployments (Slack) |
| alertname=PostDeploy*, Canary*AboveStable (event=deployment-failed) | deployment-alerts, incidents (Slack) |
| event=deployment-failed | deployments, incident-events (Slack #incidents) |
| event=rollback | incident-events, on-call-events (PagerDuty) |
| severity=critical | on-call (PagerDuty), incidents (Slack) |
| severity=warning | alerts (Slack, the environment's channel) |
| severity=info | log-only (no notification) |
| alertname=Watchdog | watchdog (the dead-man's-switch service) |

Without paging (every environment but prod by default) the PagerDuty receivers are left out and the Slack
receivers stay. Event receivers never send "resolved": an event is a fact, not a condition that ends. The
post-deploy and canary alerts carry event=deployment-failed but are conditions: they go to the same channels through
receivers that send "resolved" and repeat as alerts do.

The operator merges an AlertmanagerConfig into the Alertmanager's configuration under a route that matches the
namespace, with receiver names prefixed ``<namespace>/<name>/``. ``operator_view`` renders that merged
configuration the same way, so ``amtool`` checks exactly what the operator will load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

from core.alerting import settings as secrets
from core.alerting.events import EventKind
from core.alerting.rules import DEPLOYMENT_CONDITIONS, WATCHDOG, metadata
from core.alerting.settings import AlertingSettings
from core.environment import Manifest
from core.settings import StackSettings

CONFIG_NAME = "release-infra"
SECRET_NAME = "release-infra-alerting"
PLACEHOLDER_HOST = "placeholder.invalid"  # RFC 2606: never resolves, so a placeholder can never deliver

# Secret config key -> key inside the Kubernetes Secret the receivers read.
SECRET_DATA_KEYS = {
    secrets.SLACK_DEPLOYMENTS: "slack-deployments-url",
    secrets.SLACK_INCIDENTS: "slack-incidents-url",
    secrets.SLACK_ALERTS: "slack-alerts-url",
    secrets.PAGERDUTY: "pagerduty-routing-key",
    secrets.WATCHDOG: "watchdog-url",
}
SLACK_TITLE = ('[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }} {{ .CommonLabels.service }} '
               '({{ .CommonLabels.environment }})')
SLACK_TEXT = '{{ range .Alerts }}{{ .Annotations.summary }}\n{{ end }}'
Kind = Literal["slack", "pagerduty", "webhook", "null"]


@dataclass(frozen=True)
class Receiver:
    name: str
    kind: Kind
    secret: str | None = None  # the secret config key holding its URL or routing key
    channel: str | None = None
    send_resolved: bool = True


@dataclass(frozen=True)
class Route:
    receiver: str
    matchers: tuple[tuple[str, str, str], ...] = ()  # (label, operator, value)
    continue_: bool = False
    group_by: tuple[str, ...] | None = None
    group_wait: str | None = None
    group_interval: str | None = None
    repeat_interval: str | None = None
    routes: tuple["Route", ...] = ()


@dataclass(frozen=True)
class InhibitRule:
    source: tuple[tuple[str, str, str], ...]
    target: tuple[tuple[str, str, str], ...]
    equal: tuple[str, ...] = ("namespace", "service")


@dataclass(frozen=True)
class Routing:
    route: Route
    receivers: tuple[Receiver, ...]
    inhibit_rules: tuple[InhibitRule, ...] = field(default=())


def plan(alerting: AlertingSettings) -> Routing:
    channels = alerting.channels
    page = alerting.page_on_call
    receivers = [
        Receiver("alerts", "slack", secrets.SLACK_ALERTS, channels.alerts),
        Receiver("deployments", "slack", secrets.SLACK_DEPLOYMENTS, channels.deployments, send_resolved=False),
        Receiver("deployment-alerts", "slack", secrets.SLACK_DEPLOYMENTS, channels.deployments),
        Receiver("incidents", "slack", secrets.SLACK_INCIDENTS, channels.incidents),
        Receiver("incident-events", "slack", secrets.SLACK_INCIDENTS, channels.incidents, send_resolved=False),
        Receiver("log-only", "null"),
        Receiver("watchdog", "webhook", secrets.WATCHDOG) if alerting.watchdog_configured
        else Receiver("watchdog", "null"),
    ]
    if page:
        receivers += [Receiver("on-call", "pagerduty", secrets.PAGERDUTY),
                      Receiver("on-call-events", "pagerduty", secrets.PAGERDUTY, send_resolved=False)]

    def event(kind: EventKind, receiver: str, continue_: bool = False) -> Route:
        # One notification per event: group by every label, send after a short wait, never repeat.
        return Route(receiver, (("event", "=", kind.value),), continue_, ("...",), "5s", "1m", "24h")

    rollback = [event(EventKind.ROLLBACK, "incident-events", continue_=page)]
    critical = [Route("incidents", (("severity", "=", "critical"),), group_by=("namespace", "service"))]
    if page:
        rollback.append(event(EventKind.ROLLBACK, "on-call-events"))
        # One page per service: one group would make a second service's outage an update of an incident
        # already acknowledged, which pages nobody. Within a service, ServiceUnreachable inhibits the rest.
        critical.insert(0, Route("on-call", (("severity", "=", "critical"),), continue_=True,
                                 group_by=("namespace", "service")))
    # A failing canary is re-notified and seen resolved, unlike the event that announced the failure.
    condition = (("alertname", "=~", "|".join(DEPLOYMENT_CONDITIONS)),)
    routes = (
        Route("watchdog", (("alertname", "=", WATCHDOG),), group_by=("namespace",), group_wait="0s",
              group_interval="1m", repeat_interval="5m"),
        Route("deployment-alerts", condition, continue_=True),
        Route("incidents", condition),
        event(EventKind.STARTED, "deployments"),
        event(EventKind.SUCCEEDED, "deployments"),
        event(EventKind.FAILED, "deployments", continue_=True),
        event(EventKind.FAILED, "incident-events"),
        *rollback,
        *critical,
        Route("alerts", (("severity", "=", "warning"),)),
        Route("log-only", (("severity", "=", "info"),)),
    )
    root = Route("alerts", group_by=("alertname", "service"), group_wait="30s", group_interval="5m",
                 repeat_interval="4h", routes=routes)
    not_event = ("event", "=", "")
    inhibit = (
        # A page for a service silences its warnings and info, but never a deployment event, nor the standby being
        # down: during an incident the rollback it would break is most likely.
        InhibitRule((("severity", "=", "critical"),), (("severity", "=~", "warning|info"), not_event,
                                                       ("alertname", "!=", "StandbyColourDown"))),
        # While the active colour is unreachable, its other pages add nothing.
        InhibitRule((("alertname", "=", "ServiceUnreachable"),),
                    (("severity", "=", "critical"), ("alertname", "!=", "ServiceUnreachable"))),
        InhibitRule((("severity", "=", "warning"),), (("severity", "=", "info"), not_event)),
    )
    return Routing(root, tuple(receivers), inhibit)


def secret_data_keys(alerting: AlertingSettings) -> dict[str, str]:
    """Kubernetes Secret key -> secret config key, for every secret a receiver reads."""
    used = {receiver.secret for receiver in plan(alerting).receivers if receiver.secret}
    return {SECRET_DATA_KEYS[key]: key for key in SECRET_DATA_KEYS if key in used}


def placeholder(key: str) -> str:
    """What a missing secret becomes when rendering manifests: a value that cannot deliver anywhere."""
    if key == secrets.PAGERDUTY:
        return "placeholderroutingkey0000000000"
    return f"https://{PLACEHOLDER_HOST}/{key}"


# The custom resource. -------------------------------------------------------------------------------------------

def alertmanager_config(settings: StackSettings, alerting: AlertingSettings) -> Manifest:
    routing = plan(alerting)
    return {
        "metadata": metadata(settings, CONFIG_NAME),
        "spec": {
            "route": _route_cr(routing.route),
            "receivers": [_receiver_cr(receiver) for receiver in routing.receivers],
            "inhibitRules": [{"sourceMatch": _matchers_cr(rule.source), "targetMatch": _matchers_cr(rule.target),
                              "equal": list(rule.equal)} for rule in routing.inhibit_rules],
        },
    }


def _route_cr(route: Route) -> dict[str, Any]:
    result: dict[str, Any] = {"receiver": route.receiver}
    if route.matchers:
        result["matchers"] = _matchers_cr(route.matchers)
    for key, value in (("groupBy", list(route.group_by) if route.group_by else None),
                       ("groupWait", route.group_wait), ("groupInterval", route.group_interval),
                       ("repeatInterval", route.repeat_interval)):
        if value is not None:
            result[key] = value
    if route.continue_:
        result["continue"] = True
    if route.routes:
        result["routes"] = [_route_cr(child) for child in route.routes]
    return result


def _matchers_cr(matchers: tuple[tuple[str, str, str], ...]) -> list[dict[str, str]]:
    """``matchType`` is left out for "=", the CRD's default: a bare ``=`` in YAML is the 1.1 "value" tag to some
    parsers (PyYAML refuses it)."""
    return [{"name": name, "value": value, **({"matchType": operator} if operator != "=" else {})}
            for name, operator, value in matchers]


def _receiver_cr(receiver: Receiver) -> dict[str, Any]:
    result: dict[str, Any] = {"name": receiver.name}
    ref = {"name": SECRET_NAME, "key": SECRET_DATA_KEYS[receiver.secret]} if receiver.secret else None
    if receiver.kind == "slack":
        result["slackConfigs"] = [{"apiURL": ref, "channel": receiver.channel, "sendResolved": receiver.send_resolved,
                                   "title": SLACK_TITLE, "text": SLACK_TEXT}]
    elif receiver.kind == "pagerduty":
        result["pagerdutyConfigs"] = [{"routingKey": ref, "sendResolved": receiver.send_resolved}]
    elif receiver.kind == "webhook":
        result["webhookConfigs"] = [{"urlSecret": ref, "sendResolved": receiver.send_resolved}]
    return result


# What the operator loads. ---------------------------------------------------------------------------------------

def operator_view(config: Manifest, secret_data: Mapping[str, str],
                  base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The Alertmanager configuration the Prometheus Operator builds from ``base`` and this AlertmanagerConfig.

    Mirrors the operator's conversion: the top route gets a ``namespace`` matcher and ``continue: true`` and goes
    before the base's routes, receiver names get ``<namespace>/<name>/``, inhibit rules get the namespace matcher
    on both sides, and secret references are replaced by the Secret's values (``secret_data``).
    """
    namespace, name = config["metadata"]["namespace"], config["metadata"]["name"]
    spec = config["spec"]
    prefix = f"{namespace}/{name}/"
    result = json.loads(json.dumps(base)) if base else {"route": {"receiver": "null"}, "receivers": [{"name": "null"}]}
    top = _route_native(spec["route"], prefix)
    top["matchers"] = top.get("matchers", []) + [_matcher_native({"name": "namespace", "value": namespace})]
    top["continue"] = True
    result["route"]["routes"] = [top] + result["route"].get("routes", [])
    result["receivers"] = result.get("receivers", []) + [
        _receiver_native(receiver, prefix, secret_data) for receiver in spec["receivers"]]
    namespace_matcher = _matcher_native({"name": "namespace", "value": namespace})
    result["inhibit_rules"] = result.get("inhibit_rules", []) + [{
        "source_matchers": [_matcher_native(m) for m in rule["sourceMatch"]] + [namespace_matcher],
        "target_matchers": [_matcher_native(m) for m in rule["targetMatch"]] + [namespace_matcher],
        "equal": rule["equal"],
    } for rule in spec.get("inhibitRules", [])]
    return result


def _route_native(route: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    result: dict[str, Any] = {"receiver": prefix + route["receiver"]}
    if "groupBy" in route:
        result["group_by"] = list(route["groupBy"])
    for source, target in (("groupWait", "group_wait"), ("groupInterval", "group_interval"),
                           ("repeatInterval", "repeat_interval")):
        if source in route:
            result[target] = route[source]
    if route.get("matchers"):
        result["matchers"] = [_matcher_native(m) for m in route["matchers"]]
    if route.get("continue"):
        result["continue"] = True
    if route.get("routes"):
        result["routes"] = [_route_native(child, prefix) for child in route["routes"]]
    return result


def _matcher_native(matcher: Mapping[str, str]) -> str:
    return f'{matcher["name"]}{matcher.get("matchType", "=")}{json.dumps(matcher["value"])}'


def _receiver_native(receiver: Mapping[str, Any], prefix: str, data: Mapping[str, str]) -> dict[str, Any]:
    result: dict[str, Any] = {"name": prefix + receiver["name"]}
    for slack in receiver.get("slackConfigs", []):
        result.setdefault("slack_configs", []).append({
            "api_url": data[slack["apiURL"]["key"]], "channel": slack["channel"],
            "send_resolved": slack["sendResolved"], "title": slack["title"], "text": slack["text"]})
    for pagerduty in receiver.get("pagerdutyConfigs", []):
        result.setdefault("pagerduty_configs", []).append({
            "routing_key": data[pagerduty["routingKey"]["key"]], "send_resolved": pagerduty["sendResolved"]})
    for webhook in receiver.get("webhookConfigs", []):
        result.setdefault("webhook_configs", []).append({
            "url": data[webhook["urlSecret"]["key"]], "send_resolved": webhook["sendResolved"]})
    return result
