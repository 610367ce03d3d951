"""One stack's settings: validated from `Pulumi.<stack>.yaml` against the catalogue before anything is registered."""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Annotated, Any, Literal, Mapping, NamedTuple

from pydantic import AfterValidator, AwareDatetime, Field, ValidationError, field_validator, model_validator

from core.alerting.settings import CONFIG_KEYS as ALERTING_KEYS
from core.policy.settings import CONFIG_KEYS as POLICY_KEYS
from core.registry.digests import CONFIG_KEYS as DIGEST_KEYS
from core.registry.settings import CONFIG_KEYS as RETENTION_KEYS
from core.catalogue import Catalogue, DnsLabel, Strict
from core.errors import NO_VALUE, SECRET, ConfigError, Problem
from core.images import REPOSITORY, ImageReference, is_registry_host
from core.names import (COLOURS, DEFAULT_CANARY_STEPS, ENVIRONMENTS, PROJECT, Colour,  # noqa: F401  (re-exported)
                        other, warm_again)
from core.validation import CONCEALED, key_path, problems_from, structured, unknown_key

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


class Canary(Strict):
    """Share of the service's gateway traffic sent to the standby colour; 0 means no canary."""

    weight: int = Field(0, ge=0, le=100, description="Percent of requests to the standby colour.")
    steps: list[int] = Field(list(DEFAULT_CANARY_STEPS), description=(
        "The schedule a canary walks: from at most the standard's first step (5) up to 100."))

    @field_validator("steps")
    @classmethod
    def _ascending_to_100(cls, steps: list[int]) -> list[int]:
        """A schedule must start small: [100] or [50, 100] would send half or all traffic to an image no request
        has reached yet, which is no canary, whatever the release policy asks of high-risk services."""
        if not steps or steps[-1] != 100 or any(not 0 < step <= 100 for step in steps) \
                or any(a >= b for a, b in zip(steps, steps[1:])) or steps[0] > DEFAULT_CANARY_STEPS[0]:
            raise ValueError(f"must be ascending percentages from 1 to 100, starting at {DEFAULT_CANARY_STEPS[0]} or "
                             "below and ending at 100")
        return steps

    @model_validator(mode="after")
    def _weight_on_the_schedule(self) -> "Canary":
        if self.weight and self.weight not in self.steps:
            raise ValueError(f"weight {self.weight} is not a step of the schedule "
                             f"{' -> '.join(map(str, self.steps))} (or 0 for no canary)")
        return self


class ServiceRelease(Strict):
    """What one environment runs of one service: an image per colour and which colour takes traffic."""

    active: Colour
    blue: ColourSpec
    green: ColourSpec
    replicas: Replicas | None = Field(None, description="Overrides the stack's replicas for this service.")
    standby: Standby = Standby()
    canary: Canary = Canary()

    @property
    def standby_colour(self) -> Colour:
        return other(self.active)

    def image(self, colour: Colour) -> ImageReference:
        return getattr(self, colour).image


class RateLimit(Strict):
    # KrakenD keeps its token buckets in each pod: N gateway replicas admit N times these rates.
    max_rate: int = Field(ge=1, le=1_000_000,
                          description="Requests per second per endpoint and gateway pod, all clients together.")
    client_max_rate: int = Field(ge=1, le=1_000_000,
                                 description="Requests per second per client (Authorization) and gateway pod.")


class CircuitBreaker(Strict):
    interval_seconds: int = Field(ge=1, le=3600, description="Window in which consecutive errors count.")
    timeout_seconds: int = Field(ge=1, le=3600, description="How long the circuit stays open before a retry.")
    max_errors: int = Field(ge=1, le=1000, description="Consecutive errors that open the circuit.")


_HOST = re.compile(r"(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")
_DIGEST = r"@sha256:[0-9a-f]{64}"
# An image reference by the registry's grammar (distribution's reference): a host (any case, with a '.' or a port,
# or localhost), then lowercase path components, at most one tag, at most one lowercase sha256 digest.
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)+(?::[0-9]+)?" \
          r"|[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?:[0-9]+|localhost)"
_PINNED_IMAGE = re.compile(rf"(?:(?P<registry>{_DOMAIN})/)?(?P<repository>{REPOSITORY})"
                           rf"(?::(?P<tag>\w[\w.-]{{0,127}}))?(?P<digest>{_DIGEST})?")
