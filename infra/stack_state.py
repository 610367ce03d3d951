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
    return whole_numbers(dict((result.value or {}).get("outputs") or {}))


def whole_numbers(value: Any) -> Any:
    """``value`` with every integral float made an int.

    An invoke's result travels as a protobuf Struct, whose only number is a double: a canary weight of 5 comes
    back as 5.0. The outputs' numbers are counts and percentages, and the rules that read them check for ints.
    """
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: whole_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [whole_numbers(item) for item in value]
    return value


def previous_outputs() -> dict[str, Any]:
    """What this stack exported at its last update: what the environment runs before this one."""
    return read_stack_outputs(pulumi.get_stack())
