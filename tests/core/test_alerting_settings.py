"""Alerting settings: the seeds' numbers by default, overrides validated, and one clear line for every mistake."""

from __future__ import annotations

import pytest
from hypothesis import given, settings as hypothesis_settings, strategies as st

from core.alerting.settings import PREFIX, AlertingSettings, load_alerting
from core.errors import ConfigError
from core.settings import PROJECT, EnvironmentKind
from tests.support.stacks import STACKS, settings

URL = "https://hooks.slack.com/services/T000/B000/XXXX"
KEY = "0123456789abcdef0123456789abcdef"
WATCHDOG = "https://deadman.example/ping/prod"
ALL_SECRETS = {"alerting_slack_deployments_url": URL, "alerting_slack_incidents_url": URL,
               "alerting_slack_alerts_url": URL, "alerting_pagerduty_routing_key": KEY, "alerting_watchdog_url": WATCHDOG}
LIVE = {"alertmanager_url": "http://alertmanager.monitoring.svc:9093"}


def load(raw=None, secrets=None, environment="prod", live=False) -> AlertingSettings:
    return load_alerting(environment, environment, raw, {} if secrets is None else secrets, live=live)


def error_of(raw=None, secrets=None, environment="prod", live=False) -> str:
    with pytest.raises(ConfigError) as caught:
        load(raw, secrets, environment, live)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f'invalid config for stack "{environment}": ')
    return message.split(": ", 1)[1]


def test_prefix_is_the_projects() -> None:
    assert PREFIX == PROJECT + ":"


@pytest.mark.parametrize("stack", STACKS)
def test_every_real_stack_needs_no_alerting_config(stack: str) -> None:
    environment = settings(stack).environment
    alerting = load_alerting(stack, environment, None, {}, live=False)
    assert alerting.thresholds.error_rate_critical_percent == 5 and alerting.thresholds.p99_rollback_seconds == 1
    assert alerting.configured_secrets == frozenset()


def test_seed_numbers_are_the_defaults() -> None:
    t = load().thresholds
    assert (t.error_rate_critical_percent, t.error_rate_warning_percent, t.error_rate_rollback_percent) == (5, 2, 0.1)
    assert (t.baseline_error_increase_points, t.canary_error_increase_points, t.baseline_p95_increase_percent) == \
        (0.5, 1, 10)
    assert (t.p99_critical_seconds, t.p95_warning_seconds, t.p99_rollback_seconds) == (5, 2, 1)
    assert (t.resource_critical_percent, t.resource_warning_percent) == (95, 80)


def test_defaults_differ_by_environment_where_the_environments_differ() -> None:
    prod, sandbox = load(), load(environment="sandbox")
    assert prod.page_on_call and not sandbox.page_on_call
    assert prod.metrics_not_reporting_severity == "critical" and sandbox.metrics_not_reporting_severity == "info"
    assert prod.slo_percent == 99.9 and prod.min_request_rate > sandbox.min_request_rate
    assert prod.min_failed_requests < sandbox.min_failed_requests  # prod's few failures are payments
    assert sandbox.channels.alerts == "#alerts-sandbox" and prod.channels.deployments == "#deployments"
    assert load(environment=EnvironmentKind.DEV).environment == "dev"  # the enum of core.settings is accepted


def test_overrides_merge_with_the_defaults_and_json_text_is_read() -> None:
    alerting = load('{"thresholds": {"p99_critical_seconds": 3}, "slo_percent": 99.95}')
    assert alerting.thresholds.p99_critical_seconds == 3 and alerting.thresholds.p95_warning_seconds == 2
    assert alerting.slo_percent == 99.95 and abs(alerting.error_budget - 0.0005) < 1e-12
    assert load({"channels": {"incidents": "#sev1"}}).channels.alerts == "#alerts-prod"


