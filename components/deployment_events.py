"""DeploymentEvents: a dynamic resource per service that tells Alertmanager what each stack update deployed.

Its inputs are the service's active colour, images and canary weight, and the order in which the colours' builds
first took traffic (from the outputs' ``history.served``: telling a rollback to an earlier build of the same
version from a re-promotion needs it). Each changes only with the release, so a no-change update changes nothing.
One more input, the release the stack's last outputs record, is read only by ``create``: a resource made anew for a
service the stack already ran reports what changed since, not a first release.
When an update changes them, the engine calls ``update`` with the old and new inputs; the provider classifies the
change (core.alerting.events) and posts the events to Alertmanager's API, which routes them to #deployments,
#incidents and on-call. The engine never calls ``create`` or ``update`` during a preview, and ``diff`` only
compares, so a preview sends nothing. Without an Alertmanager URL (rendering manifests) the events are only
recorded in the resource's outputs.

A failed post fails the update after the Kubernetes changes are applied (the resource depends on them): the
engine keeps the old inputs, so the next ``pulumi up`` posts the same events again, with the same ``event_id``:
the output ``sequence`` counts the posts, and a retry starts from the same old one (core.alerting.events).

Each resource waits for its service's resources, and through the preview Service for the gateway's rollout and so
every service's workloads; what the update changes besides (alert rules, routing, the retention job, another
service's post) may still fail after one service's change (a rollback, say) is applied and announced. The pipeline
reports the failure itself: the deploy workflow's step after a failed `pulumi up` runs
`release failed <stack> --reason ...` (release_infra_tools/failed.py),
which finds the services the update was deploying from the stack file and the stack's outputs, leaves out those
whose resource here already records the file's release (applied and announced), and posts their events with
``post_alerts``. By hand, one service with every field given (exit status 1 and one line when the post
fails; 2 and one line naming the option when --blue or --green is no image):

    python -m components.deployment_events failed --alertmanager-url URL --stack prod --environment prod \
        --namespace payments-prod --service payin-api --active green \
        --blue IMAGE --green IMAGE --reason "pulumi up failed"
"""

from __future__ import annotations

import argparse
import functools
import http.client
import json
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from typing import Any, Callable, Optional

import pulumi
import pulumi.dynamic
from pulumi.dynamic.dynamic import PROVIDER_KEY, serialize_provider

from core.alerting.events import DeploymentEvent, ReleaseState, classify, failure, postable_alerts
from core.alerting.settings import http_url
from core.errors import without_credentials
from core.images import ImageReference
from core.names import Colour

INPUTS = ("stack", "environment", "namespace", "service", "active", "images", "canary_weight", "served",
          "alertmanager_url")
ATTEMPTS = 3
TIMEOUT_SECONDS = 10


class PostFailed(RuntimeError):
    """Alertmanager did not take the alerts: how many, where and why, for each caller to word its own message."""

    def __init__(self, count: int, url: str, reason: str) -> None:
        reason = without_credentials(reason)  # urllib's own text can repeat the whole URL
        super().__init__(f"posting {count} deployment event(s) to {without_credentials(url)} failed: {reason}")
        self.count, self.reason = count, reason


def post_alerts(alertmanager_url: str, alerts: list[dict[str, Any]], *,
                sleep: Callable[[float], None] = time.sleep) -> None:
    """POST to ``/api/v2/alerts``, retrying twice when Alertmanager cannot be reached or answers 5xx (a 4xx refusal
    is final); PostFailed when no attempt succeeds."""
    try:
        # The program's own rule for the URL: no user:password@ (urllib cannot send it, and its error would repeat
        # the password) and no token. Callers that take the URL from elsewhere (`release failed`) get it here too.
        http_url(alertmanager_url)
        request = urllib.request.Request(alertmanager_url.rstrip("/") + "/api/v2/alerts", method="POST",
                                         data=json.dumps(alerts).encode(),
                                         headers={"Content-Type": "application/json"})
    except ValueError as error:  # not a URL, or not one the program would take
        raise PostFailed(len(alerts), alertmanager_url, str(error)) from error
    error: Exception | None = None
    for attempt in range(ATTEMPTS):
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
                response.read()
                return
        except (urllib.error.URLError, OSError, http.client.HTTPException) as caught:
            error = caught
            if isinstance(caught, http.client.InvalidURL) or (isinstance(caught, urllib.error.HTTPError)
                                                              and caught.code < 500):
                break  # Alertmanager refused the payload, or the URL cannot work: retrying changes nothing
            if attempt + 1 < ATTEMPTS:  # no wait after the last attempt: the update fails at once
                sleep(2 ** attempt)
    raise PostFailed(len(alerts), alertmanager_url, _reason(error)) from error


def _reason(error: Exception | None) -> str:
    """``Connection refused`` rather than ``<urlopen error [Errno 111] Connection refused>``."""
    if isinstance(error, urllib.error.URLError) and not isinstance(error, urllib.error.HTTPError):
        error = error.reason if isinstance(error.reason, Exception) else error
    return getattr(error, "strerror", None) or str(error)


