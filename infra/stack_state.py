"""Stack outputs read through the engine before anything is registered.

The engine's builtin ``pulumi:pulumi:readStackOutputs`` invoke is answered synchronously, so the program can
validate against what an environment ran last (its own previous outputs) or what another environment ran
(promotion lineage) and still fail before a single resource is registered. A StackReference could not: its
outputs only resolve after registration.
"""

from __future__ import annotations

from typing import Any

import pulumi
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_fixed

READ_STACK_OUTPUTS = "pulumi:pulumi:readStackOutputs"


def stack_name(stack: str) -> str:
    """The fully qualified name the engine resolves, on any backend."""
    return f"{pulumi.get_organization()}/{pulumi.get_project()}/{stack}"


def read_stack_outputs(stack: str) -> dict[str, Any]:
    """The last update's outputs of ``stack`` in this project; ``{}`` before its first update.

    Retried briefly: on a file backend, reading the running stack's own checkpoint while the engine writes it can
    find it empty ("failed to load checkpoint: EOF"), which the next read does not.
    """
    for attempt in Retrying(retry=retry_if_exception(_checkpoint_busy), stop=stop_after_attempt(4),
                            wait=wait_fixed(0.25), reraise=True):
        with attempt:
            result = pulumi.runtime.invoke(READ_STACK_OUTPUTS, {"name": stack_name(stack)})
    return dict((result.value or {}).get("outputs") or {})


def _checkpoint_busy(error: BaseException) -> bool:
    return "failed to load checkpoint: EOF" in str(error)


def previous_outputs() -> dict[str, Any]:
    """What this stack exported at its last update: what the environment runs before this one."""
    return read_stack_outputs(pulumi.get_stack())