BAD = [
    ({"thresholds": {"error_rate_critical_percent": 150}},
     'release-infra:alerting.thresholds.error_rate_critical_percent = 150: input should be less than or equal to 100'),
    ({"thresholds": {"resource_warning_percent": 0}},
     'release-infra:alerting.thresholds.resource_warning_percent = 0: input should be greater than 0'),
    ({"thresholds": {"p99_critical_seconds": -1}},
     'release-infra:alerting.thresholds.p99_critical_seconds = -1: input should be greater than 0'),
    ({"thresholds": {"error_rate_warning_percent": 6}},
     'release-infra:alerting.thresholds.error_rate_warning_percent = 6.0: must be below error_rate_critical_percent (5)'),
    ({"thresholds": {"p99_rollback_seconds": 5}},
     'release-infra:alerting.thresholds.p99_rollback_seconds = 5.0: must be below p99_critical_seconds (5)'),
    ({"thresholds": {"eror_rate_critical_percent": 5}},
     'release-infra:alerting.thresholds.eror_rate_critical_percent: unknown key (did you mean '
     'error_rate_critical_percent?); known keys are error_rate_critical_percent, error_rate_warning_percent, '
     'error_rate_rollback_percent, baseline_error_increase_points, canary_error_increase_points, '
     'baseline_p95_increase_percent, p99_rollback_seconds, p99_critical_seconds, p95_warning_seconds, '
     'resource_critical_percent, resource_warning_percent'),
    ({"slo_percent": 100}, 'release-infra:alerting.slo_percent = 100: input should be less than 100'),
    ({"slo_percent": 0}, 'release-infra:alerting.slo_percent = 0: input should be greater than 0'),
    ({"slo_percent": -3}, 'release-infra:alerting.slo_percent = -3: input should be greater than 0'),
    ({"slo_percent": 90},
     'release-infra:alerting.slo_percent = 90: leaves an error budget so large that a 14.4x burn would need more '
     'than 100% errors, so the page could never fire: use an SLO above 93.06'),
    ({"slo_percent": "high"},
     'release-infra:alerting.slo_percent = "high": input should be a valid number, unable to parse string as a number'),
    ({"min_request_rate": 0}, 'release-infra:alerting.min_request_rate = 0: input should be greater than 0'),
    ({"page_on_call": False}, "release-infra:alerting.page_on_call = false: prod pages on-call for a rollback and a "
                              "critical alert (seed 000 §12); it cannot be switched off"),
    ({"page_on_call": "0"}, 'release-infra:alerting.page_on_call = "0": must be true or false'),
    ({"min_failed_requests": 0},
     'release-infra:alerting.min_failed_requests = 0: input should be greater than or equal to 1'),
    ({"post_deploy_window_minutes": 2},
     'release-infra:alerting.post_deploy_window_minutes = 2: input should be greater than or equal to 5'),
    ({"metrics_not_reporting_severity": "page"},
     'release-infra:alerting.metrics_not_reporting_severity = "page": input should be \'critical\', \'warning\' or '
     '\'info\''),
    ({"channels": {"deployments": "deployments"}},
     'release-infra:alerting.channels.deployments = "deployments": string should match pattern '
     '\'^#[a-z0-9][a-z0-9._-]{0,79}$\''),
    ({"alertmanager_url": "alertmanager:9093"},
     'release-infra:alerting.alertmanager_url = "alertmanager:9093": must be an http(s) URL without credentials or '
     "a query, e.g. http://alertmanager.monitoring:9093"),
    ({"alertmanager_url": "http://ops:hunter2@alertmanager:9093"},
     'release-infra:alerting.alertmanager_url = "http://[secret]@alertmanager:9093": must be an http(s) URL without '
     "credentials or a query, e.g. http://alertmanager.monitoring:9093"),
    ({"alertmanager_url": "http://alertmanager:9093/api#t"},  # a fragment or a query is where a token would go
     'release-infra:alerting.alertmanager_url = "http://alertmanager:9093/api#[secret]": must be an http(s) URL '
     "without credentials or a query, e.g. http://alertmanager.monitoring:9093"),
    ({"alertmanager_url": "http://alertmanager:9093/?access_token=s3cr3t"},  # refused, and not shown either
     'release-infra:alerting.alertmanager_url = "http://alertmanager:9093/?[secret]": must be an http(s) URL '
     "without credentials or a query, e.g. http://alertmanager.monitoring:9093"),
    ({"alertmanager_url": "https://hooks.slack.com/services/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"},
     'release-infra:alerting.alertmanager_url = "https://hooks.slack.com/services/...": has a path segment like a '
     "token: Alertmanager's own URL holds none, and this one is kept in the state in plain text; this looks like a "
     "webhook URL, a credential: it belongs in the secret key alerting_slack_<channel>_url (pulumi config set "
     "--secret alerting_slack_<channel>_url ...)"),
    ({"stack": "prod"}, 'release-infra:alerting.stack: unknown key; known keys are slo_percent, '
                        'min_request_rate, min_failed_requests, page_on_call, metrics_not_reporting_severity, '
                        'post_deploy_window_minutes, '
                        'thresholds, channels, alertmanager_url'),
    (["slo_percent"], 'release-infra:alerting = ["slo_percent"]: must be an object of alerting settings'),
]


@pytest.mark.parametrize(("raw", "message"), BAD, ids=[m.split(" ")[0] for _, m in BAD])
def test_bad_values_fail_with_one_line_naming_key_value_and_what_is_allowed(raw, message: str) -> None:
    assert error_of(raw) == message


def test_a_stack_with_a_cluster_needs_every_secret_and_the_alertmanager_url() -> None:
    message = error_of(None, {}, live=True)
    for key in ("alerting_slack_deployments_url", "alerting_slack_incidents_url", "alerting_slack_alerts_url",
                "alerting_pagerduty_routing_key"):
        assert (f"release-infra:{key} is missing: a secret holding" in message
                and f"(pulumi config set --secret {key} ...)" in message)
    assert "release-infra:alerting.alertmanager_url is missing" in message
    assert load(LIVE, ALL_SECRETS, live=True).configured_secrets == set(ALL_SECRETS)


