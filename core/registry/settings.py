"""Settings of the registry retention job: one optional stack key, ``release-infra:retention``, and one secret.

The registry is shared by all four environments, so one stack (normally prod) runs the job; a stack without the
key runs none. The password is its own secret key (``pulumi config set --secret retention_registry_password``) so
the policy stays readable in the stack file while the credential stays encrypted. Must not import core.settings,
which is to import this module.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Mapping

from pydantic import AfterValidator, Field, ValidationError, field_validator

from core.catalogue import DnsLabel, Strict
from core.errors import MISSING, ConfigError, Problem
from core.images import ImageReference
from core.names import ENVIRONMENTS, EnvironmentName
from core.registry.digests import base_url
from core.registry.retention import DEFAULT_KEEP_LAST
from core.validation import key_path, problems_from, structured

PREFIX = "release-infra:"
KEY = "retention"
PASSWORD = "retention_registry_password"
CONFIG_KEYS = (KEY, PASSWORD)
DEFAULT_IMAGE = "registry.pay.internal/release-infra-retention:0000000-v0.1.0"  # replace with the built tool image
_CRON_FIELD = r"(?:\*|[0-9]{1,2}(?:-[0-9]{1,2})?)(?:/[0-9]{1,2})?(?:,(?:\*|[0-9]{1,2}(?:-[0-9]{1,2})?)(?:/[0-9]{1,2})?)*"


_CRON_RANGES = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))


def _cron(schedule: str) -> str:
    """The CronJob's schedule, checked here: the cluster would only refuse it when the update applies it."""
    if not re.fullmatch(rf"{_CRON_FIELD}(?: {_CRON_FIELD}){{4}}", schedule.strip()):
        raise ValueError("must be a five-field cron schedule (minute hour day-of-month month day-of-week) with "
                         "numbers, *, ranges, steps and lists, e.g. '30 3 * * *'")
    problems = []
    for (name, low, high), field in zip(_CRON_RANGES, schedule.split()):
        for item in field.split(","):
            span, _, step = item.partition("/")
            numbers = [int(number) for number in span.split("-") if number != "*"]
            if any(not low <= number <= high for number in numbers):
                problems.append(f"{name} {item} is outside {low}-{high}")
            elif numbers != sorted(numbers):
                problems.append(f"{name} range {item} runs backwards")
            elif step and int(step) == 0:
                problems.append(f"{name} step {item} is 0")
    if problems:
        raise ValueError("; ".join(problems) + " (minute 0-59, hour 0-23, day of month 1-31, month 1-12, day of "
                         "week 0-7 with 0 and 7 Sunday)")
    return schedule.strip()


class RetentionSettings(Strict):
    """The job's policy and how it runs; defaults are seed 000 §11's numbers."""

    keep_last: int = Field(DEFAULT_KEEP_LAST, ge=1, le=10_000, description="Build images kept per service.")
    schedule: Annotated[str, AfterValidator(_cron)] = Field("30 3 * * *", description="Cron schedule, UTC.")
    image: ImageReference = Field(ImageReference.parse(DEFAULT_IMAGE), validate_default=True,
                                  description="The retention tool's image, under the tag rule.")
    apply: bool = Field(False, description="Delete; false runs the job as a dry run that only reports.")
    registry_url: Annotated[str, AfterValidator(base_url)] | None = Field(
        None, description="Base URL of the registry; https://<release-infra:registry> when unset.")
    username: str = Field("release-infra-retention", min_length=1, max_length=128)
    protect_stacks: list[EnvironmentName] = Field(
        list(ENVIRONMENTS), description="Stacks whose outputs name images that are never deleted.")
    deadline_minutes: int = Field(60, ge=5, le=720, description="A run still going after this is stopped.")
    service_account: DnsLabel = "registry-retention"

    @field_validator("protect_stacks")
    @classmethod
    def _every_environment(cls, stacks: list[str]) -> list[str]:
        missing = [stack for stack in ENVIRONMENTS if stack not in stacks]
        if missing or len(set(stacks)) != len(stacks):
            raise ValueError(f"must name each of {', '.join(ENVIRONMENTS)} once: an image any environment runs "
                             f"must never be deleted (missing: {', '.join(missing) or 'none'})")
        return stacks


def load_retention(stack: str, raw: Any, secrets: Mapping[str, Any], registry: str, *,
                   live: bool) -> RetentionSettings | None:
    """Validate ``release-infra:retention`` (absent, an object or its JSON text) and its password secret.

    None when the stack runs no retention job. The image must come from the stack's private ``registry``. With
    ``live`` (a cluster to deploy to) the password secret is required; rendering manifests does without it.
    Raises ConfigError naming every problem; a secret's value is shown as "[secret]", never itself.
    """
    source = f'stack "{stack}"'
    path = lambda *parts: key_path(PREFIX, parts)  # noqa: E731
    raw = structured(raw)
    password = secrets.get(PASSWORD)
    if raw is None:
        if password is not None:
            raise ConfigError(source, [Problem(path(PASSWORD), "[secret]", f"is set but {PREFIX}{KEY} is not; set "
                                               "both to run the retention job, or neither")])
        return None
    if not isinstance(raw, dict):
        raise ConfigError(source, [Problem(path(KEY), raw, "must be an object of retention settings, e.g. "
                                                           "{keep_last: 20, schedule: '30 3 * * *'}")])
    try:
        settings = RetentionSettings.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(source, problems_from(error, PREFIX + KEY, RetentionSettings)) from None
    problems = []
    if settings.image.registry != registry:
        problems.append(Problem(path(KEY, "image"), str(settings.image),
                                f"must come from the private registry {registry}"))
    if password is not None and (not isinstance(password, str) or not password.strip()):
        problems.append(Problem(path(PASSWORD), "[secret]", "must be the registry password of the retention user"))
    if live and password is None:
        problems.append(Problem(path(PASSWORD), MISSING, "the registry password of the retention user (pulumi "
                                "config set --secret retention_registry_password ...); a stack with a cluster runs "
                                "the job"))
    if problems:
        raise ConfigError(source, problems)
    if settings.registry_url is None:
        settings = settings.model_copy(update={"registry_url": f"https://{registry}"})
    return settings
