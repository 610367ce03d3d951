"""Every stack's Alertmanager configuration, as the operator will load it, checked and route-tested by amtool."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from core.alerting import routing
from core.alerting.rules import rule_specs
from core.alerting.settings import AlertingSettings, load_alerting
from core.settings import StackSettings
from tests.core.test_alerting_rules import alerts, canary_at, specs
from tests.support.stacks import STACKS, catalogue, settings

# Conditions that fail a deployment (seed 000 §2, §9): "failed" goes to #deployments and #incidents, but as an alert
# that repeats while it holds and is seen resolved, not as a one-off event.
DEPLOYMENT_CONDITIONS = ("PostDeployErrorRateAboveBaseline", "PostDeployLatencyAboveBaseline",
                         "CanaryErrorRateAboveStable", "CanaryLatencyAboveStable")


def stack_routing(stack: str) -> tuple[StackSettings, AlertingSettings, dict]:
    stack_settings = settings(stack)
    alerting = load_alerting(stack, stack_settings.environment, None, {}, live=False)
    config = routing.alertmanager_config(stack_settings, alerting)
    data = {data_key: routing.placeholder(key) for data_key, key in routing.secret_data_keys(alerting).items()}
    return stack_settings, alerting, routing.operator_view(config, data)


def write(directory: Path, config: dict) -> Path:
    path = directory / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def amtool(binary: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("stack", STACKS)
def test_every_stacks_configuration_passes_amtool_check_config(stack: str, alertmanager_amtool: str,
                                                               tmp_path: Path) -> None:
    _, _, config = stack_routing(stack)
    result = amtool(alertmanager_amtool, "check-config", str(write(tmp_path, config)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_check_config_can_fail(alertmanager_amtool: str, tmp_path: Path) -> None:
    _, _, config = stack_routing("prod")
    config["route"]["routes"][0]["routes"][0]["receiver"] = "payments-prod/release-infra/nobody"
    result = amtool(alertmanager_amtool, "check-config", str(write(tmp_path, config)))
    assert result.returncode != 0
    assert 'undefined receiver "payments-prod/release-infra/nobody" used in route' in result.stdout + result.stderr


def expected_receivers(alerting: AlertingSettings, labels: dict[str, str]) -> list[str]:
    """Who hears what, written out from seed 000 §12 and seed 003 independently of core.alerting.routing."""
    page = alerting.page_on_call
    event, severity = labels.get("event"), labels.get("severity")
    if labels.get("alertname") == "Watchdog":
        names = ["watchdog"]
    elif labels.get("alertname") in DEPLOYMENT_CONDITIONS:
        names = ["deployment-alerts", "incidents"]
    elif event in ("deployment-started", "deployment-succeeded"):
        names = ["deployments"]
    elif event == "deployment-failed":
        names = ["deployments", "incident-events"]
    elif event == "rollback":
        names = ["incident-events", "on-call-events"] if page else ["incident-events"]
    elif severity == "critical":
        names = ["on-call", "incidents"] if page else ["incidents"]
    elif severity == "info":
        names = ["log-only"]
    else:
        names = ["alerts"]  # warnings, and anything unlabelled: seen rather than lost
    return names


def route_cases(stack_settings: StackSettings) -> list[dict[str, str]]:
    base = {"namespace": stack_settings.namespace, "environment": stack_settings.environment.value,
            "service": "payin-api"}
    cases = [{**base, "event": event, "alertname": name} for event, name in (
        ("deployment-started", "DeploymentStarted"), ("deployment-succeeded", "DeploymentSucceeded"),
        ("deployment-failed", "DeploymentFailed"), ("rollback", "Rollback"))]
    cases += [{**base, "severity": severity, "alertname": "Any"} for severity in ("critical", "warning", "info")]
    cases += [{**base, "alertname": "Unlabelled"}]
    return cases


def check_route(amtool_binary: str, config_file: Path, labels: dict[str, str], receivers: list[str]) -> None:
    result = amtool(amtool_binary, "config", "routes", "test", f"--config.file={config_file}",
                    f"--verify.receivers={','.join(receivers)}", *(f"{k}={v}" for k, v in labels.items()))
    assert result.returncode == 0, f"{labels}: expected {receivers}, amtool says {result.stdout.strip()}"




@pytest.mark.parametrize("stack", STACKS)
def test_each_event_and_severity_reaches_exactly_its_receivers(stack: str, alertmanager_amtool: str,
                                                               tmp_path: Path) -> None:
    stack_settings, alerting, config = stack_routing(stack)
    config_file = write(tmp_path, config)
    prefix = f"{stack_settings.namespace}/{routing.CONFIG_NAME}/"
    for labels in route_cases(stack_settings):
        check_route(alertmanager_amtool, config_file, labels,
                  [prefix + name for name in expected_receivers(alerting, labels)])


@pytest.mark.parametrize("stack", STACKS)
def test_every_alert_rule_of_the_stack_reaches_its_receivers(stack: str, alertmanager_amtool: str,
                                                             tmp_path: Path) -> None:
    """The labels the rules really carry, not just hand-written ones, route as the standard says."""
    stack_settings, alerting, config = stack_routing(stack)
    config_file = write(tmp_path, config)
    prefix = f"{stack_settings.namespace}/{routing.CONFIG_NAME}/"
    seen = set()
    for spec in rule_specs(stack_settings, alerting, catalogue()).values():
        for rule in spec["groups"][0]["rules"]:
            if "alert" not in rule or (rule["alert"], rule["labels"]["severity"]) in seen:
                continue
            seen.add((rule["alert"], rule["labels"]["severity"]))
            labels = {"alertname": rule["alert"], **rule["labels"]}
            check_route(alertmanager_amtool, config_file, labels,
                      [prefix + name for name in expected_receivers(alerting, labels)])
    assert ("Watchdog", "none") in seen and ("PostDeployErrorRateAboveBaseline", "warning") in seen


@pytest.mark.parametrize("stack", ["prod", "dev"])
def test_seed_002_rollback_triggers_page_on_call_and_reach_incidents_where_the_stack_pages(
        stack: str, alertmanager_amtool: str, tmp_path: Path) -> None:
    """Seed 002: "initiate rollback immediately"; seed 000 §12 sends a rollback to #incidents and on-call. Only
    prod pages by default; elsewhere the triggers warn in the environment's channel."""
    stack_settings, alerting, config = stack_routing(stack)
    config_file = write(tmp_path, config)
    prefix = f"{stack_settings.namespace}/{routing.CONFIG_NAME}/"
    rules = alerts(specs(stack)["payin-api"])
    for name in ("ServiceErrorRateAboveRollbackTrigger", "ServiceLatencyP99AboveRollbackTrigger"):
        labels = {"alertname": name, **rules[name]["labels"]}
        check_route(alertmanager_amtool, config_file, labels,
                    [prefix + receiver for receiver in (["on-call", "incidents"] if stack == "prod" else ["alerts"])])


