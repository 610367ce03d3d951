"""What every environment runs, read from the stack outputs: one row per environment and service.

The same rows feed the table for people, the JSON for tools and the textfile-collector metrics for dashboards,
so the three views cannot disagree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.names import COLOURS, Colour

class StatusError(Exception):
    """Outputs that cannot be read as the versioned stack outputs: one line naming the environment."""


class ColourStatus(BaseModel):
    model_config = ConfigDict(frozen=True)

    image: str
    version: str
    replicas: int


class ServiceStatus(BaseModel):
    model_config = ConfigDict(frozen=True)

    environment: str
    service: str
    active_colour: Colour
    canary_weight: int = Field(description="Percent of requests on the standby colour.")
    colours: dict[Colour, ColourStatus]

    @property
    def standby_colour(self) -> Colour:
        return "green" if self.active_colour == "blue" else "blue"


class _ServiceOutputs(BaseModel):
    """What status reads of a service in any 1.x outputs (core.outputs): 1.0 has no history and a later minor
    version may add fields, and neither is a reason to show nothing."""

    active_colour: Colour
    canary_weight: int = Field(ge=0, le=100)
    colours: dict[Colour, ColourStatus] = Field(min_length=len(COLOURS))


class _StackOutputs(BaseModel):
    schema_version: str = Field(pattern=r"^1\.\d+$")
    namespace: str = ""
    services: dict[str, _ServiceOutputs]


class EnvironmentStatus(BaseModel):
    model_config = ConfigDict(frozen=True)

    environment: str
    last_update: datetime | None = Field(description="End of the stack's last update; None before the first.")
    services: list[ServiceStatus]
    namespace: str = Field("", description="Where its services run; the error ratios are recorded by namespace.")


def environment_status(environment: str, outputs: Mapping[str, Any],
                       last_update: datetime | None) -> EnvironmentStatus:
    """Read what a release needs from one stack's outputs, of any 1.x schema version."""
    if not outputs:
        return EnvironmentStatus(environment=environment, last_update=last_update, services=[])
    try:
        parsed = _StackOutputs.model_validate(dict(outputs))
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise StatusError(f"stack {environment}: outputs do not match the stack-outputs schema v1 "
                          f"at {where}: {first['msg']}") from None
    return EnvironmentStatus(
        environment=environment, last_update=last_update, namespace=parsed.namespace,
        services=[ServiceStatus(environment=environment, service=name, active_colour=service.active_colour,
                                canary_weight=service.canary_weight,
                                colours=service.colours)
                  for name, service in sorted(parsed.services.items())])


def as_json(statuses: list[EnvironmentStatus]) -> dict[str, Any]:
    return {"environments": [status.model_dump(mode="json") for status in statuses]}


def table_rows(statuses: list[EnvironmentStatus]) -> list[tuple[str, ...]]:
    """(service, then per environment 'active colour and version, standby colour and version, canary') for a table;
    the last update goes in each environment's column heading, not in these cells."""
    services = sorted({row.service for status in statuses for row in status.services})
    rows = []
    for service in services:
        cells = [service]
        for status in statuses:
            row = next((row for row in status.services if row.service == service), None)
            cells.append(_cell(row))
        rows.append(tuple(cells))
    return rows


def _cell(row: ServiceStatus | None) -> str:
    if row is None:
        return "-"
    active, standby = row.colours[row.active_colour], row.colours[row.standby_colour]
    lines = [f"{row.active_colour} {active.version} (active)", f"{row.standby_colour} {standby.version}"]
    if row.canary_weight:
        lines.append(f"canary {row.canary_weight}% on {row.standby_colour}")
    return "\n".join(lines)


class Sample(BaseModel):
    """One sample of a textfile-collector metric."""

    model_config = ConfigDict(frozen=True)

    labels: dict[str, str]
    value: float


class Metric(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    help: str
    samples: list[Sample]


def metrics(statuses: list[EnvironmentStatus]) -> list[Metric]:
    """Gauges for a dashboard: one-hot active colour, image info per colour, canary weight, last update time."""
    active, info, canary, updated = [], [], [], []
    for status in statuses:
        if status.last_update is not None:
            updated.append(Sample(labels={"environment": status.environment},
                                  value=status.last_update.timestamp()))
        for row in status.services:
            where = {"environment": row.environment, "namespace": status.namespace, "service": row.service}
            canary.append(Sample(labels=where, value=row.canary_weight))
            for colour in COLOURS:
                active.append(Sample(labels={**where, "colour": colour}, value=float(colour == row.active_colour)))
                role = "active" if colour == row.active_colour else "standby"
                spec = row.colours[colour]
                info.append(Sample(labels={**where, "colour": colour, "role": role, "image": spec.image,
                                           "version": spec.version}, value=1))
    return [
        Metric(name="release_infra_active_colour",
               help="1 for the colour that takes the service's traffic, 0 for the standby.", samples=active),
        Metric(name="release_infra_image_info", help="The image each colour runs; always 1.", samples=info),
        Metric(name="release_infra_canary_weight_percent",
               help="Percent of the service's gateway requests sent to the standby colour.", samples=canary),
        Metric(name="release_infra_last_update_timestamp_seconds",
               help="When the environment's stack was last updated.", samples=updated),
    ]
