"""The policy's stack keys: ``release_policy`` (train, no-deploy days, freezes, canary rule), ``emergency_change``,
``feature_flags`` and ``upstream_stack``.

Must not import core.settings, which imports this module for its key names.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime, time, timedelta, timezone
from typing import Annotated, Any, Literal, Mapping

from pydantic import (AfterValidator, AwareDatetime, Field, StringConstraints, ValidationError, field_validator,
                      model_validator)

from core.catalogue import Catalogue, Strict
from core.errors import MISSING, ConfigError, Problem
from core.validation import key_path, problems_from

PREFIX = "release-infra:"
POLICY, EMERGENCY, FLAGS, UPSTREAM = "release_policy", "emergency_change", "feature_flags", "upstream_stack"
CONFIG_KEYS = (POLICY, EMERGENCY, FLAGS, UPSTREAM)
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEKDAYS: tuple[Weekday, ...] = Weekday.__args__  # type: ignore[attr-defined]  (datetime.weekday() order)
REVIEW_WITHIN = timedelta(hours=24)  # seed 000 §7: post-hoc review of an emergency change within 24 h
FLAG_NAME = re.compile(r"^(?P<product>[a-z][a-z0-9]*)-(?P<feature>[a-z0-9]+(?:-[a-z0-9]+)*)\Z")  # not "$": a final \n
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
StackName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")]
ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+\Z")


def _an_address(value: str) -> str:
    if not ADDRESS.match(value):
        raise ValueError("an e-mail address, e.g. cdo@pay.example")
    return value


# A person by their work address: the audit trail of an emergency names someone who can be asked.
Approver = Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, max_length=254),
                     AfterValidator(_an_address)]


class TrainWindow(Strict):
    """The weekly release train: Prod changes start inside this window (seed 000 §6: Tuesday 10:00 UTC).

    Four hours by default: the canary schedule (5 -> 25 -> 50 -> 100 at 15-minute steps) and the 5-minute watch
    after each switch fit for every service, and the window closes well inside the working day of every region.
    """

    weekday: Weekday = "tuesday"
    start: time = Field(time(10, 0), description="UTC, HH:MM.")
    duration_minutes: int = Field(240, ge=30, le=720)

    @field_validator("start")
    @classmethod
    def _in_utc(cls, start: time) -> time:
        """The window is in UTC: "10:00+05:00" would otherwise open at 10:00 UTC while it read as 05:00 UTC."""
        if start.tzinfo is not None and start.utcoffset() != timedelta(0):
            utc = datetime.combine(date(2000, 1, 3), start).astimezone(timezone.utc)
            raise ValueError(f"must be in UTC, HH:MM without an offset: {start:%H:%M%z} is {utc:%H:%M} UTC")
        return start.replace(tzinfo=None)

    def contains(self, now: datetime) -> bool:
        """Whether ``now`` is inside a train that started today or, for a window past midnight, yesterday."""
        length, now = timedelta(minutes=self.duration_minutes), now.astimezone(timezone.utc)
        for days_back in (0, 1):
            day = (now - timedelta(days=days_back)).date()
            if WEEKDAYS[day.weekday()] == self.weekday:
                opens = datetime.combine(day, self.start, tzinfo=now.tzinfo)
                if opens <= now < opens + length:
                    return True
        return False

    def describe(self) -> str:
        closes = (datetime.combine(date(2000, 1, 1), self.start) + timedelta(minutes=self.duration_minutes)).time()
        return f"{self.weekday.capitalize()} {self.start:%H:%M}-{closes:%H:%M} UTC"


class Freeze(Strict):
    """A change freeze (a critical business period): only an emergency change deploys inside it."""

    start: AwareDatetime
    end: AwareDatetime
    reason: Text

    @model_validator(mode="after")
    def _ends_after_it_starts(self) -> "Freeze":
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self

    def contains(self, now: datetime) -> bool:
        return self.start <= now < self.end


class ReleasePolicy(Strict):
    """When the stack may change and how high-risk services move traffic; defaults depend on the environment."""

    train: TrainWindow | None = Field(None, description="Changes only inside this window; none: continuous.")
    no_deploy_weekdays: list[Weekday] = Field(default_factory=list, description="Days with no changes.")
    freezes: list[Freeze] = Field(default_factory=list)
    canary_for_high_risk: bool = Field(False, description="High-risk services take traffic only through a canary.")
    emergency_approvers: list[Approver] = Field(
        default_factory=list, description="Who may approve an emergency change (seed 000: the CDO), by e-mail.")


# Prod follows the train, never deploys on a Friday and canaries high-risk services; the others deploy continuously.
PROD_POLICY = {"train": {}, "no_deploy_weekdays": ["friday"], "canary_for_high_risk": True}


class EmergencyChange(Strict):
    """An approved emergency change (seed 000 §7): it lets changes through outside the train, on a no-deploy day
    or in a freeze from approval until its post-hoc review, which is due within 24 hours."""

    id: Text = Field(description="The change or incident record, e.g. INC-2417.")
    approver: Approver = Field(description="Who approved it, by e-mail: one of release_policy.emergency_approvers.")
    reason: Text
    approved_at: AwareDatetime
    review_due: AwareDatetime = Field(description="Post-hoc review, at most 24 hours after approval.")

    @model_validator(mode="after")
    def _review_within_a_day(self) -> "EmergencyChange":
        if not self.approved_at < self.review_due <= self.approved_at + REVIEW_WITHIN:
            raise ValueError("review_due must be after approved_at and at most 24 hours after it")
        return self

    def covers(self, now: datetime) -> bool:
        return self.approved_at <= now <= self.review_due


class FeatureFlag(Strict):
    """A flag's rollout as the stack knows it; PostHog stays the system of record (seed 000 §5)."""

    rollout_percent: int = Field(ge=0, le=100)
    full_rollout_since: date | None = Field(None, description="When it reached 100%; the 30-day removal counts "
                                                                "from here.")

    @model_validator(mode="after")
    def _date_with_full_rollout(self) -> "FeatureFlag":
        if (self.rollout_percent == 100) != (self.full_rollout_since is not None):
            raise ValueError("full_rollout_since (a date) goes with rollout_percent 100, and only with it")
        return self