def test_a_failing_deployment_condition_repeats_and_resolves_in_deployments_and_incidents(
        alertmanager_amtool: str, tmp_path: Path) -> None:
    """The post-deploy and canary alerts carry event=deployment-failed, but they are conditions: the receivers
    they reach send "resolved", and their route repeats as alerts do (4h), not once a day as an event."""
    _, _, config = stack_routing("prod")
    config_file = write(tmp_path, config)
    prefix = f"payments-prod/{routing.CONFIG_NAME}/"
    rules = alerts(specs("prod", canary_at(5))["payin-api"])
    for name in DEPLOYMENT_CONDITIONS:
        labels = {"alertname": name, **rules[name]["labels"]}
        assert labels["event"] == "deployment-failed"
        check_route(alertmanager_amtool, config_file, labels, [prefix + "deployment-alerts", prefix + "incidents"])
    receivers = {r["name"]: r["slack_configs"][0] for r in config["receivers"] if "slack_configs" in r}
    assert receivers[prefix + "deployment-alerts"]["channel"] == "#deployments"
    assert receivers[prefix + "incidents"]["channel"] == "#incidents"
    assert receivers[prefix + "deployment-alerts"]["send_resolved"] and receivers[prefix + "incidents"]["send_resolved"]
    top = config["route"]["routes"][0]
    matched = [route for route in top["routes"] if any(name in m for m in route.get("matchers", [])
                                                       for name in DEPLOYMENT_CONDITIONS)]
    assert [route["receiver"] for route in matched] == [prefix + "deployment-alerts", prefix + "incidents"]
    assert all("repeat_interval" not in route and "group_by" not in route for route in matched)
    assert top["repeat_interval"] == "4h"


def test_other_namespaces_alerts_never_reach_this_environment(alertmanager_amtool: str, tmp_path: Path) -> None:
    _, _, config = stack_routing("prod")
    config_file = write(tmp_path, config)
    check_route(alertmanager_amtool, config_file, {"namespace": "payments-dev", "severity": "critical",
                                                 "event": "rollback"}, ["null"])


def test_only_prod_pages_by_default() -> None:
    for stack in STACKS:
        _, alerting, config = stack_routing(stack)
        paging = [r["name"] for r in config["receivers"] if "pagerduty_configs" in r]
        assert bool(paging) == (stack == "prod") == alerting.page_on_call, (stack, paging)


def test_routes_test_can_fail(alertmanager_amtool: str, tmp_path: Path) -> None:
    stack_settings, _, config = stack_routing("prod")
    config_file = write(tmp_path, config)
    result = amtool(alertmanager_amtool, "config", "routes", "test", f"--config.file={config_file}",
                    "--verify.receivers=payments-prod/release-infra/deployments", "namespace=payments-prod",
                    "event=rollback")
    assert result.returncode != 0
    # Refused because the receivers differ, not e.g. for a config file amtool could not read.
    assert result.stdout.splitlines() == [
        "payments-prod/release-infra/incident-events,payments-prod/release-infra/on-call-events",
        "WARNING: Expected receivers did not match resolved receivers."], result.stdout + result.stderr
