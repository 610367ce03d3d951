"""release: status, rollback, promote and canary of the environments' blue/green services, as stack updates.

    release status [--format table|json|prometheus] [--output FILE]
    release rollback <env> <service>
    release promote <env> <service> <image> [--synthetic-hook CMD] [--watch 5m]
    release canary <env> <service> <image> [--bake 15m] [--interval 1m]

Every change is a `pulumi config set --path` on the environment's stack followed by an update, through the
Automation API, so each one is in the stack's history. Exit status: 0 done; 1 a check failed (traffic stays on,
or went back to, the colour named); 2 bad input or a stack that cannot be updated; 130 interrupted.
Details: docs/release.md.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from pydantic import ValidationError

from core.catalogue import Catalogue, ServiceSpec
from core.errors import ConfigError
from core.images import ImageReference
from core.release.canary import Progress, remaining_steps
from core.release.gate import GateReading, judge
from core.release.options import OptionsError, ReleaseOptions
from core.release.status import ENVIRONMENTS, StatusError, as_json, environment_status, metrics, table_rows
from core.settings import COLOURS, DEFAULT_CANARY_STEPS, other
from release_infra_tools.probes import Prometheus, PrometheusError, health_problems, synthetic_problem
from release_infra_tools.stacks import Environments, StackError

CATALOGUE_VARIABLE = "RELEASE_INFRA_CATALOGUE"


class UsageError(Exception):
    """Bad input: exit status 2."""


class CheckFailed(Exception):
    """A verification, the watch or the gate said no: exit status 1, traffic where the message says."""


class Interrupted(Exception):
    """Ctrl-C, handled: the message says the state the stack was left in."""


def say(text: str) -> None:
    print(text, flush=True)


# -- status -------------------------------------------------------------------------------------------------------

def status(environments: Environments, output_format: str, output: Path | None) -> None:
    updates = environments.last_updates()
    present = [name for name in ENVIRONMENTS if name in updates]
    if not present:
        raise UsageError("no environment stack exists in this backend (`pulumi stack ls`)")
    outputs = environments.all_outputs(present)
    statuses = [environment_status(name, outputs[name], updates[name]) for name in present]
    if output_format == "json":
        text = json.dumps(as_json(statuses), indent=2) + "\n"
    elif output_format == "prometheus":
        text = _prometheus_text(statuses)
    else:
        text = _table(statuses)
    if output is None:
        sys.stdout.write(text)
    elif output_format == "prometheus":
        from prometheus_client import CollectorRegistry, write_to_textfile
        registry = CollectorRegistry()
        registry.register(_StatusCollector(statuses))
        write_to_textfile(str(output), registry)  # atomic: the collector never reads half a file
    else:
        output.write_text(text)


class _StatusCollector:
    def __init__(self, statuses: list) -> None:  # type: ignore[type-arg]
        self.statuses = statuses

    def collect(self):  # type: ignore[no-untyped-def]
        from prometheus_client.core import GaugeMetricFamily
        for metric in metrics(self.statuses):
            names = sorted({label for sample in metric.samples for label in sample.labels})
            family = GaugeMetricFamily(metric.name, metric.help, labels=names)
            for sample in metric.samples:
                family.add_metric([sample.labels.get(name, "") for name in names], sample.value)
            yield family


def _prometheus_text(statuses: list) -> str:  # type: ignore[type-arg]
    from prometheus_client import CollectorRegistry, generate_latest
    registry = CollectorRegistry()
    registry.register(_StatusCollector(statuses))
    return generate_latest(registry).decode()


def _table(statuses: list) -> str:  # type: ignore[type-arg]
    from rich.console import Console
    from rich.table import Table
    table = Table(title="release status", show_lines=True)
    table.add_column("service")
    for status_ in statuses:
        updated = status_.last_update.strftime("%Y-%m-%d %H:%M UTC") if status_.last_update else "never updated"
        table.add_column(f"{status_.environment}\n{updated}")
    for row in table_rows(statuses):
        table.add_row(*row)
    console = Console(width=160, force_terminal=False, color_system=None, record=True)
    with console.capture() as capture:
        console.print(table)
    return capture.get()


# -- one service of one environment ----------------------------------------------------------------------------

@dataclass
class Target:
    """One service of one environment as its stack config has it now."""

    environment: str
    service: str
    namespace: str
    active: str
    images: dict[str, str]
    canary_weight: int
    steps: list[int]
    standby_policy: dict[str, Any]
    config: dict[str, Any]

    @property
    def standby(self) -> str:
        return other(self.active)  # type: ignore[arg-type]

    def path(self, *parts: str) -> str:
        return ".".join(("services", self.service, *parts))


def target(environments: Environments, environment: str, service: str) -> Target:
    config = environments.config(environments.require(environment))
    services = config.get("services")
    if not isinstance(services, dict) or service not in services:
        known = ", ".join(sorted(services)) if isinstance(services, dict) else "none"
        raise UsageError(f"unknown service '{service}' in {environment}; known: {known}")
    release = services[service]
    canary = release.get("canary") or {}
    return Target(environment=environment, service=service, namespace=str(config.get("namespace", "")),
                  active=release["active"], images={c: release[c]["image"] for c in COLOURS},
                  canary_weight=int(canary.get("weight", 0)),
                  steps=[int(step) for step in canary.get("steps", DEFAULT_CANARY_STEPS)],
                  standby_policy=release.get("standby") or {"policy": "warm"}, config=config)


def check_image(image: str, service: str) -> str:
    try:
        reference = ImageReference.parse(image)
    except ValidationError as error:
        raise UsageError(f"image {image}: {error.errors()[0]['msg'].removeprefix('Value error, ')}") from None
    if reference.service != service:
        raise UsageError(f"image {image} is an image of '{reference.service}', not of '{service}'")
    return str(reference)


def ready_for_release(environments: Environments, now: Target) -> None:
    """Refuse to start on a stack that a dead update left mid-operation, or a standby with no pods."""
    pending = environments.pending_operations(now.environment)
    if pending:
        raise UsageError(f"stack {now.environment} has pending operations from an interrupted update "
                         f"({', '.join(pending[:3])}); run `pulumi refresh --stack {now.environment}` and check "
                         "the resources before releasing")
    if now.standby_policy.get("policy") == "scaled-down" and now.standby_policy.get("colour") == now.standby:
        raise UsageError(f"the standby colour {now.standby} of {now.service} in {now.environment} is scaled down; "
                         f"set services.{now.service}.standby.policy to warm first")


def load_spec(project_dir: Path, service: str) -> ServiceSpec:
    path = Path(os.environ.get(CATALOGUE_VARIABLE) or project_dir / "catalogue.yaml")
    catalogue = Catalogue.load(path)
    if service not in catalogue.services:
        raise UsageError(f"unknown service '{service}': not in the catalogue {path}")
    return catalogue.services[service]


def updated(environments: Environments, now: Target, changes: dict[str, str], message: str,
            fresh: bool = False) -> None:
    """One stack update; ``fresh`` when ``now`` was read just before, so its config is what the stack has."""
    result = environments.update(now.environment, changes, message, before=now.config if fresh else None)
    changed = ", ".join(f"{op} {count}" for op, count in sorted(result.changes.items()) if op != "same") or "none"
    say(f"  {now.environment}: {message} (update {result.seconds:.1f}s; {changed})")


# -- rollback ---------------------------------------------------------------------------------------------------

def rollback(environments: Environments, environment: str, service: str) -> None:
    """Fast and without checks: a running canary goes to weight 0, otherwise the active colour flips back."""
    now = target(environments, environment, service)
    if now.canary_weight:
        updated(environments, now, {now.path("canary", "weight"): "0"},
                f"rollback {service}: canary weight {now.canary_weight}% -> 0, all traffic on {now.active}",
                fresh=True)
        say(f"rolled back: {service} in {environment} serves from {now.active} ({now.images[now.active]})")
        return
    updated(environments, now, {now.path("active"): now.standby},
            f"rollback {service}: active {now.active} -> {now.standby}", fresh=True)
    say(f"rolled back: {service} in {environment} serves from {now.standby} ({now.images[now.standby]})")


# -- promote ----------------------------------------------------------------------------------------------------

class Stop:
    """Ctrl-C as a flag: the walk stops at the next safe point instead of in the middle of an update."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def __enter__(self) -> "Stop":
        self.previous = signal.signal(signal.SIGINT, lambda *_: self.event.set())
        return self

    def __exit__(self, *_: object) -> None:
        signal.signal(signal.SIGINT, self.previous)

    def sleep(self, seconds: float) -> None:
        if self.event.wait(max(0.0, seconds)):
            raise Interrupted()

    def check(self) -> None:
        if self.event.is_set():
            raise Interrupted()


