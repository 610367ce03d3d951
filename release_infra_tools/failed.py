"""release failed: announce a stack update that failed, as the pipeline's step after a failed `pulumi up`.

A failed update leaves the stack's outputs as the last good update exported them (infra.program.export_when_applied).
So the services the update was deploying are the ones whose release in the stack file differs from those outputs
(core.release.drift.unapplied, the comparison the other commands refuse a stale stack file by), less those it
applied before it failed: each service's DeploymentEvents resource waits for the workloads and the gateway, not
for the rest of the update, so one update can roll payin-api back, post the rollback, and then fail on an alert
rule, the routing, the retention job or payout-api's post. A service whose resource, in
the stack's state (`pulumi stack export`, read once), records the file's release was applied and announced, and
is not announced again. The colour each remaining one was deploying follows from the difference:
the new active colour of a switch, otherwise the colour whose image changed (the active one when both did), or the
canary colour when only the canary weight changed. One deployment-failed event per service goes to the stack's
``alerting.alertmanager_url`` in one post (components.deployment_events.post_alerts), routed to #deployments and
#incidents. A stack without a ``cluster`` applies nothing and announces nothing, as the events resource does.

Imported only by this command: components.deployment_events brings the Pulumi SDK with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping

from pydantic import ValidationError

from components.deployment_events import DeploymentEvents, PostFailed, post_alerts, value_error
from core.alerting.events import DeploymentEvent, ReleaseState, failure, postable_alerts
from core.alerting.settings import http_url, refused
from core.errors import ConfigError, Problem, without_credentials
from core.images import ImageReference
from core.names import COLOURS, PROJECT, Colour, other
from core.release.drift import unapplied
from release_infra_tools.release import NotDelivered, Target, UsageError, say, target
from release_infra_tools.stacks import Environments


@dataclass(frozen=True)
class Deploying:
    """A service the failed update was deploying: its release as the stack file has it, and the colour."""

    service: str
    release: ReleaseState
    colour: Colour
    why: str  # what differs, for the log: "the new image on standby green", "the switch to blue", ...


def deploying(environments: Environments, environment: str, services: Mapping[str, Any],
              outputs: Mapping[str, Any]) -> tuple[list[Deploying], list[str]]:
    """The services whose release in the stack file is not what the outputs record, each with the colour being
    deployed; and the services the file drops (a removal deploys no colour, so it is named, not announced).
    A stack never updated has no services in its outputs: every service in its file is a first release."""
    if not isinstance(outputs.get("services"), Mapping):
        outputs = {**outputs, "services": {}}
    changed: dict[str, set[str]] = {}
    removed = []
    for difference in unapplied(services, outputs):
        service, _, field = difference.path.removeprefix("services.").partition(".")
        if difference.in_file is None and not field:
            removed.append(service)
        else:
            changed.setdefault(service, set()).add(field or "service")
    return [_deploying(target(environments, environment, service), fields)
            for service, fields in changed.items()], removed


def _deploying(now: Target, fields: set[str]) -> Deploying:
    """``now``: the service as the stack file has it (release.target refuses a hand-edited one in one line)."""
    state = ReleaseState(active=now.active, blue=now.images["blue"], green=now.images["green"],  # type: ignore[arg-type]
                         canary_weight=now.canary_weight)
    active = state.active
    images = [colour for colour in COLOURS if f"{colour}.image" in fields]
    if "service" in fields:
        colour, why = active, f"its first release here, on {active}"
    elif "active" in fields:
        colour, why = active, f"the switch of traffic to {active}"
    elif images:
        colour = active if active in images else images[0]
        why = f"the new image on {'active' if colour == active else 'standby'} {colour}"
    else:  # only the canary weight: the canary is the standby colour
        colour, why = other(active), f"the canary weight {state.canary_weight}% on {other(active)}"
    try:
        ImageReference.parse(state.image(colour))
    except ValidationError as error:
        problem = Problem(f"{PROJECT}:services.{now.service}.{colour}.image", state.image(colour), value_error(error))
        raise UsageError(str(ConfigError(f'stack "{now.environment}"', [problem]))) from None
    return Deploying(now.service, state, colour, why)


def announced(environments: Environments, environment: str) -> dict[str, ReleaseState]:
    """Each service's release as its DeploymentEvents resource records it in the stack's state: what the last
    update to reach it applied and announced, a failed update too (the engine saves each resource's step as it
    succeeds). A resource without one (state from before its inputs) records nothing."""
    kind = f"pulumi-python:{DeploymentEvents._resource_type_name}"
    states = {}
    for resource in environments.state(environment).get("resources") or []:
        outputs = resource.get("outputs") or {}
        if resource.get("type") == kind and isinstance(outputs.get("images"), Mapping):
            try:
                states[outputs["service"]] = ReleaseState.from_inputs(outputs)
            except (KeyError, TypeError, ValueError):
                continue
    return states


def report(environments: Environments, environment: str, reason: str, *,
           now: datetime | None = None) -> list[DeploymentEvent]:
    """Post one deployment-failed event per service the failed update of ``environment`` was deploying; returns
    them (none when there is nothing to announce or nowhere to announce it). UsageError on bad input,
    NotDelivered when Alertmanager does not take them."""
    environments.require(environment)
    reason = without_credentials(reason.strip())  # it goes to Slack
    if not reason:
        raise UsageError("--reason is empty: say why the update failed (the job's log, say)")
    config = environments.config(environment)
    services = config.get("services") or {}
    alerting = config.get("alerting") or {}
    if not isinstance(services, Mapping) or not isinstance(alerting, Mapping):
        wrong = "services" if not isinstance(services, Mapping) else "alerting"
        raise UsageError(str(ConfigError(f'stack "{environment}"', [
            Problem(f"{PROJECT}:{wrong}", config.get(wrong), "expected a map")])))
    url = alerting.get("alertmanager_url")
    if not config.get("cluster"):
        say(f"{environment} has no cluster (its manifests are rendered, nothing is deployed): no deployment to "
            "announce, nothing posted")
        return []
    if not url:
        say(f"{environment} has no alerting.alertmanager_url: the failed update is not announced, nothing posted")
        return []
    problem = None if isinstance(url, str) else "expected an http(s) URL"
    if problem is None:
        try:
            http_url(url)  # the program's rule: the file may hold a URL that no update applied
        except ValueError as error:
            problem = str(error)
    if problem:  # shown as the program shows it: no user:password@, and a pasted webhook cut short
        raise UsageError(str(refused(f'stack "{environment}"', [
            Problem(f"{PROJECT}:alerting.alertmanager_url", without_credentials(url) if isinstance(url, str) else url,
                    problem)])))
    found, removed = deploying(environments, environment, services, environments.outputs(environment))
    dropped = (f"{', '.join(removed)} removed from Pulumi.{environment}.yaml: a removal deploys no colour, not "
               "announced") if removed else ""
    recorded = announced(environments, environment) if found else {}
    done = [item for item in found if item.service in recorded and recorded[item.service].same_release(item.release)]
    for item in done:
        say(f"{item.service} in {environment}: the failed update applied and announced its release before it failed, "
            "not announced again")
    found = [item for item in found if item not in done]
    if not found:
        say(f"{dropped}; no deployment to announce, nothing posted" if removed else
            "no other deployment to announce, nothing posted" if done else
            f"Pulumi.{environment}.yaml is what {environment}'s last update applied: no deployment to announce, "
            "nothing posted")
        return []
    events = [failure(item.service, item.release, reason, item.colour) for item in found]
    namespace = str(config.get("namespace") or "")
    try:
        post_alerts(url, postable_alerts(events, stack=environment,
                                         environment=str(config.get("environment") or environment),
                                         namespace=namespace, now=now or datetime.now(timezone.utc), sequence=0))
    except PostFailed as error:
        raise NotDelivered(f"posting deployment-failed for {', '.join(item.service for item in found)} to "
                           f"{without_credentials(url)} failed: {error.reason}") from None
    for item, event in zip(found, events):
        say(f"posted deployment-failed for {item.service} in {environment}: {item.colour} {event.version} "
            f"({item.why})")
    if dropped:
        say(dropped)
    return events
