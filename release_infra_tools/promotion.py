"""release promote and release canary: the walks that check the standby colour before it takes traffic.

Kept apart from the command line so a rollback, which runs no checks, does not pay for their imports at start-up.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, NamedTuple

from pydantic import ValidationError

from core.alerting.settings import load_alerting
from core.catalogue import Catalogue, ServiceSpec, catalogue_path
from core.errors import ConfigError
from core.images import ImageReference
from core.names import COLOURS, PROJECT, other, warm_again
from core.policy.history import with_first_served
from core.policy.rules import canary_required
from core.policy.settings import load_policy
from core.release.canary import Progress, remaining_steps
from core.release.drift import unapplied
from core.release.gate import GateReading, LatencyReading, judge, judge_latency
from core.release.options import OptionsError, ReleaseOptions
from core.settings import EnvironmentKind, RateLimit, gateway_with_defaults
from core.validation import problems_from, structured
from release_infra_tools.probes import (Prometheus, PrometheusError, PublicGateway, TraceStore, TraceStoreError,
                                        health_problems, missing_hook, synthetic_problem, through_gateway,
                                        trace_problem_after_switch)
from release_infra_tools.release import (CheckFailed, Interrupted, Stop, Target, UsageError, refuse_unapplied, say,
                                         target, updated)
from release_infra_tools.stacks import ConfigNotPutBack, Environments, StackError


def run(args: argparse.Namespace, environments: Environments, project_dir: Path, stop: Stop) -> None:
    """`release promote` or `release canary` from the parsed command line; bad options are usage errors."""
    try:
        options = ReleaseOptions.build(preview_url=args.preview_url, active_url=args.active_url,
                                       prometheus_url=args.prometheus_url, synthetic_hook=args.synthetic_hook,
                                       gateway_url=args.gateway_url, traces_url=args.traces_url,
                                       trace_wait=args.trace_wait,
                                       bake=args.bake, watch=args.watch, interval=args.interval, window=args.window)
        walk = promote if args.command == "promote" else canary
        walk(environments, project_dir, options, args.environment, args.service, args.image, stop)
    except (OptionsError, ConfigError) as error:
        raise UsageError(str(error)) from None


def check_image(image: str, service: str) -> str:
    try:
        reference = ImageReference.parse(image)
    except ValidationError as error:
        raise UsageError(f"image {image}: {error.errors()[0]['msg'].removeprefix('Value error, ')}") from None
    if reference.service != service:
        raise UsageError(f"image {image} is an image of '{reference.service}', not of '{service}'")
    return str(reference)


def ready_for_release(environments: Environments, now: Target) -> dict[str, Any]:
    """Refuse to start on a stack that a dead update left mid-operation, a stack file that is not what the stack
    applied, or a standby with no pods. Returns the stack's outputs."""
    pending = environments.pending_operations(now.environment)  # first: a killed update also leaves the file set
    if pending:
        raise UsageError(f"stack {now.environment} has pending operations from an interrupted update "
                         f"({', '.join(pending[:3])}); run `pulumi refresh --stack {now.environment}` and check "
                         "the resources before releasing")
    outputs = environments.outputs(now.environment)
    refuse_unapplied(now, outputs)
    if now.standby_scaled_down:
        raise UsageError(f"the standby colour {now.standby} of {now.service} in {now.environment} is scaled down; "
                         f"make it warm and `pulumi up` first (`{warm_again(now.service)} --stack {now.environment}`)")
    return outputs


def load_catalogue(project_dir: Path, service: str) -> Catalogue:
    path = catalogue_path(project_dir, os.environ)
    catalogue = Catalogue.load(path)
    if service not in catalogue.services:
        raise UsageError(f"unknown service '{service}': not in the catalogue {path}")
    return catalogue


def refuse_switch_without_canary(now: Target, catalogue: Catalogue, image: str, outputs: Mapping[str, Any]) -> None:
    """Refused before the standby's update: where the release policy sends a high-risk service's new releases
    through a canary, the program would refuse the switch only after the standby got the image, and a migrating
    service's forward-only migrations had run on the environment's database."""
    environment, service = now.environment, now.service
    policy = load_policy(environment, now.kind, now.config, catalogue)
    services = with_first_served(outputs).get("services")
    before = services.get(service) if isinstance(services, Mapping) else None
    if canary_required(policy, catalogue.services[service], before, image):
        raise UsageError(f"{service} is high-risk and {environment} takes its new releases only through a canary "
                         "(release_policy.canary_for_high_risk), so a blue/green switch to it would be refused; use "
                         f"`release canary {environment} {service} {image}`")


