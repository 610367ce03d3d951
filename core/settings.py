"""One stack's settings: validated from `Pulumi.<stack>.yaml` against the catalogue before anything is registered."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from enum import Enum
from typing import Annotated, Any, Literal, Mapping

from pydantic import AfterValidator, AwareDatetime, Field, ValidationError, field_validator, model_validator

from core.catalogue import Catalogue, DnsLabel, Strict
from core.errors import ConfigError, Problem
from core.images import ImageReference, is_registry_host
from core.validation import key_path, problems_from

PROJECT = "release-infra"
Colour = Literal["blue", "green"]
COLOURS: tuple[Colour, ...] = ("blue", "green")
Region = Literal["PK", "BD", "NP", "IQ", "EG"]
Replicas = Annotated[int, Field(ge=1, le=50)]
RESERVED_NAMESPACES = {"default", "kube-system", "kube-public", "kube-node-lease"}


class EnvironmentKind(str, Enum):
    SANDBOX = "sandbox"
    DEV = "dev"
    TEST = "test"
    PROD = "prod"


class Access(str, Enum):
    """Who may reach the environment's gateway (seed 000 §1)."""

    INTERNAL = "internal"
    MERCHANTS = "merchants"
    MERCHANTS_AND_CONSUMERS = "merchants-and-consumers"


STANDARD_ACCESS = {
    EnvironmentKind.SANDBOX: Access.MERCHANTS,
    EnvironmentKind.DEV: Access.INTERNAL,
    EnvironmentKind.TEST: Access.INTERNAL,
    EnvironmentKind.PROD: Access.MERCHANTS_AND_CONSUMERS,
}


def other(colour: Colour) -> Colour:
    return "green" if colour == "blue" else "blue"


class ColourSpec(Strict):
    image: ImageReference = Field(description="<registry>/<service>:<git-sha>-v<semver>, optionally @sha256:<digest>.")


class Standby(Strict):
    """What the standby colour does between releases.

    ``warm`` keeps it at full size so a rollback is instant. ``scaled-down`` names the colour to scale to zero
    and when it became standby: allowed only after the manual-rollback window, and never for the active colour,
    so a flip can never route traffic to a colour with no pods.
    """

    policy: Literal["warm", "scaled-down"] = "warm"
    colour: Colour | None = Field(None, description="With scaled-down: the colour to scale to zero.")
    since: AwareDatetime | None = Field(None, description="With scaled-down: when that colour became standby.")

    @model_validator(mode="after")
    def _scaled_down_names_colour_and_time(self) -> "Standby":
        if self.policy == "scaled-down" and (self.colour is None or self.since is None):
            raise ValueError("policy scaled-down needs colour (blue or green) and since (an ISO 8601 time with zone)")
        if self.policy == "warm" and (self.colour is not None or self.since is not None):
            raise ValueError("colour and since go with policy scaled-down only")
        return self


class ServiceRelease(Strict):
    """What one environment runs of one service: an image per colour and which colour takes traffic."""

    active: Colour
    blue: ColourSpec
    green: ColourSpec
    replicas: Replicas | None = Field(None, description="Overrides the stack's replicas for this service.")
    standby: Standby = Standby()

    @property
    def standby_colour(self) -> Colour:
        return other(self.active)

    def image(self, colour: Colour) -> ImageReference:
        return getattr(self, colour).image


class Cluster(Strict):
    """A cluster to deploy to; without one, the program renders manifests to a directory."""

    context: str = Field(min_length=1)
    kubeconfig: str | None = None


