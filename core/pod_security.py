"""The restricted Pod Security Standard, written once for every workload the program runs, and how its serving
pods spread over nodes.

Namespaces enforce `restricted` (core/environment.py), so a pod without these settings would be rejected at
admission; keeping them in one place keeps Deployments, the gateway and Jobs admissible together.
"""

from __future__ import annotations

from typing import Any

NONROOT_UID = 65532  # the distroless `nonroot` user the services' images run as


def pod_security_context(uid: int = NONROOT_UID) -> dict[str, Any]:
    return {"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid, "seccompProfile": {"type": "RuntimeDefault"}}


def container_security_context() -> dict[str, Any]:
    return {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]}}


def spread_across_nodes(selector: dict[str, str]) -> list[dict[str, Any]]:
    """The pods ``selector`` matches prefer different nodes: a node that fails takes one of them, not all."""
    return [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
             "labelSelector": {"matchLabels": selector}}]