def verify(now: Target, spec: ServiceSpec, options: ReleaseOptions, colour: str, base_url: str) -> None:
    problems = health_problems(base_url, spec, options.request_timeout)
    hook = synthetic_problem(options.synthetic_hook, spec, service=now.service, environment=now.environment,
                             base_url=base_url, timeout=max(options.request_timeout, 60))
    if hook:
        problems.append(hook)
    if problems:
        raise CheckFailed(f"{colour} failed verification: " + "; ".join(problems))


def promote(environments: Environments, project_dir: Path, options: ReleaseOptions, environment: str,
            service: str, image: str, stop: Stop) -> None:
    now = target(environments, environment, service)
    image = check_image(image, service)
    spec = load_spec(project_dir, service)
    if now.canary_weight:
        raise UsageError(f"a canary of {service} is running in {environment} at {now.canary_weight}%; finish it "
                         f"or `release rollback {environment} {service}` first")
    if now.images[now.active] == image:
        raise UsageError(f"{service} in {environment} already serves {image} from {now.active}")
    ready_for_release(environments, now)
    old, new, previous_image = now.active, now.standby, now.images[now.standby]
    # A service that migrates has applied the new image's migrations by the time it is verified; they are
    # forward-only (docs/migrations.md), so its standby cannot go back to the older image after a failure.
    restorable = previous_image != image and spec.migrations is None
    left_on = f"{new} back on {previous_image}" if restorable else f"{new} keeps {image}" + (
        ": its database migrations ran and cannot be undone" if spec.migrations is not None else "")
    urls = {role: options.url(template, service=service, namespace=now.namespace, environment=environment,
                              colour=colour)
            for role, template, colour in (("preview", options.preview_url, new), ("active", options.active_url, new))}
    prometheus = Prometheus(options.prometheus_url, options.request_timeout)
    try:
        if previous_image != image:
            updated(environments, now, {now.path(new, "image"): image}, f"promote {service}: {new} runs {image}")
        say(f"verifying {new} at {urls['preview']}")
        try:
            stop.check()
            verify(now, spec, options, new, urls["preview"])
        except (CheckFailed, Interrupted) as failure:
            if restorable:
                updated(environments, now, {now.path(new, "image"): previous_image},
                        f"promote {service}: verification stopped, {left_on}")
            if isinstance(failure, Interrupted):
                raise Interrupted(f"interrupted before the switch: traffic stays on {old} ({now.images[old]}), "
                                  f"{left_on}") from None
            raise CheckFailed(f"{failure}; traffic stays on {old} ({now.images[old]}), {left_on}") from None
        baseline = _ratio_or_none(prometheus, now, old, options)
        updated(environments, now, {now.path("active"): new}, f"promote {service}: active {old} -> {new}")
        try:
            watch(prometheus, now, spec, options, new, urls["active"], baseline, stop)
        except (CheckFailed, Interrupted) as failure:
            updated(environments, now, {now.path("active"): old}, f"promote {service}: flip back to {old}")
            if isinstance(failure, Interrupted):
                raise Interrupted(f"interrupted during the watch: flipped back, traffic on {old} "
                                  f"({now.images[old]})") from None
            raise CheckFailed(f"{failure}; flipped back: traffic on {old} ({now.images[old]})") from None
    finally:
        prometheus.close()
    say(f"promoted: {service} in {environment} serves {image} from {new}; {old} keeps {now.images[old]} "
        "for a manual rollback")


