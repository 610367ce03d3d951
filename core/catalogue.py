"""The service catalogue: what every environment knows about a service, whatever version it runs."""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path
from typing import Annotated, Literal, Mapping

import semver
import yaml
from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator,
                      model_validator)

from core.errors import ConfigError, Problem
from core.validation import lax_reading, problems_from, unreadable

_PARAMETER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")  # \Z: "$" would let a final newline through


def _dns_label(value: str) -> str:
    if not _DNS_LABEL.match(value):
        raise ValueError("must be a DNS label: lowercase letters, digits and '-', starting and ending with a "
                         "letter or digit")
    return value


DnsLabel = Annotated[str, Field(max_length=63), AfterValidator(_dns_label)]
# Kubernetes names made from a service's name: the Services <service> and <service>-preview (DNS-1035 labels:
# at most 63 characters, starting with a letter), beside the gateway's own Services.
PREVIEW_SUFFIX = "-preview"  # the standby colour's Service: <service>-preview (core.blue_green.service_name)
RESERVED_SERVICE_NAMES = ("gateway", "gateway-preview")
ENVIRONMENT_SCOPE = "environment"  # the key of the environment's own alert rules beside each service's
CATALOGUE_FILE = "catalogue.yaml"  # at the project's root: every stack is built from the one catalogue
CATALOGUE_VARIABLE = "RELEASE_INFRA_CATALOGUE"  # another catalogue, for benchmarks and experiments


def catalogue_path(project_dir: Path, environ: Mapping[str, str]) -> Path:
    """The catalogue the program and the release command both read, so a release checks what the stacks run."""
    return Path(environ.get(CATALOGUE_VARIABLE) or project_dir / CATALOGUE_FILE)


def _service_name(value: str) -> str:
    _dns_label(value)
    if not value[0].isalpha():
        raise ValueError("must start with a letter: it names the service's Kubernetes Services")
    if len(value) > 63 - len(PREVIEW_SUFFIX):
        raise ValueError(f"must be at most {63 - len(PREVIEW_SUFFIX)} characters, so that its Service "
                         f"{value}{PREVIEW_SUFFIX} stays within the 63 a Kubernetes name may have")
    if value in RESERVED_SERVICE_NAMES:
        raise ValueError(f"is the name of a gateway Service; {' and '.join(RESERVED_SERVICE_NAMES)} are reserved")
    if value == ENVIRONMENT_SCOPE:
        raise ValueError("names the environment's own alert rules (the Watchdog), which would replace the service's")
    return value


ServiceName = Annotated[str, AfterValidator(_service_name)]


Port = Annotated[int, Field(ge=1, le=65535)]


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """libyaml when built in (the catalogue grows), refusing a key twice in one mapping: YAML would keep the last
    one, so a service block copied without renaming it would silently replace the first. A merge key
    (``<<: *anchor``) is no duplicate, nor is a key that overrides one it merges."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # a list or mapping as a key: the base class refuses it, naming where it is
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(problem=(
                    f"duplicate key {key!r} on line {key_node.start_mark.line + 1} (first on line "
                    f"{seen[key].line + 1}): each key may appear once in a mapping"))
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


_YAML_LOADER = _UniqueKeyLoader


class Strict(BaseModel):
    """Base for config models: unknown keys are typos, and typos are errors; so is a value pydantic would read
    into something else (core.validation.lax_reading: true for 1, a number for a time, "on" for true)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_lax_reading(cls, value: object, info: ValidationInfo) -> object:
        if info.field_name and (why := lax_reading(cls.model_fields[info.field_name].annotation, value)):
            raise ValueError(why)
        return value


class Risk(str, Enum):
    """Seed 000 §2: high-risk services (new payment flows, gateway integrations) go out as canaries."""

    STANDARD = "standard"
    HIGH = "high"


class Health(Strict):
    readiness: str = Field(description="Path the readiness probe and the gateway health checks call.")
    liveness: str = Field(description="Path the liveness probe calls; must not depend on downstreams.")
    startup: str = Field(description="Path the startup probe calls until the service has warmed up.")

    @field_validator("readiness", "liveness", "startup")
    @classmethod
    def _absolute(cls, path: str) -> str:
        if not path.startswith("/"):
            raise ValueError("must be an absolute path starting with /")
        return path


# The most one container may have: the environment's LimitRange refuses a pod past it (core.environment).
CONTAINER_MAX_CPU_MILLICORES, CONTAINER_MAX_MEMORY_MIB = 4000, 8192


class Quantity(Strict):
    cpu_millicores: int = Field(ge=10, le=CONTAINER_MAX_CPU_MILLICORES,
                                description="CPU in millicores (1000 = one core).")
    memory_mib: int = Field(ge=16, le=CONTAINER_MAX_MEMORY_MIB, description="Memory in MiB.")


