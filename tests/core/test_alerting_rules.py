"""The rules' shape: what promtool cannot tell, such as which selector, label or number each rule carries."""

from __future__ import annotations

import re

import pytest

from core.alerting.rules import FOR, WATCHDOG, number, pod_monitor, rule_specs
from core.alerting.settings import load_alerting
from tests.support.stacks import STACKS, catalogue, set_path, settings, stack_config


def specs(stack: str, config=None, raw=None):
    stack_settings = settings(stack, config)
    alerting = load_alerting(stack, stack_settings.environment, raw, {}, live=False)
    return rule_specs(stack_settings, alerting, catalogue())


def alerts(spec) -> dict[str, dict]:
    return {rule["alert"]: rule for rule in spec["groups"][0]["rules"] if "alert" in rule}


def canary_at(weight: int) -> dict:
    """prod's config with Pay-In's canary at ``weight``: the canary alerts exist only then."""
    return set_path(stack_config("prod"), "services.payin-api.canary", {"weight": weight})


@pytest.mark.parametrize("stack", STACKS)
def test_one_rule_group_per_service_plus_the_watchdog(stack: str) -> None:
    result = specs(stack)
    assert set(result) == {*stack_config(stack)["services"], "environment"}
    assert [rule["alert"] for rule in result["environment"]["groups"][0]["rules"]] == [WATCHDOG]
    names = [group["name"] for spec in result.values() for group in spec["groups"]]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("stack", STACKS)
def test_every_expression_selects_its_own_namespace_and_service(stack: str) -> None:
    namespace = stack_config(stack)["namespace"]
    for service, spec in specs(stack).items():
        if service == "environment":
            continue
        for rule in spec["groups"][0]["rules"]:
            selectors = re.findall(r"\{([^{}]*)\}", rule["expr"])
            assert selectors, rule
            for selector in selectors:
                assert f'namespace="{namespace}"' in selector, (rule.get("alert") or rule["record"], selector)
                assert f'app="{service}"' in selector or f'container="{service}"' in selector


@pytest.mark.parametrize("stack", STACKS)
def test_every_alert_carries_routing_labels_and_a_known_wait(stack: str) -> None:
    environment = stack_config(stack)["environment"]
    for spec in specs(stack).values():
        for name, rule in alerts(spec).items():
            assert rule["labels"]["environment"] == environment and rule["labels"]["namespace"]
            assert rule["labels"]["severity"] in {"critical", "warning", "info", "none"}
            if name != WATCHDOG:
                assert rule["for"] == FOR[name] and rule["labels"]["service"]
            assert rule["annotations"]["summary"]


# Who is paged and how long each condition waits, as prod renders them (alert -> (severity, for)). Seed 003 gives
# the severities of the 5xx, latency, CPU/memory and unreachable alerts, "info" for resource usage trending up, and
# 5 minutes for the dead-man's switch (critical where traffic never stops: prod); seed 002 gives 3 minutes for the
# 5xx rollback trigger and "initiate rollback immediately", which seed 000 §12 sends to #incidents and on-call: a
# page where the stack pages (prod). The seeds give no wait for the others and no severity for the post-deploy,
# canary, burn-rate and standby alerts: those are the values docs/alerting.md documents.
PROD_ALERTS = {
    "ServiceErrorRateCritical": ("critical", "2m"),  # severity 003; wait docs
    "ServiceErrorRateHigh": ("warning", "5m"),  # severity 003; wait docs
    "ServiceErrorRateAboveRollbackTrigger": ("critical", "3m"),  # wait 002; severity 002 and 000 §12
    "PostDeployErrorRateAboveBaseline": ("warning", "2m"),  # docs
    "PostDeployLatencyAboveBaseline": ("warning", "2m"),  # docs
    "CanaryErrorRateAboveStable": ("warning", "2m"),  # docs
    "CanaryLatencyAboveStable": ("warning", "2m"),  # docs
    "ServiceLatencyP99Critical": ("critical", "5m"),  # severity 003; wait docs
    "ServiceLatencyP99AboveRollbackTrigger": ("critical", "5m"),  # severity 002 and 000 §12; wait docs
    "ServiceLatencyP95High": ("warning", "10m"),  # severity 003; wait docs
    "ErrorBudgetBurnFast": ("critical", "2m"),  # docs (SRE workbook)
    "ErrorBudgetBurnMedium": ("critical", "15m"),  # docs (SRE workbook)
    "ErrorBudgetBurnSlow": ("warning", "1h"),  # docs (SRE workbook)
    "ServiceCpuCritical": ("critical", "5m"),  # severity 003; wait docs
    "ServiceCpuHigh": ("warning", "15m"),  # severity 003; wait docs
    "ServiceMemoryCritical": ("critical", "5m"),  # severity 003; wait docs
    "ServiceMemoryHigh": ("warning", "15m"),  # severity 003; wait docs
    "ServiceMemoryTrendingUp": ("info", "15m"),  # severity 003; wait docs
    "ServiceUnreachable": ("critical", "2m"),  # severity 003; wait docs
    "CanaryColourUnreachable": ("critical", "2m"),  # docs
    "StandbyColourDown": ("warning", "5m"),  # docs
    "MetricsNotReporting": ("critical", "5m"),  # 003
    "ServiceMetricsMissing": ("critical", "10m"),  # docs: as MetricsNotReporting where that pages
}
# Outside prod the dead-man's switch is logged only, missing metrics warn, and nobody is paged, so the rollback
# triggers warn (docs/alerting.md).
OUTSIDE_PROD = {"MetricsNotReporting": ("info", "5m"), "ServiceMetricsMissing": ("warning", "10m"),
                "ServiceErrorRateAboveRollbackTrigger": ("warning", "3m"),
                "ServiceLatencyP99AboveRollbackTrigger": ("warning", "5m")}


