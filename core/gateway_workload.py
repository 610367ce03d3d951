"""The Kubernetes side of a gateway: its config, pods, Service, disruption budget and edge exposure."""

from __future__ import annotations

from dataclasses import dataclass

from core import labels
from core.catalogue import Catalogue, Quantity, Resources
from core.content_address import checksum, content_addressed_name
from core.environment import AUDIENCES, EDGE_NAMESPACES, GATEWAY_TIER, PREVIEW_GATEWAY_TIER, Manifest
from core.pod_security import container_security_context, pod_security_context, spread_across_nodes
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


# One gateway pod; the namespace's quota counts it (core.quota).
GATEWAY_RESOURCES = Resources(requests=Quantity(cpu_millicores=250, memory_mib=128),
                              limits=Quantity(cpu_millicores=1000, memory_mib=256))
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
    return GatewayPlan(
        config_map={"metadata": _metadata(settings, config_map_name(name, config), selector, tier),
                    "data": {CONFIG_FILE: render(config)}, "immutable": True},
        deployment=_deployment(settings, name, config, selector, tier),
        service={"metadata": _metadata(settings, name, selector, tier),
                 "spec": {"type": "ClusterIP", "selector": selector,
                          "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}},
        disruption_budget={"metadata": _metadata(settings, name, selector, tier),
                           "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector}}},
        ingresses=_ingresses(settings, name, selector, tier) if role == "public" else {},
    )


def _metadata(settings: StackSettings, resource: str, selector: dict[str, str], tier: str) -> dict:
    """Every object of a gateway carries its selector and tier: the network policies admit traffic by tier."""
    return {"name": resource, "namespace": settings.namespace,
            "labels": {**labels.common(settings), **selector, labels.TIER: tier}}


def _deployment(settings: StackSettings, name: str, config: dict, selector: dict[str, str], tier: str) -> Manifest:
    """The config's checksum on the pod template rolls the gateway on every config change, and on nothing else."""
    gateway = settings.gateway
    container = {
        "name": "krakend",
        "image": gateway.image,
        "args": ["run", "-c", f"{CONFIG_DIR}/{CONFIG_FILE}"],
        # lura balances round-robin only with one scheduler thread; random otherwise. Canary splits rely on it.
        # USAGE_DISABLE: KrakenD CE reports anonymous usage to usage.krakend.io, which gateway-egress does not allow.
        "env": [{"name": "GOMAXPROCS", "value": "1"}, {"name": "USAGE_DISABLE", "value": "1"}],
        "ports": [{"name": "http", "containerPort": LISTEN_PORT, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/__health", "port": "http"}, "periodSeconds": 5},
        "livenessProbe": {"httpGet": {"path": "/__health", "port": "http"}, "periodSeconds": 10},
        "lifecycle": {"preStop": {"sleep": {"seconds": DRAIN_SECONDS}}},
        "resources": GATEWAY_RESOURCES.kubernetes(),
        "securityContext": container_security_context(),
        "volumeMounts": [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}],
    }
    return {
        "metadata": _metadata(settings, name, selector, tier),
        "spec": {
            "replicas": gateway.replicas,
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": _metadata(settings, name, selector, tier)["labels"],
                             "annotations": {CHECKSUM_ANNOTATION: checksum(config)}},
                "spec": {
                    "terminationGracePeriodSeconds": DRAIN_SECONDS + (gateway.timeout_ms // 1000) + 10,
                    "automountServiceAccountToken": False,
                    "securityContext": pod_security_context(KRAKEND_UID),
                    # Every request of the environment passes here: its pods on one node would go with that node.
                    "topologySpreadConstraints": spread_across_nodes(selector),
                    "containers": [container],
                    "volumes": [{"name": "config", "configMap": {"name": config_map_name(name, config)}}],
                },
            },
        },
    }


def tls_secret_name(gateway: str, audience: str) -> str:
    return f"{gateway}-{audience}-tls"


def _ingresses(settings: StackSettings, name: str, selector: dict[str, str], tier: str) -> dict[str, Manifest]:
    """One Ingress per outside audience the environment's access admits, through that audience's edge class, over
    TLS only: an Ingress with a `tls` entry is served on HTTPS and its plain HTTP redirected, where one without
    would carry merchants' credentials in the clear. The certificate's Secret is the cluster's (README, Cluster
    contract); the Ingress names it."""
    return {
        audience: {
            "metadata": _metadata(settings, f"{name}-{audience}", selector, tier),
            "spec": {
                "ingressClassName": EDGE_NAMESPACES[audience],
                "tls": [{"hosts": [settings.gateway.public_hosts[audience]],
                         "secretName": tls_secret_name(name, audience)}],
                "rules": [{"host": settings.gateway.public_hosts[audience], "http": {"paths": [{
                    "path": "/", "pathType": "Prefix",
                    "backend": {"service": {"name": name, "port": {"name": "http"}}}}]}}],
            },
        }
        for audience in AUDIENCES[settings.access]
    }
