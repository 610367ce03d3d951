"""The stack outputs: a versioned interface that dashboards and the release tooling read.

Add fields freely within a major version; rename or remove only with a new major version and schema file.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from core.blue_green import service_name
from core.gateway import gateway_name, gateway_roles
from core.migrations import Migration
from core.names import EnvironmentName
from core.policy.changes import mapping
from core.policy.history import (accumulate, canary_step_time, first_served, image_key, previous_history,
                                  switch_time)
from core.program_digest import program_digest
from core.settings import COLOURS, Colour, StackSettings

SCHEMA_VERSION = "1.5"
SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schemas" / "stack-outputs.v1.schema.json"


class _Output(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColourOutput(_Output):
    image: str = Field(description="Image reference the colour runs, as configured.")
    version: str = Field(description="Semantic version taken from the image tag.")
    replicas: int = Field(ge=0, description="Desired replicas; 0 when the standby is scaled down.")
    digest: Annotated[str, StringConstraints(pattern=r"^sha256:[0-9a-f]{64}$")] | None = Field(
        None, description="Manifest digest the Deployment runs (image@digest); null when it runs the tag unpinned "
                          "(digest lookups off, no digest in config or from the last update). Since 1.1.")


class ServiceNames(_Output):
    active: str = Field(description="Kubernetes Service that routes to the active colour.")
    preview: str = Field(description="Kubernetes Service that routes to the standby colour, for release checks.")


class ServiceHistory(_Output):
    """What the environment has run of the service, accumulated over its updates (promotion lineage reads it)."""

    ran: list[str] = Field(description="Images that have run on a colour with pods, oldest first (at most 100).")
    served: list[str] = Field(description=(
        "Images that have been the active colour, oldest first (at most 100); a service's first update counts an "
        "older standby image as the release the active one replaced (since 1.2)."))


class ServiceOutput(_Output):
    active_colour: Colour
    standby_colour: Colour
    canary_weight: int = Field(ge=0, le=100, description="Percent of gateway traffic sent to the standby colour.")
    colours: dict[Colour, ColourOutput] = Field(min_length=2, description="Both colours, blue and green.")
    service_names: ServiceNames
    history: ServiceHistory = Field(description="Added in 1.1.")
    switched_at: AwareDatetime | None = Field(None, description=(
        "When traffic last moved to the active colour: the clock of the update that switched it; null until a "
        "switch is recorded. The colour it left keeps its image through the manual-rollback window (since 1.3)."))
    canary_stepped_at: AwareDatetime | None = Field(None, description=(
        "When the canary weight took its current value on the standby's current image: the clock of that update; "
        "null at weight 0. The next step, and the switch after 100%, wait the canary interval from it (since 1.4)."))


class MigrationOutput(_Output):
    image: str = Field(description="The image whose migrations the environment last applied (forward only).")
    version: str = Field(description="Its semantic version: no image older than this may be deployed.")
    job: str = Field(description="Name of the Job that applied them.")


class StackOutputs(_Output):
    """What one environment runs, per service and colour."""

    schema_version: Literal["1.5"] = Field(
        description="Major.minor of this schema; the major is in the file name, a minor only adds fields.")
    environment: EnvironmentName
    namespace: str
    access: Literal["internal", "merchants", "merchants-and-consumers"]
    regions: list[str]
    gateways: dict[Literal["public", "preview"], str] = Field(
        description="Service name of each gateway; preview (standby colours, internal only) outside prod.")
    services: dict[str, ServiceOutput]
    migrations: dict[str, MigrationOutput] = Field(
        default_factory=dict, description="Per service with database migrations, the last migration applied (1.1).")
    program_digest: Annotated[str, StringConstraints(pattern=r"^sha256:[0-9a-f]{64}$")] = Field(description=(
        "Digest of the program the update applied: the files every stack is built from (core.program_digest). "
        "Prod's train runs only the program Test applied. Since 1.5."))


def stack_outputs(settings: StackSettings, previous: Mapping[str, Any] | None = None,
                  migrations: Mapping[str, Migration] | None = None,
                  digests: Mapping[tuple[str, Colour], str] | None = None,
                  now: datetime | None = None) -> StackOutputs:
    """The outputs of this update: ``settings`` as configured, ``previous`` (the stack's last outputs) carrying each
    service's history and last switch, the migrations applied, ``digests``, what each Deployment is pinned to, and
    ``now``, the update's clock, which a switch records."""
    digests = digests or {}
    before = (previous or {}).get("services")
    before = before if isinstance(before, Mapping) else {}
    return StackOutputs(
        schema_version=SCHEMA_VERSION,
        environment=settings.environment.value,
        namespace=settings.namespace,
        access=settings.access.value,
        regions=list(settings.regions),
        gateways={role: gateway_name(role) for role in gateway_roles(settings)},
        services={
            name: ServiceOutput(
                active_colour=release.active,
                standby_colour=release.standby_colour,
                canary_weight=release.canary.weight,
                colours={
                    colour: ColourOutput(image=str(release.image(colour)), version=str(release.image(colour).version),
                                         replicas=settings.replicas_of(name, colour),
                                         digest=digests.get((name, colour)))
                    for colour in COLOURS
                },
                service_names=ServiceNames(active=service_name(name, "active"),
                                           preview=service_name(name, "preview")),
                history=_history(settings, name, before.get(name)),
                switched_at=_switched_at(release.active, before.get(name), now),
                canary_stepped_at=_canary_stepped_at(settings, name, before.get(name), now),
            )
            for name, release in settings.services.items()
        },
        migrations={
            **_retired_migrations(settings, previous or {}),
            **{name: MigrationOutput(image=str(migration.image), version=str(migration.image.version),
                                     job=migration.job["metadata"]["name"])
               for name, migration in (migrations or {}).items()},
        },
        program_digest=program_digest(),
    )


def _retired_migrations(settings: StackSettings, previous: Mapping[str, Any]) -> dict[str, MigrationOutput]:
    """The migration records of services the stack no longer runs, as the last update left them: the database
    outlives the service's Deployments, so running the service again must not migrate it backwards."""
    before = previous.get("migrations")
    records = {}
    for name, record in (before.items() if isinstance(before, Mapping) else ()):
        if name in settings.services:
            continue
        try:
            records[name] = MigrationOutput.model_validate(record)
        except ValueError:
            continue  # not a record this schema wrote: nothing to carry
    return records


def _history(settings: StackSettings, name: str, before: Any) -> ServiceHistory:
    """``before``: the service's previous outputs; None for its first update here, which starts its history."""
    ran, served = previous_history(before)
    release = settings.services[name]
    running = [str(release.image(colour)) for colour in COLOURS if settings.replicas_of(name, colour) > 0]
    active = str(release.image(release.active))
    if not isinstance(before, Mapping):
        served = first_served(str(release.image(release.standby_colour)), active)
    return ServiceHistory(ran=accumulate(ran, running), served=accumulate(served, [active]))


def _switched_at(active: Colour, before: Any, now: datetime | None) -> datetime | None:
    """``now`` if this update moves traffic to another colour; else the switch the previous outputs record. A
    service's first update switches nothing: its standby never served here."""
    if not isinstance(before, Mapping):
        return None
    if before.get("active_colour") != active:
        return now
    return switch_time(before)


def _canary_stepped_at(settings: StackSettings, name: str, before: Any, now: datetime | None) -> datetime | None:
    """``now`` if this update sets the canary weight, or puts a new image under it; else the step the previous
    outputs record."""
    release = settings.services[name]
    if release.canary.weight == 0:
        return None
    standby = release.standby_colour
    staged = mapping(mapping(mapping(before).get("colours")).get(standby)).get("image")
    if isinstance(before, Mapping) and before.get("canary_weight") == release.canary.weight \
            and before.get("standby_colour") == standby and isinstance(staged, str) \
            and image_key(staged) == image_key(str(release.image(standby))):
        return canary_step_time(before)
    return now


def json_schema() -> str:
    schema = StackOutputs.model_json_schema()
    schema["$id"] = "https://release-infra/schemas/stack-outputs.v1.schema.json"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    SCHEMA_FILE.write_text(json_schema())
    print(f"wrote {SCHEMA_FILE}")
