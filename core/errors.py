"""One error type for every user mistake in config, rendered as one line with no traceback."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MISSING = object()  # the key is absent
NO_VALUE = object()  # the problem is with the whole source (e.g. a file that cannot be read)


@dataclass(frozen=True)
class Problem:
    """One bad value: where it is, what it was, and what would have been accepted."""

    path: str
    value: Any
    allowed: str

    def __str__(self) -> str:
        if self.value is MISSING:
            return f"{self.path} is missing: {self.allowed}"
        if self.value is NO_VALUE:
            return f"{self.path}: {self.allowed}"
        return f"{self.path} = {_show(self.value)}: {self.allowed}"


class ConfigError(Exception):
    """Invalid stack config or catalogue; the program turns it into a clean failure before registering anything."""

    def __init__(self, source: str, problems: list[Problem]):
        self.source = source
        self.problems = problems
        super().__init__(f"invalid config for {source}: " + "; ".join(map(str, problems)))


def _show(value: Any) -> str:
    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
