"""The KrakenD renderer: stable backends, exact canary host lists, and clear errors for bad weights."""

from __future__ import annotations

from math import gcd

import pytest
from hypothesis import given, strategies as st

from core.errors import ConfigError
from core.content_address import checksum
from core.gateway import HEALTH_MAX_RATE, gateway_roles, joins_callers_traces, krakend_config, weighted_hosts
from core.content_address import content_address_prefix, content_addressed_name
from tests.support.stacks import STACKS, catalogue, delete_path, set_path, settings, stack_config


@given(st.integers(0, 100))
def test_weighted_hosts_give_the_exact_share_in_the_shortest_list(weight: int) -> None:
    hosts = weighted_hosts("stable", "canary", weight)
    assert len(hosts) == 100 // gcd(weight, 100)
    assert hosts.count("canary") * 100 == weight * len(hosts)


def test_standard_canary_steps() -> None:
    assert [len(weighted_hosts("s", "c", weight)) for weight in (5, 25, 50, 100)] == [20, 4, 2, 1]
    assert weighted_hosts("s", "c", 25) == ["s", "s", "s", "c"]
    assert weighted_hosts("s", "c", 0) == ["s"]


def test_a_weight_outside_0_to_100_is_refused() -> None:
    with pytest.raises(ValueError, match="a canary weight is a percentage from 0 to 100, not 101"):
        weighted_hosts("s", "c", 101)


def backends(config: dict) -> dict[str, list[str]]:
    return {f"{e['method']} {e['endpoint']}": e["backend"][0]["host"] for e in config["endpoints"]}


def test_backends_are_the_stable_active_services() -> None:
    config = krakend_config(settings("dev"), catalogue())
    assert backends(config)["POST /v1/payins"] == ["http://payin-api.payments-dev.svc.cluster.local:80"]
    assert backends(config)["GET /health/payout-api"] == ["http://payout-api.payments-dev.svc.cluster.local:80"]
    routes = {f"{e['method']} {e['endpoint']}": e["backend"][0]["url_pattern"] for e in config["endpoints"]}
    assert routes["GET /v1/payins/{id}"] == "/payins/{id}"
    assert routes["GET /health/payin-api"] == "/health/ready"


def test_the_preview_gateway_reaches_the_standby_colour_outside_prod() -> None:
    assert gateway_roles(settings("prod")) == ("public",)
    assert gateway_roles(settings("sandbox")) == ("public", "preview")
    config = krakend_config(settings("sandbox"), catalogue(), "preview")
    assert backends(config)["POST /v1/payouts"] == ["http://payout-api-preview.payments-sandbox.svc.cluster.local:80"]


@pytest.mark.parametrize("stack", STACKS)
def test_a_colour_flip_changes_no_gateway_config(stack: str) -> None:
    config = stack_config(stack)
    for service in config["services"].values():
        if service.get("standby", {}).get("policy", "warm") == "warm":
            service["active"] = "green" if service["active"] == "blue" else "blue"
    for role in gateway_roles(settings(stack)):
        before, after = krakend_config(settings(stack), catalogue(), role), krakend_config(settings(stack, config),
                                                                                           catalogue(), role)
        assert checksum(before) == checksum(after)


def test_a_canary_step_weights_only_that_services_hosts() -> None:
    config = set_path(stack_config("prod"), "services.payin-api.canary", {"weight": 25})
    canary = backends(krakend_config(settings("prod", config), catalogue()))
    stable = backends(krakend_config(settings("prod"), catalogue()))
    active = "http://payin-api.payments-prod.svc.cluster.local:80"
    preview = "http://payin-api-preview.payments-prod.svc.cluster.local:80"
    assert canary["POST /v1/payins"] == [active, active, active, preview]
    assert canary["GET /health/payin-api"] == [active, active, active, preview]
    assert {key: hosts for key, hosts in canary.items() if "payin" not in key} == \
        {key: hosts for key, hosts in stable.items() if "payin" not in key}


