"""Config errors name the key path, the value and what is allowed, but never show a credential."""

from __future__ import annotations

import pytest

from core.errors import MISSING, ConfigError, Problem
from core.policy.rules import PolicyViolation
from core.registry.digests import load_image_digests
from core.registry.settings import load_retention
from core.alerting.settings import load_alerting
from core.validation import plain_text_entries, refuse_needless_secrets, refuse_plain_text_secrets
from tests.support.stacks import settings, stack_config


@pytest.mark.parametrize(("load", "expected"), [
    (lambda: settings("prod", {**stack_config("prod"), "alerting_slack_deployment_url": "https://x/T/B/PLAINTOKEN"}),
     "release-infra:alerting_slack_deployment_url: unknown key (did you mean alerting_slack_deployments_url?); "
     "known keys are "),
    (lambda: load_retention("prod", {"password": "PLAINTOKEN"}, {}, "registry.pay.internal", live=False),
     "release-infra:retention.password: unknown key; known keys are keep_last, "),
    (lambda: load_alerting("prod", settings("prod").environment, {"pagerduty_key": "PLAINTOKEN"}, {}, live=False),
     "release-infra:alerting.pagerduty_key: unknown key; known keys are "),
])
def test_an_unknown_keys_value_is_never_shown_it_may_be_a_credential(load, expected) -> None:
    with pytest.raises(ConfigError) as raised:
        load()
    assert expected in str(raised.value) and "PLAINTOKEN" not in str(raised.value)


def test_credentials_in_a_url_are_not_shown() -> None:
    for value, shown in (("http://ops:hunter2@alertmanager:9093/x", "http://[secret]@alertmanager:9093/x"),
                         ("http://ops:p@ss@alertmanager:9093", "http://[secret]@alertmanager:9093"),
                         ("postgresql://app:ab/cd@db/payin", "postgresql://[secret]@db/payin"),
                         ("ci:hunter2@registry.pay.internal", "[secret]@registry.pay.internal"),
                         ("//robot:pa55w0rd@registry.pay.internal", "//[secret]@registry.pay.internal"),
                         ("https://registry.pay.internal/?access_token=s3cr3t", "https://registry.pay.internal/?[secret]"),
                         ("http://alertmanager:9093/api#token=s3cr3t", "http://alertmanager:9093/api#[secret]"),
                         ("http://ops:pw@alertmanager:9093/?t=s3cr3t", "http://[secret]@alertmanager:9093/?[secret]")):
        assert str(Problem("release-infra:x", value, "bad")) == f'release-infra:x = "{shown}": bad'
    digest = "registry.pay.internal/payin-api:a1b2c3d-v2.3.0@sha256:" + "a" * 64  # an image, no credential
    assert str(Problem("release-infra:x", digest, "bad")) == f'release-infra:x = "{digest}": bad'


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


def test_plain_entries_of_an_object_come_from_the_stack_file() -> None:
    """Pulumi reports `databases` secret when any entry is; the file says which entries are not."""
    stack_file = {"config": {
        "release-infra:databases": {"payin-api": "postgres://plain", "payout-api": {"secure": "v1:x"}},
        "release-infra:retention_registry_password": {"secure": "v1:y"}}}
    keys = ["databases", "retention_registry_password"]
    assert plain_text_entries(stack_file, "release-infra:", keys) == {"databases.payin-api"}
    whole = {"config": {"release-infra:databases": {"secure": "v1:z"}}}  # set as one secret JSON string
    assert plain_text_entries(whole, "release-infra:", keys) == set()
    assert plain_text_entries(None, "release-infra:", keys) == set()
    values = {"databases": {"payin-api": "postgres://plain", "payout-api": "postgres://secret"}}
    with pytest.raises(ConfigError) as raised:
        refuse_plain_text_secrets("prod", "release-infra:", values, {"databases"}, {"databases.payin-api"})
    assert str(raised.value) == ('invalid config for stack "prod": release-infra:databases.payin-api = "[secret]": is '
                                 "in plain text in the stack file: set it with pulumi config set --secret --path "
                                 "'databases.payin-api' ... and rotate it")
    refuse_plain_text_secrets("prod", "release-infra:", values, {"databases"}, set())  # all entries secure: passes


def test_a_mistyped_key_set_with_secret_is_left_to_the_unknown_key_check() -> None:
    """A Slack URL under a mistyped key, set with --secret: the unknown-key check names the key it was meant to be
    (did you mean alerting_slack_deployments_url?). Reported as a secret holding no credential, it would be told
    to drop --secret, and the URL would go into the stack file in plain text. Only a known key that holds no
    credential, here `alerting`, is refused for its --secret."""
    credentials = ("alerting_slack_deployments_url", "alerting_slack_alerts_url")
    known = ("alerting", "alerting_slack_deployments_url", "alerting_slack_alerts_url", "services")
    encrypted = {"alerting_slack_deployment_url", "alerting", "alerting_slack_alerts_url"}
    with pytest.raises(ConfigError) as raised:
        refuse_needless_secrets("prod", "release-infra:", encrypted, credentials, known)
    assert str(raised.value) == (
        'invalid config for stack "prod": release-infra:alerting = "[secret]": is set with --secret, but it holds no '
        "credential, and its values go into resources and outputs in plain text; set it without --secret, and a "
        "credential in it under its own key (alerting_slack_deployments_url, alerting_slack_alerts_url)")
    refuse_needless_secrets("prod", "release-infra:", {"alerting_slack_deployment_url", "alerting_slack_alerts_url"},
                            credentials, known)  # the mistyped key alone: nothing for this check to refuse