PROD_MINIMUM = {"bake": 900.0, "watch": 300.0}  # seconds; seed 000 §2 (15-minute steps) and §4 (5-minute watch)


def refuse_short_waits(options: ReleaseOptions, now: Target, waits: tuple[str, ...]) -> None:
    """Prod waits as seed 000 asks; a shorter --bake or --watch is for the other environments (and tests)."""
    if now.kind != "prod":
        return
    short = [f"--{wait} {getattr(options, wait):g}s" for wait in waits if getattr(options, wait) < PROD_MINIMUM[wait]]
    if short:
        raise UsageError(f"{' and '.join(short)} is shorter than prod allows: each canary step bakes at least "
                         "15 minutes and a promotion is watched at least 5 (seed 000 §2, §4)")


def gate_thresholds(options: ReleaseOptions, now: Target) -> ReleaseOptions:
    """The gate judges by the stack's own thresholds (release-infra:alerting), the numbers its alerts use: a stack
    that tightens the canary's margin to 0.3 points must not see `release canary` promote a canary 0.9 over."""
    thresholds = load_alerting(now.environment, now.kind, now.config.get("alerting"), {}, live=False).thresholds
    return options.model_copy(update={"canary_threshold_pp": thresholds.canary_error_increase_points,
                                      "watch_threshold_pp": thresholds.baseline_error_increase_points,
                                      "p95_threshold_percent": thresholds.baseline_p95_increase_percent})


def require_hook(options: ReleaseOptions, spec: ServiceSpec, service: str) -> None:
    """Refused before the standby's update: Pay-In and Pay-Out take no traffic without synthetic transactions,
    and a migrating service's new image could not be taken back."""
    missing = missing_hook(options.synthetic_hook, spec, service)
    if missing:
        raise UsageError(missing)


def require_traces(options: ReleaseOptions, now: Target) -> None:
    """Prod verifies that traces flow through the gateway into the new colour (seed 000 §9); the other
    environments may leave the check out."""
    if now.kind == "prod" and options.traces_url is None:
        raise UsageError("prod checks after the switch that traces go through the gateway into the new colour "
                         "(seed 000 §9); give --traces-url (or RELEASE_TRACES_URL), the trace store's Jaeger query "
                         "API")


def stack_rate_limit(now: Target) -> RateLimit:
    """The stack file's gateway.rate_limit over its environment's defaults, which the health routes are rendered
    from. Checked here, before anything changes: a promotion of the image the standby already runs applies no
    update in which the program would check it first."""
    gateway = gateway_with_defaults(now.kind, structured(now.config.get("gateway", {})))
    key, given = (("gateway.rate_limit", gateway.get("rate_limit")) if isinstance(gateway, dict) else
                  ("gateway", gateway))
    try:
        return RateLimit.model_validate(given)
    except ValidationError as error:
        problems = problems_from(error, f"{PROJECT}:{key}", RateLimit)
        raise UsageError(str(ConfigError(f'stack "{now.environment}"', problems))) from None