def test_every_alert_pages_and_waits_as_the_seeds_and_docs_say() -> None:
    """Severity decides who is woken, `for` how soon: each is pinned to the seed's (or the documented) value,
    not to the rule module's own table, so a page turned into a warning or a 5-minute wait into 15 fails here.
    prod renders every alert: the standby's during a plain release, the canary's during a canary."""
    rendered = {**alerts(specs("prod")["payin-api"]), **alerts(specs("prod", canary_at(5))["payin-api"])}
    assert {name: (rule["labels"]["severity"], rule["for"]) for name, rule in rendered.items()} == PROD_ALERTS


@pytest.mark.parametrize("stack", ["sandbox", "dev", "test"])
def test_outside_prod_the_dead_mans_switch_is_logged_and_missing_metrics_warn(stack: str) -> None:
    """Seed 003's dead-man's switch pages where traffic never stops; an idle environment only logs it (docs)."""
    rules = alerts(specs(stack)["payin-api"])
    rendered = {name: (rule["labels"]["severity"], rule["for"]) for name, rule in rules.items()}
    assert rendered == {name: OUTSIDE_PROD.get(name, PROD_ALERTS[name]) for name in rendered}
    assert set(OUTSIDE_PROD) <= set(rendered)


def test_seed_thresholds_appear_in_the_expressions() -> None:
    rules = alerts(specs("prod")["payin-api"])
    assert rules["ServiceErrorRateCritical"]["expr"].split(" and ")[0].endswith("> 0.05")
    assert " > 0.001 and " in rules["ServiceErrorRateAboveRollbackTrigger"]["expr"]
    assert rules["ServiceErrorRateAboveRollbackTrigger"]["for"] == "3m"
    assert "p99_5m" in rules["ServiceLatencyP99AboveRollbackTrigger"]["expr"] and " >= 1 and " in \
        rules["ServiceLatencyP99AboveRollbackTrigger"]["expr"]
    assert " > 0.005 and " in rules["PostDeployErrorRateAboveBaseline"]["expr"]
    assert "group_left () (1.1 * histogram_quantile(0.95" in rules["PostDeployLatencyAboveBaseline"]["expr"]
    assert " > 0.01 and " in alerts(specs("prod", canary_at(5))["payin-api"])["CanaryErrorRateAboveStable"]["expr"]
    # SLO 99.9%: budget 0.1%; 14.4x, 6x and 1x of it.
    assert "ratio_rate1h{" in rules["ErrorBudgetBurnFast"]["expr"] and "> 0.0144" in rules["ErrorBudgetBurnFast"]["expr"]
    assert "> 0.006" in rules["ErrorBudgetBurnMedium"]["expr"] and "ratio_rate30m{" in rules["ErrorBudgetBurnMedium"]["expr"]
    assert "> 0.001" in rules["ErrorBudgetBurnSlow"]["expr"] and "ratio_rate3d{" in rules["ErrorBudgetBurnSlow"]["expr"]
    # payin-api's limits in the catalogue: 1000m CPU, 512 MiB.
    assert "/ 1 > 0.95" in rules["ServiceCpuCritical"]["expr"]
    assert f"/ {512 * 1024 * 1024} > 0.8" in rules["ServiceMemoryHigh"]["expr"]


def test_config_overrides_reach_the_rules() -> None:
    rules = alerts(specs("prod", canary_at(5), raw={"slo_percent": 99.5, "min_request_rate": 5, "min_failed_requests": 25,
                                      "thresholds": {"canary_error_increase_points": 2}})["payin-api"])
    assert "> 0.072" in rules["ErrorBudgetBurnFast"]["expr"]
    assert "* 300 >= 25)" in rules["ServiceErrorRateCritical"]["expr"]
    # A quantile needs the rate, and so does a ratio over hours: a count of failures guards 5 minutes alone.
    assert ">= 25" not in rules["ServiceLatencyP99Critical"]["expr"] + rules["ErrorBudgetBurnFast"]["expr"]
    assert ">= 5" in rules["ServiceErrorRateHigh"]["expr"] and " > 0.02 and " in rules["CanaryErrorRateAboveStable"]["expr"]