def test_a_live_prod_stack_needs_its_dead_mans_switch() -> None:
    """Without it prod's Watchdog goes to a null receiver: a broken alerting pipeline would go unnoticed."""
    secrets = {k: v for k, v in ALL_SECRETS.items() if k != "alerting_watchdog_url"}
    assert error_of(LIVE, secrets, live=True) == (
        "release-infra:alerting_watchdog_url is missing: a secret holding the URL of an external dead-man's-switch "
        "service the Watchdog alert pings (pulumi config set --secret alerting_watchdog_url ...); prod's Watchdog "
        "must reach it, or a broken alerting pipeline goes unnoticed")
    assert not load(None, {}, live=False).watchdog_configured  # rendered manifests deliver nothing
    for environment in ("sandbox", "dev", "test"):
        assert not load(LIVE, secrets, environment=environment, live=True).watchdog_configured


def test_a_missing_secret_is_named_alone() -> None:
    secrets = {k: v for k, v in ALL_SECRETS.items() if k != "alerting_slack_incidents_url"}
    assert error_of(LIVE, secrets, live=True) == (
        "release-infra:alerting_slack_incidents_url is missing: a secret holding a Slack incoming-webhook URL "
        "(https://...) posting to the incidents channel (pulumi config set --secret alerting_slack_incidents_url "
        "...); a stack with a cluster delivers notifications")


def test_without_paging_the_routing_key_is_not_needed() -> None:
    secrets = {k: v for k, v in ALL_SECRETS.items() if k != "alerting_pagerduty_routing_key"}
    assert load(LIVE, secrets, environment="test", live=True).page_on_call is False
    assert "alerting_pagerduty_routing_key is missing" in error_of(
        {**LIVE, "page_on_call": True}, secrets, environment="test", live=True)
    assert "alerting_pagerduty_routing_key is missing" in error_of(LIVE, secrets, live=True)


@pytest.mark.parametrize(("key", "value"), [
    ("alerting_slack_deployments_url", "http://hooks.slack.com/services/T/B/leaked-token"),
    ("alerting_slack_alerts_url", "not a url"),
    ("alerting_pagerduty_routing_key", "short"),
    ("alerting_watchdog_url", ""),
])
def test_a_malformed_secret_is_refused_without_showing_it(key: str, value: str) -> None:
    message = error_of(None, {**ALL_SECRETS, key: value})
    assert message.startswith(f'release-infra:{key} = "[secret]": must be ')
    assert value not in message.replace('"[secret]"', "") or value == ""


@pytest.mark.parametrize(("raw", "message"), [
    ({"channels": {"alerts": URL}},
     'release-infra:alerting.channels.alerts = "https://hooks.slack.com/services/...": string should match pattern '
     "'^#[a-z0-9][a-z0-9._-]{0,79}$'; this looks like a webhook URL, a credential: it belongs in the secret key "
     "alerting_slack_alerts_url (pulumi config set --secret alerting_slack_alerts_url ...)"),
    ({"channels": {"incidents": KEY}},
     'release-infra:alerting.channels.incidents = "[secret]": string should match pattern '
     "'^#[a-z0-9][a-z0-9._-]{0,79}$'; this looks like a routing key, a credential: it belongs in the secret key "
     "alerting_pagerduty_routing_key (pulumi config set --secret alerting_pagerduty_routing_key ...)"),
    (URL, 'release-infra:alerting = "https://hooks.slack.com/services/...": must be an object of alerting settings; '
          "this looks like a webhook URL, a credential: it belongs in the secret key alerting_slack_<channel>_url "
          "(pulumi config set --secret alerting_slack_<channel>_url ...)"),
])
def test_a_webhook_pasted_into_a_plain_field_is_cut_short_and_sent_to_its_secret_key(raw, message: str) -> None:
    """The error is printed in CI logs: it shows the webhook's host and kind, never its token."""
    assert error_of(raw) == message
    assert "T000" not in error_of({"slo_percent": URL}) and "B000/XXXX" not in error_of({"channels": [URL]})


def test_settings_keep_which_secrets_are_set_never_their_values() -> None:
    alerting = load(None, {**ALL_SECRETS, "alerting_watchdog_url": "https://deadman.example/ping"})
    dumped = alerting.model_dump_json()
    assert URL not in dumped and KEY not in dumped and "deadman.example" not in dumped
    assert alerting.watchdog_configured and alerting.configured_secrets == {*ALL_SECRETS, "alerting_watchdog_url"}


_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 200), st.floats(allow_nan=True), st.text(max_size=8),
              st.sampled_from(["#x", "https://a.b/c", "critical", "{", "99.9"])),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(
        ["slo_percent", "thresholds", "channels", "p99_critical_seconds", "alerts", "error_rate_critical_percent",
         "page_on_call", "x"]), inner, max_size=4)), max_leaves=10)


@hypothesis_settings(max_examples=300, deadline=None)
@given(raw=_values, secret=_values, live=st.booleans())
def test_no_input_gives_a_traceback(raw, secret, live: bool) -> None:
    try:
        load(raw, {"alerting_slack_alerts_url": secret}, live=live)
    except ConfigError as error:
        assert error.problems and "\n" not in str(error)
