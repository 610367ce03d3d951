"""Environment: one stack's namespace and everything in it.

Later parts of the platform (the gateway, registry retention, alerting) are children of the Environment too,
built from the same validated settings, so an environment is always one tree in the stack.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components.alerting import Alerting
from components.registry_retention import RegistryRetention
from components.release_dashboard import ReleaseDashboard
from components.blue_green_service import BlueGreenService
from components.krakend_gateway import KrakenDGateway
from core import blue_green, gateway_workload, quota as quotas
from core import environment as manifests
from core.alerting.events import ReleaseState
from core.alerting.settings import AlertingSettings
from core.migrations import Migration
from core.labels import common
from core.registry.settings import RetentionSettings
from core.catalogue import Catalogue
from core.gateway import gateway_name, gateway_roles
from core.settings import StackSettings


class Environment(pulumi.ComponentResource):
    namespace: k8s.core.v1.Namespace
    services: dict[str, BlueGreenService]
    gateways: dict[str, KrakenDGateway]
    alerting: Optional[Alerting]
    retention: Optional[RegistryRetention]

    def __init__(self, name: str, settings: StackSettings, catalogue: Catalogue,
                 opts: Optional[pulumi.ResourceOptions] = None, *, alerting: Optional[AlertingSettings] = None,
                 alerting_secrets: Optional[Mapping[str, pulumi.Input[str]]] = None,
                 retention: Optional[RetentionSettings] = None, retention_password: pulumi.Input[str] = "",
                 protect_outputs: Optional[Mapping[str, pulumi.Input[Any]]] = None,
                 migrations: Optional[Mapping[str, Migration]] = None,
                 database_urls: Optional[Mapping[str, pulumi.Input[str]]] = None,
                 served: Optional[Mapping[str, Sequence[str]]] = None,
                 applied: Optional[Mapping[str, ReleaseState]] = None) -> None:
        super().__init__("release-infra:environment:Environment", name, None, opts)
        self.namespace = k8s.core.v1.Namespace(f"{name}-namespace", metadata=manifests.namespace(settings)["metadata"],
                                               opts=pulumi.ResourceOptions(parent=self))
        inside = self.inside()
        quota = quotas.resource_quota(settings, catalogue)
        k8s.core.v1.ResourceQuota(f"{name}-quota", metadata=quota["metadata"], spec=quota["spec"], opts=inside)
        limits = manifests.limit_range(settings)
        k8s.core.v1.LimitRange(f"{name}-limits", metadata=limits["metadata"], spec=limits["spec"], opts=inside)
        for policy, manifest in manifests.network_policies(settings, catalogue).items():
            k8s.networking.v1.NetworkPolicy(f"{name}-{policy}", metadata=manifest["metadata"], spec=manifest["spec"],
                                            opts=inside)
        migrations, database_urls = migrations or {}, database_urls or {}
        self.services = {
            service: BlueGreenService(
                f"{name}-{service}",
                blue_green.plan(settings, service, catalogue.services[service], migrations.get(service)),
                opts=inside, database_url=database_urls.get(service),
                keep_finished_jobs=settings.cluster is not None)
            for service in settings.services
        }
        # Switching colours at the end of a canary: active Services, then the gateways' rollout, then the preview
        # Services (BlueGreenService.route_preview), so no gateway pod sends a request to the colour switched away.
        self.gateways = {
            role: KrakenDGateway(f"{name}-{gateway_name(role)}", gateway_workload.plan(settings, catalogue, role),
                                 opts=inside, after=[pair.services["active"] for pair in self.services.values()])
            for role in gateway_roles(settings)
        }
        for pair in self.services.values():
            pair.route_preview(after=[gateway.deployment for gateway in self.gateways.values()])
        self.alerting = None if alerting is None else Alerting(
            f"{name}-alerting", settings, alerting, catalogue, alerting_secrets or {}, releases=self.services,
            opts=inside, served=served, applied=applied)
        self.retention = None if retention is None else RegistryRetention(
            f"{name}-registry-retention", retention, retention_password, protect_outputs or {}, common(settings),
            opts=inside, namespace=settings.namespace, services=list(catalogue.services))
        ReleaseDashboard(f"{name}-release-dashboard", settings, opts=inside)
        self.register_outputs({"namespace": self.namespace.metadata["name"],
                               "retention": self.retention.policy if self.retention else None})

    def inside(self) -> pulumi.ResourceOptions:
        """Options for a child that lives in the namespace: parented here, created after the namespace."""
        return pulumi.ResourceOptions(parent=self, depends_on=[self.namespace])
