"""KrakenDGateway under mocks: its children, and a pod template that changes exactly when the config does."""

from __future__ import annotations

from collections import Counter

from components.krakend_gateway import KrakenDGateway
from core import gateway_workload
from tests.support.mock_engine import Run, run_program
from tests.support.stacks import catalogue, set_path, settings, stack_config


def register(stack: str, config: dict | None = None, role: str = "public") -> Run:
    plan = gateway_workload.plan(settings(stack, config), catalogue(), role)  # type: ignore[arg-type]
    return run_program(lambda: KrakenDGateway(f"{stack}-gateway", plan), stack=stack, config={})


def test_registers_config_deployment_service_budget_and_an_ingress_per_audience() -> None:
    run = register("prod")
    assert Counter(r.kind for r in run.registrations) == {
        "KrakenDGateway": 1, "ConfigMap": 1, "Deployment": 1, "Service": 1, "PodDisruptionBudget": 1, "Ingress": 2}
    component = run.named("prod-gateway")
    assert {r.parent for r in run.registrations if r is not component} == {component.urn}
    assert all(r.name.startswith("prod-gateway-") for r in run.registrations if r is not component)
    classes = sorted(r.inputs["spec"]["ingressClassName"] for r in run.of_kind("Ingress"))
    assert classes == ["edge-consumers", "edge-merchants"]


def test_outside_traffic_comes_in_over_tls_only() -> None:
    """An Ingress without `tls` is served on plain HTTP: merchants' credentials would cross the edge in the clear."""
    hosts = settings("prod").gateway.public_hosts
    for ingress in register("prod").of_kind("Ingress"):
        audience = ingress.name.rsplit("-", 1)[-1]
        [rule] = ingress.inputs["spec"]["rules"]
        assert rule["host"] == hosts[audience]
        assert ingress.inputs["spec"]["tls"] == [{"hosts": [hosts[audience]], "secretName": f"gateway-{audience}-tls"}]


def test_internal_environments_and_preview_gateways_have_no_ingress() -> None:
    assert not register("dev").of_kind("Ingress")
    assert not register("sandbox", role="preview").of_kind("Ingress")
    assert len(register("sandbox").of_kind("Ingress")) == 1


def test_the_gateway_pod_is_safe_and_exact() -> None:
    [deployment] = register("prod").of_kind("Deployment")
    spec = deployment.inputs["spec"]
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    container = spec["template"]["spec"]["containers"][0]
    assert {"name": "GOMAXPROCS", "value": "1"} in container["env"]
    assert {"name": "USAGE_DISABLE", "value": "1"} in container["env"]  # no report to the internet: gateway-egress
    assert container["readinessProbe"]["httpGet"]["path"] == "/__health"
    assert container["lifecycle"]["preStop"]["sleep"]["seconds"] < spec["template"]["spec"]["terminationGracePeriodSeconds"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # prod's three gateway pods carry every request: they prefer three nodes, so one node's loss is one pod's
    assert spec["template"]["spec"]["topologySpreadConstraints"] == [{
        "maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": spec["selector"]["matchLabels"]}}]
    assert container["resources"] == {"requests": {"cpu": "250m", "memory": "128Mi"},
                                      "limits": {"cpu": "1000m", "memory": "256Mi"}}


def checksum(run: Run) -> str:
    [deployment] = run.of_kind("Deployment")
    return deployment.inputs["spec"]["template"]["metadata"]["annotations"]["release-infra/config-checksum"]


def test_a_config_change_rolls_the_gateway_and_a_flip_does_not() -> None:
    base = register("dev")
    flipped = register("dev", set_path(stack_config("dev"), "services.payin-api.active", "green"))
    canary = register("dev", set_path(stack_config("dev"), "services.payin-api.canary", {"weight": 5}))
    assert checksum(flipped) == checksum(base)
    assert checksum(canary) != checksum(base)
    [config] = canary.of_kind("ConfigMap")
    assert config.inputs["data"]["krakend.json"].count("payin-api-preview.payments-dev") == 3  # 3 payin endpoints


def test_each_config_is_its_own_immutable_config_map_that_the_pods_mount() -> None:
    """KrakenD reads its config only at start: a new config is a new ConfigMap, never an edit of the running one."""
    base = register("dev")
    canary = register("dev", set_path(stack_config("dev"), "services.payin-api.canary", {"weight": 5}))
    names = []
    for run in (base, canary):
        [config] = run.of_kind("ConfigMap")
        [deployment] = run.of_kind("Deployment")
        assert config.inputs["immutable"] is True
        assert deployment.inputs["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"] == \
            config.inputs["metadata"]["name"]
        assert config.inputs["metadata"]["name"] == f"gateway-config-{checksum(run)[:10]}"
        names.append(config.inputs["metadata"]["name"])
    assert names[0] != names[1]