_RELEASE_TAG = re.compile(r"v?\d+\.\d+\.\d+(?:[-+._][\w.-]*)?")  # a patch release; 2 or 2.13 moves with each
MOVING_TAGS = ("latest", "watch")  # KrakenD's :watch reloads its config and is for development only


def _host(value: str) -> str:
    """Rejected here, not by the cluster after half an update: an empty or malformed host name, or an IP address
    (an Ingress host is a lowercase DNS name, never an address)."""
    if not _HOST.fullmatch(value) or _is_address(value):
        raise ValueError("must be a host name: lowercase labels of letters, digits and '-', joined by dots, not an "
                         "IP address")
    return value


def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _address(value: str) -> str:
    """A host name (a fully qualified one may end in a dot) or an IP address."""
    if not _is_address(value) and not _HOST.fullmatch(value.removesuffix(".")):
        raise ValueError("must be a host name (lowercase labels of letters, digits and '-', joined by dots) or an IP "
                         "address")
    return value


_MAPPED = ipaddress.ip_network("::ffff:0:0/96")  # IPv4-mapped: the gateway reads these as IPv4 networks


def _network(value: str) -> str:
    """An IP address or a CIDR network, written as the gateway reads it (an address as its /32 or /128). Refused:
    a network of every address (trusting it trusts any client), an IPv4-mapped one (the gateway widens it to
    IPv4's whole space) and a zone index (the gateway drops the entry and every entry after it, unseen)."""
    try:
        network = ipaddress.ip_network(value)
    except ValueError:
        raise ValueError("must be an IP address or a network in CIDR form without host bits, e.g. 10.0.0.0/8") \
            from None
    if "%" in value:
        raise ValueError("must be an address without a zone index (%...): the gateway cannot read one")
    if network.prefixlen == 0:
        raise ValueError("must be the proxies' own addresses, not every address: the gateway would believe any "
                         "client's X-Forwarded-For")
    if network.version == 6 and network.overlaps(_MAPPED):
        raise ValueError("must not hold IPv4-mapped addresses (::ffff:0:0/96), which the gateway reads as all of "
                         "IPv4: write IPv4 proxies as IPv4, e.g. 10.0.0.1")
    return str(network)


def _pinned_image(value: str) -> str:
    """The gateway's image is pinned (a patch release's tag or a digest): a moving tag (:latest, :2, :2.13) would
    change what runs unseen; and it is one a cluster can pull, not refused by the kubelet after the update."""
    match = _PINNED_IMAGE.fullmatch(value)
    tag = match["tag"] if match else None
    if tag and "watch" in re.split(r"[-+._]", tag):  # 2.13.1-watch, pinned or not, reloads its config all the same
        raise ValueError(f"must not be a watch image ('{tag}'): it reloads its config as it changes, for "
                         "development only")
    if not match or not (match["digest"] or (tag and _RELEASE_TAG.fullmatch(tag))):
        raise ValueError("must be a pinned image: <repository>:<version> (a patch release, e.g. 2.13.1) or "
                         "<repository>@sha256:<digest>, the repository in lowercase; not "
                         f"{' or '.join(f':{tag}' for tag in MOVING_TAGS)} alone")
    return value


Host = Annotated[str, AfterValidator(_host)]
Network = Annotated[str, AfterValidator(_network)]


class Otlp(Strict):
    host: Annotated[str, AfterValidator(_address)]
    port: int = Field(ge=1, le=65535)


class Gateway(Strict):
    """The KrakenD gateway of one environment; unset keys take the environment's defaults."""

    image: Annotated[str, AfterValidator(_pinned_image)] = Field(description="KrakenD CE image, pinned.")
    replicas: Replicas
    timeout_ms: int = Field(ge=100, le=60_000, description="End-to-end timeout of one request.")
    rate_limit: RateLimit
    circuit_breaker: CircuitBreaker
    otlp: Otlp
    public_hosts: dict[Literal["merchants", "consumers"], Host] = Field(
        description="Host name per outside audience, served through that audience's edge ingress class.")
    trusted_proxies: list[Network] = Field(default_factory=list, max_length=64, description=(
        "Peers (addresses or CIDRs, e.g. the edge ingress controllers' pods) whose X-Forwarded-For the gateway "
        "believes. None by default: the client address the services receive is then the connection's peer (the "
        "ingress controller), which no client can forge."))


