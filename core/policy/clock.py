"""The policy's clock: the real time, or a time pinned by ``RELEASE_INFRA_CLOCK`` for rendered stacks only.

The engine tier deploys the committed stacks and then changes Prod on whatever day CI runs; a pinned clock keeps
those runs deterministic. A stack that deploys to a cluster refuses a pinned clock, so it can never move a
real change into the train.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, TypeAdapter, ValidationError

from core.errors import ConfigError, Problem

CLOCK_VARIABLE = "RELEASE_INFRA_CLOCK"
_TIME = TypeAdapter(AwareDatetime)


def pinned_time(text: str) -> datetime:
    try:
        return _TIME.validate_python(text)
    except ValidationError:
        raise ConfigError(f"environment variable {CLOCK_VARIABLE}", [Problem(
            CLOCK_VARIABLE, text, "an ISO 8601 time with zone, e.g. 2026-11-24T10:30:00Z")]) from None


def refuse_pinned_clock(stack: str, text: str, cluster: str) -> ConfigError:
    return ConfigError(f'stack "{stack}"', [Problem(
        CLOCK_VARIABLE, text, f"a pinned clock is for rendered stacks only; this stack deploys to cluster "
                              f"context '{cluster}', so unset it")])
