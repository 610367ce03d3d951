"""Namespace-level manifests: labels, quota and the network paths each access class needs."""

from __future__ import annotations

import pytest

from core import environment
from tests.support.stacks import catalogue, settings


def test_namespace_carries_environment_regions_and_restricted_pod_security() -> None:
    labels = environment.namespace(settings("prod"))["metadata"]["labels"]
    assert labels["release-infra/environment"] == "prod"
    assert {key for key in labels if key.startswith("region.")} == {
        f"region.release-infra/{code}" for code in ("pk", "bd", "np", "iq", "eg")}
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize(("stack", "gateway_sources"), [
    ("sandbox", {"allow-merchants-to-gateway": "edge-merchants"}),
    ("dev", {"allow-internal-to-gateway": None}),
    ("test", {"allow-internal-to-gateway": None}),
    ("prod", {"allow-merchants-to-gateway": "edge-merchants", "allow-consumers-to-gateway": "edge-consumers"}),
])
def test_access_class_decides_who_reaches_the_gateway(stack: str, gateway_sources: dict) -> None:
    policies = environment.network_policies(settings(stack), catalogue())
    assert policies["default-deny"]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    to_gateway = {name: policy for name, policy in policies.items()
                  if policy["spec"]["podSelector"].get("matchLabels") == {"release-infra/tier": "gateway"}}
    assert set(to_gateway) == set(gateway_sources)
    for name, edge in gateway_sources.items():
        selector = to_gateway[name]["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]
        expected = {"release-infra/zone": "internal"} if edge is None else {"kubernetes.io/metadata.name": edge}
        assert selector == expected


def test_services_accept_only_the_gateway_release_checks_and_monitoring() -> None:
    policies = environment.network_policies(settings("prod"), catalogue())
    to_services = sorted(name for name, policy in policies.items()
                         if policy["spec"]["podSelector"].get("matchLabels") == {"release-infra/tier": "service"})
    assert to_services == ["allow-gateway-to-services", "allow-monitoring", "allow-release-checks"]
    assert policies["allow-gateway-to-services"]["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 8080}]
    assert policies["allow-monitoring"]["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 9090}]


@pytest.mark.parametrize("stack", ["sandbox", "dev", "test", "prod"])
def test_monitoring_reaches_only_the_pods_it_scrapes(stack: str) -> None:
    """The PodMonitor scrapes service pods; the gateways, migration Jobs and the retention job stay closed to it."""
    policy = environment.network_policies(settings(stack), catalogue())["allow-monitoring"]["spec"]
    assert policy["podSelector"] == {"matchLabels": {"release-infra/tier": "service"}}


def test_quota_fits_both_colours_at_full_size_with_headroom() -> None:
    prod = settings("prod")  # 3 services; merchant-api runs 2 replicas, the others 3
    hard = environment.resource_quota(prod, catalogue())["spec"]["hard"]
    pods = 2 * (4 + 4 + 3)
    assert hard["pods"] == str(int(pods * 1.5))
    limits_cpu = 2 * (4 * 1000 + 4 * 1000 + 3 * 500)
    assert hard["limits.cpu"] == f"{int(limits_cpu * 1.5)}m"
