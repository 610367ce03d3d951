"""release: status, rollback, promote and canary of the environments' blue/green services, as stack updates.

    release status [--format table|json|prometheus] [--output FILE]
    release rollback <env> <service>
    release promote <env> <service> <image> [--synthetic-hook CMD] [--watch 5m]
    release canary <env> <service> <image> [--synthetic-hook CMD] [--bake 15m] [--interval 1m]
    release failed <env> --reason TEXT

Every change is a `pulumi config set --path` on the environment's stack followed by an update, through the
Automation API, so each one is in the stack's history. `failed` changes nothing: after a failed `pulumi up` it
posts a deployment-failed event for each service the update was deploying. Exit status: 0 done; 1 a check failed
(traffic stays on, or went back to, the colour named), or Alertmanager did not take the events; 2 bad input or a
stack that cannot be updated; 130 interrupted.
Details: docs/release.md. A command's own module (release_status, promotion, failed) is imported when it runs, so a
rollback starts without the models and probes it does not use.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from core.errors import MISSING, ConfigError, Problem, without_credentials
from core.names import COLOURS, DEFAULT_CANARY_STEPS, PROJECT, other, warm_again, whole_percent
from release_infra_tools.stacks import Environments, StackError


class UsageError(Exception):
    """Bad input: exit status 2."""


class CheckFailed(Exception):
    """A verification, the watch or the gate said no: exit status 1, traffic where the message says."""


class Interrupted(Exception):
    """Ctrl-C, handled: the message says the state the stack was left in."""


class NotDelivered(Exception):
    """`release failed`: Alertmanager did not take the events (exit status 1); the message names them and why."""


def say(text: str) -> None:
    """Progress for a person and a CI log: a URL's user:password@ never reaches either."""
    print(without_credentials(text), flush=True)


class Stop:
    """Ctrl-C as a flag: a walk stops at its next safe point instead of in the middle of an update.

    A terminal's Ctrl-C also reaches the engine, which cancels an update between two resource operations; the
    stack then applies its previous config again (Environments.update), and the command says where traffic is.
    """

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

    @property
    def kind(self) -> str:
        """The environment the stack is (its `environment` key; a stack named after one is that one)."""
        return str(self.config.get("environment", self.environment))

    def path(self, *parts: str) -> str:
        return ".".join(("services", self.service, *parts))

    @property
    def standby_scaled_down(self) -> bool:
        """A scaled-down standby has no pods to take traffic: neither a promotion nor a rollback can use it."""
        return self.standby_policy.get("policy") == "scaled-down" and self.standby_policy.get("colour") == self.standby


def target(environments: Environments, environment: str, service: str) -> Target:
    config = environments.config(environments.require(environment))
    services = config.get("services")
    if not isinstance(services, dict) or service not in services:
        known = ", ".join(sorted(services)) if isinstance(services, dict) else "none"
        raise UsageError(f"unknown service '{service}' in {environment}; known: {known}")
    release = services[service]
    problems = _release_problems(service, release)
    if problems:  # a stack file edited by hand: one line, before anything changes
        raise UsageError(str(ConfigError(f'stack "{environment}"', problems)))
    canary = release.get("canary") or {}
    return Target(environment=environment, service=service, namespace=str(config.get("namespace", "")),
                  active=release["active"], images={c: release[c]["image"] for c in COLOURS},
                  canary_weight=whole_percent(canary.get("weight", 0)) or 0,  # checked by _release_problems
                  steps=[whole_percent(step) or 0 for step in canary.get("steps", DEFAULT_CANARY_STEPS)],
                  standby_policy=release.get("standby") or {"policy": "warm"}, config=config)


