"""The stack outputs: a versioned interface that dashboards and the release tooling read.

Add fields freely within a major version; rename or remove only with a new major version and schema file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from core.blue_green import service_name
from core.gateway import gateway_name, gateway_roles
from core.settings import COLOURS, Colour, StackSettings

SCHEMA_VERSION = "1.1"
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


class ServiceOutput(_Output):
    active_colour: Colour
    standby_colour: Colour
    canary_weight: int = Field(ge=0, le=100, description="Percent of gateway traffic sent to the standby colour.")
    colours: dict[Colour, ColourOutput]
    service_names: ServiceNames


class StackOutputs(_Output):
    """What one environment runs, per service and colour."""

    schema_version: Literal["1.1"] = Field(description="Major.minor of this schema; the major is in the file name.")
    environment: Literal["sandbox", "dev", "test", "prod"]
    namespace: str
    access: Literal["internal", "merchants", "merchants-and-consumers"]
    regions: list[str]
    gateways: dict[Literal["public", "preview"], str] = Field(
        description="Service name of each gateway; preview (standby colours, internal only) outside prod.")
    services: dict[str, ServiceOutput]


def stack_outputs(settings: StackSettings, digests: Mapping[tuple[str, Colour], str] | None = None) -> StackOutputs:
    """``settings`` as configured (``image`` is what the config says); ``digests`` what each Deployment is pinned to."""
    digests = digests or {}
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
            )
            for name, release in settings.services.items()
        },
    )


def json_schema() -> str:
    schema = StackOutputs.model_json_schema()
    schema["$id"] = "https://release-infra/schemas/stack-outputs.v1.schema.json"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    SCHEMA_FILE.write_text(json_schema())
    print(f"wrote {SCHEMA_FILE}")
