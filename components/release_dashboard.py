"""ReleaseDashboard: the environment's release dashboard as a ConfigMap the Grafana sidecar picks up."""

from __future__ import annotations

from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from core.release.dashboard import config_map
from core.settings import StackSettings


class ReleaseDashboard(pulumi.ComponentResource):
    config_map: k8s.core.v1.ConfigMap

    def __init__(self, name: str, settings: StackSettings, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        super().__init__("release-infra:release:ReleaseDashboard", name, None, opts)
        manifest = config_map(settings)
        self.config_map = k8s.core.v1.ConfigMap(f"{name}-config", metadata=manifest["metadata"],
                                                data=manifest["data"], opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({"config_map": self.config_map.metadata["name"]})