def _release_problems(service: str, release: Any) -> list[Problem]:
    """What the release steps read of a service's config, checked as the program would: a colour that is not
    blue or green would flip to the wrong one, a missing image or a weight that is no number would be a traceback.
    """
    def key(*parts: str) -> str:
        return ".".join((f"{PROJECT}:services", service, *parts))
    if not isinstance(release, dict):
        return [Problem(key(), release, "expected a map with active, blue and green")]
    problems = []
    if release.get("active", MISSING) not in COLOURS:
        problems.append(Problem(key("active"), release.get("active", MISSING), "expected blue or green"))
    for colour in COLOURS:
        spec = release.get(colour)
        image = spec.get("image", MISSING) if isinstance(spec, dict) else MISSING
        if not isinstance(image, str):
            problems.append(Problem(key(colour, "image"), image,
                                    "both colours need an image, <registry>/<service>:<git-sha>-v<semver>"))
    canary = release.get("canary") or {}
    if not isinstance(canary, dict):
        return problems + [Problem(key("canary"), canary, "expected a map with weight and steps")]
    steps = canary.get("steps", DEFAULT_CANARY_STEPS)
    steps = steps if isinstance(steps, (list, tuple)) else []
    for name, numbers in (("weight", [canary.get("weight", 0)]), ("steps", steps)):
        if not numbers or any(whole_percent(number) is None for number in numbers):
            problems.append(Problem(key("canary", name), canary.get(name), "expected whole percentages, 0 to 100"))
    if not isinstance(release.get("standby") or {}, dict):
        problems.append(Problem(key("standby"), release.get("standby"), "expected a map with policy"))
    return problems


def updated(environments: Environments, now: Target, changes: dict[str, str], message: str,
            fresh: bool = False, check: Future[None] | None = None) -> None:
    """One stack update; ``fresh`` when ``now`` was read just before, so its config is what the stack has;
    ``check``: see Environments.update."""
    result = environments.update(now.environment, changes, message, before=now.config if fresh else None,
                                 check=check)
    changed = ", ".join(f"{op} {count}" for op, count in sorted(result.changes.items()) if op != "same") or "none"
    say(f"  {now.environment}: {message} (update {result.seconds:.1f}s; {changed})")


# -- rollback ---------------------------------------------------------------------------------------------------

def rollback(environments: Environments, environment: str, service: str) -> None:
    """Fast, with the checks read while the config is set: a running canary goes to weight 0, otherwise the active
    colour flips back."""
    now = target(environments, environment, service)
    if now.standby_scaled_down and not now.canary_weight:  # refused here, not by the program after a whole run
        raise UsageError(f"the standby colour {now.standby} of {service} in {environment} is scaled down, so it has "
                         f"no pod to take traffic; make it warm and `pulumi up` first (`{warm_again(service)} "
                         f"--stack {environment}`)")
    with ThreadPoolExecutor(max_workers=1) as pool:  # the outputs are read while the config is being set
        if now.canary_weight:
            updated(environments, now, {now.path("canary", "weight"): "0"},
                    f"rollback {service}: canary weight {now.canary_weight}% -> 0, all traffic on {now.active}",
                    fresh=True, check=pool.submit(lambda: refuse_unapplied(
                        now, environments.outputs(environment), overridden=(now.path("canary", "weight"),))))
            say(f"rolled back: {service} in {environment} serves from {now.active} ({now.images[now.active]})")
            return
        check = pool.submit(_refuse_unless_earlier, environments, now)
        updated(environments, now, {now.path("active"): now.standby},
                f"rollback {service}: active {now.active} -> {now.standby}", fresh=True, check=check)
    say(f"rolled back: {service} in {environment} serves from {now.standby} ({now.images[now.standby]})")


def refuse_unapplied(now: Target, outputs: dict[str, Any], *, overridden: tuple[str, ...] = ()) -> None:
    """A release applies its own change only: not a stack file behind another release, nor an edit not applied.
    ``overridden``: config paths the release sets whatever they hold (a rollback's canary weight, say)."""
    from core.release.drift import unapplied  # the release paths only
    differences = [str(d) for d in unapplied(now.config.get("services") or {}, outputs) if d.path not in overridden]
    if differences:
        shown = "; ".join(differences[:5]) + (f"; and {len(differences) - 5} more" if len(differences) > 5 else "")
        raise UsageError(f"Pulumi.{now.environment}.yaml is not what {now.environment}'s last update applied "
                         f"({shown}): pull it if another release changed {now.environment}, or apply or revert "
                         f"the edit (`pulumi preview --stack {now.environment}` shows it) first")