class DeploymentEventsProvider(pulumi.dynamic.ResourceProvider):
    """Classifies an update and posts its events; holds no state and no secret."""

    serialize_as_secret_always = False

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        super().__init__()
        self._clock = clock  # None in the program, so the serialized provider holds no function

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        applied = props.get("applied")  # the release the stack's last outputs record, when it ran the service
        outputs = self._emit(ReleaseState.from_inputs(applied) if applied else None, props, sequence=0)
        return pulumi.dynamic.CreateResult(id_=f"{props['stack']}/{props['service']}", outs=outputs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.DiffResult:
        changed = [key for key in INPUTS if olds.get(key) != news.get(key)]
        return pulumi.dynamic.DiffResult(changes=bool(changed), replaces=[], delete_before_replace=False)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.UpdateResult:
        return pulumi.dynamic.UpdateResult(outs=self._emit(ReleaseState.from_inputs(olds), news,
                                                           sequence=int(olds.get("sequence") or 0)))

    def _emit(self, before: ReleaseState | None, props: dict[str, Any], *, sequence: int) -> dict[str, Any]:
        """``sequence``: the posts the saved state records; a post is the next one, and a retry of an update whose
        post was not saved counts from the same state, so it sends the same ``event_id``."""
        events = classify(props["service"], before, ReleaseState.from_inputs(props))
        url = props.get("alertmanager_url")
        if events and url:
            sequence += 1
            alerts = postable_alerts(events, stack=props["stack"], environment=props["environment"],
                                     namespace=props["namespace"], now=(self._clock or _now)(), sequence=sequence)
            try:
                post_alerts(url, alerts)
            except PostFailed as error:
                raise RuntimeError(f"posting {error.count} deployment event(s) to {url} failed after the change "
                                   f"was applied: {error.reason}; run `pulumi up` again to send them") from error
        return {**{key: props.get(key) for key in INPUTS}, "events": [event.record() for event in events],
                "delivered": bool(events and url), "sequence": sequence}


@functools.cache
def serialized_provider() -> str:
    """The provider as the engine stores it, pickled once per process.

    ``pulumi.dynamic.Resource`` pickles its provider for every resource, and each of the SDK's pickles wraps
    pickle's dict writer in one more sorting wrapper that it never removes: the n-th resource of a process pickles
    through n wrappers, so n services cost O(n^2), and about 980 of them in one process raise RecursionError.
    The provider holds no state and no secret, so one pickle is every resource's.
    """
    return serialize_provider(DeploymentEventsProvider())


class DeploymentEvents(pulumi.dynamic.Resource, module="release-infra", name="DeploymentEvents"):
    """One service's release as the engine sees it; see the module docstring."""

    events: pulumi.Output[list]
    delivered: pulumi.Output[bool]
    sequence: pulumi.Output[int]

    def __init__(self, name: str, *, stack: str, environment: str, namespace: str, service: str,
                 release: ReleaseState, alertmanager_url: Optional[str], applied: Optional[ReleaseState] = None,
                 opts: Optional[pulumi.ResourceOptions] = None) -> None:
        # What pulumi.dynamic.Resource.__init__ registers, with the provider pickled once (serialized_provider).
        # ``applied`` only serves ``create`` (diff reads INPUTS), so it changes nothing on an update; the engine
        # keeps its first value (ignore_changes), so a preview's diff does not show it either.
        pulumi.CustomResource.__init__(self, f"pulumi-python:{self._resource_type_name}", name, {
            "stack": stack, "environment": environment, "namespace": namespace, "service": service,
            **release.inputs(), "alertmanager_url": alertmanager_url,
            "applied": applied.inputs() if applied else None, "events": None, "delivered": None, "sequence": None,
            PROVIDER_KEY: serialized_provider(),
        }, pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(ignore_changes=["applied"])))


def value_error(error: ValueError) -> str:
    """What is wrong with a value, as the rule that refused it says it: pydantic's first message, without its
    "Value error, " prefix, its input and its link."""
    errors = getattr(error, "errors", None)
    return errors()[0]["msg"].removeprefix("Value error, ") if callable(errors) else str(error)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def report_failure(alertmanager_url: str, *, stack: str, environment: str, namespace: str, service: str,
                   release: ReleaseState, reason: str, colour: Optional[Colour] = None,
                   now: datetime | None = None) -> DeploymentEvent:
    """Post a deployment-failed event for a stack update that failed: #deployments and #incidents hear of it."""
    event = failure(service, release, reason, colour)
    post_alerts(alertmanager_url, postable_alerts([event], stack=stack, environment=environment, namespace=namespace,
                                                  now=now or _now(), sequence=0))
    return event


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.deployment_events",
                                     description="Report a failed stack update of one service to Alertmanager, "
                                                 "every field given (the pipeline runs `release failed <stack>`, "
                                                 "which reads them from the stack).")
    sub = parser.add_subparsers(dest="command", required=True)
    failed = sub.add_parser("failed", help="post a deployment-failed event")
    for option in ("alertmanager-url", "stack", "environment", "namespace", "service", "blue", "green", "reason"):
        failed.add_argument(f"--{option}", required=True)
    failed.add_argument("--active", required=True, choices=("blue", "green"))
    failed.add_argument("--colour", choices=("blue", "green"),
                        help="the colour being deployed (default: the standby; for a failed switch, --active)")
    args = parser.parse_args(argv)
    for option in ("blue", "green"):  # the image of --colour is one of them
        try:
            ImageReference.parse(getattr(args, option))
        except ValueError as error:  # one line, not pydantic's traceback: `pulumi up` has failed already
            print(f"--{option} {getattr(args, option)!r}: {value_error(error)}", file=sys.stderr)
            return 2
    try:
        event = report_failure(args.alertmanager_url, stack=args.stack, environment=args.environment,
                               namespace=args.namespace, service=args.service,
                               release=ReleaseState(args.active, args.blue, args.green), reason=args.reason,
                               colour=args.colour)
    except PostFailed as error:  # `pulumi up` has already failed: say so in one line, and fail the step
        print(f"posting deployment-failed for {args.service} to {without_credentials(args.alertmanager_url)} failed: "
              f"{error.reason}", file=sys.stderr)
        return 1
    print(f"posted {event.kind.value} for {event.service}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
