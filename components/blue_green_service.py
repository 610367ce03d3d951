"""BlueGreenService: one service's Deployment per colour, its active and preview Services and disruption budgets."""

from __future__ import annotations

from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from core.blue_green import BlueGreenPlan


class BlueGreenService(pulumi.ComponentResource):
    """Registers a BlueGreenPlan; a colour switch reaches only the two Services, never a Deployment."""

    deployments: dict[str, k8s.apps.v1.Deployment]
    services: dict[str, k8s.core.v1.Service]

    def __init__(self, name: str, plan: BlueGreenPlan, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__("release-infra:services:BlueGreenService", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.deployments = {
            colour: k8s.apps.v1.Deployment(f"{name}-{colour}", metadata=manifest["metadata"], spec=manifest["spec"],
                                           opts=child)
            for colour, manifest in plan.deployments.items()
        }
        self.services = {
            role: k8s.core.v1.Service(f"{name}-{role}", metadata=manifest["metadata"], spec=manifest["spec"],
                                      opts=child)
            for role, manifest in plan.services.items()
        }
        for colour, manifest in plan.disruption_budgets.items():
            k8s.policy.v1.PodDisruptionBudget(f"{name}-{colour}", metadata=manifest["metadata"],
                                              spec=manifest["spec"], opts=child)
        self.register_outputs({
            "services": {role: service.metadata["name"] for role, service in self.services.items()},
        })