def _refuse_unless_earlier(environments: Environments, now: Target) -> None:
    """A second rollback would put the newer release back on traffic: the standby must run an earlier release than
    the active colour, one that served this environment before it (the stack's `history.served`), by the rule the
    release policy and the deployment events use."""
    from core.policy.history import is_earlier_release, previous_history, with_first_served  # the flip's path only
    outputs = environments.outputs(now.environment)
    refuse_unapplied(now, outputs)
    services = with_first_served(outputs).get("services")
    served = previous_history(services.get(now.service) if isinstance(services, dict) else None)[1]
    back_to, active = now.images[now.standby], now.images[now.active]
    if not is_earlier_release(back_to, active, served):
        raise UsageError(f"{now.standby} of {now.service} in {now.environment} runs {back_to}, not an earlier release "
                         f"than the active {now.active} ({active}): flipping to it is no rollback (was it rolled back "
                         f"already?); to release it again with its checks: `release promote {now.environment} "
                         f"{now.service} {back_to}`")


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
    failed = commands.add_parser("failed", help="after a failed `pulumi up`: post deployment-failed for each service "
                                                "the update was deploying (stack file vs the stack's outputs)")
    failed.add_argument("environment")
    failed.add_argument("--reason", required=True, help="why the update failed, for #deployments and #incidents")
    return top


def _release_options(command: argparse.ArgumentParser) -> None:
    env = os.environ.get
    command.add_argument("--preview-url", default=env("RELEASE_PREVIEW_URL"),
                         help="standby base URL template ({service}, {namespace}, {environment}, {colour})")
    command.add_argument("--active-url", default=env("RELEASE_ACTIVE_URL"), help="active base URL template")
    command.add_argument("--prometheus-url", default=env("RELEASE_PROMETHEUS_URL"))
    command.add_argument("--gateway-url", default=env("RELEASE_GATEWAY_URL"),
                         help="gateway base URL template the trace check sends requests through")
    command.add_argument("--traces-url", default=env("RELEASE_TRACES_URL"),
                         help="Jaeger query API of the trace store; after a switch, a trace must go through the "
                              "gateway into the new colour (required in prod)")
    command.add_argument("--trace-wait", help="how long the trace check's requests may take, then how long it waits "
                                              "for their trace (default 1m)")
    command.add_argument("--synthetic-hook", default=env("RELEASE_SYNTHETIC_HOOK"),
                         help="command run against RELEASE_BASE_URL for Pay-In and Pay-Out; exit 0 passes")
    command.add_argument("--bake", help="canary: time per step (default 15m)")
    command.add_argument("--watch", help="promote and canary: time the new active colour is watched after the switch "
                                         "(default 5m)")
    command.add_argument("--interval", help="time between two looks at health and the gate (default 1m)")
    command.add_argument("--window", help="PromQL range of the error-rate queries (default 5m)")


EXIT_STATUS: tuple[tuple[type[Exception] | tuple[type[Exception], ...], int], ...] = (
    (CheckFailed, 1), (NotDelivered, 1), (Interrupted, 130), (Exception, 2))


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        project_dir = args.project_dir.resolve()
        environments = Environments(project_dir)
        if args.command == "status":
            from release_infra_tools import release_status  # each command imports what only it needs, when it runs
            release_status.status(environments, args.format, args.output)
            return 0
        if args.command == "failed":
            from release_infra_tools import failed
            failed.report(environments, args.environment, args.reason)
            return 0
        with Stop() as stop:
            try:
                if args.command == "rollback":
                    rollback(environments, args.environment, args.service)
                else:
                    from release_infra_tools import promotion
                    promotion.run(args, environments, project_dir, stop)
            except StackError as error:
                if stop.event.is_set():  # Ctrl-C reached the engine too and cancelled the update
                    raise Interrupted(f"interrupted: {error}") from None
                raise
        return 0
    except (CheckFailed, NotDelivered, Interrupted, UsageError, StackError) as error:
        print(f"release {args.command}: {without_credentials(str(error))}", file=sys.stderr)
        return next(code for kinds, code in EXIT_STATUS if isinstance(error, kinds))


if __name__ == "__main__":  # `python -m`: run the package's module, the one promotion's error classes come from
    from release_infra_tools.release import main as package_main
    sys.exit(package_main())