def _ratio_or_none(prometheus: Prometheus, now: Target, colour: str, options: ReleaseOptions) -> float | None:
    try:
        return prometheus.error_ratio(now.namespace, now.service, colour, options.window)
    except PrometheusError as error:
        say(f"  baseline: {error}")
        return None


def watch(prometheus: Prometheus, now: Target, spec: ServiceSpec, options: ReleaseOptions, colour: str,
          base_url: str, baseline: float | None, stop: Stop) -> None:
    """Seed 000 §2/§4: health and the error rate of the new active colour; any failure flips back."""
    deadline = time.monotonic() + options.watch
    say(f"watching {colour} for {options.watch:g}s (health at {base_url}, errors against a baseline of "
        f"{'no data' if baseline is None else f'{baseline * 100:.2f}%'})")
    while True:
        problems = health_problems(base_url, spec, options.request_timeout)
        if problems:
            raise CheckFailed(f"{colour} failed its health checks during the watch: " + "; ".join(problems))
        try:
            reading = judge(prometheus.error_ratio(now.namespace, now.service, colour, options.window), baseline,
                            options.watch_threshold_pp)
        except PrometheusError as error:
            raise CheckFailed(str(error)) from None
        left = deadline - time.monotonic()
        say(f"  watch: {max(0, left):.0f}s left, health ok, {reading.describe()}")
        if reading.verdict == "fail":
            raise CheckFailed(f"{colour} broke the error-rate gate during the watch: {reading.describe()}")
        if left <= 0:
            return
        stop.sleep(min(options.interval, left))


