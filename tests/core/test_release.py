"""The release decisions: status rows and metrics from outputs, the error-rate gate, options and the canary walk."""

from __future__ import annotations

import copy
from datetime import datetime, timezone

import pytest

from core.outputs import stack_outputs
from core.release.canary import Progress, remaining_steps
from core.release.drift import unapplied
from core.release.gate import error_ratio_query, judge, judge_latency, p95_query, ratio_from_result
from core.release.options import OptionsError, ReleaseOptions
from core.release.status import StatusError, as_json, environment_status, metrics, table_rows
from tests.support.stacks import STACKS, settings, stack_config

WHEN = datetime(2026, 11, 22, 10, 0, tzinfo=timezone.utc)


def statuses():
    return [environment_status(stack, stack_outputs(settings(stack)).model_dump(mode="json"), WHEN)
            for stack in STACKS]


def test_status_rows_come_from_the_outputs_of_every_environment() -> None:
    prod = settings("prod")
    [status] = [s for s in statuses() if s.environment == "prod"]
    for row in status.services:
        release = prod.services[row.service]
        assert row.active_colour == release.active
        assert row.colours[release.active].image == str(release.image(release.active))
        assert row.canary_weight == release.canary.weight
    rows = table_rows(statuses())
    assert [row[0] for row in rows] == sorted(prod.services)
    assert all(len(row) == 1 + len(STACKS) for row in rows)


def test_json_and_metrics_say_the_same_as_the_rows() -> None:
    document = as_json(statuses())
    assert [e["environment"] for e in document["environments"]] == list(STACKS)
    by_name = {metric.name: metric for metric in metrics(statuses())}
    active = [s for s in by_name["release_infra_active_colour"].samples if s.value == 1]
    assert len(active) == sum(len(s.services) for s in statuses())
    info = by_name["release_infra_image_info"].samples
    assert {s.labels["role"] for s in info} == {"active", "standby"}
    # The dashboard joins them to the error ratios, which are recorded per namespace.
    assert {(s.labels["environment"], s.labels["namespace"]) for s in active} == \
        {(stack, settings(stack).namespace) for stack in STACKS}
    assert by_name["release_infra_last_update_timestamp_seconds"].samples[0].value == WHEN.timestamp()


def test_outputs_that_are_not_the_schema_are_one_line() -> None:
    with pytest.raises(StatusError, match=r"^stack dev: outputs do not match the stack-outputs schema v1 at "):
        environment_status("dev", {"schema_version": "1.0", "environment": "dev"}, None)


def test_a_stack_without_outputs_has_no_services() -> None:
    assert environment_status("dev", {}, None).services == []


@pytest.mark.parametrize(("candidate", "baseline", "verdict"), [
    (0.02, 0.01, "pass"),      # exactly 1 point over: allowed
    (0.07, 0.06, "pass"),      # 1 point over, which floats compute as 1.0000000000000009: still allowed
    (0.13, 0.12, "pass"),      # likewise
    (0.0201, 0.01, "fail"),    # more than 1 point over
    (0.0, 0.05, "pass"),
    (None, 0.01, "no-data"),
    (0.5, None, "no-data"),
])
def test_the_gate_fails_only_beyond_the_threshold(candidate, baseline, verdict) -> None:
    assert judge(candidate, baseline, 1.0).verdict == verdict


def test_a_reading_describes_itself_for_people() -> None:
    assert judge(0.031, 0.01, 1.0).describe() == "errors 3.10% vs baseline 1.00% (limit +1 pp): fail"
    assert judge(None, 0.01, 0.5).describe() == "errors no data vs baseline 1.00% (limit +0.5 pp): no-data"


def test_the_query_counts_a_colour_without_5xx_as_zero_and_no_requests_as_no_data() -> None:
    query = error_ratio_query("payments-dev", "payin-api", "green", "30s")
    assert 'namespace="payments-dev", app="payin-api", color="green", code=~"5.."' in query
    assert "or vector(0)" in query
    assert ratio_from_result([]) is None
    assert ratio_from_result([{"metric": {}, "value": [1.0, "NaN"]}]) is None
    assert ratio_from_result([{"metric": {}, "value": [1.0, "0.25"]}]) == 0.25


