"""Deployment events: what a stack update did to one service, as alerts Alertmanager routes like any other.

A release here is config: an image per colour, which colour is active and the canary weight. Comparing the state
before an update with the state after it tells what happened:

- the active colour moves to another release: the deployment succeeded (a promotion, or a finished canary);
- the active colour moves to an earlier release (core.policy.history.is_earlier_release: one that served before the
  active one first did, by the order the builds first served): a rollback;
- the canary weight goes to 0 on an unchanged standby build: a rollback of the canary (the gate's undo, `release
  rollback`); a drop to another step is no event: `release canary` resuming at 100% steps back one step first, a
  forward move (core.release.canary.remaining_steps);
- only the standby's image changes: a deployment started (the new build is up, not yet taking traffic);
- a service appears: it is live for the first time, which is a successful deployment too. Unless the stack's last
  outputs show it live already (its events resource was made anew, e.g. renamed): that release is then the state
  before (``applied_states``), and an unchanged one is no event.

A failed deployment is not seen here; it comes from the post-deploy alert rules and from ``failure`` below, which
the pipeline calls when ``pulumi up`` fails, for the services whose change that update did not apply.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Iterable, Mapping

from core.images import ImageReference
from core.names import whole_percent
from core.policy.history import image_key, is_earlier_release, previous_history
from core.registry.pinning import pinned
from core.settings import COLOURS, Colour, ServiceRelease, other

# An event stays active this long: a second post of the same event within it is deduplicated by Alertmanager.
HOLD = timedelta(hours=1)


class EventKind(str, Enum):
    STARTED = "deployment-started"
    SUCCEEDED = "deployment-succeeded"
    FAILED = "deployment-failed"
    ROLLBACK = "rollback"


ALERT_NAMES = {
    EventKind.STARTED: "DeploymentStarted",
    EventKind.SUCCEEDED: "DeploymentSucceeded",
    EventKind.FAILED: "DeploymentFailed",
    EventKind.ROLLBACK: "Rollback",
}


@dataclass(frozen=True)
class ReleaseState:
    """The part of a service's config that a deployment changes, and which of the colours' builds took traffic
    first: telling a rollback from a re-promotion of builds of one version needs that order (``served``)."""

    active: Colour
    blue: str
    green: str
    canary_weight: int = 0
    served: tuple[str, ...] = ()  # the colours' builds (no digest) that have served, in the order they first did

    @classmethod
    def of(cls, release: ServiceRelease, served: Iterable[str] = ()) -> "ReleaseState":
        """``served`` is the service's ``history.served`` as this update's outputs have it; only the colours' builds
        are kept, so the state changes only when the release does."""
        return cls(active=release.active, blue=str(release.blue.image), green=str(release.green.image),
                   canary_weight=release.canary.weight,
                   served=_served((str(release.image(colour)) for colour in COLOURS), served))

    @classmethod
    def from_inputs(cls, inputs: Mapping[str, Any]) -> "ReleaseState":
        """State written before ``canary_weight`` and ``served`` were inputs has neither: weight 0, nothing served."""
        return cls(active=inputs["active"], blue=inputs["images"]["blue"], green=inputs["images"]["green"],
                   canary_weight=int(inputs.get("canary_weight") or 0), served=tuple(inputs.get("served") or ()))

    def inputs(self) -> dict[str, Any]:
        """As the events resource takes it (``from_inputs`` reads it back)."""
        return {"active": self.active, "images": {"blue": self.blue, "green": self.green},
                "canary_weight": self.canary_weight, "served": list(self.served)}

    def image(self, colour: Colour) -> str:
        return self.blue if colour == "blue" else self.green

    def same_release(self, other: "ReleaseState") -> bool:
        """The same active colour, builds and canary weight: ``served`` and digests aside, as a stack file has none."""
        return (self.active, self.canary_weight, *map(self.build, COLOURS)) == (
            other.active, other.canary_weight, *map(other.build, COLOURS))

    def version(self, colour: Colour) -> str:
        return str(ImageReference.parse(self.image(colour)).version)

    def build(self, colour: Colour) -> str:
        """The image without a digest: pinning a tag by its digest is no deployment (the tag cannot move)."""
        return self.image(colour).split("@", 1)[0]


@dataclass(frozen=True)
class DeploymentEvent:
    kind: EventKind
    service: str
    colour: Colour
    image: str
    version: str
    previous_image: str | None
    previous_version: str | None
    summary: str

    def record(self) -> dict[str, Any]:
        """Plain data for the resource's outputs."""
        return {**asdict(self), "kind": self.kind.value}


def applied_states(outputs: Mapping[str, Any]) -> dict[str, ReleaseState]:
    """Each service's release as the stack's last outputs record it, pinned as it ran; a service they lack or
    record in part has none."""
    services = outputs.get("services")
    states = {name: _applied(service) for name, service in services.items()} if isinstance(services, Mapping) else {}
    return {name: state for name, state in states.items() if state is not None}


def _applied(service: Any) -> ReleaseState | None:
    if not isinstance(service, Mapping) or service.get("active_colour") not in COLOURS:
        return None
    colours = service.get("colours") if isinstance(service.get("colours"), Mapping) else {}
    images = {}
    for colour in COLOURS:
        record = colours.get(colour) if isinstance(colours.get(colour), Mapping) else {}
        digest = record.get("digest") if isinstance(record.get("digest"), str) else None
        try:  # as the program pins what a colour runs, so the two states compare alike
            images[colour] = str(pinned(ImageReference.parse(record.get("image")), digest))
        except ValueError:
            return None
    _, served = previous_history(service)
    return ReleaseState(active=service["active_colour"], blue=images["blue"], green=images["green"],
                        canary_weight=whole_percent(service.get("canary_weight", 0)) or 0,
                        served=_served(images.values(), served))