def test_payment_headers_telemetry_and_protection_are_configured() -> None:
    config = krakend_config(settings("prod"), catalogue())
    endpoint = next(e for e in config["endpoints"] if e["endpoint"] == "/v1/payouts")
    assert {"Authorization", "Idempotency-Key", "X-Request-Id"} <= set(endpoint["input_headers"])
    assert endpoint["backend"][0]["extra_config"]["qos/circuit-breaker"]["max_errors"] == 10
    assert endpoint["extra_config"]["qos/ratelimit/router"]["client_max_rate"] == 100
    otel = config["extra_config"]["telemetry/opentelemetry"]
    assert (otel["service_name"], otel["deploy_env"]) == ("gateway", "prod")
    assert otel["exporters"]["otlp"][0]["host"] == "otel-collector.monitoring.svc.cluster.local"
    assert (config["version"], config["timeout"]) == (3, "5000ms")


def test_gateway_settings_override_only_what_they_name() -> None:
    config = set_path(stack_config("dev"), "gateway", {"timeout_ms": 2500, "rate_limit": {"max_rate": 50}})
    gateway = settings("dev", config).gateway
    assert (gateway.timeout_ms, gateway.rate_limit.max_rate, gateway.rate_limit.client_max_rate) == (2500, 50, 100)


def test_only_trusted_proxies_may_name_the_client_address() -> None:
    """By default KrakenD believes X-Forwarded-For from anyone; here nobody's, until the stack names its proxies."""
    assert krakend_config(settings("prod"), catalogue())["extra_config"]["router"] == {
        "forwarded_by_client_ip": False, "hide_version_header": True}
    config = set_path(stack_config("prod"), "gateway.trusted_proxies", ["10.42.0.0/16", "fd00:42::/64", "192.0.2.7"])
    assert krakend_config(settings("prod", config), catalogue())["extra_config"]["router"] == {
        "forwarded_by_client_ip": True, "remote_ip_headers": ["X-Forwarded-For"],
        "trusted_proxies": ["10.42.0.0/16", "fd00:42::/64", "192.0.2.7/32"], "hide_version_header": True}


@pytest.mark.parametrize(("stack", "role", "outside"), [
    ("sandbox", "public", True), ("prod", "public", True),  # external merchants (and consumers)
    ("sandbox", "preview", False), ("dev", "public", False), ("test", "public", False),
])
def test_only_gateways_for_outside_callers_start_their_own_traces(stack: str, role: str, outside: bool) -> None:
    """A trace context from outside the company is not joined: a sampled flag would force tracing at will."""
    config = krakend_config(settings(stack), catalogue(), role)
    otel = config["extra_config"]["telemetry/opentelemetry"]
    assert otel["layers"]["global"]["disable_propagation"] is outside
    for endpoint in config["endpoints"]:
        assert ("traceparent" in endpoint["input_headers"]) is not outside, endpoint["endpoint"]
        assert ("tracestate" in endpoint["input_headers"]) is not outside, endpoint["endpoint"]


def test_health_routes_have_a_small_limit_of_their_own() -> None:
    """Public and without credentials, a health route reaches a readiness handler: it must not admit the API's
    rate, which is 5,000 per second and pod in prod."""
    config = krakend_config(settings("prod"), catalogue())
    limits = {e["endpoint"]: e["extra_config"]["qos/ratelimit/router"] for e in config["endpoints"]}
    health = {path: limit for path, limit in limits.items() if path.startswith("/health/")}
    assert set(health) == {f"/health/{service}" for service in settings("prod").services}
    assert all(limit == {"max_rate": HEALTH_MAX_RATE} for limit in health.values()), health
    assert limits["/v1/payouts"]["max_rate"] == 5000
    small = set_path(stack_config("dev"), "gateway.rate_limit.max_rate", 3)  # a stack's own lower limit stays
    assert krakend_config(settings("dev", small), catalogue())["endpoints"][0]["extra_config"][
        "qos/ratelimit/router"]["max_rate"] == 3


PINNED = ("must be a pinned image: <repository>:<version> (a patch release, e.g. 2.13.1) or "
          "<repository>@sha256:<digest>, the repository in lowercase; not :latest or :watch alone")
ELSEWHERE = ("must come from the private registry registry.pay.internal, as every image does: mirror KrakenD's image "
             "there (the default is registry.pay.internal/devopsfaith/krakend:2.13.1)")
HOST = "must be a host name: lowercase labels of letters, digits and '-', joined by dots, not an IP address"
EVERY_ADDRESS = "must be the proxies' own addresses, not every address: the gateway would believe any client's " \
                "X-Forwarded-For"


