"""What a stack file says against what its stack's last update applied, in the fields a release changes.

A release applies one change. A stack file that differs elsewhere, from a checkout behind another operator's
rollback or from an edit not yet applied, would go live with it, and a stale one would undo that rollback.
"""

from __future__ import annotations

from typing import Any, Mapping

from core.names import COLOURS


def unapplied(services: Mapping[str, Any], outputs: Mapping[str, Any]) -> list[str]:
    """Each difference as `<path>: applied <value>, the file says <value>`; none for a stack never updated."""
    applied = outputs.get("services")
    if not isinstance(applied, Mapping):
        return []
    differences = []
    for name in sorted(set(services) | set(applied)):
        if name not in applied:
            differences.append(f"services.{name}: not applied yet, the file adds it")
            continue
        if name not in services:
            differences.append(f"services.{name}: applied, the file removes it")
            continue
        for path, was, now in _fields(services[name], applied[name]):
            if was != now:
                differences.append(f"services.{name}.{path}: applied {was}, the file says {now}")
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
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    return int(number) if number.is_integer() else number
