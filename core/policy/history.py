"""What an environment has run, accumulated in its stack outputs from one update to the next.

Promotion lineage needs history: Prod may run only images Test has run, and Test may have moved on since. Each
update adds the images it runs to the lists its previous outputs carried. Outputs from before the history field
count what they ran then. Images are compared by registry, repository and tag: tags are immutable under the
standard, so a digest pin names the same build.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable, Mapping

from pydantic import AwareDatetime, TypeAdapter, ValidationError

from core.images import ImageReference

HISTORY_LIMIT = 100  # per service and list; the oldest go first (retention keeps 20 builds per service anyway)


def image_key(image: str) -> str:
    """``registry/repository:tag`` without a digest pin."""
    return image.split("@", 1)[0]


def _strings(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def previous_history(service: Any) -> tuple[list[str], list[str]]:
    """(ran, served) of one service's previous outputs: images it has run on a colour with pods, and images that
    have taken its traffic. Anything malformed counts as nothing run."""
    if not isinstance(service, Mapping):
        return [], []
    history = service.get("history") if isinstance(service.get("history"), Mapping) else {}
    ran, served = _strings(history.get("ran")), _strings(history.get("served"))
    colours = service.get("colours") if isinstance(service.get("colours"), Mapping) else {}
    running = [colour.get("image") for colour in colours.values()
               if isinstance(colour, Mapping) and isinstance(colour.get("replicas"), int) and colour["replicas"] > 0]
    active = colours.get(service.get("active_colour"))
    active_image = active.get("image") if isinstance(active, Mapping) else None
    if "history" not in service and isinstance(active_image, str):  # outputs from before the history field
        served = first_served(_standby_image(service), active_image)
    return accumulate(ran, _strings(running)), accumulate(served, _strings([active_image]))


def accumulate(before: list[str], now: Iterable[str]) -> list[str]:
    """``before`` with the images of ``now`` it lacks appended, capped to the newest HISTORY_LIMIT."""
    result, known = list(before), {image_key(image) for image in before}
    for image in now:
        if image_key(image) not in known:
            result.append(image)
            known.add(image_key(image))
    return result[-HISTORY_LIMIT:]


def with_first_served(outputs: Mapping[str, Any]) -> Mapping[str, Any]:
    """``outputs`` as schema 1.2 writes them. Before 1.2 a service's first record held only its active image; a
    service whose traffic has not moved since still has that history alone, and going back to the older standby it
    kept would not be a rollback. Such a history gets first_served's, once: the next update writes it back."""
    version = str(outputs.get("schema_version", ""))
    services = outputs.get("services")
    if version not in ("1.0", "1.1") or not isinstance(services, Mapping):
        return outputs
    upgraded = {}
    for name, service in services.items():
        history = service.get("history") if isinstance(service, Mapping) else None
        colours = service.get("colours") if isinstance(service, Mapping) else None
        served = _strings(history.get("served")) if isinstance(history, Mapping) else []
        if isinstance(colours, Mapping) and len(served) == 1:
            active = colours.get(service.get("active_colour"))
            if isinstance(active, Mapping) and image_key(str(active.get("image"))) == image_key(served[0]):
                service = {**service, "history": {**history, "served": first_served(_standby_image(service),
                                                                                     served[0])}}
        upgraded[name] = service
    return {**outputs, "services": upgraded}


def _standby_image(service: Mapping[str, Any]) -> str | None:
    """The image on the colour that is not active, in a service's outputs."""
    colours = service.get("colours") if isinstance(service.get("colours"), Mapping) else {}
    return next(iter(_strings([colour.get("image") for name, colour in colours.items()
                               if name != service.get("active_colour") and isinstance(colour, Mapping)])), None)


def first_served(standby: str | None, active: str) -> list[str]:
    """What a service's first record takes to have served, oldest first: the active image, after the standby's when
    that is an older version. In the standard's blue/green process the older standby is the release the active one
    replaced, and without this a service's first rollback would have no history to be one."""
    try:
        older = standby is not None and ImageReference.parse(standby).version < ImageReference.parse(active).version
    except ValueError:
        older = False
    return [standby, active] if older and standby is not None else [active]


def is_earlier_release(image: str, active: str, served: Iterable[str]) -> bool:
    """Whether ``image`` is an earlier release than ``active``, so moving traffic to it is a rollback: it took this
    environment's traffic before ``active`` first did (``served``, oldest first). History decides, not versions: a
    hotfix built on an older line (2.2.5 while 2.3.0 serves) has never served, so putting it live is a release,
    judged as one; and going back to 2.3.0 after 2.2.5 was released is a rollback. The release policy and the
    deployment events both decide by this rule."""
    order = [image_key(item) for item in served]
    new_key, old_key = image_key(image), image_key(active)
    return new_key in order and old_key in order and order.index(new_key) < order.index(old_key)


def ran_in(outputs: Mapping[str, Any], service: str) -> set[str]:
    """Image keys that a stack's outputs say it has run of ``service``."""
    services = outputs.get("services") if isinstance(outputs.get("services"), Mapping) else {}
    return {image_key(image) for image in previous_history(services.get(service))[0]}


def switch_time(service: Mapping[str, Any]) -> datetime | None:
    """When a service's outputs say traffic last moved to its active colour; None for outputs from before 1.3 (or
    malformed ones), which recorded no switch."""
    return _moment(service.get("switched_at"))


def canary_step_time(service: Mapping[str, Any]) -> datetime | None:
    """When a service's outputs say its canary weight took its value; None at weight 0 and for outputs from before
    1.4, which recorded no step."""
    return _moment(service.get("canary_stepped_at"))


def _moment(value: Any) -> datetime | None:
    try:
        return _MOMENT.validate_python(value)
    except ValidationError:
        return None


_MOMENT: TypeAdapter[datetime | None] = TypeAdapter(AwareDatetime | None)  # type: ignore[arg-type]
