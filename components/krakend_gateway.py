"""KrakenDGateway: one KrakenD gateway of an environment, rolled on every config change and on nothing else."""

from __future__ import annotations

from typing import Optional, Sequence

import pulumi
import pulumi_kubernetes as k8s

from core.gateway_workload import GatewayPlan


class KrakenDGateway(pulumi.ComponentResource):
    """Registers a GatewayPlan: ConfigMap, Deployment (with the config's checksum), Service, budget, Ingresses."""

    def __init__(self, name: str, plan: GatewayPlan, opts: Optional[pulumi.ResourceOptions] = None, *,
                 after: Sequence[pulumi.Resource] = ()) -> None:
        """``after``: what the gateway's rollout waits for, the services' active Services, so its new pods route
        to the colour the same update switched to."""
        super().__init__("release-infra:gateway:KrakenDGateway", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        config = k8s.core.v1.ConfigMap(f"{name}-config", metadata=plan.config_map["metadata"],
                                       data=plan.config_map["data"], immutable=plan.config_map["immutable"],
                                       opts=child)
        self.deployment = k8s.apps.v1.Deployment(f"{name}-deployment", metadata=plan.deployment["metadata"],
                                                 spec=plan.deployment["spec"],
                                                 opts=pulumi.ResourceOptions(parent=self, depends_on=[config, *after]))
        self.service = k8s.core.v1.Service(f"{name}-service", metadata=plan.service["metadata"],
                                           spec=plan.service["spec"], opts=child)
        k8s.policy.v1.PodDisruptionBudget(f"{name}-pdb", metadata=plan.disruption_budget["metadata"],
                                          spec=plan.disruption_budget["spec"], opts=child)
        for audience, ingress in plan.ingresses.items():
            k8s.networking.v1.Ingress(f"{name}-{audience}", metadata=ingress["metadata"], spec=ingress["spec"],
                                      opts=child)
        self.register_outputs({"service": self.service.metadata["name"]})
