"""The manifests of one service's blue/green pair.

Each colour is its own Deployment with the fixed selector {app, color}; only the two Services know which
colour is active. Switching colours therefore changes two Service selectors and nothing else: no Deployment
is touched, no pod restarts, and rolling back is the same switch in the other direction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from core import labels
from core.catalogue import PREVIEW_SUFFIX, ServiceSpec
from core.environment import SERVICE_TIER, Manifest
from core.migrations import Migration
from core.pod_security import NONROOT_UID, container_security_context, pod_security_context, spread_across_nodes
from core.settings import COLOURS, Colour, StackSettings

Role = Literal["active", "preview"]
ROLES: tuple[Role, ...] = ("active", "preview")
SERVICE_PORT = 80


@dataclass(frozen=True)
class BlueGreenPlan:
    """Everything one BlueGreenService registers, keyed the way the component names its children."""

    deployments: dict[Colour, Manifest]
    services: dict[Role, Manifest]
    disruption_budgets: dict[Colour, Manifest]
    migration: Migration | None = None  # runs before either colour's Deployment changes


def service_name(service: str, role: Role) -> str:
    """Stable DNS names: the gateway routes to `<service>`, release checks call `<service>-preview`."""
    return service if role == "active" else f"{service}{PREVIEW_SUFFIX}"


def selector(service: str, colour: Colour) -> dict[str, str]:
    return {labels.APP: service, labels.COLOR: colour}


def plan(settings: StackSettings, name: str, spec: ServiceSpec, migration: Migration | None = None) -> BlueGreenPlan:
    release = settings.services[name]
    colour_of: dict[Role, Colour] = {"active": release.active, "preview": release.standby_colour}
    return BlueGreenPlan(
        deployments={colour: deployment(settings, name, spec, colour) for colour in COLOURS},
        services={role: routing_service(settings, name, role, colour_of[role]) for role in ROLES},
        disruption_budgets={colour: disruption_budget(settings, name, colour) for colour in COLOURS},
        migration=migration,
    )


def deployment(settings: StackSettings, name: str, spec: ServiceSpec, colour: Colour) -> Manifest:
    image = settings.services[name].image(colour)
    pod_labels = {
        **labels.common(settings),
        **selector(name, colour),
        labels.TIER: SERVICE_TIER,
        "app.kubernetes.io/name": name,
        labels.VERSION: str(image.version),
    }
    http = {"port": "http", "scheme": "HTTP"}
    container = {
        "name": name,
        "image": str(image),
        "imagePullPolicy": "IfNotPresent",
        "ports": [
            {"name": "http", "containerPort": spec.port, "protocol": "TCP"},
            {"name": "metrics", "containerPort": spec.metrics_port, "protocol": "TCP"},
        ],
        "env": [
            {"name": "DEPLOY_ENV", "value": settings.environment.value},
            {"name": "SERVICE_COLOR", "value": colour},
            {"name": "SERVICE_VERSION", "value": str(image.version)},
            # The environment's collector, the gateway's too: the SDKs' default (localhost) would send the spans
            # nowhere, and the release's trace check would find none after the gateway's.
            {"name": "OTEL_EXPORTER_OTLP_ENDPOINT",
             "value": f"http://{settings.gateway.otlp.host}:{settings.gateway.otlp.port}"},
            {"name": "OTEL_EXPORTER_OTLP_PROTOCOL", "value": "grpc"},  # that port's; some SDKs default to HTTP
            {"name": "OTEL_SERVICE_NAME", "value": name},
            {"name": "OTEL_RESOURCE_ATTRIBUTES",
             "value": f"deployment.environment={settings.environment.value},service.version={image.version},"
                      f"service.color={colour}"},
        ],
        "startupProbe": {"httpGet": {**http, "path": spec.health.startup}, "periodSeconds": 2, "failureThreshold": 60},
        "readinessProbe": {"httpGet": {**http, "path": spec.health.readiness}, "periodSeconds": 5,
                           "failureThreshold": 3},
        "livenessProbe": {"httpGet": {**http, "path": spec.health.liveness}, "periodSeconds": 10,
                          "failureThreshold": 3},
        # Keep serving while endpoint removal reaches every gateway pod, then let the app drain in-flight requests.
        "lifecycle": {"preStop": {"sleep": {"seconds": spec.shutdown.drain_seconds}}},
        "resources": spec.resources.kubernetes(),
        "securityContext": container_security_context(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    return {
        "metadata": _metadata(settings, f"{name}-{colour}", selector(name, colour)),
        "spec": {
            "replicas": settings.replicas_of(name, colour),
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": selector(name, colour)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "terminationGracePeriodSeconds": spec.shutdown.grace_seconds,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": {**pod_security_context(), "fsGroup": NONROOT_UID},
                    "topologySpreadConstraints": spread_across_nodes(selector(name, colour)),
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
                },
            },
        },
    }


def routing_service(settings: StackSettings, name: str, role: Role, colour: Colour) -> Manifest:
    return {
        "metadata": _metadata(settings, service_name(name, role), {labels.APP: name, "release-infra/role": role}),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(name, colour),
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def disruption_budget(settings: StackSettings, name: str, colour: Colour) -> Manifest:
    return {
        "metadata": _metadata(settings, f"{name}-{colour}", selector(name, colour)),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(name, colour)}},
    }


def _metadata(settings: StackSettings, name: str, extra: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "namespace": settings.namespace, "labels": {**labels.common(settings), **extra}}
