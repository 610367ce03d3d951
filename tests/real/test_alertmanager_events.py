"""Deployment events against a real Alertmanager on loopback, loaded with prod's routing as the operator builds it.

Slack, PagerDuty and the dead-man's switch are a local sink, so a test sees the notification each receiver sends.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from components.deployment_events import DeploymentEventsProvider, PostFailed, post_alerts
from core.alerting import routing
from core.alerting.settings import load_alerting
from tests.real.conftest import AlertmanagerServer, Sink, free_port
from tests.support.stacks import settings

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "payments-prod"
PREFIX = f"{NAMESPACE}/{routing.CONFIG_NAME}/"
OLD = "registry.pay.internal/payin-api:9f8e7d6-v2.2.4"
NEW = "registry.pay.internal/payin-api:a1b2c3d-v2.3.0"
NEXT = "registry.pay.internal/payin-api:5e6f7a8-v2.4.0"
REBUILD = "registry.pay.internal/payin-api:0f1e2d3-v2.3.0"  # 2.3.0 built again: a new tag, the same version
SECRETS = {
    "alerting_slack_deployments_url": "https://hooks.slack.test/services/T0/B0/deployments",
    "alerting_slack_incidents_url": "https://hooks.slack.test/services/T0/B0/incidents",
    "alerting_slack_alerts_url": "https://hooks.slack.test/services/T0/B0/alerts",
    "alerting_pagerduty_routing_key": "0123456789abcdef0123456789abcdef",
    "alerting_watchdog_url": "https://deadman.test/ping/prod",
}


@pytest.fixture
def alertmanager_config(alertmanager_sink: Sink) -> dict[str, Any]:
    """Prod's AlertmanagerConfig merged as the operator does, every endpoint pointing at the sink."""
    stack = settings("prod")
    alerting = load_alerting("prod", stack.environment, None, SECRETS, live=False)
    data = {
        "slack-deployments-url": alertmanager_sink.url + "/slack/deployments",
        "slack-incidents-url": alertmanager_sink.url + "/slack/incidents",
        "slack-alerts-url": alertmanager_sink.url + "/slack/alerts",
        "pagerduty-routing-key": SECRETS["alerting_pagerduty_routing_key"],
        "watchdog-url": alertmanager_sink.url + "/watchdog",
    }
    config = routing.operator_view(routing.alertmanager_config(stack, alerting), data)
    for receiver in config["receivers"]:
        for pagerduty in receiver.get("pagerduty_configs", []):
            pagerduty["url"] = alertmanager_sink.url + "/pagerduty"
    return config


def props(url: str | None, active: str = "green", blue: str = OLD, green: str = NEW, canary_weight: int = 0,
          served: tuple[str, ...] = (OLD, NEW)) -> dict[str, Any]:
    return {"stack": "prod", "environment": "prod", "namespace": NAMESPACE, "service": "payin-api",
            "active": active, "images": {"blue": blue, "green": green}, "canary_weight": canary_weight,
            "served": list(served), "alertmanager_url": url}


def alerts(server: AlertmanagerServer, **labels: str) -> list[dict[str, Any]]:
    found = server.get("/api/v2/alerts")
    return [a for a in found if all(a["labels"].get(k) == v for k, v in labels.items())]


def receivers_of(alert: dict[str, Any]) -> list[str]:
    return [receiver["name"] for receiver in alert["receivers"]]


def slack_texts(sink: Sink, path: str) -> list[str]:
    return [json.dumps(body) for body in sink.wait_for(path)]


def test_a_promotion_is_posted_and_reaches_deployments(alertmanager_server: AlertmanagerServer,
                                                       alertmanager_sink: Sink) -> None:
    provider = DeploymentEventsProvider()
    before = props(alertmanager_server.url, active="blue")
    result = provider.update("prod/payin-api", {**before, "events": []}, props(alertmanager_server.url))
    assert [e["kind"] for e in result.outs["events"]] == ["deployment-succeeded"] and result.outs["delivered"]
    [alert] = alerts(alertmanager_server, event="deployment-succeeded")
    assert alert["labels"] | {"event_id": "-"} == {
        "alertname": "DeploymentSucceeded", "event": "deployment-succeeded", "service": "payin-api",
        "environment": "prod", "namespace": NAMESPACE, "stack": "prod", "color": "green", "version": "2.3.0",
        "event_id": "-"}
    assert receivers_of(alert) == [PREFIX + "deployments"]
    [text] = slack_texts(alertmanager_sink, "/slack/deployments")
    assert "#deployments" in text and "payin-api 2.3.0 is live (green), replacing 2.2.4" in text
    assert "/slack/incidents" not in alertmanager_sink.paths() and "/pagerduty" not in alertmanager_sink.paths()