class Resources(Strict):
    requests: Quantity
    limits: Quantity

    @model_validator(mode="after")
    def _limits_cover_requests(self) -> "Resources":
        if (self.limits.cpu_millicores < self.requests.cpu_millicores
                or self.limits.memory_mib < self.requests.memory_mib):
            raise ValueError("limits must be at least the requests")
        return self

    def kubernetes(self) -> dict[str, dict[str, str]]:
        """As a container's `resources`."""
        return {kind: {"cpu": f"{quantity.cpu_millicores}m", "memory": f"{quantity.memory_mib}Mi"}
                for kind, quantity in (("requests", self.requests), ("limits", self.limits))}


class Shutdown(Strict):
    """Graceful shutdown: the pod keeps serving for drain_seconds after removal from endpoints, then stops."""

    drain_seconds: int = Field(ge=1, le=120, description="preStop sleep while endpoints converge.")
    grace_seconds: int = Field(ge=2, le=600, description="terminationGracePeriodSeconds; covers drain and shutdown.")

    @model_validator(mode="after")
    def _grace_covers_drain(self) -> "Shutdown":
        if self.grace_seconds <= self.drain_seconds:
            raise ValueError(
                f"grace_seconds ({self.grace_seconds}) must be longer than drain_seconds ({self.drain_seconds}) "
                "so in-flight requests finish after the drain"
            )
        return self


class Route(Strict):
    """One public endpoint of the gateway and the service path it forwards to."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    path: str = Field(description="Public path on the gateway, e.g. /v1/payins/{id}.")
    service: str = Field(description="The catalogue service that serves it.")
    backend: str = Field(description="Path on the service (KrakenD url_pattern).")

    @field_validator("path", "backend")
    @classmethod
    def _absolute(cls, path: str) -> str:
        if not path.startswith("/"):
            raise ValueError("must start with /")
        return path

    @model_validator(mode="after")
    def _backend_parameters_come_from_the_path(self) -> "Route":
        missing = set(_PARAMETER.findall(self.backend)) - set(_PARAMETER.findall(self.path))
        if missing:
            raise ValueError(f"backend {self.backend} uses {{{'}, {'.join(sorted(missing))}}} which the path "
                             f"{self.path} does not define")
        return self


def _semantic_version(value: str) -> str:
    if not semver.Version.is_valid(value):
        raise ValueError(f"'{value}' is not a semantic version (MAJOR.MINOR.PATCH)")
    return value


SemanticVersion = Annotated[str, AfterValidator(_semantic_version)]


class Migrations(Strict):
    """How a service changes its database schema (seed 000 §10, seeds 003-004): forward only, before the app.

    The command runs as a Job with the image of the colour being deployed, so a build carries its own migrations.
    """

    command: list[str] = Field(min_length=1, description="Container command that applies the image's migrations.")
    database_secret: DnsLabel = Field(description=(
        "Kubernetes Secret (key DATABASE_URL) the Job reads, filled from the stack's Pulumi secret "
        "databases.<service>."))
    deadline_seconds: int = Field(600, ge=30, le=3600, description="activeDeadlineSeconds of the Job.")
    contracts: dict[SemanticVersion, SemanticVersion] = Field(default_factory=dict, description=(
        "Contract releases (which drop old schema) -> the expand release whose schema they complete; a contract "
        "release is refused until both colours run its expand release or later."))

    @model_validator(mode="after")
    def _expand_comes_before_contract(self) -> "Migrations":
        for contract, expand in self.contracts.items():
            if semver.Version.parse(expand) >= semver.Version.parse(contract):
                raise ValueError(f"contract release {contract} must come after its expand release {expand}")
        return self


class ServiceSpec(Strict):
    """One service of the catalogue."""

    product: str = Field(pattern=r"^[a-z][a-z0-9]*$", description="Product prefix of feature flags, e.g. payin.")
    description: str
    port: Port = Field(description="Container port serving HTTP.")
    metrics_port: Port = Field(description="Container port serving Prometheus metrics.")
    health: Health
    risk: Risk = Risk.STANDARD
    resources: Resources
    shutdown: Shutdown
    migrations: Migrations | None = Field(None, description="Database migrations run before each new image.")


class Catalogue(Strict):
    services: dict[ServiceName, ServiceSpec] = Field(min_length=1)
    routes: list[Route] = Field(default_factory=list)

    def routes_of(self, service: str) -> list[Route]:
        return [route for route in self.routes if route.service == service]

    @classmethod
    def load(cls, path: Path) -> "Catalogue":
        """Read and validate the catalogue file, failing with a ConfigError that names the file."""
        try:
            raw = yaml.load(path.read_text(), Loader=_YAML_LOADER)
        except (OSError, yaml.YAMLError) as error:
            raise ConfigError(str(path), [unreadable(path.name, error)]) from None
        try:
            catalogue = cls.model_validate(raw)
        except ValidationError as error:
            raise ConfigError(str(path), problems_from(error, path.name + ":", cls)) from None
        problems = (_name_problems(catalogue, path.name) + _port_problems(catalogue, path.name)
                    + _database_secret_problems(catalogue, path.name)
                    + _route_problems(catalogue, path.name))
        if problems:
            raise ConfigError(str(path), problems)
        return catalogue


def _name_problems(catalogue: Catalogue, source: str) -> list[Problem]:
    """No service is named after another's preview Service: both would be one Kubernetes Service."""
    return [Problem(f"{source}:services.{name}", name, f"is the name of the preview Service of "
                    f"{name.removesuffix(PREVIEW_SUFFIX)}; choose another name")
            for name in catalogue.services
            if name.endswith(PREVIEW_SUFFIX) and name.removesuffix(PREVIEW_SUFFIX) in catalogue.services]