class TraceCheck:
    """Seed 000 §9's end-to-end traces, at the first look after a switch; nothing without --traces-url."""

    def __init__(self, options: ReleaseOptions, now: Target) -> None:
        self.options, self.now = options, now
        self.store = TraceStore(options.traces_url, options.request_timeout) if options.traces_url else None
        self.gateway = PublicGateway.of(
            options.url(options.gateway_url, service=now.service, namespace=now.namespace,
                        environment=now.environment, colour=now.active),
            EnvironmentKind(now.kind), stack_rate_limit(now))

    def describe(self) -> str:
        return "traces through the gateway" if self.store else "no trace check (no --traces-url)"

    def ready(self, stop: Stop) -> None:
        """Before the switch (and a canary's first step): the store must answer (it is asked again for up to
        --trace-wait) and hold spans of the gateway and the service, and the gateway must answer this machine
        (it routes to the colour that serves now). Found only after the switch, either would flip back."""
        if self.store is None:
            return
        for attempt in range(max(1, int(self.options.trace_wait // 2))):
            if attempt:
                stop.sleep(2)
            try:
                self.store.check(self.gateway.name, self.now.service)
                break
            except TraceStoreError as error:
                problem = str(error)
        else:
            raise CheckFailed(f"the trace check cannot start: {problem}")
        options = self.options
        probes = through_gateway(self.gateway, self.now.service, 1, options.request_timeout,
                                 time.monotonic() + options.trace_wait, stop.sleep)
        unanswered = probes.unanswered(self.gateway.url)
        if unanswered:
            raise CheckFailed(f"the trace check cannot start: {unanswered}")

    def problem(self, colour: str, stop: Stop) -> str | None:
        if self.store is None:
            return None
        problem, seen = trace_problem_after_switch(
            self.store, self.gateway, service=self.now.service, colour=colour, environment=self.now.kind,
            wait=self.options.trace_wait, timeout=self.options.request_timeout, sleep=stop.sleep)
        say(f"  {seen}")
        return problem

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


class Overridden(CheckFailed):
    """Another change moved the stack while this run went on (a `release rollback` from another terminal, say).
    That change wins: any further update of this run (a step, a promotion, a flip back) would undo it."""


@dataclass
class Applied:
    """What this run last applied of what it moves: the active colour, the canary weight and both colours' images.

    Read again before each update and at each look (the stack file, in-process: cheap), so that a change made
    meanwhile stops the run instead of being walked over. Both images: after a switch, the standby is the colour a
    flip back puts traffic on, and another release may have put its own image there.
    """

    environments: Environments
    now: Target
    active: str
    weight: int
    images: dict[str, str]

    def unchanged(self, *, in_stack: bool = False) -> None:
        """The stack file as this run left it; ``in_stack``, before an update that moves the release on: also the
        stack's outputs as this file, since a release from another checkout changes the stack and not this file,
        and this run's next update would undo it."""
        now = self.now
        try:
            fresh = target(self.environments, now.environment, now.service)
        except (UsageError, StackError) as error:  # a stack file edited meanwhile into one no release can read
            raise self._overridden(str(error), None) from None
        moved = [f"{what} {ours} -> {theirs}" for what, ours, theirs in (
            ("active", self.active, fresh.active), ("canary.weight", self.weight, fresh.canary_weight),
            *((f"{colour}.image", self.images[colour], fresh.images[colour]) for colour in COLOURS))
            if ours != theirs]
        if moved:
            raise self._overridden(", ".join(moved), traffic(fresh.active, fresh.canary_weight, fresh.images))
        if in_stack:
            outputs = self.environments.outputs(now.environment)
            differences = [str(difference) for difference in unapplied(fresh.config.get("services") or {}, outputs)]
            if differences:
                raise self._overridden(f"{now.environment}'s last update was not this run's: "
                                       + "; ".join(differences[:5]), applied_traffic(outputs, now.service))

    def _overridden(self, change: str, where: str | None) -> Overridden:
        return Overridden(f"{self.now.service} in {self.now.environment} was changed by someone else while this run "
                          f"went on ({change}): the run stops and leaves the stack as that change set it"
                          + (f", {where}" if where else ""))


def traffic(active: str, weight: int, images: Mapping[str, Any]) -> str:
    """Where a service's traffic is, in words."""
    if not weight:
        return f"all traffic on {active} ({images.get(active)})"
    standby = other(active)  # type: ignore[arg-type]
    return (f"{100 - weight}% of traffic on {active} ({images.get(active)}), {weight}% on {standby} "
            f"({images.get(standby)})")


def applied_traffic(outputs: Mapping[str, Any], service: str) -> str | None:
    """Where the stack's last update left a service's traffic, from its outputs; None when they do not say."""
    services = outputs.get("services")
    applied = services.get(service) if isinstance(services, Mapping) else None
    if not isinstance(applied, Mapping) or applied.get("active_colour") not in COLOURS:
        return None
    colours = applied.get("colours") if isinstance(applied.get("colours"), Mapping) else {}
    images = {colour: (colours.get(colour) or {}).get("image") for colour in COLOURS}
    weight = applied.get("canary_weight")
    return "the stack has " + traffic(applied["active_colour"], weight if isinstance(weight, int) else 0, images)


# -- promote ----------------------------------------------------------------------------------------------------

def checked(now: Target, spec: ServiceSpec, options: ReleaseOptions, base_url: str, stop: Stop,
            synthetic: bool = True) -> list[str]:
    """Health endpoints and, for Pay-In and Pay-Out, the synthetic-transaction hook. A terminal's Ctrl-C reaches
    the hook too and kills it: that is an interruption, not a failed check."""
    stop.check()
    problems = health_problems(base_url, spec, options.request_timeout)
    if synthetic:
        hook = synthetic_problem(options.synthetic_hook, spec, service=now.service, environment=now.environment,
                                 base_url=base_url, timeout=max(options.request_timeout, 60))
        stop.check()
        if hook:
            problems.append(hook)
    return problems


def verify(now: Target, spec: ServiceSpec, options: ReleaseOptions, colour: str, base_url: str, stop: Stop) -> None:
    problems = checked(now, spec, options, base_url, stop)
    if problems:
        raise CheckFailed(f"{colour} failed verification: " + "; ".join(problems))


def promote(environments: Environments, project_dir: Path, options: ReleaseOptions, environment: str,
            service: str, image: str, stop: Stop) -> None:
    now = target(environments, environment, service)
    image = check_image(image, service)
    refuse_short_waits(options, now, ("watch",))
    options = gate_thresholds(options, now)
    catalogue = load_catalogue(project_dir, service)
    spec = catalogue.services[service]
    if now.canary_weight:
        raise UsageError(f"a canary of {service} is running in {environment} at {now.canary_weight}%; finish it "
                         f"or `release rollback {environment} {service}` first")
    if now.images[now.active] == image:
        raise UsageError(f"{service} in {environment} already serves {image} from {now.active}")
    require_hook(options, spec, service)
    require_traces(options, now)
    refuse_switch_without_canary(now, catalogue, image, ready_for_release(environments, now))
    old, new, previous_image = now.active, now.standby, now.images[now.standby]
    # A service that migrates has applied the new image's migrations by the time it is verified; they are
    # forward-only (docs/migrations.md), so its standby cannot go back to the older image after a failure.
    restorable = previous_image != image and spec.migrations is None
    left_on = f"{new} back on {previous_image}" if restorable else f"{new} keeps {image}" + (
        ": its database migrations ran and cannot be undone" if spec.migrations is not None else "")
    urls = service_urls(options, now, new)
    prometheus, traces = Prometheus(options.prometheus_url, options.request_timeout), TraceCheck(options, now)
    applied = Applied(environments, now, active=old, weight=0, images=dict(now.images))
    try:
        if previous_image != image:
            updated(environments, now, {now.path(new, "image"): image}, f"promote {service}: {new} runs {image}")
        applied.images[new] = image
        say(f"verifying {new} at {urls['preview']}")
        try:
            verify(now, spec, options, new, urls["preview"], stop)
            baseline = _baseline(prometheus, now, old, options)
            traces.ready(stop)
            stop.check()  # a Ctrl-C during the baseline's query: still before the switch
            applied.unchanged(in_stack=True)
            updated(environments, now, {now.path("active"): new}, f"promote {service}: active {old} -> {new}")
        except (Overridden, ConfigNotPutBack):
            raise
        except (CheckFailed, Interrupted, StackError) as failure:  # a failed switch: its config was put back
            what = "interrupted before the switch" if isinstance(failure, Interrupted) else str(failure)
            if restorable:
                undo(applied, {now.path(new, "image"): previous_image},
                     f"promote {service}: stopped before the switch, {left_on}", failure,
                     f"{what}; putting {previous_image} back on {new}",
                     f"traffic stays on {old} ({now.images[old]}), {new} keeps {image}")
            raise type(failure)(f"{what}; traffic stays on {old} ({now.images[old]}), {left_on}") from None
        applied.active = new
        watch_or_flip_back(prometheus, traces, applied, spec, options, urls["active"], baseline, stop, "promote")
    finally:
        prometheus.close()
        traces.close()
    say(f"promoted: {service} in {environment} serves {image} from {new}; {old} keeps {now.images[old]} "
        "for a manual rollback")


def service_urls(options: ReleaseOptions, now: Target, colour: str) -> dict[str, str]:
    """Where ``colour`` is reached once it takes traffic ("active") and before ("preview")."""
    return {role: options.url(template, service=now.service, namespace=now.namespace, environment=now.environment,
                              colour=colour)
            for role, template in (("preview", options.preview_url), ("active", options.active_url))}


class Baseline(NamedTuple):
    """What a new colour is held to: the error ratio and the P95 latency (seconds) of the colour that served before
    it, each None without data."""

    error_ratio: float | None
    p95: float | None


def _baseline(prometheus: Prometheus, now: Target, colour: str, options: ReleaseOptions) -> Baseline:
    """The old colour's error ratio and P95. A Prometheus that cannot be asked fails before the switch: the watch
    would fail on its first reading and flip back, two traffic moves and a page for nothing."""
    try:
        return Baseline(prometheus.error_ratio(now.namespace, now.service, colour, options.window),
                        prometheus.p95(now.namespace, now.service, colour, options.window))
    except PrometheusError as error:
        raise CheckFailed(f"the watch cannot start: {error}") from None


def watch(prometheus: Prometheus, traces: TraceCheck, applied: Applied, spec: ServiceSpec, options: ReleaseOptions,
          base_url: str, baseline: Baseline, stop: Stop) -> None:
    """Seed 000 §2/§4/§9: health, the error rate and the P95 latency of the new active colour, and at the first
    look the synthetic transactions through the active Service and a trace through the gateway into the colour;
    any failure flips back.

    Without an error-rate baseline (the old colour served nothing before the switch) the new colour is held to 0%:
    the +0.5 pp limit is then absolute, where no baseline at all would judge nothing and always promote. Without a
    P95 baseline there is no latency to hold it to: its readings say no data, as a colour without requests does.
    """
    now, colour = applied.now, applied.active
    deadline = time.monotonic() + options.watch
    errors = "0% (no data before the switch)" if baseline.error_ratio is None else f"{baseline.error_ratio * 100:.2f}%"
    p95 = "no data before the switch" if baseline.p95 is None else f"{baseline.p95 * 1000:.1f}ms"
    say(f"watching {colour} for {options.watch:g}s (health at {base_url}, errors against a baseline of {errors}, "
        f"P95 against {p95}, {traces.describe()})")
    first = True
    while True:
        applied.unchanged()
        problems = checked(now, spec, options, base_url, stop, synthetic=first)
        trace = traces.problem(colour, stop) if first and not problems else None  # a failure flips back at once
        if trace:
            problems.append(trace)
        if problems:
            raise CheckFailed(f"{colour} failed its checks during the watch: " + "; ".join(problems))
        first = False
        try:
            reading = judge(prometheus.error_ratio(now.namespace, now.service, colour, options.window),
                            baseline.error_ratio or 0.0, options.watch_threshold_pp)
            latency = judge_latency(prometheus.p95(now.namespace, now.service, colour, options.window), baseline.p95,
                                    options.p95_threshold_percent)
        except PrometheusError as error:
            raise CheckFailed(str(error)) from None
        left = deadline - time.monotonic()
        say(f"  watch: {max(0, left):.0f}s left, health ok, {reading.describe()}, {latency.describe()}")
        if reading.verdict == "fail":
            raise CheckFailed(f"{colour} broke the error-rate gate during the watch: {reading.describe()}")
        if latency.verdict == "fail":
            raise CheckFailed(f"{colour} broke the latency gate during the watch: {latency.describe()}")
        if left <= 0:
            return
        stop.sleep(min(options.interval, left))


def watch_or_flip_back(prometheus: Prometheus, traces: TraceCheck, applied: Applied, spec: ServiceSpec,
                       options: ReleaseOptions, base_url: str, baseline: Baseline, stop: Stop, command: str) -> None:
    """After a switch to ``applied.active`` (promote's, or a canary's final one): the watch, and on a failed check
    or a Ctrl-C the flip back (an update named after ``command``) to the colour that served before, which still
    runs its release. The failure keeps its kind, and its message says where traffic is."""
    now, new = applied.now, applied.active
    old = other(new)  # type: ignore[arg-type]
    try:
        watch(prometheus, traces, applied, spec, options, base_url, baseline, stop)
    except Overridden:
        raise
    except (CheckFailed, Interrupted) as failure:
        what = "interrupted during the watch" if isinstance(failure, Interrupted) else str(failure)
        undo(applied, {now.path("active"): old}, f"{command} {now.service}: flip back to {old}", failure,
             f"{what}; the flip back to {old}",
             f"traffic is on {new} ({applied.images[new]}); run `release rollback {now.environment} {now.service}`")
        raise type(failure)(f"{what}; flipped back: traffic on {old} ({applied.images[old]})") from None


# -- canary -----------------------------------------------------------------------------------------------------

def canary(environments: Environments, project_dir: Path, options: ReleaseOptions, environment: str,
           service: str, image: str, stop: Stop) -> None:
    now = target(environments, environment, service)
    image = check_image(image, service)
    refuse_short_waits(options, now, ("bake", "watch"))
    options = gate_thresholds(options, now)
    spec = load_catalogue(project_dir, service).services[service]
    stable, candidate = now.active, now.standby
    if now.canary_weight and now.images[candidate] != image:
        raise UsageError(f"a canary of {now.images[candidate]} is running in {environment} at "
                         f"{now.canary_weight}%; finish it or `release rollback {environment} {service}` first")
    if now.images[stable] == image:
        raise UsageError(f"{service} in {environment} already serves {image} from {stable}")
    require_hook(options, spec, service)
    require_traces(options, now)
    ready_for_release(environments, now)
    urls = service_urls(options, now, candidate)
    prometheus, traces = Prometheus(options.prometheus_url, options.request_timeout), TraceCheck(options, now)
    applied = Applied(environments, now, active=stable, weight=now.canary_weight, images=dict(now.images))
    try:
        if applied.images[candidate] != image:
            updated(environments, now, {now.path(candidate, "image"): image},
                    f"canary {service}: {candidate} runs {image}, weight 0")
        applied.images[candidate] = image
        say(f"verifying {candidate} at {urls['preview']}")
        verify(now, spec, options, candidate, urls["preview"], stop)
        traces.ready(stop)  # here too: a store found down after the last bake would cost the whole canary
        steps = remaining_steps(now.steps, applied.weight)
        baseline = Baseline(None, None)
        for number, step in enumerate(steps, start=len(now.steps) - len(steps) + 1):
            stop.check()
            applied.unchanged(in_stack=True)
            updated(environments, now, {now.path("canary", "weight"): str(step)},
                    f"canary {service}: weight {applied.weight}% -> {step}%" if step > applied.weight else
                    f"canary {service}: weight {step}% again, to bake it" if step == applied.weight else
                    f"canary {service}: weight {applied.weight}% -> {step}%, one step back: at 100% {stable} "
                    "serves nothing to compare with")
            applied.weight = step
            baseline = bake(prometheus, applied, options, number, baseline, stop)
        traces.ready(stop)
        stop.check()
        applied.unchanged(in_stack=True)
        updated(environments, now, {now.path("active"): candidate, now.path("canary", "weight"): "0"},
                f"canary {service}: promoted, active {stable} -> {candidate}, weight 0")
        applied.weight, applied.active = 0, candidate
    except Overridden:
        raise
    except ConfigNotPutBack:
        raise  # no rollback update on a stack file left half-set: the message says how to put it back
    except (CheckFailed, Interrupted, PrometheusError, StackError) as failure:
        weight, candidate_image = applied.weight, applied.images[candidate]  # as applied: what a failure leaves
        engine_state = ""
        if isinstance(failure, StackError) and stop.event.is_set():  # Ctrl-C reached the engine too
            engine_state, failure = f"{failure}; ", Interrupted()
        if weight:
            what = f"interrupted at weight {weight}%" if isinstance(failure, Interrupted) else str(failure)
            undo(applied, {now.path("canary", "weight"): "0"},
                 f"canary {service}: rolled back, weight {weight}% -> 0", failure,
                 f"{engine_state}{what}; the rollback to weight 0",
                 f"the stack config has canary.weight {weight}; run `release rollback {environment} {service}`")
        where = f"all traffic on {stable} ({now.images[stable]}); {candidate} keeps {candidate_image}"
        if isinstance(failure, StackError):
            if not weight:
                raise
            raise StackError(f"{failure}; rolled back to weight 0, {where}") from None
        back = "rolled back to weight 0" if weight else "weight 0"
        if isinstance(failure, Interrupted):
            raise Interrupted(f"{engine_state}interrupted at weight {weight}%: {back}, {where}") from None
        raise CheckFailed(f"{failure}; {back}, {where}") from None
    else:  # seed 000 §9 after the final switch, as after promote's: the stable colour's last bake is the baseline
        watch_or_flip_back(prometheus, traces, applied, spec, options, urls["active"], baseline, stop, "canary")
    finally:
        prometheus.close()
        traces.close()
    say(f"promoted: {service} in {environment} serves {image} from {candidate}; {stable} keeps "
        f"{now.images[stable]} for a manual rollback")


def undo(applied: Applied, changes: dict[str, str], message: str, failure: Exception, undoing: str,
         left: str) -> None:
    """The update that undoes a failed or interrupted step. When it fails too (another update holds the stack,
    the engine errs), the first failure still sets the exit status, and the message says where the stack was
    left and what finishes the job, instead of a bare engine error that hides both. Never after a step whose config
    could not be put back (ConfigNotPutBack): the undo would apply that half-set change, so callers re-raise it.
    Nor over a change someone else made meanwhile (a switch, an image on the colour it would flip back to): the
    undo would walk over it, so the message says where traffic is instead."""
    kind = next((kind for kind in (Interrupted, StackError) if isinstance(failure, kind)), CheckFailed)
    try:  # Ctrl-C and engine errors keep their kind; anything else is a failed check
        applied.unchanged()
    except Overridden as changed:
        raise kind(f"{undoing} was not made: {changed}") from None
    try:
        updated(applied.environments, applied.now, changes, message)
    except StackError as error:
        raise kind(f"{undoing} failed too ({error}): {left}") from None


def bake(prometheus: Prometheus, applied: Applied, options: ReleaseOptions, number: int, baseline: Baseline,
         stop: Stop) -> Baseline:
    """The bake of the step at ``applied.weight``: a look every interval at the error-rate and latency gates; a
    failed reading ends it at once, and the last one must pass both.

    No data is shown as such and does not end the bake, but a bake that ends without data does not promote:
    a canary needs evidence. Returns the stable colour's last ratio and P95, the baseline once it takes no traffic.
    """
    now, weight, candidate, stable = applied.now, applied.weight, applied.now.standby, applied.now.active
    deadline = time.monotonic() + options.bake
    reading: GateReading | None = None
    latency: LatencyReading | None = None
    while True:
        left = deadline - time.monotonic()
        stop.sleep(min(options.interval, max(0.0, left)))
        left = deadline - time.monotonic()
        applied.unchanged()
        reading = prometheus.gate(now.namespace, now.service, candidate, stable, options.window,
                                  options.canary_threshold_pp, fallback_baseline=baseline.error_ratio)
        latency = prometheus.latency_gate(now.namespace, now.service, candidate, stable, options.window,
                                          options.p95_threshold_percent, fallback_baseline=baseline.p95)
        baseline = Baseline(reading.baseline, latency.baseline)  # the stable colour's, or the fallback it kept
        say("  " + Progress(step=number, of=len(now.steps), weight=weight, left_seconds=left, reading=reading,
                            latency=latency).line())
        if reading.verdict == "fail":
            raise CheckFailed(f"canary at {weight}% broke the error-rate gate: {reading.describe()}")
        if latency.verdict == "fail":
            raise CheckFailed(f"canary at {weight}% broke the latency gate: {latency.describe()}")
        if left <= 0:
            break
    for what, last in (("error-rate", reading), ("latency", latency)):
        if last.verdict == "no-data":
            raise CheckFailed(f"no {what} data for the canary at {weight}% at the end of its bake "
                              f"({last.describe()}); a canary is not promoted without evidence")
    return baseline