def _served(images: Iterable[str], served: Iterable[str]) -> tuple[str, ...]:
    """The builds of ``images`` in the order ``served`` has them."""
    builds = {image_key(image) for image in images}
    return tuple(image_key(image) for image in served if image_key(image) in builds)


def classify(service: str, before: ReleaseState | None, after: ReleaseState) -> list[DeploymentEvent]:
    """The events of one update, in the order they happened: a new standby build before a switch."""
    active = after.active
    if before is None:
        return [_event(EventKind.SUCCEEDED, service, after, active, None,
                       f"{service} {after.version(active)} is live ({active}), first release here")]
    events = []
    standby = other(active)
    if after.build(standby) != before.build(standby) and _withdrawn(before, after, standby):
        events.append(_event(EventKind.FAILED, service, after, standby, before.image(standby),
                             f"{service} {before.version(standby)} withdrawn from standby {standby} before it took "
                             f"traffic; {standby} runs {after.version(standby)} again"))
    elif after.build(standby) != before.build(standby):
        events.append(_event(EventKind.STARTED, service, after, standby, before.image(standby),
                             f"{service} {after.version(standby)} deployed to standby {standby}, not yet live"))
    elif active == before.active and after.canary_weight == 0 < before.canary_weight:
        events.append(_event(EventKind.ROLLBACK, service, after, active, after.image(standby),
                             f"{service} canary rolled back from {before.canary_weight}% to {after.canary_weight}% "
                             f"({standby} {after.version(standby)}), {100 - after.canary_weight}% on {active} "
                             f"{after.version(active)}"))
    previous = before.image(before.active)
    if after.build(active) != before.build(before.active):
        old, new = _release(previous, after.image(active)), _release(after.image(active), previous)
        # Both states' builds: an update that switches back and replaces the other build keeps neither's order alone.
        served = dict.fromkeys([*before.served, *after.served])
        if is_earlier_release(after.image(active), previous, served):
            kind, summary = EventKind.ROLLBACK, f"{service} rolled back from {old} to {new} ({active})"
        else:
            kind, summary = EventKind.SUCCEEDED, f"{service} {new} is live ({active}), replacing {old}"
        events.append(_event(kind, service, after, active, previous, summary))
    return events


def _withdrawn(before: ReleaseState, after: ReleaseState, standby: Colour) -> bool:
    """The standby's new build never took traffic and goes back to one that did: a release that failed its checks
    (``release promote`` and ``release canary`` put the previous image back), not a new deployment."""
    return before.build(standby) not in before.served and after.build(standby) in after.served


def _release(image: str, other_image: str) -> str:
    """The version, or the tag when ``other_image`` is another build of the same version."""
    version, tag = ImageReference.parse(image).version, image_key(image).rsplit(":", 1)[-1]
    return tag if version == ImageReference.parse(other_image).version else str(version)


def failure(service: str, state: ReleaseState, reason: str, colour: Colour | None = None) -> DeploymentEvent:
    """A failed update of one service, reported by the pipeline: ``colour`` is the one being deployed (by default
    the standby of ``state``; for a failed switch, the colour traffic was to move to)."""
    colour = colour or other(state.active)
    return _event(EventKind.FAILED, service, state, colour, None,
                  f"{service}: deployment failed in the stack update: {reason}")


def _event(kind: EventKind, service: str, state: ReleaseState, colour: Colour, previous_image: str | None,
           summary: str) -> DeploymentEvent:
    previous_version = str(ImageReference.parse(previous_image).version) if previous_image else None
    return DeploymentEvent(kind, service, colour, state.image(colour), state.version(colour), previous_image,
                           previous_version, summary)


def postable_alerts(events: list[DeploymentEvent], *, stack: str, environment: str, namespace: str,
                    now: datetime, sequence: int) -> list[dict[str, Any]]:
    """Alertmanager API v2 ``PostableAlerts``; the ``namespace`` label puts them under this environment's routes.

    ``event_id`` holds no clock: event routes group by every label, so a retry of a post whose state the engine
    did not save (a timeout after Alertmanager took it, a cancelled step) must send the same id, or a rollback
    pages twice. ``sequence`` counts the events resource's posts (one more each time), so a real repeat within the
    hold (A -> B -> A -> B) still notifies. A failure is posted by the pipeline, which the engine never retries, and
    a re-run of a failed job keeps its run id in the reason: its post time tells two failures of one run apart.
    """
    alerts = []
    for event in events:
        when = [now.isoformat()] if event.kind == EventKind.FAILED else []
        identity = "|".join([stack, event.service, event.kind.value, event.image, event.previous_image or "",
                             str(sequence), event.summary, *when])
        alerts.append({
            "labels": {
                "alertname": ALERT_NAMES[event.kind],
                "event": event.kind.value,
                "service": event.service,
                "environment": environment,
                "namespace": namespace,
                "stack": stack,
                "color": event.colour,
                "version": event.version,
                "event_id": hashlib.sha256(identity.encode()).hexdigest()[:16],
            },
            "annotations": {
                "summary": event.summary,
                "image": event.image,
                **({"previous_image": event.previous_image} if event.previous_image else {}),
            },
            "startsAt": _timestamp(now),
            "endsAt": _timestamp(now + HOLD),
        })
    return alerts


def _timestamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")