# KrakenD's image as the stack's registry mirrors it (Docker Hub's path kept): the 2.13 line, as the tests run lura
# v2.13.0 (gateway/). Like every image, the gateway's comes from the private registry: a pull from Docker Hub in the
# middle of a canary step could meet its rate limit or an outage.
KRAKEND_IMAGE = "devopsfaith/krakend:2.13.1"
GATEWAY_DEFAULTS: dict[str, dict[str, Any]] = {
    kind: {
        "replicas": replicas,
        "timeout_ms": timeout_ms,
        "rate_limit": {"max_rate": max_rate, "client_max_rate": client_max_rate},
        "circuit_breaker": {"interval_seconds": 60, "timeout_seconds": 10, "max_errors": 10},
        "otlp": {"host": "otel-collector.monitoring.svc.cluster.local", "port": 4317},
        "public_hosts": {audience: f"{audience}.{kind}.api.pay.example" for audience in ("merchants", "consumers")},
    }
    for kind, replicas, timeout_ms, max_rate, client_max_rate in (
        ("sandbox", 1, 10_000, 200, 20),
        ("dev", 1, 10_000, 500, 100),
        ("test", 2, 5_000, 5_000, 1_000),
        ("prod", 3, 5_000, 5_000, 100),
    )
}


KUBECONFIG_CONTENTS = ("must be the path of a kubeconfig file, not its contents: they hold the cluster's credentials, "
                       "and the stack file keeps this key in plain text (leave it unset to use KUBECONFIG)")


class Cluster(Strict):
    """A cluster to deploy to; without one, the program renders manifests to a directory."""

    context: str = Field(min_length=1)
    kubeconfig: Annotated[str | None, CONCEALED] = Field(
        None, description="Path of a kubeconfig file; unset: KUBECONFIG or ~/.kube/config.")

    @field_validator("kubeconfig", mode="before")
    @classmethod
    def _a_path(cls, value: object) -> object:
        if isinstance(value, (dict, list)):
            raise ValueError(KUBECONFIG_CONTENTS)
        return value


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
    gateway: Gateway
    services: dict[str, ServiceRelease] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _gateway_defaults(cls, data: Any) -> Any:
        """Fill the gateway's unset keys from the environment's defaults, so a stack states only what differs."""
        if not isinstance(data, dict):
            return data
        return {**data, "gateway": gateway_with_defaults(data.get("environment"), data.get("gateway", {}),
                                                         data.get("registry"))}

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
DATABASES_KEY = "databases"  # secret database URLs for migrations (core.migrations)
# Validated elsewhere: alerting keys by core.alerting.settings, policy keys by core.policy.settings, digest lookups
# by core.registry.digests, the database URLs by core.migrations.
SEPARATELY_VALIDATED = ALERTING_KEYS + RETENTION_KEYS + POLICY_KEYS + DIGEST_KEYS + (DATABASES_KEY,)
KNOWN_KEYS = CONFIG_KEYS + SEPARATELY_VALIDATED


def gateway_with_defaults(environment: object, overrides: object, registry: object = None) -> object:
    """A stack's gateway keys over its environment's defaults, the image from the stack's ``registry``; read by the
    program and by the release checks."""
    # An unknown environment is reported on its own key; any defaults keep it from also reporting the gateway.
    defaults = GATEWAY_DEFAULTS.get(environment if isinstance(environment, str) else "", GATEWAY_DEFAULTS["dev"])
    # Without a usable registry the stack is refused on that key, and the image only has to parse.
    defaults = {**defaults, "image": f"{registry if _usable_registry(registry) else 'docker.io'}/{KRAKEND_IMAGE}"}
    return _merge(defaults, overrides) if isinstance(overrides, dict) else overrides


def _usable_registry(registry: object) -> bool:
    try:
        return isinstance(registry, str) and bool(is_registry_host(registry))
    except ValueError:
        return False


