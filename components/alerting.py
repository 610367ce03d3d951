"""Alerting: one environment's scrape config, alert rules, Alertmanager routing and deployment events.

Registers Prometheus Operator resources the platform's Prometheus and Alertmanager pick up (docs/alerting.md):
a PodMonitor, a PrometheusRule per service and one for the environment, and an AlertmanagerConfig whose
receivers read their webhook URLs and routing key from a Secret. Secret values arrive as Pulumi secret Outputs
and go only into that Secret, so the state keeps them encrypted; nothing else sees them.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components.deployment_events import DeploymentEvents
from core.alerting import routing, rules
from core.alerting.events import ReleaseState
from core.alerting.settings import AlertingSettings
from core.catalogue import Catalogue
from core.settings import PROJECT, StackSettings

MONITORING_API = "monitoring.coreos.com/v1"
ALERTMANAGER_CONFIG_API = "monitoring.coreos.com/v1alpha1"


def read_secrets(alerting: AlertingSettings) -> dict[str, pulumi.Output[str]]:
    """The configured secret keys as secret Outputs, for the program to hand to ``Alerting``."""
    config = pulumi.Config(PROJECT)
    return {key: config.require_secret(key) for key in sorted(alerting.configured_secrets)}


class Alerting(pulumi.ComponentResource):
    """Registers what core.alerting computes; ``releases`` (service -> resource) orders each service's
    deployment events after that service's Kubernetes changes, so an event reports a change that was applied.
    ``served`` (service -> this update's ``history.served``) tells the events which build took traffic first;
    ``applied`` (service -> its release in the stack's last outputs) is what a new events resource compares with."""

    rules: dict[str, k8s.apiextensions.CustomResource]
    routing: k8s.apiextensions.CustomResource
    deployment_events: dict[str, DeploymentEvents]

    def __init__(self, name: str, settings: StackSettings, alerting: AlertingSettings, catalogue: Catalogue,
                 secrets: Mapping[str, pulumi.Input[str]],
                 releases: Optional[Mapping[str, pulumi.Resource]] = None,
                 opts: Optional[pulumi.ResourceOptions] = None,
                 served: Optional[Mapping[str, Sequence[str]]] = None,
                 applied: Optional[Mapping[str, ReleaseState]] = None) -> None:
        super().__init__("release-infra:alerting:Alerting", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        monitor = rules.pod_monitor(settings)
        k8s.apiextensions.CustomResource(f"{name}-pod-monitor", api_version=MONITORING_API, kind="PodMonitor",
                                         metadata=monitor["metadata"], spec=monitor["spec"], opts=child)
        self.rules = {
            scope: k8s.apiextensions.CustomResource(
                f"{name}-{scope}-rules", api_version=MONITORING_API, kind="PrometheusRule",
                metadata=rules.metadata(settings, f"release-infra-{scope}"), spec=spec, opts=child)
            for scope, spec in rules.rule_specs(settings, alerting, catalogue).items()
        }
        receivers = k8s.core.v1.Secret(
            f"{name}-receivers", metadata=rules.metadata(settings, routing.SECRET_NAME), type="Opaque",
            string_data=self._secret_data(alerting, secrets),
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["data", "stringData"]))
        config = routing.alertmanager_config(settings, alerting)
        self.routing = k8s.apiextensions.CustomResource(
            f"{name}-routing", api_version=ALERTMANAGER_CONFIG_API, kind="AlertmanagerConfig",
            metadata=config["metadata"], spec=config["spec"],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[receivers]))
        releases, served, applied = releases or {}, served or {}, applied or {}
        self.deployment_events = {
            service: DeploymentEvents(
                f"{name}-{service}-deployment", stack=settings.stack, environment=settings.environment.value,
                namespace=settings.namespace, service=service,
                release=ReleaseState.of(release, served.get(service, ())),
                alertmanager_url=alerting.alertmanager_url, applied=applied.get(service),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[releases[service]] if service in releases else []))
            for service, release in settings.services.items()
        }
        self.register_outputs({
            "rules": {scope: resource.metadata["name"] for scope, resource in self.rules.items()},
            "routing": self.routing.metadata["name"],
            "deployment_events": {service: resource.events for service, resource in self.deployment_events.items()},
        })

    def _secret_data(self, alerting: AlertingSettings,
                     secrets: Mapping[str, pulumi.Input[str]]) -> dict[str, pulumi.Input[str]]:
        data: dict[str, pulumi.Input[str]] = {}
        for data_key, config_key in routing.secret_data_keys(alerting).items():
            data[data_key] = (pulumi.Output.secret(secrets[config_key]) if config_key in secrets
                              else routing.placeholder(config_key))
        return data