def _port_problems(catalogue: Catalogue, source: str) -> list[Problem]:
    """The metrics ports are opened to the monitoring namespace (allow-monitoring), all of them on every service's
    pods: on an HTTP port, the service's own or another's, that would let it call an API around the gateway, and the
    scrapes would count as requests."""
    serving: dict[int, str] = {}
    for name, spec in catalogue.services.items():
        serving.setdefault(spec.port, name)
    problems = []
    for name, spec in catalogue.services.items():
        path = f"{source}:services.{name}.metrics_port"
        if spec.metrics_port == spec.port:
            problems.append(Problem(path, spec.metrics_port, f"must differ from port ({spec.port}): the monitoring "
                                    "namespace may reach the metrics port"))
        elif spec.metrics_port in serving:
            problems.append(Problem(path, spec.metrics_port, f"must differ from every service's port "
                                    f"({serving[spec.metrics_port]} serves HTTP on {spec.metrics_port}): the "
                                    "monitoring namespace may reach the metrics ports of every service"))
    return problems


def _database_secret_problems(catalogue: Catalogue, source: str) -> list[Problem]:
    """Each service's migrations read their own Secret: under one name, a stack running both services would keep
    one Secret holding one of the two database URLs, and the other service's migrations would run against it."""
    problems, owners = [], {}
    for name, spec in catalogue.services.items():
        if spec.migrations is None:
            continue
        secret = spec.migrations.database_secret
        if secret in owners:
            problems.append(Problem(f"{source}:services.{name}.migrations.database_secret", secret,
                                    f"is already the database Secret of {owners[secret]}; each service that "
                                    "migrates needs its own"))
        owners.setdefault(secret, name)
    return problems


def health_path(service: str) -> str:
    """The gateway's own monitor route of a service (GET, to its readiness path; core.gateway adds it)."""
    return f"/health/{service}"


def _route_problems(catalogue: Catalogue, source: str) -> list[Problem]:
    """Every route goes to a known service, and no two routes claim the same method and path, nor one of the
    gateway's health routes (KrakenD refuses a config with a duplicate endpoint, so its pods would not start)."""
    problems, seen = [], {}
    health = {("GET", health_path(service)) for service in catalogue.services}
    for index, route in enumerate(catalogue.routes):
        if route.service not in catalogue.services:
            problems.append(Problem(f"{source}:routes[{index}].service", route.service,
                                    f"unknown service; known: {', '.join(catalogue.services)}"))
        key = (route.method, _PARAMETER.sub("{}", route.path))
        if key in health:
            problems.append(Problem(f"{source}:routes[{index}].path", route.path,
                                    f"{route.method} {route.path} is the gateway's health route of "
                                    f"{route.path.rsplit('/', 1)[1]}, added for every service; use another path"))
        elif key in seen:
            problems.append(Problem(f"{source}:routes[{index}].path", route.path,
                                    f"{route.method} {route.path} is already routed by routes[{seen[key]}]"))
        elif clash := _parameter_clash(catalogue.routes, index):
            problems.append(Problem(f"{source}:routes[{index}].path", route.path, clash))
        seen.setdefault(key, index)
    return problems


def _parameter_clash(routes: list[Route], index: int) -> str | None:
    """The gateway's router keeps one tree per method, and a place in it holds one parameter name: with GET
    /v1/payins/{id} routed, GET /v1/payins/{payin}/refunds stops every gateway pod at start."""
    route = routes[index]
    segments = route.path.split("/")
    for earlier, other in enumerate(routes[:index]):
        if other.method != route.method:
            continue
        for place, (mine, theirs) in enumerate(zip(segments, other.path.split("/"))):
            if mine != theirs and _PARAMETER.fullmatch(mine) and _PARAMETER.fullmatch(theirs):
                prefix = "/".join(segments[:place]) + "/"
                return (f"names the parameter after {prefix} {mine}, where routes[{earlier}] ({other.method} "
                        f"{other.path}) names it {theirs}: the gateway's router takes one name in one place; use "
                        f"{theirs}")
            if mine != theirs:
                break
    return None