@pytest.mark.parametrize(("candidate", "baseline", "verdict"), [
    (0.11, 0.1, "pass"),     # exactly 10% over: allowed (seed 000 §9: at most +10%)
    (0.105, 0.1, "pass"),
    (0.1101, 0.1, "fail"),
    (0.12, 0.1, "fail"),
    (0.05, 0.1, "pass"),
    (None, 0.1, "no-data"),
    (0.1, None, "no-data"),
])
def test_the_latency_gate_fails_only_more_than_the_margin_over_the_baseline(candidate, baseline, verdict) -> None:
    assert judge_latency(candidate, baseline, 10.0).verdict == verdict


def test_the_p95_query_reads_the_histogram_the_latency_alerts_read() -> None:
    assert p95_query("payments-dev", "payin-api", "green", "30s") == (
        'histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{namespace="payments-dev", '
        'app="payin-api", color="green"}[30s])))')
    assert judge_latency(0.12, 0.1, 10.0).describe() == "P95 120.0ms vs baseline 100.0ms (limit +10%): fail"


def test_options_take_durations_and_refuse_bad_ones_in_one_line() -> None:
    options = ReleaseOptions.build(bake="15m", watch="90s", interval="1500ms", window=None)
    assert (options.bake, options.watch, options.interval, options.window) == (900, 90, 1.5, "5m")
    with pytest.raises(OptionsError, match=r"^--bake: 'soon' is not a duration"):
        ReleaseOptions.build(bake="soon")
    with pytest.raises(OptionsError, match=r"^--preview-url: unknown placeholder \{port\}"):
        ReleaseOptions.build(preview_url="http://{service}:{port}")
    with pytest.raises(OptionsError, match=r"^--window: '5 minutes' is not a PromQL duration"):
        ReleaseOptions.build(window="5 minutes")


@pytest.mark.parametrize("window", ["5m", "30s", "1h30m", "500ms", "1d", "2w", "1y", "1h0m", "1m30s500ms"])
def test_a_window_is_any_range_prometheus_takes(window: str) -> None:
    assert ReleaseOptions.build(window=window).window == window


@pytest.mark.parametrize(("window", "why"), [
    ("5m5m", "is not a PromQL duration"), ("1s30m", "is not a PromQL duration"), ("5M", "is not a PromQL duration"),
    ("1.5m", "is not a PromQL duration"), ("", "is not a PromQL duration"), ("5m\n", "is not a PromQL duration"),
    ("0m", "is an empty range"), ("0s0ms", "is an empty range")])
def test_a_window_prometheus_would_refuse_at_its_first_query_is_refused_before_anything_changes(
        window: str, why: str) -> None:
    """promtool refuses these; Prometheus itself only when the gate first asks, after traffic moved."""
    with pytest.raises(OptionsError, match=rf"^--window: '{window}' {why}"):
        ReleaseOptions.build(window=window)


@pytest.mark.parametrize("interval", ["0", "0ms", "999ms", "0.5"])
def test_an_interval_under_a_second_is_refused_rather_than_polling_in_a_tight_loop(interval: str) -> None:
    with pytest.raises(OptionsError, match=r"^--interval: .* too short: at least 1s between two looks"):
        ReleaseOptions.build(interval=interval)
    assert ReleaseOptions.build(interval="1s").interval == 1


def test_default_urls_are_the_in_cluster_services() -> None:
    options = ReleaseOptions()
    assert options.url(options.preview_url, service="payin-api", namespace="payments-dev", environment="dev",
                       colour="green") == "http://payin-api-preview.payments-dev.svc"


def test_a_canary_resumes_at_its_weight_and_bakes_it_again() -> None:
    """The run that set 25% or 100% may have died before that step's bake: a restart never skips a bake. At 100%
    the stable colour serves nothing, so a resumed run steps back once to have a baseline for its gate."""
    assert remaining_steps([5, 25, 50, 100], 0) == [5, 25, 50, 100]
    assert remaining_steps([5, 25, 50, 100], 25) == [25, 50, 100]
    assert remaining_steps([5, 25, 50, 100], 30) == [50, 100]
    assert remaining_steps([5, 25, 50, 100], 100) == [50, 100]
    assert remaining_steps([1, 5, 10, 25, 50, 75, 100], 100) == [75, 100]
    line = Progress(step=2, of=4, weight=25, left_seconds=754, reading=judge(0.01, 0.01, 1.0)).line()
    assert line == "step 2/4: weight 25%, bake 12m34s left, errors 1.00% vs baseline 1.00% (limit +1 pp): pass"
    line = Progress(step=2, of=4, weight=25, left_seconds=754, reading=judge(0.01, 0.01, 1.0),
                    latency=judge_latency(0.104, 0.1, 10.0)).line()
    assert line.endswith("(limit +1 pp): pass, P95 104.0ms vs baseline 100.0ms (limit +10%): pass")


