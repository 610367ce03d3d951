"""The environment's ResourceQuota: every pod it runs at once, counted, so a valid stack is always admitted."""

from __future__ import annotations

import math

from core.catalogue import Catalogue, Resources
from core.environment import Manifest, metadata
from core.gateway import gateway_roles
from core.gateway_workload import GATEWAY_RESOURCES
from core.settings import StackSettings

# Room for pods still terminating after a rollout (they count until they are gone) and the retention job.
HEADROOM = 1.5


def resource_quota(settings: StackSettings, catalogue: Catalogue) -> Manifest:
    """Both colours of every service at full size plus a surge pod each, a migration Job per service that
    migrates, and every gateway (public, and preview outside prod) with its surge pod; times the headroom.
    Scaling a colour back up, a canary step's gateway rollout and a migration always fit."""
    pods: list[tuple[int, Resources]] = []
    for name, release in settings.services.items():
        spec = catalogue.services[name]
        pods.append((2 * ((release.replicas or settings.replicas) + 1), spec.resources))
        if spec.migrations is not None:
            pods.append((1, spec.resources))
    pods += [(settings.gateway.replicas + 1, GATEWAY_RESOURCES) for _ in gateway_roles(settings)]
    total = lambda amount: math.ceil(HEADROOM * sum(count * amount(r) for count, r in pods))  # noqa: E731
    return {
        "metadata": metadata(settings, "quota"),
        "spec": {"hard": {
            "requests.cpu": f"{total(lambda r: r.requests.cpu_millicores)}m",
            "limits.cpu": f"{total(lambda r: r.limits.cpu_millicores)}m",
            "requests.memory": f"{total(lambda r: r.requests.memory_mib)}Mi",
            "limits.memory": f"{total(lambda r: r.limits.memory_mib)}Mi",
            "pods": str(total(lambda r: 1)),
        }},
    }
