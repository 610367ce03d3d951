"""How a release reaches the service it changes: endpoint templates, Prometheus, and its timings.

The defaults are for the tool running inside the cluster (CI's runner pod); every one can be overridden, so a
test or an operator's laptop (through a port-forward) points the same code at other addresses.
"""

from __future__ import annotations

import re
from typing import Annotated

import httpx
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from core.errors import without_credentials
from core.alerting.settings import Thresholds

_DURATION = re.compile(r"^(?P<number>\d+(?:\.\d+)?)(?P<unit>ms|s|m|h)?$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}
# Prometheus's own duration grammar (model.ParseDuration): units largest first, each at most once.
_PROMQL_DURATION = re.compile(r"^(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?\Z")  # not "$": a final \n
_PROMQL_UNITS = {"y": 365 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}
MINIMUMS = {  # seconds, and why
    "interval": (1.0, "between two looks, or the watch and the bake poll health and Prometheus in a tight loop"),
    "trace_wait": (10.0, "for the trace check: the gateway sends its spans every 5s"),
}
TEMPLATE_FIELDS = ("service", "namespace", "environment", "colour")
SAMPLE = {  # what a template is checked with before anything changes
    "service": "payin-api", "namespace": "payments-dev", "environment": "dev", "colour": "blue"}


class OptionsError(Exception):
    """A bad option: one line naming it."""


def seconds(value: object) -> float:
    """'15m', '90s', '500ms', '2h' or a number of seconds."""
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        match = _DURATION.match(str(value).strip())
        if match is None:
            raise ValueError(f"'{value}' is not a duration; use e.g. 15m, 90s, 500ms or a number of seconds")
        number = float(match["number"]) * _UNITS[match["unit"]]
    if number < 0:
        raise ValueError("must not be negative")
    return number


Seconds = Annotated[float, BeforeValidator(seconds)]


class ReleaseOptions(BaseModel):
    """Everything a promote or canary needs besides the stack: where to look and how long."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    preview_url: str = Field("http://{service}-preview.{namespace}.svc",
                             description="Base URL of the standby colour (the <service>-preview Service).")
    active_url: str = Field("http://{service}.{namespace}.svc",
                            description="Base URL of the active colour (the <service> Service).")
    prometheus_url: str = Field("http://prometheus-operated.monitoring.svc:9090",
                                description="Prometheus HTTP API base URL for the error-rate gate.")
    gateway_url: str = Field("http://gateway.{namespace}.svc",
                             description="Base URL of the environment's gateway, which the trace check sends "
                                         "requests through.")
    traces_url: str | None = Field(None, description="Jaeger query API base URL of the trace store the gateway and "
                                                     "the services export to; prod needs one (seed 000 §9).")
    trace_wait: Seconds = Field(60, description="How long the trace check's requests may take, and then how long "
                                                "it waits for their end-to-end trace: spans reach the store in "
                                                "batches, seconds after their requests.")
    synthetic_hook: str | None = Field(
        None, description="Command that runs synthetic transactions against RELEASE_BASE_URL; exit 0 passes.")
    bake: Seconds = Field(900, description="How long each canary step runs before the next (seed 000 §2: 15 min).")
    watch: Seconds = Field(300, description="How long the new active colour is watched after promote's switch and "
                                            "after a canary's final one (seed 000 §4, §9).")
    interval: Seconds = Field(60, description="Time between two looks at health and the gate.")
    window: str = Field("5m", description="PromQL range of the error-rate queries.")
    # The stack's own (release-infra:alerting thresholds), set by release_infra_tools.promotion.gate_thresholds.
    canary_threshold_pp: float = Field(Thresholds().canary_error_increase_points, ge=0, le=100)
    watch_threshold_pp: float = Field(Thresholds().baseline_error_increase_points, ge=0, le=100)
    p95_threshold_percent: float = Field(Thresholds().baseline_p95_increase_percent, gt=0, le=1000,
                                         description="Seed 000 §9: P95 latency at most this much above the baseline.")
    request_timeout: Seconds = Field(5, description="Timeout of one health, hook or Prometheus request.")

    @field_validator("preview_url", "active_url", "gateway_url")
    @classmethod
    def _url_template(cls, template: str) -> str:
        for name in re.findall(r"{([^{}]*)}", template):
            if name not in TEMPLATE_FIELDS:
                known = ", ".join("{%s}" % field for field in TEMPLATE_FIELDS)
                raise ValueError(f"unknown placeholder {{{name}}}; use {known}")
        try:
            url = template.format(**SAMPLE)
        except ValueError as error:  # a brace left open: format's own words
            raise ValueError(f"'{template}' is not a URL template: {error}") from None
        _check_url(url, without_credentials(template))
        return template

    @field_validator("prometheus_url", "traces_url")
    @classmethod
    def _base_url(cls, url: str | None) -> str | None:
        if url is not None:
            _check_url(url, without_credentials(url))
        return url

    @field_validator("window")
    @classmethod
    def _promql_duration(cls, window: str) -> str:
        """As Prometheus parses it: a window it refuses would fail only at the first query, after traffic moved."""
        match = _PROMQL_DURATION.match(window)
        if not window or match is None:
            raise ValueError(f"'{window}' is not a PromQL duration, e.g. 5m, 30s or 1h30m (units y w d h m s ms, "
                             "largest first, each once)")
        parts = [re.fullmatch(r"(\d+)(\D+)", part) for part in match.groups() if part]
        if not sum(int(part[1]) * _PROMQL_UNITS[part[2]] for part in parts if part):
            raise ValueError(f"'{window}' is an empty range; the error rate needs a window longer than 0")
        return window

    @field_validator("traces_url", "gateway_url")
    @classmethod
    def _no_query(cls, url: str | None) -> str | None:
        """Paths are appended to these: a query string or fragment would end up in the middle of each."""
        if url is not None and ("?" in url or "#" in url):
            raise ValueError(f"'{without_credentials(url)}' has a query string or fragment; give a base URL")
        return url

    @field_validator("interval", "trace_wait")
    @classmethod
    def _long_enough(cls, value: float, info: ValidationInfo) -> float:
        minimum, why = MINIMUMS[info.field_name]
        if value < minimum:
            raise ValueError(f"{value:g}s is too short: at least {minimum:g}s {why}")
        return value

    @classmethod
    def build(cls, **values: object) -> "ReleaseOptions":
        """From command-line values (None means the default); a bad one is a one-line OptionsError."""
        try:
            return cls.model_validate({key: value for key, value in values.items() if value is not None})
        except ValidationError as error:
            first = error.errors()[0]
            option = "--" + str(first["loc"][0]).replace("_", "-")
            raise OptionsError(f"{option}: {first['msg'].removeprefix('Value error, ')}") from None

    def url(self, template: str, *, service: str, namespace: str, environment: str, colour: str) -> str:
        return template.format(service=service, namespace=namespace, environment=environment,
                               colour=colour).rstrip("/")


def _check_url(url: str, shown: str) -> None:
    """An http(s) URL with a host, as httpx reads it. A typo (a letter O in a port) would otherwise be found only
    when the URL is first asked: for the active URL after the switch, for Prometheus after a canary's first step."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as error:
        raise ValueError(f"'{shown}' is not a URL: {error}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"'{shown}' is not a URL: expected http:// or https:// and a host")
