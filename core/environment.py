"""The namespace-level manifests of one environment: namespace, quota, limits and network policies."""

from __future__ import annotations

from typing import Any

from core import labels
from core.catalogue import CONTAINER_MAX_CPU_MILLICORES, CONTAINER_MAX_MEMORY_MIB, Catalogue
from core.settings import Access, EnvironmentKind, StackSettings

Manifest = dict[str, Any]

GATEWAY_TIER = "gateway"
PREVIEW_GATEWAY_TIER = "gateway-preview"
SERVICE_TIER = "service"
MONITORING_NAMESPACE = "monitoring"
# Edge namespaces whose ingress controllers carry outside traffic to the gateway, one per audience.
EDGE_NAMESPACES = {"merchants": "edge-merchants", "consumers": "edge-consumers"}
AUDIENCES = {
    Access.INTERNAL: (),
    Access.MERCHANTS: ("merchants",),
    Access.MERCHANTS_AND_CONSUMERS: ("merchants", "consumers"),
}


def namespace(settings: StackSettings) -> Manifest:
    metadata_labels = {
        **labels.common(settings),
        "release-infra/access": settings.access.value,
        **{labels.region(code): "true" for code in settings.regions},
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }
    return {"metadata": {"name": settings.namespace, "labels": metadata_labels}}


def limit_range(settings: StackSettings) -> Manifest:
    """Defaults for containers that declare nothing, and a ceiling no single container may pass."""
    return {
        "metadata": metadata(settings, "limits"),
        "spec": {"limits": [{
            "type": "Container",
            "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
            "default": {"cpu": "500m", "memory": "256Mi"},
            "max": {"cpu": str(CONTAINER_MAX_CPU_MILLICORES // 1000),
                    "memory": f"{CONTAINER_MAX_MEMORY_MIB // 1024}Gi"},  # the catalogue's ceiling too
        }]},
    }


def network_policies(settings: StackSettings, catalogue: Catalogue) -> dict[str, Manifest]:
    """Default deny for ingress, then exactly the paths the access class needs; the gateways' egress too."""
    specs = [spec for name, spec in catalogue.services.items() if name in settings.services]
    service_ports = sorted({spec.port for spec in specs})
    metrics_ports = sorted({spec.metrics_port for spec in specs})
    internal = {"namespaceSelector": {"matchLabels": {labels.ZONE: labels.INTERNAL_ZONE}}}
    policies = {
        "default-deny": {"podSelector": {}, "policyTypes": ["Ingress"]},
        "allow-gateway-to-services": _allow(
            {labels.TIER: SERVICE_TIER},
            [{"podSelector": {"matchExpressions": [
                {"key": labels.TIER, "operator": "In", "values": [GATEWAY_TIER, PREVIEW_GATEWAY_TIER]}]}}],
            service_ports),
        "allow-release-checks": _allow({labels.TIER: SERVICE_TIER}, [_release_checks(settings, internal)],
                                       service_ports),
        # Only the pods the PodMonitor scrapes: the gateways, Jobs and their ports stay closed to monitoring.
        "allow-monitoring": _allow(
            {labels.TIER: SERVICE_TIER},
            [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": MONITORING_NAMESPACE}}}],
            metrics_ports),
    }
    if settings.environment != EnvironmentKind.PROD:
        policies["allow-internal-to-preview-gateway"] = _allow({labels.TIER: PREVIEW_GATEWAY_TIER}, [internal], None)
    if settings.access == Access.INTERNAL:
        policies["allow-internal-to-gateway"] = _allow({labels.TIER: GATEWAY_TIER}, [internal], None)
    else:  # the release's trace check sends its requests through the gateway, from where it checks the services
        policies["allow-release-checks-to-gateway"] = _allow({labels.TIER: GATEWAY_TIER},
                                                             [_release_checks(settings, internal)], None)
    for audience in AUDIENCES[settings.access]:
        edge = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": EDGE_NAMESPACES[audience]}}}
        policies[f"allow-{audience}-to-gateway"] = _allow({labels.TIER: GATEWAY_TIER}, [edge], None)
    policies["gateway-egress"] = _gateway_egress(settings, service_ports)
    return {name: {"metadata": metadata(settings, name), "spec": spec} for name, spec in policies.items()}


def _gateway_egress(settings: StackSettings, service_ports: list[int]) -> dict[str, Any]:
    """The gateways reach the service pods, DNS and the trace collector, nothing else: a gateway taken over from
    outside cannot be a way into the rest of the network. DNS goes to any destination on port 53: the resolver pods
    ask may be no pod (NodeLocal DNSCache's link-local address, GKE's Cloud DNS). The services' own egress
    (databases, payment providers) is not declared here."""
    otlp = settings.gateway.otlp
    return {
        "podSelector": {"matchExpressions": [
            {"key": labels.TIER, "operator": "In", "values": [GATEWAY_TIER, PREVIEW_GATEWAY_TIER]}]},
        "policyTypes": ["Egress"],
        "egress": [
            {"to": [{"podSelector": {"matchLabels": {labels.TIER: SERVICE_TIER}}}],
             "ports": [{"protocol": "TCP", "port": port} for port in service_ports]},
            {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
            {**_collector(otlp.host), "ports": [{"protocol": "TCP", "port": otlp.port}]},
        ],
    }


def _collector(host: str) -> dict[str, Any]:
    """Where the gateway's spans go: the namespace of a Service named in full (``<name>.<namespace>.svc[.<cluster
    domain>]``); for any other host, any destination on the collector's port. An address may be a ClusterIP, which
    the network plugin translates to a pod's before it applies the policy, and a shorter name depends on the
    resolver's search list."""
    parts = host.removesuffix(".").split(".")
    if len(parts) >= 3 and parts[2] == "svc":
        return {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": parts[1]}}}]}
    return {}


def _release_checks(settings: StackSettings, internal: dict[str, Any]) -> dict[str, Any]:
    """Who may call the services behind the gateway. Outside prod, any internal caller: it reaches the same
    services through the internal gateways anyway. Prod's serve live payments, past the gateway's limits: only
    namespaces labelled for prod's release checks, not every one the internal zone lets into Dev and Test."""
    if settings.environment != EnvironmentKind.PROD:
        return internal
    return {"namespaceSelector": {"matchLabels": {labels.PROD_RELEASE_CHECKS: "true"}}}


def _allow(pods: dict[str, str], sources: list[dict[str, Any]], ports: list[int] | None) -> dict[str, Any]:
    rule: dict[str, Any] = {"from": sources}
    if ports:
        rule["ports"] = [{"protocol": "TCP", "port": port} for port in ports]
    return {"podSelector": {"matchLabels": pods} if pods else {}, "policyTypes": ["Ingress"], "ingress": [rule]}


def metadata(settings: StackSettings, name: str) -> dict[str, Any]:
    return {"name": name, "namespace": settings.namespace, "labels": labels.common(settings)}