# -- canary -----------------------------------------------------------------------------------------------------

def canary(environments: Environments, project_dir: Path, options: ReleaseOptions, environment: str,
           service: str, image: str, stop: Stop) -> None:
    now = target(environments, environment, service)
    image = check_image(image, service)
    spec = load_spec(project_dir, service)
    stable, candidate = now.active, now.standby
    if now.canary_weight and now.images[candidate] != image:
        raise UsageError(f"a canary of {now.images[candidate]} is running in {environment} at "
                         f"{now.canary_weight}%; finish it or `release rollback {environment} {service}` first")
    if now.images[stable] == image:
        raise UsageError(f"{service} in {environment} already serves {image} from {stable}")
    ready_for_release(environments, now)
    prometheus = Prometheus(options.prometheus_url, options.request_timeout)
    weight = now.canary_weight
    try:
        if now.images[candidate] != image:
            updated(environments, now, {now.path(candidate, "image"): image},
                    f"canary {service}: {candidate} runs {image}, weight 0")
        problems = health_problems(options.url(options.preview_url, service=service, namespace=now.namespace,
                                               environment=environment, colour=candidate),
                                   spec, options.request_timeout)
        if problems:
            raise CheckFailed(f"{candidate} is not healthy before the first step: " + "; ".join(problems))
        steps = remaining_steps(now.steps, weight)
        baseline: float | None = None
        for number, step in enumerate(steps, start=len(now.steps) - len(steps) + 1):
            stop.check()
            updated(environments, now, {now.path("canary", "weight"): str(step)},
                    f"canary {service}: weight {weight}% -> {step}%")
            weight = step
            baseline = bake(prometheus, now, options, number, step, candidate, stable, baseline, stop)
        stop.check()
        updated(environments, now, {now.path("active"): candidate, now.path("canary", "weight"): "0"},
                f"canary {service}: promoted, active {stable} -> {candidate}, weight 0")
        weight = 0
    except (CheckFailed, Interrupted, PrometheusError, StackError) as failure:
        if isinstance(failure, StackError) and stop.event.is_set():
            failure = Interrupted()  # Ctrl-C reached the engine too and cancelled that update
        if weight:
            try:
                updated(environments, now, {now.path("canary", "weight"): "0"},
                        f"canary {service}: rolled back, weight {weight}% -> 0")
            except StackError as error:
                raise StackError(f"{failure}; the rollback update failed too ({error}): the stack config has "
                                 f"canary.weight {weight}; run `release rollback {environment} {service}`") from None
        where = f"all traffic on {stable} ({now.images[stable]}); {candidate} keeps {image}"
        if isinstance(failure, StackError):
            if not weight:
                raise
            raise StackError(f"{failure}; rolled back to weight 0, {where}") from None
        if isinstance(failure, Interrupted):
            raise Interrupted(f"interrupted at weight {weight}%: rolled back to weight 0, {where}") from None
        raise CheckFailed(f"{failure}; rolled back to weight 0, {where}") from None
    finally:
        prometheus.close()
    say(f"promoted: {service} in {environment} serves {image} from {candidate}; {stable} keeps "
        f"{now.images[stable]} for a manual rollback")


