"""What a stack file says against what its stack's last update applied, in the fields a release changes.

A release applies one change. A stack file that differs elsewhere, from a checkout behind another operator's
rollback or from an edit not yet applied, would go live with it, and a stale one would undo that rollback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from core.names import COLOURS, whole_percent


@dataclass(frozen=True)
class Difference:
    path: str
    applied: Any
    in_file: Any

    def __str__(self) -> str:
        if self.applied is None:
            return f"{self.path}: not applied yet, the file adds it"
        if self.in_file is None:
            return f"{self.path}: applied, the file removes it"
        return f"{self.path}: applied {self.applied}, the file says {self.in_file}"


def unapplied(services: Mapping[str, Any], outputs: Mapping[str, Any]) -> list[Difference]:
    """Every release field where the file differs from what was applied; none for a stack never updated."""
    applied = outputs.get("services")
    if not isinstance(applied, Mapping):
        return []
    differences = []
    for name in sorted(set(services) | set(applied)):
        if name not in applied:
            differences.append(Difference(f"services.{name}", None, "the service"))
        elif name not in services:
            differences.append(Difference(f"services.{name}", "the service", None))
        else:
            differences += [Difference(f"services.{name}.{path}", was, now)
                            for path, was, now in _fields(services[name], applied[name]) if was != now]
    return differences


def _fields(release: Any, output: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """(path, applied, in the file) for the active colour, each colour's image and the canary weight."""
    release = release if isinstance(release, Mapping) else {}
    canary = release.get("canary") if isinstance(release.get("canary"), Mapping) else {}
    colours = output.get("colours") or {}
    return [("active", output.get("active_colour"), release.get("active")),
            *((f"{colour}.image", (colours.get(colour) or {}).get("image"),
               (release.get(colour) or {}).get("image") if isinstance(release.get(colour), Mapping) else None)
              for colour in COLOURS),
            ("canary.weight", output.get("canary_weight", 0), _number(canary.get("weight", 0)))]


def _number(value: Any) -> Any:
    """A weight as the program reads it, so that "25", 25 and 25.0 compare equal; anything else as it is."""
    whole = whole_percent(value)
    return value if whole is None else whole