def test_a_rollback_reaches_incidents_and_pages_on_call(alertmanager_server: AlertmanagerServer,
                                                        alertmanager_sink: Sink) -> None:
    provider = DeploymentEventsProvider()
    result = provider.update("prod/payin-api", props(alertmanager_server.url), props(alertmanager_server.url,
                                                                                     active="blue"))
    assert [e["kind"] for e in result.outs["events"]] == ["rollback"]
    [alert] = alerts(alertmanager_server, event="rollback")
    assert receivers_of(alert) == [PREFIX + "incident-events", PREFIX + "on-call-events"]
    [text] = slack_texts(alertmanager_sink, "/slack/incidents")
    assert "#incidents" in text and "rolled back from 2.3.0 to 2.2.4" in text
    [page] = alertmanager_sink.wait_for("/pagerduty")
    assert page["routing_key"] == SECRETS["alerting_pagerduty_routing_key"] and page["event_action"] == "trigger"
    assert "/slack/deployments" not in alertmanager_sink.paths()


@pytest.mark.parametrize(("before", "after", "summary"), [
    # A rebuild of 2.3.0 was promoted; back to the first build, which served before it.
    ({"blue": REBUILD, "served": (NEW, REBUILD), "active": "blue"}, {"blue": REBUILD, "served": (NEW, REBUILD)},
     "rolled back from 0f1e2d3-v2.3.0 to a1b2c3d-v2.3.0 (green)"),
    # `release canary` failing its gate at 25%: the weight goes back to 0.
    ({"blue": NEXT, "canary_weight": 25}, {"blue": NEXT}, "canary rolled back from 25% to 0% (blue 2.4.0)"),
])
def test_every_kind_of_rollback_pages_on_call(alertmanager_server: AlertmanagerServer, alertmanager_sink: Sink,
                                              before: dict[str, Any], after: dict[str, Any], summary: str) -> None:
    url = alertmanager_server.url
    result = DeploymentEventsProvider().update("prod/payin-api", props(url, **before), props(url, **after))
    assert [e["kind"] for e in result.outs["events"]] == ["rollback"]
    [alert] = alerts(alertmanager_server, event="rollback")
    assert receivers_of(alert) == [PREFIX + "incident-events", PREFIX + "on-call-events"]
    [text] = slack_texts(alertmanager_sink, "/slack/incidents")
    assert summary in text
    alertmanager_sink.wait_for("/pagerduty")


def test_amtool_sees_the_posted_event(alertmanager_server: AlertmanagerServer, alertmanager_amtool: str) -> None:
    DeploymentEventsProvider().update("prod/payin-api", props(alertmanager_server.url),
                                      props(alertmanager_server.url, blue=NEXT))
    query = subprocess.run([alertmanager_amtool, "alert", "query", f"--alertmanager.url={alertmanager_server.url}",
                            "-o", "json", "event=deployment-started", "service=payin-api"],
                           capture_output=True, text=True, timeout=30)
    assert query.returncode == 0, query.stderr
    [alert] = json.loads(query.stdout)
    assert alert["labels"]["version"] == "2.4.0" and alert["labels"]["color"] == "blue"


def test_preview_and_render_mode_post_nothing(alertmanager_server: AlertmanagerServer) -> None:
    provider = DeploymentEventsProvider()
    # A preview only diffs.
    diff = provider.diff("prod/payin-api", props(alertmanager_server.url), props(alertmanager_server.url,
                                                                                 active="blue"))
    assert diff.changes and diff.replaces == []
    # Without an Alertmanager URL the events are recorded, not sent.
    result = provider.update("prod/payin-api", props(None), props(None, active="blue"))
    assert [e["kind"] for e in result.outs["events"]] == ["rollback"] and result.outs["delivered"] is False
    assert provider.create(props(None)).outs["events"][0]["kind"] == "deployment-succeeded"
    assert alertmanager_server.get("/api/v2/alerts") == []
    # And an unchanged release is no change at all.
    assert not provider.diff("prod/payin-api", {**props(None), "events": [], "__provider": "x"}, props(None)).changes


