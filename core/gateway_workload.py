"""The Kubernetes side of a gateway: its config, pods, Service, disruption budget and edge exposure."""

from __future__ import annotations

from dataclasses import dataclass

from core import labels
from core.catalogue import Catalogue
from core.content_address import checksum, content_addressed_name
from core.environment import AUDIENCES, EDGE_NAMESPACES, GATEWAY_TIER, PREVIEW_GATEWAY_TIER, Manifest
from core.pod_security import container_security_context, pod_security_context
from core.settings import StackSettings
from core.gateway import LISTEN_PORT, GatewayRole, gateway_name, krakend_config, render

CONFIG_DIR = "/etc/krakend"
CONFIG_FILE = "krakend.json"
KRAKEND_UID = 1000  # the user the KrakenD image runs as
DRAIN_SECONDS = 5


@dataclass(frozen=True)
class GatewayPlan:
    config_map: Manifest
    deployment: Manifest
    service: Manifest
    disruption_budget: Manifest
    ingresses: dict[str, Manifest]


CHECKSUM_ANNOTATION = "release-infra/config-checksum"  # on the gateway's pod template: any config change rolls it


def config_map_prefix(gateway: str) -> str:
    return f"{gateway}-config"


def config_map_name(gateway: str, config: dict) -> str:
    """Named after its content: KrakenD reads its config only at start, so new pods mount the new ConfigMap while
    old pods keep theirs, and the old one goes only after the rollout."""
    return content_addressed_name(config_map_prefix(gateway), config)


def plan(settings: StackSettings, catalogue: Catalogue, role: GatewayRole) -> GatewayPlan:
    name = gateway_name(role)
    config = krakend_config(settings, catalogue, role)
    selector = {labels.APP: name}
    tier = GATEWAY_TIER if role == "public" else PREVIEW_GATEWAY_TIER
    metadata = lambda resource: {"name": resource, "namespace": settings.namespace,  # noqa: E731
                                 "labels": {**labels.common(settings), **selector, labels.TIER: tier}}
    gateway = settings.gateway
    container = {
        "name": "krakend",
        "image": gateway.image,
        "args": ["run", "-c", f"{CONFIG_DIR}/{CONFIG_FILE}"],
        # lura balances round-robin only with one scheduler thread; random otherwise. Canary splits rely on it.
        "env": [{"name": "GOMAXPROCS", "value": "1"}],
        "ports": [{"name": "http", "containerPort": LISTEN_PORT, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/__health", "port": "http"}, "periodSeconds": 5},
        "livenessProbe": {"httpGet": {"path": "/__health", "port": "http"}, "periodSeconds": 10},
        "lifecycle": {"preStop": {"sleep": {"seconds": DRAIN_SECONDS}}},
        "resources": {"requests": {"cpu": "250m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}},
        "securityContext": container_security_context(),
        "volumeMounts": [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}],
    }
    deployment = {
        "metadata": metadata(name),
        "spec": {
            "replicas": gateway.replicas,
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": metadata(name)["labels"],
                             "annotations": {CHECKSUM_ANNOTATION: checksum(config)}},
                "spec": {
                    "terminationGracePeriodSeconds": DRAIN_SECONDS + (gateway.timeout_ms // 1000) + 10,
                    "automountServiceAccountToken": False,
                    "securityContext": pod_security_context(KRAKEND_UID),
                    "containers": [container],
                    "volumes": [{"name": "config", "configMap": {"name": config_map_name(name, config)}}],
                },
            },
        },
    }
    ingresses = {}
    if role == "public":
        for audience in AUDIENCES[settings.access]:
            ingresses[audience] = {
                "metadata": metadata(f"{name}-{audience}"),
                "spec": {
                    "ingressClassName": EDGE_NAMESPACES[audience],
                    "rules": [{"host": gateway.public_hosts[audience], "http": {"paths": [{
                        "path": "/", "pathType": "Prefix",
                        "backend": {"service": {"name": name, "port": {"name": "http"}}}}]}}],
                },
            }
    return GatewayPlan(
        config_map={"metadata": metadata(config_map_name(name, config)), "data": {CONFIG_FILE: render(config)},
                    "immutable": True},
        deployment=deployment,
        service={"metadata": metadata(name),
                 "spec": {"type": "ClusterIP", "selector": selector,
                          "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}},
        disruption_budget={"metadata": metadata(name),
                           "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector}}},
        ingresses=ingresses,
    )