def bake(prometheus: Prometheus, now: Target, options: ReleaseOptions, number: int, weight: int, candidate: str,
         stable: str, baseline: float | None, stop: Stop) -> float | None:
    """One step's bake: a look every interval; a failed reading ends it at once, and the last one must pass.

    No data is shown as such and does not end the bake, but a bake that ends without data does not promote:
    a canary needs evidence. Returns the stable colour's last ratio, the baseline once it takes no traffic.
    """
    deadline = time.monotonic() + options.bake
    reading: GateReading | None = None
    while True:
        left = deadline - time.monotonic()
        stop.sleep(min(options.interval, max(0.0, left)))
        left = deadline - time.monotonic()
        reading = prometheus.gate(now.namespace, now.service, candidate, stable, options.window,
                                  options.canary_threshold_pp, fallback_baseline=baseline)
        if reading.baseline is not None:
            baseline = reading.baseline
        say("  " + Progress(step=number, of=len(now.steps), weight=weight, left_seconds=left, reading=reading).line())
        if reading.verdict == "fail":
            raise CheckFailed(f"canary at {weight}% broke the error-rate gate: {reading.describe()}")
        if left <= 0:
            break
    if reading.verdict == "no-data":
        raise CheckFailed(f"no error-rate data for the canary at {weight}% at the end of its bake "
                          f"({reading.describe()}); a canary is not promoted without evidence")
    return baseline


# -- command line -----------------------------------------------------------------------------------------------

def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="release", description=__doc__.splitlines()[0])
    top.add_argument("--project-dir", type=Path, default=Path.cwd(),
                     help="the release-infra project (Pulumi.yaml and the stack files); default: here")
    commands = top.add_subparsers(dest="command", required=True)
    status_ = commands.add_parser("status", help="every environment's colours, images and canary weights")
    status_.add_argument("--format", choices=("table", "json", "prometheus"), default="table")
    status_.add_argument("--output", type=Path, help="write here (prometheus: atomically, for the textfile collector)")
    back = commands.add_parser("rollback", help="flip the active colour back, or end a canary; no checks")
    for command in (back,):
        command.add_argument("environment")
        command.add_argument("service")
    for name, help_ in (("promote", "verify the standby with the image, switch, watch, flip back on failure"),
                        ("canary", "walk the canary steps with the error-rate gate, promote at 100%%")):
        command = commands.add_parser(name, help=help_)
        command.add_argument("environment")
        command.add_argument("service")
        command.add_argument("image")
        _release_options(command)
    return top


def _release_options(command: argparse.ArgumentParser) -> None:
    env = os.environ.get
    command.add_argument("--preview-url", default=env("RELEASE_PREVIEW_URL"),
                         help="standby base URL template ({service}, {namespace}, {environment}, {colour})")
    command.add_argument("--active-url", default=env("RELEASE_ACTIVE_URL"), help="active base URL template")
    command.add_argument("--prometheus-url", default=env("RELEASE_PROMETHEUS_URL"))
    command.add_argument("--synthetic-hook", default=env("RELEASE_SYNTHETIC_HOOK"),
                         help="command run against RELEASE_BASE_URL for Pay-In and Pay-Out; exit 0 passes")
    command.add_argument("--bake", help="canary: time per step (default 15m)")
    command.add_argument("--watch", help="promote: time the new active colour is watched (default 5m)")
    command.add_argument("--interval", help="time between two looks at health and the gate (default 1m)")
    command.add_argument("--window", help="PromQL range of the error-rate queries (default 5m)")


EXIT_STATUS: tuple[tuple[type[Exception] | tuple[type[Exception], ...], int], ...] = (
    (CheckFailed, 1), (Interrupted, 130), (Exception, 2))


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        project_dir = args.project_dir.resolve()
        environments = Environments(project_dir)
        if args.command == "status":
            status(environments, args.format, args.output)
            return 0
        if args.command == "rollback":
            rollback(environments, args.environment, args.service)
            return 0
        options = ReleaseOptions.build(preview_url=args.preview_url, active_url=args.active_url,
                                       prometheus_url=args.prometheus_url, synthetic_hook=args.synthetic_hook,
                                       bake=args.bake, watch=args.watch, interval=args.interval, window=args.window)
        run: Callable[..., None] = promote if args.command == "promote" else canary
        with Stop() as stop:
            run(environments, project_dir, options, args.environment, args.service, args.image, stop)
        return 0
    except (CheckFailed, Interrupted, UsageError, StackError, StatusError, OptionsError, ConfigError) as error:
        print(f"release {args.command}: {error}", file=sys.stderr)
        return next(code for kinds, code in EXIT_STATUS if isinstance(error, kinds))


if __name__ == "__main__":
    sys.exit(main())
