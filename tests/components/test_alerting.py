"""Alerting under mocks: what it registers, where, and that secrets stay secret."""

from __future__ import annotations

import json
from collections import Counter

import pulumi

from components.alerting import Alerting, read_secrets
from core.alerting.settings import load_alerting
from core.blue_green import plan
from components.blue_green_service import BlueGreenService
from tests.support.mock_engine import Run, run_program
from tests.support.stacks import catalogue, settings

SECRET_SIG = "4dabf18193072939515e22adb298388d"
SECRETS = {"alerting_slack_deployments_url": "https://hooks.slack.com/services/T/B/deploy-token",
           "alerting_slack_incidents_url": "https://hooks.slack.com/services/T/B/incident-token",
           "alerting_slack_alerts_url": "https://hooks.slack.com/services/T/B/alerts-token",
           "alerting_pagerduty_routing_key": "0123456789abcdef0123456789abcdef",
           "alerting_watchdog_url": "https://deadman.example/ping/watchdog-token"}


def register(stack: str = "prod", secrets: dict | None = None, with_services: bool = False) -> Run:
    """With every secret as a stack with a cluster sets them; with ``secrets`` as a rendering stack."""
    stack_settings = settings(stack)
    live = secrets is None
    secrets = SECRETS if secrets is None else secrets
    alerting = load_alerting(stack, stack_settings.environment, {"alertmanager_url": "http://am.test:9093"},
                             secrets, live=live)

    def program() -> Alerting:
        releases = {}
        if with_services:
            releases = {name: BlueGreenService(f"{stack}-{name}", plan(stack_settings, name,
                                                                        catalogue().services[name]))
                        for name in stack_settings.services}
            for pair in releases.values():
                pair.route_preview()
        return Alerting(f"{stack}-alerting", stack_settings, alerting, catalogue(), read_secrets(alerting),
                        releases=releases)

    return run_program(program, stack=stack, config=secrets)


def test_registers_monitor_rules_routing_secret_and_an_event_resource_per_service() -> None:
    run = register()
    assert Counter(r.kind for r in run.registrations) == {
        "Alerting": 1, "PodMonitor": 1, "PrometheusRule": 4, "Secret": 1, "AlertmanagerConfig": 1,
        "DeploymentEvents": 3}
    component = run.named("prod-alerting")
    assert component.type == "release-infra:alerting:Alerting" and not component.custom
    rule = run.named("prod-alerting-payin-api-rules")
    assert rule.type == "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
    assert run.named("prod-alerting-routing").type == "kubernetes:monitoring.coreos.com/v1alpha1:AlertmanagerConfig"
    assert run.named("prod-alerting-payin-api-deployment").type == \
        "pulumi-python:dynamic/release-infra:DeploymentEvents"


def test_every_child_is_parented_prefixed_and_in_the_namespace() -> None:
    run = register()
    component = run.named("prod-alerting")
    for child in (r for r in run.registrations if r is not component):
        assert child.parent == component.urn and child.name.startswith("prod-alerting-")
        if child.kind != "DeploymentEvents":
            assert child.inputs["metadata"]["namespace"] == "payments-prod"
            assert child.inputs["metadata"]["labels"]["release-infra/alerting"] == "true"


def test_secret_values_live_only_in_the_secret_and_are_marked_secret() -> None:
    run = register()
    secret = run.named("prod-alerting-receivers")
    string_data = secret.inputs["stringData"]
    assert string_data[SECRET_SIG] and set(string_data["value"]) == {
        "slack-deployments-url", "slack-incidents-url", "slack-alerts-url", "pagerduty-routing-key", "watchdog-url"}
    assert string_data["value"]["slack-deployments-url"] == SECRETS["alerting_slack_deployments_url"]
    for registration in run.registrations:
        if registration is secret:
            continue
        text = json.dumps(registration.inputs, default=str)
        assert not any(value in text for value in SECRETS.values()), registration.name


def test_rendered_receivers_cannot_deliver() -> None:
    run = register("dev", secrets={})
    data = run.named("dev-alerting-receivers").inputs["stringData"]["value"]  # a Secret's data is always secret
    assert set(data) == {"slack-deployments-url", "slack-incidents-url", "slack-alerts-url"}  # dev does not page
    assert all(value.startswith("https://placeholder.invalid/") for value in data.values())


def test_a_secret_the_receivers_are_not_given_is_a_placeholder() -> None:
    """The program gives none when rendering manifests (tests/program: no credential reaches a rendered Secret)."""
    given = {key: value for key, value in SECRETS.items() if key != "alerting_slack_incidents_url"}
    data = register(secrets=given).named("prod-alerting-receivers").inputs["stringData"]["value"]
    assert data["slack-incidents-url"] == "https://placeholder.invalid/alerting_slack_incidents_url"
    assert data["slack-deployments-url"] == SECRETS["alerting_slack_deployments_url"]


def test_rules_and_routing_are_the_core_plan() -> None:
    run = register()
    rules = run.named("prod-alerting-payin-api-rules").inputs["spec"]
    assert rules["groups"][0]["name"] == "release-infra/payments-prod/payin-api"
    routing = run.named("prod-alerting-routing").inputs["spec"]
    assert routing["route"]["receiver"] == "alerts"


def test_deployment_events_carry_the_release_and_no_secret() -> None:
    run = register(with_services=True)
    events = run.named("prod-alerting-payin-api-deployment")
    assert {k: events.inputs[k] for k in ("stack", "environment", "namespace", "service", "active", "images",
                                          "alertmanager_url")} == {
        "stack": "prod", "environment": "prod", "namespace": "payments-prod", "service": "payin-api",
        "active": "green", "alertmanager_url": "http://am.test:9093",
        "images": {"blue": "registry.pay.internal/payin-api:9f8e7d6-v2.2.4",
                   "green": "registry.pay.internal/payin-api:a1b2c3d-v2.3.0"}}
    assert (events.inputs["canary_weight"], events.inputs["served"]) == (0, [])
    assert not events.inputs["__provider"].startswith("{")  # the serialized provider, not a secret wrapper


def test_deployment_events_get_the_served_order_of_the_colours_builds_only() -> None:
    """So the input changes with the release only, not with every build the environment ever served."""
    stack_settings = settings("prod")
    alerting = load_alerting("prod", stack_settings.environment, None, SECRETS, live=False)
    image = "registry.pay.internal/payin-api:"
    served = {"payin-api": [image + "0000000-v2.1.0", image + "9f8e7d6-v2.2.4", image + "a1b2c3d-v2.3.0"]}
    run = run_program(lambda: Alerting("prod-alerting", stack_settings, alerting, catalogue(), read_secrets(alerting),
                                       served=served), stack="prod", config=SECRETS)
    assert run.named("prod-alerting-payin-api-deployment").inputs["served"] == served["payin-api"][1:]
    assert run.named("prod-alerting-merchant-api-deployment").inputs["served"] == []


def test_a_preview_registers_the_same_resources() -> None:
    stack_settings = settings("prod")
    alerting = load_alerting("prod", stack_settings.environment, None, SECRETS, live=False)
    runs = [run_program(lambda: Alerting("prod-alerting", stack_settings, alerting, catalogue(),
                                         {k: pulumi.Output.secret(v) for k, v in SECRETS.items()}),
                        stack="prod", config={}, preview=preview) for preview in (True, False)]
    previewed, updated = (sorted((r.kind, r.name) for r in run.registrations) for run in runs)
    assert previewed == updated
    assert Counter(kind for kind, _ in previewed)["DeploymentEvents"] == 3
