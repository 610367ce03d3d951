"""The blue/green pair: fixed selectors, safe pods, and a switch that touches only the Services."""

from __future__ import annotations

import pytest

from core.blue_green import plan
from core.gateway import krakend_config
from tests.support.stacks import STACKS, catalogue, set_path, settings, stack_config


def dev_plan(config: dict | None = None, service: str = "payin-api"):
    return plan(settings("dev", config), service, catalogue().services[service])


def test_each_colour_has_a_fixed_selector_without_a_version() -> None:
    pair = dev_plan()
    for colour, deployment in pair.deployments.items():
        assert deployment["metadata"]["name"] == f"payin-api-{colour}"
        assert deployment["spec"]["selector"] == {"matchLabels": {"app": "payin-api", "color": colour}}
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert pod_labels["app.kubernetes.io/version"] in deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    for budget_colour, budget in pair.disruption_budgets.items():
        assert budget["spec"]["selector"] == {"matchLabels": {"app": "payin-api", "color": budget_colour}}


def test_services_route_by_colour() -> None:
    pair = dev_plan()  # dev runs payin-api on blue
    assert pair.services["active"]["metadata"]["name"] == "payin-api"
    assert pair.services["active"]["spec"]["selector"] == {"app": "payin-api", "color": "blue"}
    assert pair.services["preview"]["metadata"]["name"] == "payin-api-preview"
    assert pair.services["preview"]["spec"]["selector"] == {"app": "payin-api", "color": "green"}


@pytest.mark.parametrize("stack", STACKS)
def test_switching_colours_changes_the_two_selectors_and_nothing_else(stack: str) -> None:
    before_settings = settings(stack)
    for name, release in before_settings.services.items():
        if release.standby.policy != "warm":
            continue
        flipped = set_path(stack_config(stack), f"services.{name}.active", release.standby_colour)
        spec = catalogue().services[name]
        before, after = plan(before_settings, name, spec), plan(settings(stack, flipped), name, spec)
        assert after.deployments == before.deployments
        assert after.disruption_budgets == before.disruption_budgets
        assert after.services["active"]["spec"]["selector"] == before.services["preview"]["spec"]["selector"]
        assert after.services["preview"]["spec"]["selector"] == before.services["active"]["spec"]["selector"]
        for role in ("active", "preview"):
            assert after.services[role]["metadata"] == before.services[role]["metadata"]


def test_pods_drain_gracefully_and_never_drop_below_size() -> None:
    deployment = dev_plan().deployments["blue"]["spec"]
    pod = deployment["template"]["spec"]
    container = pod["containers"][0]
    drain = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert drain == 10 and pod["terminationGracePeriodSeconds"] == 45 > drain
    assert deployment["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert {probe: container[probe]["httpGet"]["path"] for probe in ("readinessProbe", "livenessProbe", "startupProbe")} \
        == {"readinessProbe": "/health/ready", "livenessProbe": "/health/live", "startupProbe": "/health/started"}
    assert container["resources"] == {"requests": {"cpu": "250m", "memory": "256Mi"},
                                      "limits": {"cpu": "1000m", "memory": "512Mi"}}


def test_pods_meet_the_restricted_pod_security_standard() -> None:
    pod = dev_plan().deployments["green"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = pod["containers"][0]["securityContext"]
    assert container == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
                         "capabilities": {"drop": ["ALL"]}}


def test_a_scaled_down_standby_has_no_replicas_and_the_active_keeps_its_size() -> None:
    prod = settings("prod")
    pair = plan(prod, "payout-api", catalogue().services["payout-api"])
    assert pair.deployments["green"]["spec"]["replicas"] == 0
    assert pair.deployments["blue"]["spec"]["replicas"] == 3


def test_promoting_the_standby_changes_only_its_deployment() -> None:
    promoted = set_path(stack_config("dev"), "services.payin-api.green.image",
                        "registry.pay.internal/payin-api:5e6f7a8-v2.4.0")
    before, after = dev_plan(), dev_plan(promoted)
    assert after.deployments["blue"] == before.deployments["blue"]
    assert after.deployments["green"] != before.deployments["green"]
    assert after.services == before.services
    assert after.deployments["green"]["spec"]["template"]["spec"]["containers"][0]["image"].endswith("5e6f7a8-v2.4.0")


@pytest.mark.parametrize("stack", STACKS)
def test_each_colour_sends_its_spans_where_the_gateway_sends_its_own_named_by_colour(stack: str) -> None:
    """The release's trace check looks for a span of the new colour under the gateway's, in one trace store."""
    stack_settings = settings(stack)
    otlp = krakend_config(stack_settings, catalogue())["extra_config"]["telemetry/opentelemetry"]["exporters"]["otlp"]
    for name, release in stack_settings.services.items():
        for colour, deployment in plan(stack_settings, name, catalogue().services[name]).deployments.items():
            env = {item["name"]: item["value"] for item in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
            assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == f"http://{otlp[0]['host']}:{otlp[0]['port']}"
            assert (env["OTEL_EXPORTER_OTLP_PROTOCOL"], otlp[0]["use_http"]) == ("grpc", False)
            assert env["OTEL_SERVICE_NAME"] == name
            assert f"service.color={colour}" in env["OTEL_RESOURCE_ATTRIBUTES"].split(",")
