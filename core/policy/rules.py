"""The release policy's rules over one update: schedule, strategy by risk class, lineage and feature flags.

The tag rule (every image ``<registry>/<service>:<git-sha>-v<semver>``) is not repeated here: core.settings
refuses any other image before the policy runs.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from core.catalogue import Catalogue, Risk, ServiceSpec
from core.errors import ConfigError, Problem
from core.names import COLOURS
from core.policy.changes import Change, mapping, path, release_changes
from core.policy.history import canary_step_time, image_key, is_earlier_release, previous_history, switch_time
from core.policy.lineage import lineage_problems
from core.policy.settings import EMERGENCY, WEEKDAYS, PolicySettings
from core.settings import DEFAULT_CANARY_STEPS, EnvironmentKind, StackSettings

FLAG_REMOVAL = timedelta(days=30)  # seed 000 §5: flags go within 30 days of full rollout
CANARY_INTERVAL = timedelta(minutes=15)  # seed 000 §2: 5% -> 25% -> 50% -> 100% at 15-minute intervals


class PolicyViolation(ConfigError):
    """The update breaks the release policy; the program fails it like bad config, before registering anything."""

    heading = "release policy refuses the update of {source}"

    def __init__(self, stack: str, problems: list[Problem]):
        super().__init__(f'stack "{stack}"', problems)


def evaluate(settings: StackSettings, policy: PolicySettings, catalogue: Catalogue, previous: Mapping[str, Any],
             upstream_outputs: Mapping[str, Any] | None, now: datetime) -> list[str]:
    """Raise PolicyViolation naming every broken rule; return what to report without failing the update.

    ``previous`` is the stack's last outputs (``{}`` before its first update), ``upstream_outputs`` those of
    ``policy.upstream_stack``. A first update creates the environment: no traffic to protect, so the schedule
    and canary rules have nothing to judge; lineage still holds.
    """
    now = now.astimezone(timezone.utc)  # the train, no-deploy days and messages are in UTC
    problems, reports = [], flag_reports(policy, now)
    if previous:
        schedule, notes = schedule_problems(settings, policy, release_changes(settings, previous), now)
        problems += schedule
        reports += notes
        problems += canary_problems(settings, policy, catalogue, previous, now)
        problems += staging_problems(settings, policy, catalogue, previous)
        problems += rollback_window_problems(settings, previous, now)
        problems += rollback_target_problems(settings, policy, previous, now)
        problems += canary_switch_problems(settings, previous)
    if policy.upstream_stack is not None:
        problems += lineage_problems(settings, previous, policy.upstream_stack, upstream_outputs or {})
    if problems:
        raise PolicyViolation(settings.stack, problems)
    return reports


def schedule_problems(settings: StackSettings, policy: PolicySettings, changes: list[Change],
                      now: datetime) -> tuple[list[Problem], list[str]]:
    """Train window, no-deploy days and freezes; an emergency change record covering ``now`` overrides them."""
    pending: dict[str, Change] = {}  # one per config key: `replicas` alone changes several Deployments
    for change in changes:
        if not change.safe:
            pending.setdefault(change.path, change)
    rules = policy.release_policy
    if not pending:
        return [], []
    reasons = [f'the change freeze "{freeze.reason}" is on until {_utc(freeze.end)} '
               f"(release_policy.freezes[{index}])"
               for index, freeze in enumerate(rules.freezes) if freeze.contains(now)]
    day = WEEKDAYS[now.weekday()]
    if day in rules.no_deploy_weekdays:
        reasons.append(f"no deploys on {day.capitalize()} (release_policy.no_deploy_weekdays)")
    if rules.train is not None and not rules.train.contains(now):
        reasons.append(f"{settings.environment.value} changes only in the release train, {rules.train.describe()}")
    if not reasons:
        return [], []
    emergency = policy.emergency_change
    if emergency is not None and emergency.covers(now):
        return [], [f"emergency change {emergency.id}, approved by {emergency.approver} ({emergency.reason}), "
                    f"overrides: {'; '.join(reasons)}; its post-hoc review is due {_utc(emergency.review_due)}"]
    first = next(iter(pending.values()))
    more = {1: "", 2: " (and 1 more change)"}.get(len(pending), f" (and {len(pending) - 1} more changes)")
    record = (f"; emergency change {emergency.id} covers {_utc(emergency.approved_at)} to "
              f"{_utc(emergency.review_due)} only" if emergency is not None else "")
    return [Problem(first.path, first.value,
                    f"it is {now:%A %Y-%m-%d %H:%M} UTC: {'; '.join(reasons)}; only a rollback or a current "
                    f"emergency change record (release-infra:{EMERGENCY}) may deploy now{record}{more}")], []


def _utc(moment: datetime) -> str:
    return f"{moment.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC"


def canary_problems(settings: StackSettings, policy: PolicySettings, catalogue: Catalogue,
                    previous: Mapping[str, Any], now: datetime) -> list[Problem]:
    """High-risk services (catalogue ``risk: high``) move traffic to a new image only through the canary steps.

    From the previous outputs and the clock: the canary weight on an unchanged standby image advances one step per
    update, each step once the one before has run CANARY_INTERVAL (outputs' ``canary_stepped_at``), and the active
    colour may take an image that has not served this environment only if the previous update had that image on the
    standby colour at 100% for that long. Rollbacks and services new to the environment pass; a current emergency
    change record may shorten the waits, never skip a step. A schedule (``canary.steps``) may add steps to the
    standard's, never leave one out.
    """
    if not policy.release_policy.canary_for_high_risk:
        return []
    problems = []
    for name, release in settings.services.items():
        before = mapping(previous.get("services")).get(name)
        spec = catalogue.services.get(name)
        if spec is None or spec.risk != Risk.HIGH or not isinstance(before, Mapping):
            continue
        steps = release.canary.steps
        schedule = " -> ".join(f"{step}%" for step in steps)
        standby = release.standby_colour
        carried = _weight_on(before, standby, str(release.image(standby)))
        if release.canary.weight > carried:
            skipped = [step for step in DEFAULT_CANARY_STEPS if step not in steps]
            if skipped:  # walked forward: a schedule may add steps, never leave out the standard's
                standard = " -> ".join(f"{step}%" for step in DEFAULT_CANARY_STEPS)
                problems.append(Problem(path("services", name, "canary", "steps"), steps,
                                        f"{name} is high-risk: its canary walks every step of the standard "
                                        f"({standard}, seed 000 §2) and may add more; this schedule leaves out "
                                        f"{', '.join(f'{step}%' for step in skipped)}"))
            expected = next(step for step in steps if step > carried)
            if release.canary.weight != expected:
                problems.append(Problem(path("services", name, "canary", "weight"), release.canary.weight,
                                        f"{name} is high-risk: its canary moves one step per update ({schedule}); "
                                        f"from {carried}% the next step is {expected}%"))
            elif carried:
                problems += _canary_wait(policy, before, now, path("services", name, "canary", "weight"),
                                         release.canary.weight, f"{name}'s canary steps to {release.canary.weight}%")
        image = str(release.image(release.active))
        if not canary_required(policy, spec, before, image):  # a rollback too: its image served before
            continue
        reached = _weight_on(before, release.active, image)
        if reached == 100:
            problems += _canary_wait(policy, before, now, path("services", name, "active"), release.active,
                                     f"traffic moves to {image}")
        else:
            switched = before.get("active_colour") != release.active
            problems.append(Problem(path("services", name, "active") if switched else
                                    path("services", name, release.active, "image"),
                                    release.active if switched else image,
                                    f"{name} is high-risk: traffic moves to {image} only after its canary on the "
                                    f"standby colour reached 100% ({schedule}) in the previous update; it was at "
                                    f"{reached}%"))
    return problems


def staging_problems(settings: StackSettings, policy: PolicySettings, catalogue: Catalogue,
                     previous: Mapping[str, Any]) -> list[Problem]:
    """Seed 000 §2, blue/green: a release goes to the standby colour, is checked there (health checks, synthetic
    transactions: `release promote`), and only then takes traffic. So in prod the active colour takes an image
    that has not served there only if the previous update already ran it on that colour as the standby: neither
    replaced in place on the serving colour nor staged and switched to in one update. A rollback (an image that
    served before) and a service new to the environment pass; high-risk services answer to the canary rule."""
    if settings.environment != EnvironmentKind.PROD:
        return []
    problems = []
    for name, release in settings.services.items():
        before, spec = mapping(previous.get("services")).get(name), catalogue.services.get(name)
        image, colour = str(release.image(release.active)), release.active
        if not isinstance(before, Mapping) or spec is None or canary_required(policy, spec, before, image) \
                or image_key(image) in {image_key(served) for served in previous_history(before)[1]}:
            continue
        staged = mapping(mapping(before.get("colours")).get(colour))
        ran = isinstance(staged.get("replicas"), int) and staged["replicas"] > 0  # scaled down, it checked nothing
        if before.get("standby_colour") == colour and ran and isinstance(staged.get("image"), str) \
                and image_key(staged["image"]) == image_key(image):
            continue
        switched = before.get("active_colour") != colour
        key = path("services", name, "active") if switched else path("services", name, colour, "image")
        problems.append(Problem(key, colour if switched else image,
                                f"{image} has not served {name} in {settings.stack} and was not running on {colour}, "
                                "the standby, in the previous update: a release goes to the standby colour first, is "
                                "checked there, and takes traffic in a later update (seed 000 §2; `release promote` "
                                "does both)"))
    return problems


def _canary_wait(policy: PolicySettings, before: Mapping[str, Any], now: datetime, key: str, value: Any,
                 what: str) -> list[Problem]:
    """The step the previous update set runs CANARY_INTERVAL before the next one, or the switch after 100%: its
    error rates need that long to say anything. Outputs from before 1.4 record no step time and are not held."""
    stepped, emergency = canary_step_time(before), policy.emergency_change
    if stepped is None or now >= stepped + CANARY_INTERVAL or (emergency is not None and emergency.covers(now)):
        return []
    minutes = int(CANARY_INTERVAL.total_seconds() // 60)
    return [Problem(key, value, f"{what} only once {before.get('canary_weight')}%, set at {_utc(stepped)}, has run "
                                f"{minutes} minutes (seed 000 §2): after {_utc(stepped + CANARY_INTERVAL)}, or "
                                f"under a current emergency change record (release-infra:{EMERGENCY})")]


def canary_required(policy: PolicySettings, spec: ServiceSpec, before: Any, image: str) -> bool:
    """Whether traffic may move to ``image`` only after its canary reached 100%: a high-risk service, in a stack
    whose policy canaries them, that already ran there (``before``, its previous outputs), taking an image that has
    not served there before. Also asked by `release promote` before it changes anything."""
    if not policy.release_policy.canary_for_high_risk or spec.risk != Risk.HIGH or not isinstance(before, Mapping):
        return False
    return image_key(image) not in {image_key(served) for served in previous_history(before)[1]}


def rollback_window_problems(settings: StackSettings, previous: Mapping[str, Any], now: datetime) -> list[Problem]:
    """Seed 000 §4: the colour that took traffic until the last switch keeps its pods through the manual-rollback
    window after it. Scaled down in the update that switches away from it, it would leave the Service on a colour
    going to zero while the other one starts, and the switch with nothing to go back to. In a later update the
    window is counted from the switch the previous outputs record (``switched_at``), not from ``standby.since``,
    which is the operator's word and may be left over from an earlier switch. A standby that holds no earlier release
    than the active colour (after a rollback, the release rolled back from; or a build that never served) is no
    rollback target: it may go at once."""
    problems, window = [], timedelta(minutes=settings.rollback_window_minutes)
    for name, release in settings.services.items():
        colour, before = release.standby.colour, mapping(mapping(previous.get("services")).get(name))
        if release.standby.policy != "scaled-down" or colour == release.active:
            continue
        if before.get("active_colour") == colour:
            problems.append(Problem(path("services", name, "standby", "policy"), "scaled-down",
                                    f"{colour} took {name}'s traffic until this update: it stays warm through the "
                                    f"switch and the {settings.rollback_window_minutes}-minute manual-rollback window "
                                    "after it; scale it down in a later update, with standby.since at or after the "
                                    "switch"))
            continue
        colours = {key: mapping(mapping(before.get("colours")).get(key)) for key in COLOURS}
        switched, replicas = switch_time(before), colours[colour].get("replicas")
        images = {key: colours[key].get("image") for key in COLOURS}
        if before.get("active_colour") != release.active or switched is None or now >= switched + window \
                or not isinstance(replicas, int) or replicas == 0 \
                or not all(isinstance(image, str) for image in images.values()) \
                or not is_earlier_release(images[colour], images[release.active], previous_history(before)[1]):
            continue  # the standby holds the release rolled back from, or a build that never served
        problems.append(Problem(path("services", name, "standby", "policy"), "scaled-down",
                                f"{colour} served {name}'s traffic until {_utc(switched)} (the previous outputs' "
                                f"switched_at): it stays runnable for the {settings.rollback_window_minutes}-minute "
                                f"manual-rollback window after that switch, whatever standby.since says; scale it "
                                f"down after {_utc(switched + window)}"))
    return problems


def rollback_target_problems(settings: StackSettings, policy: PolicySettings, previous: Mapping[str, Any],
                             now: datetime) -> list[Problem]:
    """Seed 000 §4: after a promotion, the colour switched away from keeps the release it ran for the manual-rollback
    window, so a rollback has somewhere to go. Its image may not change in the update that switches away from it,
    nor until the window after that switch (outputs' ``switched_at``) has passed. After a rollback (traffic went
    back to a release that served before: the served history decides, not versions, so promoting a rebuild of the
    same version is a promotion) the standby holds the release rolled back from, and a fix may replace it at once.
    A current emergency change record overrides. Prod only: the other environments deploy every merge or
    candidate, and nothing there waits for a rollback an hour later."""
    emergency = policy.emergency_change
    if settings.environment != EnvironmentKind.PROD or (emergency is not None and emergency.covers(now)):
        return []
    window, problems = timedelta(minutes=settings.rollback_window_minutes), []
    for name, release in settings.services.items():
        before = mapping(mapping(previous.get("services")).get(name))
        images = {colour: mapping(mapping(before.get("colours")).get(colour)).get("image") for colour in COLOURS}
        served = before.get("active_colour")
        if served not in COLOURS:
            continue
        switching = served != release.active
        if switching:  # the colour this update leaves is the target from now on
            target, newer, switched = served, str(release.image(release.active)), now
        else:
            target, newer, switched = release.standby_colour, images[served], switch_time(before)
        kept = images[target]
        if switched is None or now >= switched + window or not isinstance(kept, str) \
                or image_key(kept) == image_key(str(release.image(target))) or not isinstance(newer, str) \
                or is_earlier_release(newer, kept, previous_history(before)[1]):  # a rollback's standby: a fix may go
            continue
        when = "this update switches away from it" if switching else f"it served until {_utc(switched)}"
        problems.append(Problem(
            path("services", name, target, "image"), str(release.image(target)),
            f"{target} keeps {kept} for {name}'s manual rollback through the {settings.rollback_window_minutes}-"
            f"minute window after the switch ({when}): change its image after {_utc(switched + window)}, in a later "
            f"update, or under a current emergency change record (release-infra:{EMERGENCY})"))
    return problems


def canary_switch_problems(settings: StackSettings, previous: Mapping[str, Any]) -> list[Problem]:
    """The gateway sends the canary weight to the preview Service, which follows the standby colour: switching the
    active colour with a weight above 0 would send that share to the colour switched away from. A finished canary
    switches and takes the weight to 0 in one update (as `release canary` does); a rollback takes it to 0."""
    problems = []
    for name, release in settings.services.items():
        before = mapping(mapping(previous.get("services")).get(name)).get("active_colour")
        if before in COLOURS and before != release.active and release.canary.weight > 0:
            problems.append(Problem(path("services", name, "active"), release.active,
                                    f"switching {name} to {release.active} with canary.weight "
                                    f"{release.canary.weight} would send {release.canary.weight}% of its traffic to "
                                    f"{before}, the colour switched away from (the weight goes to the standby); "
                                    "set canary.weight to 0 in the same update"))
    return problems


def _weight_on(before: Mapping[str, Any], colour: str, image: str) -> int:
    """The canary weight the previous update gave ``image`` on standby ``colour``; 0 if it was not there."""
    there = mapping(mapping(before.get("colours")).get(colour)).get("image")
    weight = before.get("canary_weight")
    if before.get("standby_colour") == colour and isinstance(there, str) and image_key(there) == image_key(image) \
            and isinstance(weight, int):
        return weight
    return 0


def flag_reports(policy: PolicySettings, now: datetime) -> list[str]:
    """Flags 30 or more days past full rollout: reported on every update, never a failure."""
    reports = []
    for name, flag in sorted(policy.feature_flags.items()):
        if flag.full_rollout_since is not None and now.date() - flag.full_rollout_since >= FLAG_REMOVAL:
            days = (now.date() - flag.full_rollout_since).days
            reports.append(f"feature flag {name} has been fully rolled out since {flag.full_rollout_since} "
                           f"({days} days): remove it from the code, PostHog and release-infra:feature_flags "
                           "(flags go within 30 days of full rollout)")
    return reports
