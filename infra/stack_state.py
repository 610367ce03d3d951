"""Stack outputs read through the engine before anything is registered.

The engine's builtin ``pulumi:pulumi:readStackOutputs`` invoke is answered synchronously, so the program can
validate against what an environment ran last (its own previous outputs) or what another environment ran
(promotion lineage) and still fail before a single resource is registered. A StackReference could not: its
outputs only resolve after registration.
"""

from __future__ import annotations

from typing import Any

import pulumi
from tenacity import retry, retry_if_exception, stop_after_delay, wait_random

READ_STACK_OUTPUTS = "pulumi:pulumi:readStackOutputs"
# A file backend rewrites the checkpoint while an update persists its steps; a read that meets a half-written
# file fails with this, and succeeds a moment later.
TORN_CHECKPOINT = "failed to load checkpoint"


def stack_name(stack: str) -> str:
    """The fully qualified name the engine resolves, on any backend."""
    return f"{pulumi.get_organization()}/{pulumi.get_project()}/{stack}"


@retry(retry=retry_if_exception(lambda error: TORN_CHECKPOINT in str(error)), stop=stop_after_delay(10),
       wait=wait_random(0.05, 0.25), reraise=True)
def read_stack_outputs(stack: str) -> dict[str, Any]:
    """The last update's outputs of ``stack`` in this project; ``{}`` before its first update."""
    result = pulumi.runtime.invoke(READ_STACK_OUTPUTS, {"name": stack_name(stack)})
    return dict((result.value or {}).get("outputs") or {})


def previous_outputs() -> dict[str, Any]:
    """What this stack exported at its last update: what the environment runs before this one."""
    return read_stack_outputs(pulumi.get_stack())