class PolicySettings(Strict):
    release_policy: ReleasePolicy
    emergency_change: EmergencyChange | None = None
    feature_flags: dict[str, FeatureFlag] = Field(default_factory=dict)
    upstream_stack: StackName | None = Field(None, description="The stack whose images this one may run.")


def load_policy(stack: str, environment: str, config: Mapping[str, Any], catalogue: Catalogue) -> PolicySettings:
    """Validate the policy keys of one stack (without the project prefix); raises ConfigError naming each problem."""
    raw = {key: _json(config[key]) for key in CONFIG_KEYS if key in config and config[key] is not None}
    given = raw.get(POLICY, {})
    if isinstance(given, dict):
        defaults = PROD_POLICY if environment == "prod" else {}
        raw[POLICY] = {**defaults, **given}
    try:
        policy = PolicySettings.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f'stack "{stack}"', problems_from(error, PREFIX, PolicySettings)) from None
    problems = _against_standard(stack, environment, policy, catalogue)
    if problems:
        raise ConfigError(f'stack "{stack}"', problems)
    return policy


def _json(value: Any) -> Any:
    """Pulumi hands structured config to programs as JSON text."""
    try:
        return json.loads(value) if isinstance(value, str) and value[:1] in "{[" else value
    except ValueError:
        return value


def _against_standard(stack: str, environment: str, policy: PolicySettings, catalogue: Catalogue) -> list[Problem]:
    path = lambda *parts: key_path(PREFIX, parts)  # noqa: E731
    rules, problems = policy.release_policy, []
    if environment == "prod":
        if rules.train is None:
            problems.append(Problem(path(POLICY, "train"), None, "prod follows the weekly release train; set its "
                                    "window (weekday, start, duration_minutes) or leave the defaults"))
        if "friday" not in rules.no_deploy_weekdays:
            problems.append(Problem(path(POLICY, "no_deploy_weekdays"), rules.no_deploy_weekdays,
                                    "prod never deploys on a Friday; the list must include friday"))
        if not rules.canary_for_high_risk:
            problems.append(Problem(path(POLICY, "canary_for_high_risk"), False,
                                    "prod releases high-risk services as canaries; it cannot be switched off"))
        if not rules.emergency_approvers:
            given = "emergency_approvers" in rules.model_fields_set
            problems.append(Problem(path(POLICY, "emergency_approvers"), [] if given else MISSING,
                                    "prod names who may approve an emergency change (seed 000: the CDO), reviewed "
                                    "before an emergency needs it; a list of e-mail addresses"))
        if policy.upstream_stack is None:
            problems.append(Problem(path(UPSTREAM), MISSING, "prod runs only images its upstream environment has "
                                    "run (promoted from Test); name that stack, e.g. test"))
    if rules.train is not None and rules.train.weekday in rules.no_deploy_weekdays:
        problems.append(Problem(path(POLICY, "train", "weekday"), rules.train.weekday,
                                "the train cannot run on a no-deploy day"))
    products = sorted({spec.product for spec in catalogue.services.values()})
    for name in policy.feature_flags:
        match = FLAG_NAME.match(name)
        if match is None or match["product"] not in products:
            problems.append(Problem(path(FLAGS), name, "flags are named {product}-{feature} (lowercase, digits and "
                                    f"'-'), product one of the catalogue's: {', '.join(products)}"))
    emergency = policy.emergency_change
    if emergency is not None and emergency.approver not in rules.emergency_approvers:
        problems.append(Problem(path(EMERGENCY, "approver"), emergency.approver, "not one who may approve an emergency "
                                f"change in this stack ({', '.join(rules.emergency_approvers) or 'none is named'}: "
                                f"{PREFIX}{POLICY}.emergency_approvers)"))
    if policy.upstream_stack == stack:
        problems.append(Problem(path(UPSTREAM), stack, "names the stack that images are promoted from, not this one"))
    return problems