def test_the_pipeline_reports_a_failed_update(alertmanager_server: AlertmanagerServer,
                                              alertmanager_sink: Sink) -> None:
    command = [sys.executable, "-m", "components.deployment_events", "failed",
               f"--alertmanager-url={alertmanager_server.url}", "--stack=prod", "--environment=prod",
               f"--namespace={NAMESPACE}", "--service=payin-api", "--active=green", f"--blue={NEXT}",
               f"--green={NEW}", "--reason=pulumi up failed"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    [alert] = alerts(alertmanager_server, event="deployment-failed")
    assert receivers_of(alert) == [PREFIX + "deployments", PREFIX + "incident-events"]
    assert alert["labels"]["version"] == "2.4.0"
    alertmanager_sink.wait_for("/slack/deployments")
    alertmanager_sink.wait_for("/slack/incidents")


def test_each_failing_service_is_one_page(alertmanager_server: AlertmanagerServer) -> None:
    """Three criticals and a warning of two services: one on-call group per service, the warning inhibited; one
    group for the environment would make payout-api's outage an update of payin-api's incident."""
    now = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")

    def alert(name: str, severity: str, service: str) -> dict[str, Any]:
        return {"labels": {"alertname": name, "severity": severity, "namespace": NAMESPACE, "environment": "prod",
                           "service": service}, "annotations": {"summary": name}, "startsAt": now}

    post_alerts(alertmanager_server.url, [
        alert("ServiceUnreachable", "critical", "payin-api"),
        alert("ServiceErrorRateCritical", "critical", "payin-api"),
        alert("ServiceErrorRateHigh", "warning", "payin-api"),
        alert("ServiceErrorRateCritical", "critical", "payout-api"),
    ])
    # Alertmanager's inhibitor marks alerts asynchronously: wait until it has seen the inhibiting alerts.
    deadline = time.monotonic() + 15
    while True:
        found = {(a["labels"]["alertname"], a["labels"]["service"]): a for a in alerts(alertmanager_server)}
        settled = len(found) == 4 and all(a["status"]["state"] != "unprocessed" for a in found.values()) \
            and found[("ServiceErrorRateHigh", "payin-api")]["status"]["inhibitedBy"]
        if settled or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert found[("ServiceErrorRateHigh", "payin-api")]["status"]["state"] == "suppressed"
    assert found[("ServiceErrorRateHigh", "payin-api")]["status"]["inhibitedBy"]
    # ServiceUnreachable silences the other pages of its service; another service still counts.
    assert found[("ServiceErrorRateCritical", "payin-api")]["status"]["state"] == "suppressed"
    assert found[("ServiceErrorRateCritical", "payout-api")]["status"]["state"] == "active"
    groups = [g for g in alertmanager_server.get("/api/v2/alerts/groups")
              if g["receiver"]["name"] == PREFIX + "on-call"]
    assert sorted(sorted({a["labels"]["service"] for a in group["alerts"]}) for group in groups) == [
        ["payin-api"], ["payout-api"]]


def test_a_post_to_an_unreachable_alertmanager_fails_clearly() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    waits: list[float] = []
    with pytest.raises(PostFailed, match=r"posting 1 deployment event\(s\) to .* failed: Connection refused$"):
        post_alerts(url, [{"labels": {"alertname": "x"}}], sleep=waits.append)
    assert waits == [1, 2]  # between the three attempts, none after the last


def test_a_provider_update_against_an_unreachable_alertmanager_fails_the_update(monkeypatch) -> None:
    monkeypatch.setattr("components.deployment_events.time.sleep", lambda _: None)
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(RuntimeError, match="failed after the change was applied: Connection refused; run `pulumi up` "
                                           "again to send them"):
        DeploymentEventsProvider().update("prod/payin-api", props(url), props(url, active="blue"))

