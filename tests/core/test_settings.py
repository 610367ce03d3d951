"""Stack settings: every real stack loads, and every kind of bad value fails with one clear line."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings as hypothesis_settings, strategies as st

from core.errors import ConfigError
from core.settings import GATEWAY_DEFAULTS, KRAKEND_IMAGE, load_settings
from tests.support.stacks import NOW, STACKS, catalogue, delete_path, set_path, settings, stack_config

DELETE = object()
IMG = "registry.pay.internal/payin-api:"

BAD_CONFIG = [
    ('dev', 'environment', 'staging',
     'release-infra:environment = "staging": input should be \'sandbox\', \'dev\', \'test\' or \'prod\''),
    ('dev', 'environment', DELETE,
     'release-infra:environment is missing: required'),
    ('dev', 'namespace', 'Payments_Dev',
     'release-infra:namespace = "Payments_Dev": must be a DNS label: lowercase letters, digits and \'-\', starting and ending with a letter or digit'),
    ('dev', 'namespace', 'payments-dev\n',
     'release-infra:namespace = "payments-dev\\n": must be a DNS label: lowercase letters, digits and \'-\', starting and ending with a letter or digit'),
    ('dev', 'namespace', 'kube-system',
     'release-infra:namespace = "kube-system": \'kube-system\' is reserved by Kubernetes; use a namespace of the environment\'s own'),
    ('dev', 'namespace', 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx',
     'release-infra:namespace = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx": string should have at most 63 characters'),
    ('dev', 'namespace', DELETE,
     'release-infra:namespace is missing: required'),
    # Sandbox deploys every branch unreviewed: it must not take prod's (or any other environment's) namespace or host.
    ('sandbox', 'namespace', 'payments-prod',
     'release-infra:namespace = "payments-prod": a sandbox namespace has \'sandbox\' as one of its \'-\'-separated words, and none of dev, prod, test (e.g. payments-sandbox): no stack may take another environment\'s namespace'),
    ('sandbox', 'namespace', 'payments-sandbox-prod',
     'release-infra:namespace = "payments-sandbox-prod": a sandbox namespace has \'sandbox\' as one of its \'-\'-separated words, and none of dev, prod, test (e.g. payments-sandbox): no stack may take another environment\'s namespace'),
    ('prod', 'namespace', 'payments-dev',
     'release-infra:namespace = "payments-dev": a prod namespace has \'prod\' as one of its \'-\'-separated words, and none of dev, sandbox, test (e.g. payments-prod): no stack may take another environment\'s namespace'),
    ('sandbox', 'gateway.public_hosts.merchants', 'merchants.prod.api.pay.example',
     'release-infra:gateway.public_hosts.merchants = "merchants.prod.api.pay.example": a sandbox host has \'sandbox\' as one of its labels and none of dev, prod, test (e.g. merchants.sandbox.api.pay.example): no stack may take another environment\'s host'),
    ('sandbox', 'gateway.public_hosts.merchants', 'merchants.api.pay.com',
     'release-infra:gateway.public_hosts.merchants = "merchants.api.pay.com": a sandbox host has \'sandbox\' as one of its labels and none of dev, prod, test (e.g. merchants.sandbox.api.pay.example): no stack may take another environment\'s host'),
    ('prod', 'gateway.public_hosts.consumers', 'consumers.sandbox.api.pay.example',
     'release-infra:gateway.public_hosts.consumers = "consumers.sandbox.api.pay.example": a prod host has none of dev, sandbox, test (e.g. consumers.prod.api.pay.example): no stack may take another environment\'s host'),
    ('dev', 'access', 'public',
     'release-infra:access = "public": input should be \'internal\', \'merchants\' or \'merchants-and-consumers\''),
    ('dev', 'access', 'merchants',
     'release-infra:access = "merchants": a dev environment has access \'internal\' under the deployment standard'),
    ('prod', 'access', 'internal',
     'release-infra:access = "internal": a prod environment has access \'merchants-and-consumers\' under the deployment standard'),
    ('sandbox', 'access', 'internal',
     'release-infra:access = "internal": a sandbox environment has access \'merchants\' under the deployment standard'),
    ('dev', 'regions', [],
     'release-infra:regions = []: list should have at least 1 item after validation, not 0'),
    ('dev', 'regions', ['US'],
     'release-infra:regions[0] = "US": input should be \'PK\', \'BD\', \'NP\', \'IQ\' or \'EG\''),
    ('dev', 'regions', ['PK', 'PK'],
     'release-infra:regions = ["PK", "PK"]: each region may appear once'),
    ('dev', 'regions', 'PK',
     'release-infra:regions = "PK": input should be a valid list'),
    ('dev', 'registry', 'not a host',
     'release-infra:registry = "not a host": must be a registry host name, e.g. registry.example.com or registry.example.com:5000'),
    ('dev', 'registry', DELETE,
     'release-infra:registry is missing: required'),
    ('dev', 'replicas', 'two',
     'release-infra:replicas = "two": input should be a valid integer, unable to parse string as an integer'),
    ('dev', 'replicas', True,
     'release-infra:replicas = true: must be a number, not true or false'),
    ('dev', 'services.payin-api.replicas', False,
     'release-infra:services.payin-api.replicas = false: must be a number, not true or false'),
    ('dev', 'services.payin-api.canary', {'steps': [True, 50, 100]},
     'release-infra:services.payin-api.canary.steps = [true, 50, 100]: must hold numbers, not true or false'),
    ('dev', 'replicas', 0,
     'release-infra:replicas = 0: input should be greater than or equal to 1'),
    ('dev', 'replicas', 51,
     'release-infra:replicas = 51: input should be less than or equal to 50'),
    ('prod', 'replicas', 1,
     'release-infra:replicas = 1: prod runs at least 2 replicas per colour'),
    ('prod', 'services.payin-api.replicas', 1,
     'release-infra:services.payin-api.replicas = 1: prod runs at least 2 replicas per colour'),
    ('test', 'gateway.timeout_ms', 60_000,
     'release-infra:gateway.timeout_ms = 60000: a request may take 60s, but after its drain a pod of merchant-api '
     'has 25s, payin-api has 35s, payout-api has 35s before it is stopped (catalogue shutdown): in-flight requests '
     'would be cut; lower the timeout or raise grace_seconds'),
    ('prod', 'gateway.replicas', 1,
     'release-infra:gateway.replicas = 1: prod runs at least 2 gateway pods: a node drain takes one at a time, and '
     'one alone would take every prod request with it'),
    ('dev', 'rollback_window_minutes', 30,
     'release-infra:rollback_window_minutes = 30: input should be greater than or equal to 60'),
    ('dev', 'cluster', {'context': ''},
     'release-infra:cluster.context = "": string should have at least 1 character'),
    ('dev', 'cluster', {'context': 'dev', 'kubeconfig': 'apiVersion: v1\nusers:\n- user: {token: eyJhbGciOi}\n'},
     'release-infra:cluster.kubeconfig = "[secret]": must be the path of a kubeconfig file, not its contents: they '
     'hold the cluster\'s credentials, and the stack file keeps this key in plain text (leave it unset to use '
     'KUBECONFIG)'),
    ('dev', 'cluster', {'context': 'dev', 'kubeconfig': '{"apiVersion": "v1", "users": [{"user": {"token": "t"}}]}'},
     'release-infra:cluster.kubeconfig = "[secret]": must be the path of a kubeconfig file, not its contents: they '
     'hold the cluster\'s credentials, and the stack file keeps this key in plain text (leave it unset to use '
     'KUBECONFIG)'),
    ('dev', 'cluster', {'context': 'dev', 'kubeconfig': {'users': [{'user': {'token': 'eyJhbGciOi'}}]}},
     'release-infra:cluster.kubeconfig = "[secret]": must be the path of a kubeconfig file, not its contents: they '
     'hold the cluster\'s credentials, and the stack file keeps this key in plain text (leave it unset to use '
     'KUBECONFIG)'),  # pasted as YAML: pydantic would show the mapping, token and all
    ('dev', 'cluster', {'context': 'dev', 'kubeconfig': 5},
     'release-infra:cluster.kubeconfig = "[secret]": input should be a valid string'),
    ('dev', 'cluster', {'contxt': 'prod-eu'},
     'release-infra:cluster.context is missing: required; release-infra:cluster.contxt: unknown key (did you mean '
     'context?); known keys are context, kubeconfig'),
    ('dev', 'servces', {},
     'release-infra:servces: unknown key (did you mean services?); known keys are environment, namespace, access, regions, registry, replicas, rollback_window_minutes, cluster, gateway, services, alerting, alerting_slack_deployments_url, alerting_slack_incidents_url, alerting_slack_alerts_url, alerting_pagerduty_routing_key, alerting_watchdog_url, retention, retention_registry_password, release_policy, emergency_change, feature_flags, upstream_stack, image_digests, image_digests_registry_password, databases'),
    ('dev', 'services', {},
     'release-infra:services = {}: dictionary should have at least 1 item after validation, not 0'),
    ('dev', 'services', 'payin-api',
     'release-infra:services = "payin-api": input should be a valid dictionary'),
    ('dev', 'services.refunds-api', {'active': 'blue', 'blue': {'image': 'registry.pay.internal/refunds-api:a1b2c3d-v1.0.0'}, 'green': {'image': 'registry.pay.internal/refunds-api:a1b2c3d-v1.0.0'}},
     'release-infra:services = "refunds-api": \'refunds-api\' is not in the catalogue; known: payin-api, payout-api, merchant-api'),
    ('dev', 'services.payin-api.active', 'purple',
     'release-infra:services.payin-api.active = "purple": input should be \'blue\' or \'green\''),
    ('dev', 'services.payin-api.active', DELETE,
     'release-infra:services.payin-api.active is missing: required'),
    ('dev', 'services.payin-api.actve', 'blue',
     'release-infra:services.payin-api.actve: unknown key (did you mean active?); known keys are active, blue, '
     'green, replicas, standby, canary'),
    ('dev', 'services.payin-api.green', DELETE,
     'release-infra:services.payin-api.green is missing: required'),
    ('dev', 'services.payin-api.blue.image', 'registry.pay.internal/payin-api:latest',
     'release-infra:services.payin-api.blue.image = "registry.pay.internal/payin-api:latest": \'latest\' is a mutable tag; expected <registry>/<service>:<git-sha>-v<semver>, e.g. registry.example.com/payin-api:a1b2c3d-v2.3.0'),
    ('dev', 'services.payin-api.blue.image', 'registry.pay.internal/payin-api:v2.3.0',
     'release-infra:services.payin-api.blue.image = "registry.pay.internal/payin-api:v2.3.0": a bare version tag \'v2.3.0\' can be moved to another build; expected <registry>/<service>:<git-sha>-v<semver>, e.g. registry.example.com/payin-api:a1b2c3d-v2.3.0'),
    ('dev', 'services.payin-api.blue.image', 'registry.pay.internal/payin-api:2.3.0',
     'release-infra:services.payin-api.blue.image = "registry.pay.internal/payin-api:2.3.0": a bare version tag \'2.3.0\' can be moved to another build; expected <registry>/<service>:<git-sha>-v<semver>, e.g. registry.example.com/payin-api:a1b2c3d-v2.3.0'),
    ('dev', 'services.payin-api.blue.image', 'registry.pay.internal/payin-api:main',
     'release-infra:services.payin-api.blue.image = "registry.pay.internal/payin-api:main": tag \'main\' is not <git-sha>-v<semver> (git-sha: 7 to 40 lowercase hex digits); expected <registry>/<service>:<git-sha>-v<semver>, e.g. registry.example.com/payin-api:a1b2c3d-v2.3.0'),
    ('dev', 'services.payin-api.blue.image', 'registry.pay.internal/payin-api',
     'release-infra:services.payin-api.blue.image = "registry.pay.internal/payin-api": has no tag; expected <registry>/<service>:<git-sha>-v<semver>, e.g. registry.example.com/payin-api:a1b2c3d-v2.3.0'),
    ('dev', 'services.payin-api.blue.image', 'payin-api:a1b2c3d-v2.3.0',
     'release-infra:services.payin-api.blue.image = "payin-api:a1b2c3d-v2.3.0": names no registry; images come from the private registry: expected <registry>/<service>:<git-sha>-v<semver>, e.g. registry.example.com/payin-api:a1b2c3d-v2.3.0'),
    ('dev', 'services.payin-api.blue.image', 'registry.pay.internal/payin-api:a1b2c3d-v2.3',
     'release-infra:services.payin-api.blue.image = "registry.pay.internal/payin-api:a1b2c3d-v2.3": \'2.3\' in tag \'a1b2c3d-v2.3\' is not a semantic version (MAJOR.MINOR.PATCH); expected <registry>/<service>:<git-sha>-v<semver>, e.g. registry.example.com/payin-api:a1b2c3d-v2.3.0'),
    ('dev', 'services.payin-api.blue.image', 'registry.pay.internal/payin-api:A1B2C3D-v2.3.0',
     'release-infra:services.payin-api.blue.image = "registry.pay.internal/payin-api:A1B2C3D-v2.3.0": tag \'A1B2C3D-v2.3.0\' is not <git-sha>-v<semver> (git-sha: 7 to 40 lowercase hex digits); expected <registry>/<service>:<git-sha>-v<semver>, e.g. registry.example.com/payin-api:a1b2c3d-v2.3.0'),
    ('dev', 'services.payin-api.blue.image', 'registry.pay.internal/payin-api:a1b2-v2.3.0',
     'release-infra:services.payin-api.blue.image = "registry.pay.internal/payin-api:a1b2-v2.3.0": tag \'a1b2-v2.3.0\' is not <git-sha>-v<semver> (git-sha: 7 to 40 lowercase hex digits); expected <registry>/<service>:<git-sha>-v<semver>, e.g. registry.example.com/payin-api:a1b2c3d-v2.3.0'),
    ('dev', 'services.payin-api.blue.image', 'registry.pay.internal/payin-api:a1b2c3d-v2.3.0@sha256:abc',
     'release-infra:services.payin-api.blue.image = "registry.pay.internal/payin-api:a1b2c3d-v2.3.0@sha256:abc": digest must be sha256: followed by 64 lowercase hex digits'),
    ('dev', 'services.payin-api.blue.image', 'registry.pay.internal/Payin-API:a1b2c3d-v2.3.0',
     'release-infra:services.payin-api.blue.image = "registry.pay.internal/Payin-API:a1b2c3d-v2.3.0": not an image reference; expected <registry>/<service>:<git-sha>-v<semver>, e.g. registry.example.com/payin-api:a1b2c3d-v2.3.0'),
    ('dev', 'services.payin-api.blue.image', 'registry.pay.internal/payout-api:a1b2c3d-v2.3.0',
     'release-infra:services.payin-api.blue.image = "registry.pay.internal/payout-api:a1b2c3d-v2.3.0": is an image of \'payout-api\', not of \'payin-api\''),
    ('dev', 'services.payin-api.blue.image', 'docker.io/payin-api:a1b2c3d-v2.3.0',
     'release-infra:services.payin-api.blue.image = "docker.io/payin-api:a1b2c3d-v2.3.0": must come from the private registry registry.pay.internal'),
    ('dev', 'services.payin-api.blue.image', 42,
     'release-infra:services.payin-api.blue.image = 42: must be a string: <registry>/<service>:<git-sha>-v<semver>, e.g. registry.example.com/payin-api:a1b2c3d-v2.3.0'),
    ('test', 'environment', 'dev',
     'release-infra:environment = "dev": the test stack is the test environment; only a stack of another name (not dev, prod, sandbox, test) may choose its environment'),
    ('dev', 'services.payin-api.standby', {'policy': 'cold'},
     'release-infra:services.payin-api.standby.policy = "cold": input should be \'warm\' or \'scaled-down\''),
    ('dev', 'services.payin-api.standby', {'policy': 'scaled-down'},
     'release-infra:services.payin-api.standby = {"policy": "scaled-down"}: policy scaled-down needs colour (blue or green) and since (an ISO 8601 time with zone)'),
    ('dev', 'services.payin-api.standby', {'policy': 'scaled-down', 'colour': 'blue', 'since': '2026-11-01T10:00:00Z'},
     'release-infra:services.payin-api.standby.colour = "blue": the active colour cannot be scaled down; make the standby warm and update before switching to it (pulumi config rm --path services.payin-api.standby)'),
    ('dev', 'services.payin-api.standby', {'policy': 'scaled-down', 'colour': 'green', 'since': '2026-11-22T11:30:00Z'},
     'release-infra:services.payin-api.standby.since = "2026-11-22T11:30:00+00:00": the standby stays runnable for the 60-minute manual-rollback window: scale it down after 2026-11-22 12:30 UTC'),
    ('dev', 'services.payin-api.standby', {'policy': 'scaled-down', 'colour': 'green', 'since': '2026-11-22T16:30:00+05:00'},
     'release-infra:services.payin-api.standby.since = "2026-11-22T16:30:00+05:00": the standby stays runnable for the 60-minute manual-rollback window: scale it down after 2026-11-22 12:30 UTC'),
    ('dev', 'services.payin-api.standby', {'policy': 'scaled-down', 'colour': 'green', 'since': '9999-12-31T23:30:00Z'},
     'release-infra:services.payin-api.standby.since = "9999-12-31T23:30:00+00:00": is in the future (now is 2026-11-22 12:00 UTC): when the standby colour stopped taking traffic'),
    ('dev', 'services.payin-api.standby', {'policy': 'scaled-down', 'colour': 'green', 'since': 'yesterday'},
     'release-infra:services.payin-api.standby.since = "yesterday": input should be a valid datetime or date, input is too short'),
    ('dev', 'services.payin-api.standby', {'policy': 'scaled-down', 'colour': 'green', 'since': '2026-11-01T10:00:00'},
     'release-infra:services.payin-api.standby.since = "2026-11-01T10:00:00": input should have timezone info'),
    ('dev', 'services.payin-api.standby', {'policy': 'scaled-down', 'colour': 'green', 'since': 20261122},
     'release-infra:services.payin-api.standby.since = 20261122: must be written as an ISO 8601 time with its zone, '
     'e.g. 2026-11-22T10:00:00Z, not a number'),  # read as seconds since 1970, it would end the window at once
    ('dev', 'services.payin-api.standby', {'policy': 'scaled-down', 'colour': 'green', 'since': '1795000000'},
     'release-infra:services.payin-api.standby.since = "1795000000": must be written as an ISO 8601 time with its '
     'zone, e.g. 2026-11-22T10:00:00Z, not a number'),
    ('dev', 'services.payin-api.standby', {'policy': 'warm', 'colour': 'green'},
     'release-infra:services.payin-api.standby = {"policy": "warm", "colour": "green"}: colour and since go with policy scaled-down only'),
]


@pytest.mark.parametrize("stack", STACKS)
def test_every_real_stack_loads(stack: str) -> None:
    loaded = settings(stack)
    assert loaded.environment.value == stack
    assert set(loaded.services) <= set(catalogue().services)


def test_a_stack_of_another_name_chooses_its_environment() -> None:
    assert settings("prod-eu", stack_config("prod")).environment.value == "prod"


def test_enough_distinct_bad_config_cases() -> None:
    assert len({(stack, path, repr(value)) for stack, path, value, _ in BAD_CONFIG}) >= 40


@pytest.mark.parametrize(("stack", "path", "value", "expected"), BAD_CONFIG,
                         ids=[f"{stack}:{path}={value!r}"[:80] for stack, path, value, _ in BAD_CONFIG])
def test_bad_config_fails_with_one_clear_line(stack: str, path: str, value: object, expected: str) -> None:
    config = stack_config(stack)
    delete_path(config, path) if value is DELETE else set_path(config, path, value)
    with pytest.raises(ConfigError) as raised:
        settings(stack, config)
    message = str(raised.value)
    assert message == f'invalid config for stack "{stack}": {expected}'
    assert "\n" not in message


def test_a_kubeconfig_path_is_accepted() -> None:
    config = set_path(stack_config("dev"), "cluster", {"context": "dev", "kubeconfig": "~/.kube/pay-dev.yaml"})
    assert settings("dev", config).cluster.kubeconfig == "~/.kube/pay-dev.yaml"


def test_all_problems_are_reported_together() -> None:
    config = stack_config("dev")
    set_path(config, "services.payin-api.active", "purple")
    set_path(config, "replicas", 0)
    with pytest.raises(ConfigError) as raised:
        settings("dev", config)
    assert [problem.path for problem in raised.value.problems] == [
        "release-infra:replicas", "release-infra:services.payin-api.active"]


def test_structured_values_arrive_as_json_text_like_pulumi_sends_them() -> None:
    import json
    config = {key: json.dumps(value) if isinstance(value, (dict, list)) else str(value)
              for key, value in stack_config("prod").items()}
    assert settings("prod", config).replicas == 3


def test_standby_scale_down_is_allowed_exactly_when_the_window_has_passed() -> None:
    config = set_path(stack_config("dev"), "services.payin-api.standby",
                      {"policy": "scaled-down", "colour": "green", "since": "2026-11-22T11:00:00Z"})
    assert load_settings("dev", config, catalogue(), NOW).replicas_of("payin-api", "green") == 0
    with pytest.raises(ConfigError, match="scale it down after 2026-11-22 12:00 UTC"):
        load_settings("dev", config, catalogue(), NOW - timedelta(seconds=1))


def test_a_longer_rollback_window_is_honoured() -> None:
    config = set_path(stack_config("dev"), "services.payin-api.standby",
                      {"policy": "scaled-down", "colour": "green", "since": "2026-11-22T10:00:00Z"})
    config["rollback_window_minutes"] = 180
    with pytest.raises(ConfigError, match="180-minute manual-rollback window: scale it down after 2026-11-22 13:00"):
        load_settings("dev", config, catalogue(), NOW)


# Values from every corner: right types, wrong types, near misses of real values.
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 100), st.floats(allow_nan=True), st.text(max_size=12),
    st.sampled_from(["blue", "green", "dev", "prod", "internal", "PK", "warm", "scaled-down",
                     IMG + "a1b2c3d-v2.3.0", IMG + "latest", "2026-11-01T00:00:00Z", "{", "[1,"]),
)
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.sampled_from(["active", "blue", "green", "image", "standby", "policy", "colour", "since",
                                     "replicas", "payin-api", "context", "x"]), inner, max_size=4)), max_leaves=12)


@hypothesis_settings(max_examples=300, deadline=None)
@given(mutations=st.lists(st.tuples(
    st.sampled_from(["environment", "namespace", "access", "regions", "registry", "replicas", "cluster", "services",
                     "rollback_window_minutes", "services.payin-api", "services.payin-api.active",
                     "services.payin-api.blue", "services.payin-api.blue.image", "services.payin-api.standby",
                     "services.payout-api.replicas", "unknown"]),
    _values), max_size=4))
def test_no_input_gives_a_traceback(mutations: list[tuple[str, object]]) -> None:
    config = stack_config("dev")
    for path, value in mutations:
        try:
            set_path(config, path, value)
        except (AttributeError, TypeError):
            config[path.split(".")[0]] = value  # the parent was replaced by a scalar: set the top key instead
    try:
        loaded = settings("dev", config)
    except ConfigError as error:
        assert error.problems and "\n" not in str(error)
    else:
        assert loaded.stack == "dev"


def test_the_readme_gateway_table_states_each_environments_defaults() -> None:
    """The README's table is what operators read before overriding a key; it must not drift from the code."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    rows = {}
    for line in readme.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 6 and cells[0].startswith("`") and cells[0].count("`") == 2:
            rows[cells[0].strip("`")] = cells[2:]
    number = {"replicas": ("replicas",), "timeout_ms": ("timeout_ms",),
              "rate_limit.max_rate": ("rate_limit", "max_rate"),
              "rate_limit.client_max_rate": ("rate_limit", "client_max_rate")}
    for key, path in number.items():
        for environment, cell in zip(("sandbox", "dev", "test", "prod"), rows[key]):
            value = GATEWAY_DEFAULTS[environment]
            for part in path:
                value = value[part]
            assert cell.replace(",", "") == str(value), (key, environment)
    assert rows["image"][0] == f"`<registry>/{KRAKEND_IMAGE}`"  # the stack's registry's mirror
    assert set(rows["image"][1:]) == {"same"}  # one image for every environment
    assert {settings(stack).gateway.image for stack in STACKS} == {f"registry.pay.internal/{KRAKEND_IMAGE}"}
