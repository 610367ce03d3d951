"""The AlertmanagerConfig and the configuration the operator builds from it (which amtool checks elsewhere)."""

from __future__ import annotations

import pytest

from core.alerting import routing
from core.alerting.settings import load_alerting
from tests.support.stacks import STACKS, settings

SECRETS = {"alerting_slack_deployments_url": "https://hooks.slack.com/services/T/B/d",
           "alerting_slack_incidents_url": "https://hooks.slack.com/services/T/B/i",
           "alerting_slack_alerts_url": "https://hooks.slack.com/services/T/B/a",
           "alerting_pagerduty_routing_key": "0123456789abcdef0123456789abcdef",
           "alerting_watchdog_url": "https://deadman.example/ping"}


def config_of(stack: str, secrets=None, raw=None):
    stack_settings = settings(stack)
    alerting = load_alerting(stack, stack_settings.environment, raw, secrets or {}, live=False)
    return alerting, routing.alertmanager_config(stack_settings, alerting)


@pytest.mark.parametrize("stack", STACKS)
def test_the_custom_resource_references_secrets_and_holds_no_value(stack: str) -> None:
    alerting, config = config_of(stack, SECRETS)
    text = str(config)
    assert not any(value in text for value in SECRETS.values())
    refs = [c.get("apiURL") or c.get("routingKey") or c.get("urlSecret")
            for r in config["spec"]["receivers"] for key in ("slackConfigs", "pagerdutyConfigs", "webhookConfigs")
            for c in r.get(key, [])]
    assert refs and all(ref["name"] == routing.SECRET_NAME for ref in refs)
    assert {ref["key"] for ref in refs} == set(routing.secret_data_keys(alerting))


def test_receivers_follow_paging_and_the_watchdog_secret() -> None:
    names = lambda config: {r["name"] for r in config["spec"]["receivers"]}  # noqa: E731
    _, prod = config_of("prod")
    _, dev = config_of("dev")
    _, watched = config_of("dev", {"alerting_watchdog_url": SECRETS["alerting_watchdog_url"]})
    assert {"on-call", "on-call-events"} <= names(prod) and not {"on-call", "on-call-events"} & names(dev)
    watchdog = lambda config: next(r for r in config["spec"]["receivers"] if r["name"] == "watchdog")  # noqa: E731
    assert watchdog(dev) == {"name": "watchdog"} and "webhookConfigs" in watchdog(watched)
    _, paged_dev = config_of("dev", raw={"page_on_call": True})
    assert "on-call" in names(paged_dev)


def test_event_receivers_never_send_resolved_alert_receivers_do() -> None:
    _, config = config_of("prod")
    resolved = {r["name"]: c["sendResolved"] for r in config["spec"]["receivers"]
                for key in ("slackConfigs", "pagerdutyConfigs") for c in r.get(key, [])}
    assert resolved == {"alerts": True, "deployments": False, "deployment-alerts": True, "incidents": True,
                        "incident-events": False, "on-call": True, "on-call-events": False}


def test_the_operator_view_nests_everything_under_the_namespace() -> None:
    alerting, config = config_of("prod")
    data = {key: f"value-of-{key}" for key in routing.secret_data_keys(alerting)}
    base = {"route": {"receiver": "default", "routes": [{"receiver": "platform"}]},
            "receivers": [{"name": "default"}, {"name": "platform"}]}
    view = routing.operator_view(config, data, base)
    first, second = view["route"]["routes"]
    assert second == {"receiver": "platform"}  # the base's routes stay, after ours
    assert first["matchers"] == ['namespace="payments-prod"'] and first["continue"] is True
    assert first["receiver"] == "payments-prod/release-infra/alerts"
    assert all(r["name"].startswith("payments-prod/release-infra/") for r in view["receivers"][2:])
    assert all('namespace="payments-prod"' in rule["source_matchers"] and
               'namespace="payments-prod"' in rule["target_matchers"] for rule in view["inhibit_rules"])
    deployments = next(r for r in view["receivers"] if r["name"].endswith("/deployments"))
    assert deployments["slack_configs"][0]["api_url"] == "value-of-slack-deployments-url"
    assert deployments["slack_configs"][0]["channel"] == "#deployments"
    assert base["route"]["routes"] == [{"receiver": "platform"}]  # the base is not changed


def test_the_operator_view_keeps_every_route_of_the_resource() -> None:
    _, config = config_of("prod")
    view = routing.operator_view(config, {key: "x" for key in routing.SECRET_DATA_KEYS.values()})

    def walk(cr, native):
        assert native["receiver"].endswith("/" + cr["receiver"])
        assert [m for m in native.get("matchers", []) if not m.startswith("namespace=")] == \
            [f'{m["name"]}{m.get("matchType", "=")}"{m["value"]}"' for m in cr.get("matchers", [])]
        assert native.get("group_by") == cr.get("groupBy") and native.get("group_wait") == cr.get("groupWait")
        assert len(native.get("routes", [])) == len(cr.get("routes", []))
        for child_cr, child_native in zip(cr.get("routes", []), native.get("routes", [])):
            assert child_native.get("continue", False) == child_cr.get("continue", False)
            walk(child_cr, child_native)

    walk(config["spec"]["route"], view["route"]["routes"][0])


def test_a_page_never_hides_that_the_standby_is_down() -> None:
    """During an incident a rollback is most likely: "a rollback would fail" must still be heard."""
    [page_rule] = [rule for rule in routing.plan(config_of("prod")[0]).inhibit_rules
                   if rule.source == (("severity", "=", "critical"),)]
    assert ("alertname", "!=", "StandbyColourDown") in page_rule.target


def test_placeholders_cannot_deliver() -> None:
    assert routing.placeholder("alerting_slack_alerts_url").startswith("https://placeholder.invalid/")
    assert routing.placeholder("alerting_pagerduty_routing_key").isalnum()



def test_no_matcher_spells_out_the_default_match_type() -> None:
    """The renderer writes plain strings unquoted; a bare "=" reads back as YAML 1.1's value tag in PyYAML."""
    _, config = config_of("prod")
    spec = config["spec"]

    def matchers(route):
        yield from route.get("matchers", [])
        for child in route.get("routes", []):
            yield from matchers(child)

    found = list(matchers(spec["route"])) + [m for r in spec["inhibitRules"] for m in r["sourceMatch"] + r["targetMatch"]]
    assert found and all(m.get("matchType") != "=" for m in found)
    assert {m.get("matchType") for m in found} == {None, "=~", "!="}