def test_the_active_colour_decides_unreachable_canary_and_baseline() -> None:
    rules = alerts(specs("prod")["payin-api"])  # prod payin-api: green active
    assert 'color="green"' in rules["ServiceUnreachable"]["expr"] and rules["ServiceUnreachable"]["labels"]["color"] == "green"
    assert rules["StandbyColourDown"]["labels"]["color"] == "blue"
    canary = alerts(specs("prod", canary_at(25))["payin-api"])["CanaryErrorRateAboveStable"]["expr"]
    assert canary.index('color="blue"') < canary.index('color="green"')  # canary minus stable
    flipped = alerts(specs("prod", set_path(stack_config("prod"), "services.payin-api.active", "blue"))["payin-api"])
    assert flipped["ServiceUnreachable"]["labels"]["color"] == "blue"


def test_without_a_canary_no_canary_alert_is_rendered() -> None:
    """After a plain switch the colour left behind still shows 5 minutes of its old traffic: judged as a canary,
    a fix-forward's old, failing build would page "roll the canary back" onto the fix."""
    assert not [name for name in alerts(specs("prod", canary_at(0))["payin-api"]) if name.startswith("Canary")]
    assert {"CanaryErrorRateAboveStable", "CanaryLatencyAboveStable", "CanaryColourUnreachable"} <= set(
        alerts(specs("prod", canary_at(5))["payin-api"]))


@pytest.mark.parametrize(("weight", "canary", "stable"), [(5, "0.05", "0.95"), (50, "0.5", "0.5")])
def test_each_colour_is_held_to_its_share_of_the_minimum_rate(weight: int, canary: str, stable: str) -> None:
    """prod needs 1 request/s of the service: each colour is held to its share of it."""
    expr = alerts(specs("prod", canary_at(weight))["payin-api"])["CanaryErrorRateAboveStable"]["expr"]
    assert re.findall(r'rate5m\{namespace="payments-prod", app="payin-api", color="(\w+)"\} >= ([\d.]+)', expr) == \
        [("blue", canary), ("green", stable)]


def test_a_scaled_down_standby_is_not_reported_down() -> None:
    # prod payout-api: green scaled down after the rollback window.
    assert "StandbyColourDown" not in alerts(specs("prod")["payout-api"])
    assert "StandbyColourDown" in alerts(specs("prod")["payin-api"])


def test_rollback_triggers_page_wherever_the_stack_pages() -> None:
    """Severity follows page_on_call, not the environment's name: a test stack that pages is paged too."""
    triggers = ("ServiceErrorRateAboveRollbackTrigger", "ServiceLatencyP99AboveRollbackTrigger")
    paged = alerts(specs("test", raw={"page_on_call": True})["payin-api"])
    quiet = alerts(specs("test")["payin-api"])
    assert [paged[name]["labels"]["severity"] for name in triggers] == ["critical", "critical"]
    assert [quiet[name]["labels"]["severity"] for name in triggers] == ["warning", "warning"]


def test_only_prod_pages_when_a_service_stops_answering_requests() -> None:
    for stack in STACKS:
        severity = alerts(specs(stack)["payin-api"])["MetricsNotReporting"]["labels"]["severity"]
        assert severity == ("critical" if stack == "prod" else "info")


def test_post_deploy_alerts_are_deployment_failures() -> None:
    rules = alerts(specs("prod", canary_at(5))["payin-api"])
    for name in ("PostDeployErrorRateAboveBaseline", "PostDeployLatencyAboveBaseline", "CanaryErrorRateAboveStable",
                 "CanaryLatencyAboveStable"):
        assert rules[name]["labels"]["event"] == "deployment-failed"
    assert "offset 15m" in rules["PostDeployErrorRateAboveBaseline"]["expr"]
    assert "offset 30m" in alerts(specs("prod", raw={"post_deploy_window_minutes": 30})["payin-api"])[
        "PostDeployErrorRateAboveBaseline"]["expr"]


def test_numbers_are_written_exactly() -> None:
    # Plain floats would write 14.4 * (100 - 99.9) / 100 as 0.014400000000000081.
    assert "> 0.0144 and" in alerts(specs("prod")["payin-api"])["ErrorBudgetBurnFast"]["expr"]
    assert number(10.0) == "10" and number(0.00001) == "0.00001"


def test_the_pod_monitor_gives_every_series_app_color_and_version() -> None:
    monitor = pod_monitor(settings("dev"))
    assert monitor["metadata"]["namespace"] == "payments-dev"
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "metrics"
    assert {r["targetLabel"]: r["sourceLabels"] for r in endpoint["relabelings"]} == {
        "app": ["__meta_kubernetes_pod_label_app"], "color": ["__meta_kubernetes_pod_label_color"],
        "version": ["__meta_kubernetes_pod_label_app_kubernetes_io_version"]}


def test_a_colour_is_new_to_traffic_by_the_version_it_serves() -> None:
    """A fix-forward onto the colour a switch just left: its new version never served, so it is checked."""
    rules = alerts(specs("prod")["payin-api"])
    release = settings("prod").services["payin-api"]
    active = f'color="{release.active}", version="{release.image(release.active).version}"}}[5m] offset 15m'
    for name in ("PostDeployErrorRateAboveBaseline", "PostDeployLatencyAboveBaseline"):
        assert active in rules[name]["expr"], name