@pytest.mark.parametrize("gateway", [
    {"image": "registry.pay.internal/krakend:2.13.1@sha256:" + "a" * 64},
    {"image": "registry.pay.internal/devopsfaith/krakend:latest@sha256:" + "b" * 64},  # the digest pins it
    {"image": "Registry.Pay.Internal/krakend:2.13.1"},  # a host name is any case
    {"image": "registry.pay.internal/krakend:v2.13.1-alpine"},
    {"otlp": {"host": "otel-collector.monitoring.svc.cluster.local.", "port": 4317}},
    {"otlp": {"host": "fd00::1", "port": 4317}},
    {"otlp": {"host": "10.0.0.7", "port": 4317}},
])
def test_pinned_images_and_real_addresses_are_accepted(gateway: dict) -> None:
    loaded = settings("dev", set_path(stack_config("dev"), "gateway", gateway)).gateway.model_dump()
    assert {key: loaded[key] for key in gateway} == gateway


@pytest.mark.parametrize(("path", "value", "expected"), [
    ("services.payin-api.canary", {"weight": 101},
     "release-infra:services.payin-api.canary.weight = 101: input should be less than or equal to 100"),
    ("services.payin-api.canary", {"weight": -5},
     "release-infra:services.payin-api.canary.weight = -5: input should be greater than or equal to 0"),
    ("services.payin-api.canary", {"weight": 10},
     'release-infra:services.payin-api.canary = {"weight": 10}: weight 10 is not a step of the schedule '
     "5 -> 25 -> 50 -> 100 (or 0 for no canary)"),
    ("services.payin-api.canary", {"weight": 5, "steps": [5, 50]},
     "release-infra:services.payin-api.canary.steps = [5, 50]: must be ascending percentages from 1 to 100, "
     "starting at 5 or below and ending at 100"),
    ("services.payin-api.canary", {"weight": 5, "steps": [5, 50, 10, 100]},
     "release-infra:services.payin-api.canary.steps = [5, 50, 10, 100]: must be ascending percentages from 1 to "
     "100, starting at 5 or below and ending at 100"),
    ("services.payin-api.canary", {"weight": 100, "steps": [100]},
     "release-infra:services.payin-api.canary.steps = [100]: must be ascending percentages from 1 to 100, "
     "starting at 5 or below and ending at 100"),
    ("services.payin-api.canary", {"weight": 10, "steps": [10, 50, 100]},
     "release-infra:services.payin-api.canary.steps = [10, 50, 100]: must be ascending percentages from 1 "
     "to 100, starting at 5 or below and ending at 100"),
    *(("gateway", {"image": image}, f'release-infra:gateway.image = "{image}": must not be a watch image '
        f"('{image.rsplit(':', 1)[-1].split('@')[0]}'): it reloads its config as it changes, for development only")
      for image in ("docker.io/devopsfaith/krakend:watch", "docker.io/devopsfaith/krakend:2.13.1-watch")),
    ("gateway", {"image": "docker.io/devopsfaith/krakend"},
     'release-infra:gateway.image = "docker.io/devopsfaith/krakend": ' + PINNED),
    *(("gateway", {"image": image}, f'release-infra:gateway.image = "{image}": ' + PINNED) for image in (
        "docker.io/devopsfaith/krakend:2",  # moves with every release of 2.x
        "docker.io/devopsfaith/krakend:2.13",
        "docker.io/DevOpsFaith/KrakenD:2.13.1",  # the kubelet refuses an uppercase repository
        "docker.io/devopsfaith/krakend:2.13.1:latest",
        "docker.io/devopsfaith/krakend@sha256:" + "A" * 64,
    )),
    *(("gateway", {"image": image}, f'release-infra:gateway.image = "{image}": ' + ELSEWHERE) for image in (
        "docker.io/devopsfaith/krakend:2.13.1",
        "devopsfaith/krakend:2.13.1",  # Docker Hub's, as a runtime reads a reference without a host
        "krakend@sha256:" + "c" * 64,
        "registry.pay.internal:5000/krakend:2.13.1",  # another registry on the same host
        "localhost:5000/krakend:v2.13.1-alpine",
    )),
    ("gateway", {"public_hosts": {"merchants": ""}}, 'release-infra:gateway.public_hosts.merchants = "": ' + HOST),
    ("gateway", {"public_hosts": {"merchants": "10.0.0.1"}},  # the API server refuses an IP as an Ingress host
     'release-infra:gateway.public_hosts.merchants = "10.0.0.1": ' + HOST),
    ("gateway", {"public_hosts": {"consumers": "Consumers API"}},
     'release-infra:gateway.public_hosts.consumers = "Consumers API": ' + HOST),
    ("gateway", {"otlp": {"host": "otel collector"}},
     'release-infra:gateway.otlp.host = "otel collector": must be a host name (lowercase labels of letters, digits '
     "and '-', joined by dots) or an IP address"),
    ("gateway", {"trusted_proxies": ["10.42.0.1/16"]},
     'release-infra:gateway.trusted_proxies[0] = "10.42.0.1/16": must be an IP address or a network in CIDR form '
     "without host bits, e.g. 10.0.0.0/8"),
    ("gateway", {"trusted_proxies": ["10.42.0.0/16", "0.0.0.0/0"]},
     'release-infra:gateway.trusted_proxies[1] = "0.0.0.0/0": ' + EVERY_ADDRESS),
    ("gateway", {"trusted_proxies": ["::/0"]}, 'release-infra:gateway.trusted_proxies[0] = "::/0": ' + EVERY_ADDRESS),
    ("gateway", {"trusted_proxies": ["::ffff:10.42.0.7"]},
     'release-infra:gateway.trusted_proxies[0] = "::ffff:10.42.0.7": must not hold IPv4-mapped addresses '
     "(::ffff:0:0/96), which the gateway reads as all of IPv4: write IPv4 proxies as IPv4, e.g. 10.0.0.1"),
    ("gateway", {"trusted_proxies": ["fe80::1%eth0", "10.42.0.0/16"]},
     'release-infra:gateway.trusted_proxies[0] = "fe80::1%eth0": must be an address without a zone index (%...): '
     "the gateway cannot read one"),
    ("gateway", {"trusted_proxies": "10.42.0.0/16"},
     'release-infra:gateway.trusted_proxies = "10.42.0.0/16": input should be a valid list'),
    ("gateway", {"timeout_ms": 0},
     "release-infra:gateway.timeout_ms = 0: input should be greater than or equal to 100"),
    ("gateway", {"rate_limit": {"max_rte": 5}},
     "release-infra:gateway.rate_limit.max_rte: unknown key (did you mean max_rate?); known keys are max_rate, "
     "client_max_rate"),
])
def test_bad_gateway_and_canary_config(path: str, value: object, expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        settings("dev", set_path(stack_config("dev"), path, value))
    assert str(raised.value) == f'invalid config for stack "dev": {expected}'


def test_a_canary_needs_a_warm_standby_and_the_advice_makes_it_warm() -> None:
    config = set_path(stack_config("prod"), "services.payout-api.canary", {"weight": 5})
    with pytest.raises(ConfigError) as raised:
        settings("prod", config)
    assert str(raised.value).endswith(
        "release-infra:services.payout-api.canary.weight = 5: a canary runs on the standby colour, which is scaled "
        "down; make it warm and update first (pulumi config rm --path services.payout-api.standby)")
    delete_path(config, "services.payout-api.standby")  # what that command does to the stack file
    assert settings("prod", config).services["payout-api"].standby.policy == "warm"


def test_a_content_addressed_name_gives_back_its_prefix_and_no_other_name_does() -> None:
    name = content_addressed_name("prod-registry-retention-protect", {"prod.json": "{}"})
    assert name == f"prod-registry-retention-protect-{checksum({'prod.json': '{}'})[:10]}"
    assert content_address_prefix(name) == "prod-registry-retention-protect"
    assert content_address_prefix("prod-registry-retention-protect") is None
    assert content_address_prefix("payin-api-preview") is None
    assert content_address_prefix("prod-payin-api-migrate-5e6f7a8") is None  # a git sha is seven digits


@pytest.mark.parametrize("stack", STACKS)
def test_the_release_knows_which_public_gateways_join_their_callers_traces(stack: str) -> None:
    """The trace check looks the probes' traces up by ID only where the rendered gateway keeps their context."""
    config = krakend_config(settings(stack), catalogue())
    keeps = all("traceparent" in endpoint["input_headers"] for endpoint in config["endpoints"]) and not \
        config["extra_config"]["telemetry/opentelemetry"]["layers"]["global"]["disable_propagation"]
    assert joins_callers_traces(settings(stack).environment) is keeps
