"""The release policy at preview time: this stack's and its upstream's last outputs, read through the engine,
judged by core.policy before a single resource is registered (our language host runs no policy packs)."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

import pulumi

from core.catalogue import Catalogue
from core.errors import ConfigError, Problem
from core.policy.clock import CLOCK_VARIABLE, pinned_time, refuse_pinned_clock
from core.policy.history import with_first_served
from core.policy.rules import evaluate
from core.policy.settings import PREFIX, UPSTREAM, load_policy
from core.settings import StackSettings
from infra.stack_state import previous_outputs, read_stack_outputs


def current_time(now: Callable[[], datetime] | None) -> datetime:
    """An injected clock first, then a time pinned by RELEASE_INFRA_CLOCK, then the real time."""
    if now is not None:
        return now()
    pinned = os.environ.get(CLOCK_VARIABLE)
    return pinned_time(pinned) if pinned else datetime.now(timezone.utc)


def check(settings: StackSettings, config: Mapping[str, Any], catalogue: Catalogue,
          now: datetime) -> dict[str, Any]:
    """Raise ConfigError when the update breaks the policy; return the stack's previous outputs."""
    policy = load_policy(settings.stack, settings.environment.value, config, catalogue)
    pinned = os.environ.get(CLOCK_VARIABLE)
    if pinned:
        if settings.cluster is not None:
            raise refuse_pinned_clock(settings.stack, pinned, settings.cluster.context)
        pulumi.log.warn(f"{CLOCK_VARIABLE}={pinned} pins the release-policy clock: the train, no-deploy days, "
                        "freezes and emergency records are judged at that time, not now")
    previous = dict(with_first_served(previous_outputs()))
    upstream = _upstream_outputs(settings.stack, policy.upstream_stack)
    for report in evaluate(settings, policy, catalogue, previous, upstream, now):
        pulumi.log.warn(report)
    return previous


def _upstream_outputs(stack: str, upstream: str | None) -> dict[str, Any] | None:
    if upstream is None:
        return None
    try:
        return read_stack_outputs(upstream)
    except Exception as error:  # noqa: BLE001 (the engine's reason, e.g. no such stack, goes into the message)
        raise ConfigError(f'stack "{stack}"', [Problem(f"{PREFIX}{UPSTREAM}", upstream, " ".join(
            f"cannot be read: {error}".split()))]) from None