@pytest.mark.parametrize(("left_seconds", "bake"), [(0, "0m00s"), (-1, "0m00s"), (-754, "0m00s"), (1, "0m01s")])
def test_a_bake_that_has_run_over_shows_nothing_left_not_a_negative_time(left_seconds: float, bake: str) -> None:
    """The gate's look may come a little after the bake ended: the line says 0m00s left, never -1m59s."""
    line = Progress(step=1, of=4, weight=5, left_seconds=left_seconds, reading=None).line()
    assert line == f"step 1/4: weight 5%, bake {bake} left, gate: no reading yet"


def applied_outputs(stack: str = "dev") -> dict:
    return stack_outputs(settings(stack)).model_dump(mode="json")


def file_services(stack: str = "dev") -> dict:
    return copy.deepcopy(stack_config(stack)["services"])


def test_a_stack_file_that_is_what_was_applied_has_nothing_unapplied() -> None:
    for stack in STACKS:
        assert unapplied(file_services(stack), applied_outputs(stack)) == []
    assert unapplied(file_services(), {}) == []  # a stack never updated


def test_a_stale_or_edited_stack_file_names_every_release_field_that_differs() -> None:
    services = file_services()
    outputs = applied_outputs()
    service = sorted(services)[0]
    active = services[service]["active"]
    other = "green" if active == "blue" else "blue"
    services[service]["active"] = other
    services[service][other]["image"] = "registry.pay.internal/x:1a2b3c4-v9.9.9"
    services[service]["canary"] = {"weight": "25.0"}
    removed = sorted(services)[1]
    del services[removed]
    services["new-api"] = {"active": "blue"}
    assert [str(difference) for difference in unapplied(services, outputs)] == sorted([
        f"services.{service}.active: applied {active}, the file says {other}",
        f"services.{service}.{other}.image: applied {outputs['services'][service]['colours'][other]['image']}, "
        "the file says registry.pay.internal/x:1a2b3c4-v9.9.9",
        f"services.{service}.canary.weight: applied 0, the file says 25",
        f"services.{removed}: applied, the file removes it",
        "services.new-api: not applied yet, the file adds it",
    ], key=lambda line: line.split(":")[0].split(".")[1])


def older_and_later(version: str) -> dict:
    """dev's outputs as schema ``version`` wrote them: 1.0 had no history and no digests, 1.2 no switch time, 1.3 no
    canary step time; a later 1.9 adds a field."""
    outputs = applied_outputs()
    outputs["schema_version"] = version
    for service in outputs["services"].values():
        if version == "1.0":
            del service["history"]
            for colour in service["colours"].values():
                del colour["digest"]
        if version in ("1.0", "1.1", "1.2"):
            del service["switched_at"]
        if version in ("1.0", "1.1", "1.2", "1.3"):
            del service["canary_stepped_at"]
        if version == "1.9":
            service["owner"] = "payments-platform"
    return outputs


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.3", "1.9"])
def test_status_reads_the_outputs_of_every_1x_schema(version: str) -> None:
    """A stack not updated since an older release of the program is what prod is during an upgrade."""
    current = environment_status("dev", applied_outputs(), WHEN)
    assert environment_status("dev", older_and_later(version), WHEN) == current


def test_status_of_outputs_with_one_colour_is_one_line_naming_the_stack() -> None:
    outputs = applied_outputs()
    service = sorted(outputs["services"])[0]
    del outputs["services"][service]["colours"]["green"]
    with pytest.raises(StatusError, match=rf"^stack dev: outputs do not match the stack-outputs schema v1 at "
                                          rf"services\.{service}\.colours: "):
        environment_status("dev", outputs, WHEN)