def _merge(defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(defaults)
    for key, value in overrides.items():
        merged[key] = _merge(defaults[key], value) if isinstance(value, dict) and isinstance(defaults.get(key), dict) \
            else value
    return merged


def load_settings(stack: str, config: Mapping[str, Any], catalogue: Catalogue, now: datetime) -> StackSettings:
    """Validate one stack's config (key -> value, without the project prefix; structured values may be JSON text).

    Raises ConfigError listing every problem, each with its key path, value and what is allowed.
    """
    source = f'stack "{stack}"'
    prefix = f"{PROJECT}:"
    if not config:  # a list of every required key would hide the cause
        raise ConfigError(source, [Problem(f"Pulumi.{stack}.yaml", NO_VALUE, f"missing, or it sets no {prefix} key: "
                                           "a stack needs a config of its own (the committed stacks are "
                                           f"{', '.join(ENVIRONMENTS)})")])
    raw: dict[str, Any] = {"stack": stack}
    problems: list[Problem] = []
    for key, value in config.items():
        if key in SEPARATELY_VALIDATED:
            continue
        if key not in CONFIG_KEYS:
            problems.append(Problem(prefix + key, NO_VALUE, unknown_key(key, KNOWN_KEYS)))
            continue
        raw[key] = structured(value)
    try:
        settings = StackSettings.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(source, problems + problems_from(error, prefix, StackSettings)) from None
    problems += _check_against_standard(settings, catalogue, now)
    if problems:
        raise ConfigError(source, problems)
    return settings


def _check_against_standard(settings: StackSettings, catalogue: Catalogue, now: datetime) -> list[Problem]:
    """Rules that need more than one value: the catalogue, the deployment standard and the clock."""
    problems = []
    # A stack named after an environment is that environment: one key must not drop prod's rules and paging.
    named = {kind.value for kind in EnvironmentKind}
    posing = settings.stack in named and settings.environment.value != settings.stack
    if posing:
        problems.append(Problem(_path("environment"), settings.environment.value,
                                f"the {settings.stack} stack is the {settings.stack} environment; only a stack of "
                                f"another name (not {', '.join(sorted(named))}) may choose its environment"))
    standard = STANDARD_ACCESS[settings.environment]
    if settings.access != standard:
        problems.append(Problem(_path("access"), settings.access.value,
                                f"a {settings.environment.value} environment has access '{standard.value}' "
                                "under the deployment standard"))
    kubeconfig = settings.cluster.kubeconfig if settings.cluster else None
    if kubeconfig is not None and ("\n" in kubeconfig or kubeconfig.lstrip().startswith("{")):
        problems.append(Problem(_path("cluster", "kubeconfig"), SECRET, KUBECONFIG_CONTENTS))
    if settings.replicas < _minimum_replicas(settings):
        problems.append(Problem(_path("replicas"), settings.replicas, "prod runs at least 2 replicas per colour"))
    if PulledImage.of(settings.gateway.image).registry != settings.registry.lower():
        problems.append(Problem(_path("gateway", "image"), settings.gateway.image,
                                f"must come from the private registry {settings.registry}, as every image does: "
                                f"mirror KrakenD's image there (the default is {settings.registry}/{KRAKEND_IMAGE})"))
    if settings.gateway.replicas < _minimum_replicas(settings):  # its disruption budget lets one pod go at a time
        problems.append(Problem(_path("gateway", "replicas"), settings.gateway.replicas,
                                "prod runs at least 2 gateway pods: a node drain takes one at a time, and one alone "
                                "would take every prod request with it"))
    if not posing:  # as another environment, its own namespace and hosts would look like another's
        problems += _kept_apart(settings)
    for name in settings.services:
        problems += _check_service(settings, name, catalogue, now)
    problems += _in_flight_problems(settings, catalogue)
    return problems


def _kept_apart(settings: StackSettings) -> list[Problem]:
    """No stack takes another environment's namespace or public host. Sandbox deploys every feature branch's stack
    file unreviewed: one naming payments-prod, or prod's host on the edge class both share, would take over prod's
    objects or its traffic. A namespace names its environment, a host its environment unless prod's (whose hosts
    are the product's own), and neither names another."""
    own = settings.environment.value
    others = sorted(kind.value for kind in EnvironmentKind if kind != settings.environment)
    problems = []
    words = settings.namespace.split("-")
    if own not in words or set(others) & set(words):
        problems.append(Problem(_path("namespace"), settings.namespace,
                                f"a {own} namespace has '{own}' as one of its '-'-separated words, and none of "
                                f"{', '.join(others)} (e.g. payments-{own}): no stack may take another "
                                "environment's namespace"))
    prod = settings.environment == EnvironmentKind.PROD
    named = "has none of" if prod else f"has '{own}' as one of its labels and none of"
    for audience, host in settings.gateway.public_hosts.items():
        host_labels = set(host.split("."))
        if host_labels & set(others) or not (prod or own in host_labels):
            problems.append(Problem(_path("gateway", "public_hosts", audience), host,
                                    f"a {own} host {named} {', '.join(others)} (e.g. {audience}.{own}.api.pay.example):"
                                    " no stack may take another environment's host"))
    return problems


def _in_flight_problems(settings: StackSettings, catalogue: Catalogue) -> list[Problem]:
    """Seed 004: a pod stopped while it serves a request cuts it. After its drain a service's pod has the rest of
    its grace period (catalogue shutdown) to finish what it serves, so that must cover the gateway's timeout."""
    timeout = -(-settings.gateway.timeout_ms // 1000)  # whole seconds, rounded up
    after_drain = {name: shutdown.grace_seconds - shutdown.drain_seconds for name in settings.services
                   if name in catalogue.services for shutdown in [catalogue.services[name].shutdown]}
    short = {name: seconds for name, seconds in after_drain.items() if seconds < timeout}
    if not short:
        return []
    return [Problem(_path("gateway", "timeout_ms"), settings.gateway.timeout_ms,
                    f"a request may take {timeout}s, but after its drain a pod of "
                    + ", ".join(f"{name} has {seconds}s" for name, seconds in sorted(short.items()))
                    + " before it is stopped (catalogue shutdown): in-flight requests would be cut; lower the "
                    "timeout or raise grace_seconds")]


class PulledImage(NamedTuple):
    """A pinned image's reference as a container runtime reads it."""

    registry: str  # lowercase; Docker Hub's when the reference names no host (a '.', a port or localhost)
    repository: str
    tag: str | None
    digest: str | None

    @classmethod
    def of(cls, image: str) -> "PulledImage":
        """Of an image Gateway.image accepted (its grammar: _PINNED_IMAGE)."""
        match = _PINNED_IMAGE.fullmatch(image)
        assert match is not None, image
        return cls((match["registry"] or "docker.io").lower(), match["repository"], match["tag"],
                   match["digest"][1:] if match["digest"] else None)


def _minimum_replicas(settings: StackSettings) -> int:
    return 2 if settings.environment == EnvironmentKind.PROD else 1


def _check_service(settings: StackSettings, name: str, catalogue: Catalogue, now: datetime) -> list[Problem]:
    """One service's release against the catalogue, the stack's registry and the standby rules."""
    release = settings.services[name]
    problems = []
    if name not in catalogue.services:
        problems.append(Problem(_path("services"), name,
                                f"'{name}' is not in the catalogue; known: {', '.join(catalogue.services)}"))
    if release.replicas is not None and release.replicas < _minimum_replicas(settings):
        problems.append(Problem(_path("services", name, "replicas"), release.replicas,
                                "prod runs at least 2 replicas per colour"))
    for colour in COLOURS:
        image = release.image(colour)
        if image.registry != settings.registry:
            problems.append(Problem(_path("services", name, colour, "image"), str(image),
                                    f"must come from the private registry {settings.registry}"))
        if image.service != name:
            problems.append(Problem(_path("services", name, colour, "image"), str(image),
                                    f"is an image of '{image.service}', not of '{name}'"))
    if release.canary.weight and release.standby.policy != "warm":
        problems.append(Problem(_path("services", name, "canary", "weight"), release.canary.weight,
                                "a canary runs on the standby colour, which is scaled down; make it warm and "
                                f"update first ({warm_again(name)})"))
    if release.standby.policy == "scaled-down":
        problems += _check_scaled_down(settings, name, now)
    return problems


def _check_scaled_down(settings: StackSettings, name: str, now: datetime) -> list[Problem]:
    """A colour is scaled down only as the standby, and only once the manual-rollback window has passed."""
    release = settings.services[name]
    standby = release.standby
    window = timedelta(minutes=settings.rollback_window_minutes)
    if standby.colour == release.active:
        return [Problem(_path("services", name, "standby", "colour"), standby.colour,
                        "the active colour cannot be scaled down; make the standby warm and update before "
                        f"switching to it ({warm_again(name)})")]
    if standby.since > now:
        return [Problem(_path("services", name, "standby", "since"), standby.since.isoformat(),
                        f"is in the future (now is {now.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC): when the "
                        "standby colour stopped taking traffic")]
    if now < standby.since + window:
        until = (standby.since + window).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        return [Problem(_path("services", name, "standby", "since"), standby.since.isoformat(),
                        f"the standby stays runnable for the {settings.rollback_window_minutes}-minute "
                        f"manual-rollback window: scale it down after {until}")]
    return []


def _path(*parts: str) -> str:
    """A config key path as the stack file spells it (``release-infra:services.payin-api.replicas``)."""
    return key_path(f"{PROJECT}:", parts)