class StackSettings(Strict):
    stack: str
    environment: EnvironmentKind
    namespace: DnsLabel
    access: Access
    regions: list[Region] = Field(min_length=1)
    registry: Annotated[str, AfterValidator(is_registry_host)] = Field(
        description="The private registry every image must come from.")
    replicas: Replicas
    rollback_window_minutes: int = Field(60, ge=60, le=1440, description="Seed 000 §4: at least one hour.")
    cluster: Cluster | None = None
    services: dict[str, ServiceRelease] = Field(min_length=1)

    @field_validator("namespace")
    @classmethod
    def _not_reserved(cls, namespace: str) -> str:
        if namespace in RESERVED_NAMESPACES:
            raise ValueError(f"'{namespace}' is reserved by Kubernetes; use a namespace of the environment's own")
        return namespace

    @field_validator("regions")
    @classmethod
    def _unique(cls, regions: list[str]) -> list[str]:
        if len(set(regions)) != len(regions):
            raise ValueError("each region may appear once")
        return regions

    def replicas_of(self, service: str, colour: Colour) -> int:
        release = self.services[service]
        if release.standby.policy == "scaled-down" and release.standby.colour == colour:
            return 0
        return release.replicas or self.replicas


CONFIG_KEYS = tuple(name for name in StackSettings.model_fields if name != "stack")


def load_settings(stack: str, config: Mapping[str, Any], catalogue: Catalogue, now: datetime) -> StackSettings:
    """Validate one stack's config (key -> value, without the project prefix; structured values may be JSON text).

    Raises ConfigError listing every problem, each with its key path, value and what is allowed.
    """
    source = f'stack "{stack}"'
    prefix = f"{PROJECT}:"
    raw: dict[str, Any] = {"stack": stack}
    problems: list[Problem] = []
    for key, value in config.items():
        if key not in CONFIG_KEYS:
            problems.append(Problem(prefix + key, value, f"unknown key; known keys are {', '.join(CONFIG_KEYS)}"))
            continue
        raw[key] = _decode(value)
    try:
        settings = StackSettings.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(source, problems + problems_from(error, prefix)) from None
    problems += _check_against_standard(settings, catalogue, now)
    if problems:
        raise ConfigError(source, problems)
    return settings


def _decode(value: Any) -> Any:
    """Pulumi hands structured config to programs as JSON text."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _check_against_standard(settings: StackSettings, catalogue: Catalogue, now: datetime) -> list[Problem]:
    """Rules that need more than one value: the catalogue, the deployment standard and the clock."""
    path = lambda *parts: key_path(f"{PROJECT}:", parts)  # noqa: E731
    problems = []
    standard = STANDARD_ACCESS[settings.environment]
    if settings.access != standard:
        problems.append(Problem(path("access"), settings.access.value,
                                f"a {settings.environment.value} environment has access '{standard.value}' "
                                "under the deployment standard"))
    minimum = 2 if settings.environment == EnvironmentKind.PROD else 1
    if settings.replicas < minimum:
        problems.append(Problem(path("replicas"), settings.replicas, "prod runs at least 2 replicas per colour"))
    window = timedelta(minutes=settings.rollback_window_minutes)
    for name, release in settings.services.items():
        if name not in catalogue.services:
            problems.append(Problem(path("services"), name,
                                    f"'{name}' is not in the catalogue; known: {', '.join(catalogue.services)}"))
        if release.replicas is not None and release.replicas < minimum:
            problems.append(Problem(path("services", name, "replicas"), release.replicas,
                                    "prod runs at least 2 replicas per colour"))
        for colour in ("blue", "green"):
            image = release.image(colour)
            if image.registry != settings.registry:
                problems.append(Problem(path("services", name, colour, "image"), str(image),
                                        f"must come from the private registry {settings.registry}"))
            if image.service != name:
                problems.append(Problem(path("services", name, colour, "image"), str(image),
                                        f"is an image of '{image.service}', not of '{name}'"))
        standby = release.standby
        if standby.policy == "scaled-down":
            if standby.colour == release.active:
                problems.append(Problem(path("services", name, "standby", "colour"), standby.colour,
                                        "the active colour cannot be scaled down; set standby.policy to warm "
                                        "and update before switching to it"))
            elif now < standby.since + window:
                until = (standby.since + window).strftime("%Y-%m-%d %H:%M UTC")
                problems.append(Problem(path("services", name, "standby", "since"), standby.since.isoformat(),
                                        f"the standby stays runnable for the {settings.rollback_window_minutes}-"
                                        f"minute manual-rollback window: scale it down after {until}"))
    return problems
