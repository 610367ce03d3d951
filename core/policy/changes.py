"""What an update changes of what an environment runs: this update's settings against the stack's last outputs.

The schedule rules (train, no-deploy days, freezes) judge changes, not updates: a no-change update passes on any
day. Some changes are always safe to make, because refusing them would only keep a bad release live: a rollback
(traffic back to the earlier release the other colour still runs), a canary stepping back, and a scaled-down
standby warming up for a rollback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from core.errors import MISSING
from core.policy.history import is_earlier_release, previous_history
from core.settings import COLOURS, Colour, StackSettings
from core.validation import key_path


@dataclass(frozen=True)
class Change:
    path: str
    value: Any
    safe: bool = False  # a rollback, a canary step back or a standby warming up: allowed at any time


def path(*parts: str) -> str:
    return key_path("release-infra:", parts)


def mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def release_changes(settings: StackSettings, previous: Mapping[str, Any]) -> list[Change]:
    """Every difference between ``settings`` and the previous outputs, in config order; [] for a no-change update."""
    changes = []
    for key, value in (("namespace", settings.namespace), ("access", settings.access.value),
                       ("regions", list(settings.regions))):
        if previous.get(key) != value:
            changes.append(Change(path(key), value))
    before_services = mapping(previous.get("services"))
    for name in before_services:
        if name not in settings.services:
            changes.append(Change(path("services", name), MISSING))
    for name, release in settings.services.items():
        before = before_services.get(name)
        if not isinstance(before, Mapping):
            changes.append(Change(path("services", name), str(release.image(release.active))))
            continue
        colours = mapping(before.get("colours"))
        for colour in COLOURS:
            image, replicas = str(release.image(colour)), settings.replicas_of(name, colour)
            if mapping(colours.get(colour)).get("image") != image:
                changes.append(Change(path("services", name, colour, "image"), image))
            old_replicas = mapping(colours.get(colour)).get("replicas")
            if old_replicas != replicas:
                warming = old_replicas == 0 and colour == release.standby_colour
                changes.append(_replicas_change(settings, name, colour, replicas, safe=warming))
        if before.get("active_colour") != release.active:
            changes.append(Change(path("services", name, "active"), release.active,
                                  safe=is_rollback(before, str(release.image(release.active)), release.active)))
        weight, old_weight = release.canary.weight, before.get("canary_weight")
        if weight != old_weight:
            changes.append(Change(path("services", name, "canary", "weight"), weight,
                                  safe=isinstance(old_weight, int) and weight < old_weight))
    return changes


def is_rollback(before: Mapping[str, Any], image: str, colour: Colour) -> bool:
    """Traffic goes back to ``colour``, which still runs ``image``, an earlier release than the active one (see
    history.is_earlier_release: one that served this environment before the active one first did)."""
    colours = mapping(before.get("colours"))
    active = mapping(colours.get(before.get("active_colour"))).get("image")
    if mapping(colours.get(colour)).get("image") != image or not isinstance(active, str):
        return False
    return is_earlier_release(image, active, previous_history(before)[1])


def _replicas_change(settings: StackSettings, name: str, colour: Colour, replicas: int, safe: bool) -> Change:
    release = settings.services[name]
    if safe or (release.standby.policy == "scaled-down" and release.standby.colour == colour):
        return Change(path("services", name, "standby", "policy"), release.standby.policy, safe)
    return Change(path("services", name, "replicas") if release.replicas else path("replicas"), replicas)
