"""Config errors name the key path, the value and what is allowed, but never show a credential."""

from __future__ import annotations

import pytest

from core.errors import MISSING, ConfigError, Problem
from core.policy.rules import PolicyViolation
from core.registry.digests import load_image_digests
from core.registry.settings import load_retention


def test_a_value_under_a_credential_name_is_shown_as_secret_wherever_it_is_written() -> None:
    assert str(Problem("release-infra:retention.password", "hunter2", "unknown key (a typo?)")) == \
        'release-infra:retention.password = "[secret]": unknown key (a typo?)'
    assert str(Problem("release-infra:alerting.pagerduty_routing_key", "0123abcd", "unknown key (a typo?)")) == \
        'release-infra:alerting.pagerduty_routing_key = "[secret]": unknown key (a typo?)'
    assert str(Problem("release-infra:alerting.slack_webhook", "https://hooks.slack.com/x", "unknown key")) == \
        'release-infra:alerting.slack_webhook = "[secret]": unknown key'
    assert str(Problem("release-infra:gateway.timeout_ms", 0, "at least 100")) == \
        "release-infra:gateway.timeout_ms = 0: at least 100"
    assert str(Problem("release-infra:feature_flags.payin-webhook-v2", {"rollout_percent": 5}, "bad")) == \
        'release-infra:feature_flags.payin-webhook-v2 = {"rollout_percent": 5}: bad'  # a name, not a credential


def test_credentials_in_a_url_are_not_shown() -> None:
    shown = str(Problem("release-infra:alerting.alertmanager_url", "http://ops:hunter2@alertmanager:9093/x", "bad"))
    assert shown == 'release-infra:alerting.alertmanager_url = "http://[secret]@alertmanager:9093/x": bad'


@pytest.mark.parametrize("load", [
    lambda url: load_image_digests("dev", {"mode": "lookup", "registry_url": url}, {}, "registry.pay.internal",
                                   live=False),
    lambda url: load_retention("prod", {"registry_url": url}, {}, "registry.pay.internal", live=False),
])
def test_a_registry_url_with_credentials_is_refused_without_showing_them(load) -> None:
    with pytest.raises(ConfigError) as raised:
        load("https://retention:hunter2@registry.pay.internal")
    assert "hunter2" not in str(raised.value)
    assert 'registry_url = "https://[secret]@registry.pay.internal": must be the registry\'s base URL without ' \
           "credentials" in str(raised.value)


def test_redacting_keys_set_as_secrets_keeps_the_errors_kind_and_wording() -> None:
    problems = [Problem("release-infra:alerting_slack_deployment_url", "https://hooks.slack.com/services/T/B/x",
                        "unknown key (a typo?)"),
                Problem("release-infra:databases.payin-api", "postgres://db/payin", "not a migrating service"),
                Problem("release-infra:databases_x", "kept", "unknown key (a typo?)"),
                Problem("release-infra:alerting_slack_alerts_url", MISSING, "required")]
    for error, heading in ((ConfigError('stack "prod"', problems), 'invalid config for stack "prod"'),
                           (PolicyViolation("prod", problems), 'release policy refuses the update of stack "prod"')):
        redacted = error.redacted("release-infra:", {"alerting_slack_deployment_url", "databases",
                                                     "alerting_slack_alerts_url"})
        assert type(redacted) is type(error)
        assert str(redacted) == (
            f'{heading}: release-infra:alerting_slack_deployment_url = "[secret]": unknown key (a typo?); '
            'release-infra:databases.payin-api = "[secret]": not a migrating service; '
            'release-infra:databases_x = "kept": unknown key (a typo?); '
            "release-infra:alerting_slack_alerts_url is missing: required")
        assert "hooks.slack.com" in str(error)  # the original is unchanged
