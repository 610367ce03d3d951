"""The release policy's rules on the real stack files: compliant passes, a violation fails, missing fields are safe."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from core.errors import ConfigError
from core.outputs import stack_outputs
from core.policy.clock import pinned_time
from core.policy.history import is_earlier_release, with_first_served
from core.policy.rules import PolicyViolation, canary_required, evaluate
from core.policy.settings import TrainWindow, load_policy
from tests.support.stacks import TRAIN, catalogue, delete_path, set_path, settings, stack_config, upstream_outputs

WEDNESDAY = datetime(2026, 11, 25, 10, 30, tzinfo=timezone.utc)
FRIDAY = datetime(2026, 11, 27, 15, 0, tzinfo=timezone.utc)
NEW_MERCHANT = "registry.pay.internal/merchant-api:f3a4b5c-v3.2.0"
NEW_PAYIN = "registry.pay.internal/payin-api:5e6f7a8-v2.5.0"


def outputs(stack: str, config: dict[str, Any] | None = None, previous: dict[str, Any] | None = None) -> dict:
    return stack_outputs(settings(stack, config), previous).model_dump(mode="json")


def judge(stack: str, config: dict[str, Any], previous: dict[str, Any], now: datetime,
          upstream: dict[str, Any] | None = None) -> list[str]:
    """The policy's verdict on updating ``stack`` to ``config`` from ``previous`` outputs; its reports."""
    policy = load_policy(stack, config["environment"], config, catalogue())
    if upstream is None and policy.upstream_stack:
        ran = upstream_outputs(stack, {"merchant-api": NEW_MERCHANT, "payin-api": NEW_PAYIN})
        upstream = ran[policy.upstream_stack]
    return evaluate(settings(stack, config), policy, catalogue(), previous, upstream, now)


def prod_with(path: str, value: Any) -> dict[str, Any]:
    return set_path(stack_config("prod"), path, value)


def refusal(stack: str, config: dict[str, Any], previous: dict[str, Any], now: datetime, **kwargs: Any) -> str:
    with pytest.raises(PolicyViolation) as raised:
        judge(stack, config, previous, now, **kwargs)
    return str(raised.value)


# --- settings -------------------------------------------------------------------------------------------------

def test_prod_gets_the_train_no_fridays_and_canaries_by_default() -> None:
    rules = load_policy("prod", "prod", stack_config("prod"), catalogue()).release_policy
    assert rules.train == TrainWindow(weekday="tuesday", duration_minutes=240)
    assert rules.train.describe() == "Tuesday 10:00-14:00 UTC"
    assert rules.no_deploy_weekdays == ["friday"] and rules.canary_for_high_risk and rules.freezes == []


def test_other_environments_deploy_continuously_unless_configured() -> None:
    rules = load_policy("dev", "dev", stack_config("dev"), catalogue()).release_policy
    assert (rules.train, rules.no_deploy_weekdays, rules.canary_for_high_risk) == (None, [], False)
    configured = load_policy("dev", "dev", {"release_policy": '{"no_deploy_weekdays": ["friday"]}'}, catalogue())
    assert configured.release_policy.no_deploy_weekdays == ["friday"]


FLAG_NAMES = ("flags are named {product}-{feature} (lowercase, digits and '-'), product one of the catalogue's: "
              "merchant, payin, payout")
FULL_ROLLOUT = "full_rollout_since (a date) goes with rollout_percent 100, and only with it"


@pytest.mark.parametrize("path, value, message", [
    ("release_policy.train", None, 'release-infra:release_policy.train = null: prod follows the weekly release train; '
     "set its window (weekday, start, duration_minutes) or leave the defaults"),
    ("release_policy.no_deploy_weekdays", ["monday"],
     'release-infra:release_policy.no_deploy_weekdays = ["monday"]: prod never deploys on a Friday; the list must '
     "include friday"),
    ("release_policy.canary_for_high_risk", False,
     "release-infra:release_policy.canary_for_high_risk = false: prod releases high-risk services as canaries; it "
     "cannot be switched off"),
    ("release_policy.train", {"weekday": "friday"},
     'release-infra:release_policy.train.weekday = "friday": the train cannot run on a no-deploy day'),
    ("release_policy.train", {"start": "25:00"},
     'release-infra:release_policy.train.start = "25:00": input should be in a valid time format, hour value is '
     "outside expected range of 0-23"),
    ("release_policy.train", {"start": 10},  # read as ten seconds past midnight, it would open the train at 00:00
     "release-infra:release_policy.train.start = 10: must be written as HH:MM, e.g. 10:00, not a number"),
    ("release_policy.freezes", [{"start": 20261127, "end": "2026-11-30T00:00:00Z", "reason": "BF"}],
     "release-infra:release_policy.freezes[0].start = 20261127: must be written as an ISO 8601 time with its zone, "
     "e.g. 2026-11-22T10:00:00Z, not a number"),
    ("release_policy.canary_for_high_risk", "yes",
     'release-infra:release_policy.canary_for_high_risk = "yes": must be true or false'),
    ("release_policy.canary_for_high_risk", 1,  # 1 == True in Python: refused all the same
     "release-infra:release_policy.canary_for_high_risk = 1: must be true or false"),
    ("release_policy.freezes", [{"start": "2026-11-27T00:00:00Z", "end": "2026-11-26T00:00:00Z", "reason": "BF"}],
     'release-infra:release_policy.freezes[0] = {"start": "2026-11-27T00:00:00Z", "end": "2026-11-26T00:00:00Z", '
     '"reason": "BF"}: end must be after start'),
    ("release_policy.trian", {}, "release-infra:release_policy.trian: unknown key (did you mean train?); known "
     "keys are train, no_deploy_weekdays, freezes, canary_for_high_risk, emergency_approvers"),
    ("feature_flags", {"refunds-fast-path": {"rollout_percent": 5}},
     'release-infra:feature_flags = "refunds-fast-path": ' + FLAG_NAMES),
    ("feature_flags", {"payin": {"rollout_percent": 5}}, 'release-infra:feature_flags = "payin": ' + FLAG_NAMES),
    ("feature_flags", {"payin-webhook-v2\n": {"rollout_percent": 5}},
     'release-infra:feature_flags = "payin-webhook-v2\\n": ' + FLAG_NAMES),
    ("feature_flags", {"payin-webhook-v2": {"rollout_percent": 100}},
     'release-infra:feature_flags.payin-webhook-v2 = {"rollout_percent": 100}: ' + FULL_ROLLOUT),
    ("feature_flags", {"payin-webhook-v2": {"rollout_percent": 50, "full_rollout_since": "2026-10-01"}},
     'release-infra:feature_flags.payin-webhook-v2 = {"rollout_percent": 50, "full_rollout_since": "2026-10-01"}: '
     + FULL_ROLLOUT),
    ("emergency_change", {"id": "INC-1", "approver": "cdo@pay.example", "reason": "P1",
                          "approved_at": "2026-11-27T15:00:00Z", "review_due": "2026-11-28T15:00:01Z"},
     'release-infra:emergency_change = {"id": "INC-1", "approver": "cdo@pay.example", "reason": "P1", '
     '"approved_at": "2026-11-27T15:00:00Z", "review_due": "...: review_due must be after approved_at and at most 24 '
     "hours after it"),
    ("emergency_change", {"id": "INC-1", "reason": "P1", "approved_at": "2026-11-27T15:00:00Z",
                          "review_due": "2026-11-28T09:00:00Z"},
     "release-infra:emergency_change.approver is missing: required"),
    ("emergency_change", {"id": "INC-1", "approver": " ", "reason": "P1", "approved_at": "2026-11-27T15:00:00Z",
                          "review_due": "2026-11-28T09:00:00Z"},
     'release-infra:emergency_change.approver = " ": an e-mail address, e.g. cdo@pay.example'),
    ("emergency_change", {"id": "INC-1", "approver": "cdo", "reason": "P1", "approved_at": "2026-11-27T15:00:00Z",
                          "review_due": "2026-11-28T09:00:00Z"},
     'release-infra:emergency_change.approver = "cdo": an e-mail address, e.g. cdo@pay.example'),
    ("emergency_change", {"id": "INC-1", "approver": "me@pay.example", "reason": "P1",
                          "approved_at": "2026-11-27T15:00:00Z", "review_due": "2026-11-28T09:00:00Z"},
     'release-infra:emergency_change.approver = "me@pay.example": not one who may approve an emergency change in '
     "this stack (cdo@pay.example: release-infra:release_policy.emergency_approvers)"),
    ("release_policy.emergency_approvers", [],
     "release-infra:release_policy.emergency_approvers = []: prod names who may approve an emergency change "
     "(seed 000: the CDO), reviewed before an emergency needs it; a list of e-mail addresses"),
    ("release_policy", {},
     "release-infra:release_policy.emergency_approvers is missing: prod names who may approve an emergency change "
     "(seed 000: the CDO), reviewed before an emergency needs it; a list of e-mail addresses"),
    ("release_policy.emergency_approvers", ["CDO"],
     'release-infra:release_policy.emergency_approvers[0] = "CDO": an e-mail address, e.g. cdo@pay.example'),
    ("upstream_stack", "prod",
     'release-infra:upstream_stack = "prod": names the stack that images are promoted from, not this one'),
    ("upstream_stack", None,  # as good as deleted: lineage would be off, and prod would run any build
     "release-infra:upstream_stack is missing: prod runs only images its upstream environment has run (promoted "
     "from Test); name that stack, e.g. test"),
])
def test_policy_config_against_the_standard(path: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_policy("prod", "prod", prod_with(path, value), catalogue())
    assert str(raised.value) == 'invalid config for stack "prod": ' + message


def test_flag_names_use_catalogue_products() -> None:
    config = prod_with("feature_flags", {"payout-instant-v1": {"rollout_percent": 0},
                                         "merchant-self-onboarding": {"rollout_percent": 100,
                                                                      "full_rollout_since": "2026-11-01"}})
    assert set(load_policy("prod", "prod", config, catalogue()).feature_flags) == {"payout-instant-v1",
                                                                                  "merchant-self-onboarding"}


@pytest.mark.parametrize("window, moment, inside", [
    ({}, datetime(2026, 11, 24, 10, 0), True),
    ({}, datetime(2026, 11, 24, 13, 59), True),
    ({}, datetime(2026, 11, 24, 14, 0), False),
    ({}, datetime(2026, 11, 24, 9, 59), False),
    ({}, datetime(2026, 11, 17, 11, 0), True),  # any Tuesday
    ({}, datetime(2026, 11, 25, 11, 0), False),
    ({"start": "22:00", "duration_minutes": 180}, datetime(2026, 11, 25, 0, 30), True),  # past midnight
    ({"start": "22:00", "duration_minutes": 180}, datetime(2026, 11, 25, 1, 0), False),
])
def test_the_train_window(window: dict, moment: datetime, inside: bool) -> None:
    assert TrainWindow.model_validate(window).contains(moment.replace(tzinfo=timezone.utc)) is inside


# --- schedule: train, no-deploy days, freezes, emergencies -----------------------------------------------------

def test_a_no_change_update_passes_on_any_day() -> None:
    for now in (TRAIN, WEDNESDAY, FRIDAY):
        assert judge("prod", stack_config("prod"), outputs("prod"), now) == []


def test_a_first_update_creates_the_environment_on_any_day() -> None:
    assert judge("prod", stack_config("prod"), {}, FRIDAY) == []


def test_a_prod_change_passes_inside_the_train() -> None:
    assert judge("prod", prod_with("services.merchant-api.blue.image", NEW_MERCHANT), outputs("prod"), TRAIN) == []


def test_the_train_is_in_utc_whatever_zone_the_clock_reads() -> None:
    karachi = timezone(timedelta(hours=5))
    config = prod_with("services.merchant-api.blue.image", NEW_MERCHANT)
    assert judge("prod", config, outputs("prod"), TRAIN.astimezone(karachi)) == []
    assert "it is Tuesday 2026-11-24 09:30 UTC" in refusal("prod", config, outputs("prod"),
                                                           datetime(2026, 11, 24, 14, 30, tzinfo=karachi))


def test_removing_a_service_is_a_change() -> None:
    previous = outputs("prod")
    previous["services"]["refunds-api"] = previous["services"]["merchant-api"]
    assert refusal("prod", stack_config("prod"), previous, FRIDAY).startswith(
        'release policy refuses the update of stack "prod": release-infra:services.refunds-api is missing: '
        'it is Friday')


def test_a_prod_change_on_a_friday_is_refused_with_one_line() -> None:
    message = refusal("prod", prod_with("services.merchant-api.blue.image", NEW_MERCHANT), outputs("prod"), FRIDAY)
    assert message == (
        'release policy refuses the update of stack "prod": release-infra:services.merchant-api.blue.image = '
        '"registry.pay.internal/merchant-api:f3a4b5c-v3.2.0": it is Friday 2026-11-27 15:00 UTC: no deploys on '
        'Friday (release_policy.no_deploy_weekdays); prod changes only in the release train, Tuesday 10:00-14:00 '
        'UTC; only a rollback or a current emergency change record (release-infra:emergency_change) may deploy now')
    assert "\n" not in message


def test_a_prod_change_outside_the_train_is_refused_and_counts_every_change() -> None:
    config = prod_with("services.merchant-api.blue.image", NEW_MERCHANT)
    set_path(config, "replicas", "4")
    message = refusal("prod", config, outputs("prod"), WEDNESDAY)
    assert "it is Wednesday 2026-11-25 10:30 UTC: prod changes only in the release train, Tuesday 10:00-14:00 UTC" \
        in message
    assert message.endswith("(and 1 more change)")  # replicas changes several Deployments: one config key


def test_a_freeze_stops_changes_even_in_the_train() -> None:
    freeze = [{"start": "2026-11-23T00:00:00Z", "end": "2026-12-01T00:00:00Z", "reason": "Black Friday"}]
    config = set_path(prod_with("services.merchant-api.blue.image", NEW_MERCHANT), "release_policy.freezes", freeze)
    assert 'the change freeze "Black Friday" is on until 2026-12-01 00:00 UTC (release_policy.freezes[0])' \
        in refusal("prod", config, outputs("prod"), TRAIN)
    assert judge("prod", config, outputs("prod"), datetime(2026, 12, 1, 10, 30, tzinfo=timezone.utc)) == []


def test_a_freeze_is_over_at_its_end() -> None:
    """A freeze runs up to its end, not through it: the train opens again at the minute the freeze names."""
    freeze = [{"start": "2026-11-23T00:00:00Z", "end": "2026-11-24T10:30:00Z", "reason": "Black Friday"}]
    config = set_path(prod_with("services.merchant-api.blue.image", NEW_MERCHANT), "release_policy.freezes", freeze)
    assert judge("prod", config, outputs("prod"), TRAIN) == []  # 10:30, the freeze's end
    assert 'the change freeze "Black Friday" is on until 2026-11-24 10:30 UTC (release_policy.freezes[0])' \
        in refusal("prod", config, outputs("prod"), TRAIN - timedelta(minutes=1))


def test_freezes_apply_to_any_environment_that_configures_them() -> None:
    freeze = [{"start": "2026-11-23T00:00:00Z", "end": "2026-12-01T00:00:00Z", "reason": "Black Friday"}]
    config = set_path(set_path(stack_config("test"), "services.payin-api.green.image", NEW_PAYIN),
                      "release_policy.freezes", freeze)
    assert "Black Friday" in refusal("test", config, outputs("test"), TRAIN)
    assert judge("test", delete_path(config, "release_policy"), outputs("test"), FRIDAY) == []


EMERGENCY = {"id": "INC-2417", "approver": "cdo@pay.example", "reason": "P1: Pay-In timeouts",
             "approved_at": "2026-11-27T14:30:00Z", "review_due": "2026-11-28T10:00:00Z"}


def test_an_emergency_change_deploys_outside_the_train_and_is_reported() -> None:
    config = set_path(prod_with("services.merchant-api.blue.image", NEW_MERCHANT), "emergency_change", EMERGENCY)
    [report] = judge("prod", config, outputs("prod"), FRIDAY)
    assert report.startswith("emergency change INC-2417, approved by cdo@pay.example (P1: Pay-In timeouts), "
                             "overrides: no deploys on Friday")
    assert report.endswith("its post-hoc review is due 2026-11-28 10:00 UTC")


@pytest.mark.parametrize("now", [datetime(2026, 11, 27, 14, 0, tzinfo=timezone.utc),
                                 datetime(2026, 11, 28, 10, 1, tzinfo=timezone.utc)])
def test_an_emergency_change_covers_only_approval_to_review(now: datetime) -> None:
    config = set_path(prod_with("services.merchant-api.blue.image", NEW_MERCHANT), "emergency_change", EMERGENCY)
    assert refusal("prod", config, outputs("prod"), now).endswith(
        "emergency change INC-2417 covers 2026-11-27 14:30 UTC to 2026-11-28 10:00 UTC only")


def test_an_emergency_change_still_covers_the_minute_its_review_is_due() -> None:
    """The record covers approval to review, both included: the review is due at 10:00, not before it."""
    config = set_path(prod_with("services.merchant-api.blue.image", NEW_MERCHANT), "emergency_change", EMERGENCY)
    assert judge("prod", config, outputs("prod"), datetime(2026, 11, 28, 10, 0, tzinfo=timezone.utc)) == [
        "emergency change INC-2417, approved by cdo@pay.example (P1: Pay-In timeouts), overrides: prod changes only "
        "in the release train, Tuesday 10:00-14:00 UTC; its post-hoc review is due 2026-11-28 10:00 UTC"]


def test_a_rollback_passes_on_any_day() -> None:
    # prod serves payin-api 2.3.0 on green and keeps 2.2.4 on blue: back to blue is a rollback.
    assert judge("prod", prod_with("services.payin-api.active", "blue"), outputs("prod"), FRIDAY) == []


def test_a_rollback_passes_on_outputs_written_before_schema_1_2() -> None:
    """Before 1.2 a service's first record held its active image alone: going back to the older standby it kept is
    still a rollback, on a Friday and for Pay-In with no canary; the update writes the history 1.2 keeps."""
    legacy = outputs("prod")
    legacy["schema_version"] = "1.1"
    for service in legacy["services"].values():
        service["history"]["served"] = [service["colours"][service["active_colour"]]["image"]]
    flip = prod_with("services.payin-api.active", "blue")
    assert judge("prod", flip, dict(with_first_served(legacy)), FRIDAY) == []
    assert outputs("prod", flip, dict(with_first_served(legacy)))["services"]["payin-api"]["history"]["served"] == [
        "registry.pay.internal/payin-api:9f8e7d6-v2.2.4", "registry.pay.internal/payin-api:a1b2c3d-v2.3.0"]
    moved = copy.deepcopy(legacy)  # a history that knows more is read as it is
    moved["services"]["payin-api"]["history"]["served"].insert(0, "registry.pay.internal/payin-api:0000000-v2.2.0")
    assert with_first_served(moved)["services"]["payin-api"] == moved["services"]["payin-api"]
    assert with_first_served(outputs("prod")) == outputs("prod")


def test_rolling_forward_again_is_a_change() -> None:
    rolled_back = prod_with("services.payin-api.active", "blue")
    message = refusal("prod", stack_config("prod"), outputs("prod", rolled_back, outputs("prod")), FRIDAY)
    assert message.startswith('release policy refuses the update of stack "prod": '
                              'release-infra:services.payin-api.active = "green": it is Friday')


def test_an_older_version_that_never_served_is_a_release_not_a_rollback() -> None:
    """A hotfix on the 2.2 line while 2.3.0 serves: putting it live is judged (no Friday, a canary for Pay-In), and
    going back to 2.3.0 once it is live is the rollback."""
    hotfix = "registry.pay.internal/payin-api:7a7a7a7-v2.2.5"
    upstream = upstream_outputs("prod", {"payin-api": hotfix})["test"]
    staged = prod_with("services.payin-api.blue.image", hotfix)
    assert judge("prod", staged, outputs("prod"), TRAIN, upstream) == []
    previous = outputs("prod", staged, outputs("prod"))
    live = set_path(copy.deepcopy(staged), "services.payin-api.active", "blue")
    assert "it is Friday" in refusal("prod", live, previous, FRIDAY, upstream=upstream)
    assert "payin-api is high-risk: traffic moves to " + hotfix + " only after its canary" in refusal(
        "prod", live, previous, TRAIN, upstream=upstream)
    for weight in (5, 25, 50, 100):
        walked = set_path(copy.deepcopy(staged), "services.payin-api.canary", {"weight": weight})
        assert judge("prod", walked, previous, TRAIN, upstream) == []
        previous = outputs("prod", walked, previous)
    assert judge("prod", live, previous, TRAIN, upstream) == []
    previous = outputs("prod", live, previous)
    back = set_path(copy.deepcopy(live), "services.payin-api.active", "green")
    assert judge("prod", back, previous, FRIDAY, upstream) == []


@pytest.mark.parametrize(("steps", "accepted"), [
    ([5, 25, 50, 100], True), ([1, 5, 10, 25, 50, 75, 100], True), ([5, 50, 100], False), ([1, 100], False)])
def test_a_high_risk_canary_walks_every_step_of_the_standard(steps: list[int], accepted: bool) -> None:
    """Judged when the canary walks forward: a schedule alone, a no-change update or a rollback is no step."""
    config = prod_with("services.payin-api.canary", {"steps": steps, "weight": steps[0]})
    unchanged = prod_with("services.payin-api.canary", {"steps": steps})
    assert judge("prod", unchanged, outputs("prod", unchanged), FRIDAY) == []
    if accepted:
        assert judge("prod", config, outputs("prod"), TRAIN) == []
    else:
        assert refusal("prod", config, outputs("prod"), TRAIN).startswith(
            'release policy refuses the update of stack "prod": release-infra:services.payin-api.canary.steps = '
            f"{steps}: payin-api is high-risk: its canary walks every step of the standard (5% -> 25% -> 50% -> "
            "100%, seed 000 §2) and may add more; this schedule leaves out ")


def test_the_train_is_given_in_utc() -> None:
    config = prod_with("release_policy.train", {"start": "10:00+05:00"})
    with pytest.raises(ConfigError) as raised:
        load_policy("prod", "prod", config, catalogue())
    assert "release-infra:release_policy.train.start" in str(raised.value)
    assert "must be in UTC, HH:MM without an offset: 10:00+0500 is 05:00 UTC" in str(raised.value)
    assert TrainWindow.model_validate({"start": "10:00Z"}).start == TrainWindow().start


def test_back_to_an_earlier_build_of_the_same_version_is_a_rollback() -> None:
    """merchant-api 3.1.0 rebuilt (a new tag, the same version): back to the first build is a rollback on a Friday;
    promoting the rebuild again is not, though it served before: it first took traffic after the first build."""
    rebuild = "registry.pay.internal/merchant-api:0f1e2d3-v3.1.0"
    upstream = upstream_outputs("prod", {"merchant-api": rebuild})["test"]
    staged = prod_with("services.merchant-api.blue.image", rebuild)
    previous = outputs("prod", staged, outputs("prod"))
    promoted = set_path(staged, "services.merchant-api.active", "blue")
    assert judge("prod", promoted, previous, TRAIN, upstream) == []
    previous = outputs("prod", promoted, previous)
    rolled_back = set_path(promoted, "services.merchant-api.active", "green")
    assert judge("prod", rolled_back, previous, FRIDAY, upstream) == []
    previous = outputs("prod", rolled_back, previous)
    again = set_path(rolled_back, "services.merchant-api.active", "blue")
    assert refusal("prod", again, previous, FRIDAY, upstream=upstream).startswith(
        'release policy refuses the update of stack "prod": release-infra:services.merchant-api.active = "blue": '
        "it is Friday")


@pytest.mark.parametrize(("image", "active", "served", "earlier"), [
    ("m:aaaaaaa-v3.0.9", "m:bbbbbbb-v3.1.0", ["m:aaaaaaa-v3.0.9", "m:bbbbbbb-v3.1.0"], True),
    ("m:aaaaaaa-v3.0.9", "m:bbbbbbb-v3.1.0", ["m:bbbbbbb-v3.1.0"], False),  # an older version that never served
    ("m:aaaaaaa-v3.0.9", "m:bbbbbbb-v3.1.0", ["m:bbbbbbb-v3.1.0", "m:aaaaaaa-v3.0.9"], False),  # a hotfix released
    ("m:bbbbbbb-v3.1.0", "m:aaaaaaa-v3.0.9", ["m:bbbbbbb-v3.1.0", "m:aaaaaaa-v3.0.9"], True),  # back from it
    ("m:aaaaaaa-v3.1.0", "m:bbbbbbb-v3.1.0", ["m:aaaaaaa-v3.1.0", "m:bbbbbbb-v3.1.0"], True),  # the first build
    ("m:bbbbbbb-v3.1.0", "m:aaaaaaa-v3.1.0", ["m:aaaaaaa-v3.1.0", "m:bbbbbbb-v3.1.0"], False),  # the rebuild again
    ("m:aaaaaaa-v3.1.0@sha256:" + "0" * 64, "m:bbbbbbb-v3.1.0", ["m:aaaaaaa-v3.1.0", "m:bbbbbbb-v3.1.0"], True),
    ("m:aaaaaaa-v3.1.0", "m:bbbbbbb-v3.1.0", ["m:bbbbbbb-v3.1.0"], False),  # never served: a promotion
    ("m:latest", "m:bbbbbbb-v3.1.0", [], False),
])
def test_an_earlier_release_is_one_that_served_before_the_active_one(image, active, served, earlier) -> None:
    registry = "registry.pay.internal/merchant-api"
    assert is_earlier_release(image.replace("m:", registry + ":"), active.replace("m:", registry + ":"),
                              [item.replace("m:", registry + ":") for item in served]) is earlier


def test_the_colour_that_served_keeps_its_pods_through_the_switch() -> None:
    """merchant-api serves from green in prod, blue is warm: a switch to blue that scales green down in the same
    update would leave the Service on a colour going to zero, whatever standby.since says; a later update may."""
    switched = prod_with("services.merchant-api.active", "blue")
    scaled = copy.deepcopy(switched)
    scaled["services"]["merchant-api"]["standby"] = {"policy": "scaled-down", "colour": "green",
                                                     "since": "2026-11-20T09:00:00Z"}
    assert refusal("prod", scaled, outputs("prod"), TRAIN) == (
        'release policy refuses the update of stack "prod": release-infra:services.merchant-api.standby.policy = '
        '"scaled-down": green took merchant-api\'s traffic until this update: it stays warm through the switch and '
        "the 60-minute manual-rollback window after it; scale it down in a later update, with standby.since at or "
        "after the switch")
    assert judge("prod", scaled, outputs("prod", switched, outputs("prod")), TRAIN) == []


NEXT_MERCHANT = "registry.pay.internal/merchant-api:0123abc-v3.3.0"
KEEPS_GREEN = ("green keeps registry.pay.internal/merchant-api:e1f2a3b-v3.1.0 for merchant-api's manual rollback "
               "through the 60-minute window after the switch")


def promoted_to_blue(at: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    """merchant-api in prod promoted: 3.2.0 put on blue, then traffic switched to it at ``at``; the config and the
    outputs of that switch. Green keeps 3.1.0, the release a manual rollback goes back to."""
    standby = prod_with("services.merchant-api.blue.image", NEW_MERCHANT)
    switched = set_path(copy.deepcopy(standby), "services.merchant-api.active", "blue")
    before = stack_outputs(settings("prod", standby), outputs("prod"), now=at - timedelta(minutes=10))
    after = stack_outputs(settings("prod", switched), before.model_dump(mode="json"), now=at)
    assert before.services["merchant-api"].switched_at is None and after.services["merchant-api"].switched_at == at
    return switched, after.model_dump(mode="json")


def test_a_standby_scaled_down_minutes_after_a_switch_is_refused_whatever_its_since_says() -> None:
    """standby.since left over from an earlier switch (prod's file has one) would let the colour a promotion left go
    to zero five minutes later: the window counts from the switch the outputs record. After it, the colour may go."""
    switched, applied = promoted_to_blue(TRAIN)
    scaled = set_path(copy.deepcopy(switched), "services.merchant-api.standby",
                      {"policy": "scaled-down", "colour": "green", "since": "2026-11-20T09:00:00Z"})
    assert refusal("prod", scaled, applied, TRAIN + timedelta(minutes=5)) == (
        'release policy refuses the update of stack "prod": release-infra:services.merchant-api.standby.policy = '
        '"scaled-down": green served merchant-api\'s traffic until 2026-11-24 10:30 UTC (the previous outputs\' '
        "switched_at): it stays runnable for the 60-minute manual-rollback window after that switch, whatever "
        "standby.since says; scale it down after 2026-11-24 11:30 UTC")
    assert judge("prod", scaled, applied, TRAIN + timedelta(minutes=60)) == []


def test_a_standby_holding_a_build_that_never_served_may_be_scaled_down_inside_the_window() -> None:
    """Promoted to blue, rolled back to green, then a fix staged on blue: blue holds no release a rollback goes to."""
    switched, applied = promoted_to_blue(TRAIN)
    back = set_path(copy.deepcopy(switched), "services.merchant-api.active", "green")
    rolled_back = stack_outputs(settings("prod", back), applied, now=TRAIN + timedelta(minutes=3))
    fix = set_path(copy.deepcopy(back), "services.merchant-api.blue.image", NEXT_MERCHANT)
    staged = stack_outputs(settings("prod", fix), rolled_back.model_dump(mode="json"),
                           now=TRAIN + timedelta(minutes=5)).model_dump(mode="json")
    scaled = set_path(copy.deepcopy(fix), "services.merchant-api.standby",
                      {"policy": "scaled-down", "colour": "blue", "since": "2026-11-20T09:00:00Z"})
    tested = upstream_outputs("prod", {"merchant-api": NEXT_MERCHANT})["test"]
    assert judge("prod", scaled, staged, TRAIN + timedelta(minutes=10), upstream=tested) == []


def test_after_a_rollback_the_standby_may_be_scaled_down_at_once() -> None:
    """The standby then holds the release rolled back from: nothing goes back to it."""
    switched, applied = promoted_to_blue(TRAIN)
    back = set_path(copy.deepcopy(switched), "services.merchant-api.active", "green")
    rolled_back = stack_outputs(settings("prod", back), applied, now=TRAIN + timedelta(minutes=3))
    scaled = set_path(copy.deepcopy(back), "services.merchant-api.standby",
                      {"policy": "scaled-down", "colour": "blue", "since": "2026-11-20T09:00:00Z"})
    assert judge("prod", scaled, rolled_back.model_dump(mode="json"), TRAIN + timedelta(minutes=5)) == []


STAGING = ("has not served merchant-api in prod and was not running on {colour}, the standby, in the previous "
           "update: a release goes to the standby colour first, is checked there, and takes traffic in a later update "
           "(seed 000 §2; `release promote` does both)")


def test_prod_refuses_a_release_put_straight_onto_the_serving_colour() -> None:
    """merchant-api (standard risk) serves 3.1.0 from green: 3.2.0 in place on green would take traffic unchecked,
    with the rollback target running the release before the previous one."""
    in_place = prod_with("services.merchant-api.green.image", NEW_MERCHANT)
    assert refusal("prod", in_place, outputs("prod"), TRAIN) == (
        'release policy refuses the update of stack "prod": release-infra:services.merchant-api.green.image = '
        f'"{NEW_MERCHANT}": {NEW_MERCHANT} ' + STAGING.format(colour="green"))


def test_prod_refuses_a_release_staged_and_switched_to_in_one_update() -> None:
    both = set_path(prod_with("services.merchant-api.blue.image", NEW_MERCHANT), "services.merchant-api.active",
                    "blue")
    assert refusal("prod", both, outputs("prod"), TRAIN) == (
        'release policy refuses the update of stack "prod": release-infra:services.merchant-api.active = "blue": '
        f"{NEW_MERCHANT} " + STAGING.format(colour="blue"))
    staged = prod_with("services.merchant-api.blue.image", NEW_MERCHANT)
    assert judge("prod", both, outputs("prod", staged, outputs("prod")), TRAIN) == []  # a later update may switch


def test_a_release_staged_on_a_scaled_down_standby_has_not_run_and_may_not_take_traffic() -> None:
    """Staged on blue while blue had no pods, then blue warmed and switched to in one update: the release would take
    traffic as its pods first start, unchecked."""
    scaled = prod_with("services.merchant-api.standby",
                       {"policy": "scaled-down", "colour": "blue", "since": "2026-11-20T09:00:00Z"})
    staged = set_path(copy.deepcopy(scaled), "services.merchant-api.blue.image", NEW_MERCHANT)
    previous = outputs("prod", staged, outputs("prod", scaled, outputs("prod")))
    assert previous["services"]["merchant-api"]["colours"]["blue"]["replicas"] == 0
    both = set_path(prod_with("services.merchant-api.blue.image", NEW_MERCHANT), "services.merchant-api.active", "blue")
    assert refusal("prod", both, previous, TRAIN).endswith(STAGING.format(colour="blue"))


def test_a_release_that_served_before_may_go_back_onto_the_serving_colour() -> None:
    """Green served 3.1.0; put back in place after a bad in-place change (under an older policy), it is a rollback."""
    earlier = "registry.pay.internal/merchant-api:e1f2a3b-v3.1.0"
    previous = outputs("prod", prod_with("services.merchant-api.green.image", NEW_MERCHANT), outputs("prod"))
    assert judge("prod", prod_with("services.merchant-api.green.image", earlier), previous, TRAIN) == []


def test_other_environments_may_stage_and_switch_in_one_update() -> None:
    both = set_path(set_path(stack_config("dev"), "services.merchant-api.blue.image", NEW_MERCHANT),
                    "services.merchant-api.active", "blue")
    assert judge("dev", both, outputs("dev"), WEDNESDAY) == []


def test_the_release_a_switch_left_keeps_its_colour_through_the_rollback_window() -> None:
    """Seed 000 §4: replaced minutes after the switch, 3.1.0 would run nowhere and a rollback would have nowhere
    to go; after the window, or under an emergency change record, the colour is free."""
    switched, applied = promoted_to_blue(TRAIN)
    replaced = set_path(copy.deepcopy(switched), "services.merchant-api.green.image", NEXT_MERCHANT)
    tested = {"upstream": upstream_outputs("prod", {"merchant-api": NEXT_MERCHANT})["test"]}  # test ran 3.3.0
    assert refusal("prod", replaced, applied, TRAIN + timedelta(minutes=5), **tested) == (
        'release policy refuses the update of stack "prod": release-infra:services.merchant-api.green.image = '
        f'"{NEXT_MERCHANT}": {KEEPS_GREEN} (it served until 2026-11-24 10:30 UTC): change its image after '
        "2026-11-24 11:30 UTC, in a later update, or under a current emergency change record "
        "(release-infra:emergency_change)")
    assert judge("prod", replaced, applied, TRAIN + timedelta(minutes=60), **tested) == []
    emergency = set_path(copy.deepcopy(replaced), "emergency_change", {
        "id": "INC-7", "approver": "cdo@pay.example", "reason": "P1", "approved_at": "2026-11-24T10:32:00Z",
        "review_due": "2026-11-25T10:00:00Z"})
    assert judge("prod", emergency, applied, TRAIN + timedelta(minutes=5), **tested) == []


def test_the_colour_a_promotion_leaves_keeps_its_release_in_the_switch_itself() -> None:
    standby = prod_with("services.merchant-api.blue.image", NEW_MERCHANT)
    both = set_path(set_path(copy.deepcopy(standby), "services.merchant-api.active", "blue"),
                    "services.merchant-api.green.image", NEXT_MERCHANT)
    tested = upstream_outputs("prod", {"merchant-api": NEXT_MERCHANT})["test"]
    assert f"{KEEPS_GREEN} (this update switches away from it): change its image after 2026-11-24 11:30 UTC" in \
        refusal("prod", both, outputs("prod", standby, outputs("prod")), TRAIN, upstream=tested)


def test_after_a_rollback_the_release_rolled_back_from_may_be_replaced_at_once() -> None:
    """Traffic went back to the older version: the standby holds the release that failed, and a fix replaces it."""
    switched, applied = promoted_to_blue(TRAIN)
    back = set_path(copy.deepcopy(switched), "services.merchant-api.active", "green")
    rolled_back = stack_outputs(settings("prod", back), applied, now=TRAIN + timedelta(minutes=3))
    assert rolled_back.services["merchant-api"].switched_at == TRAIN + timedelta(minutes=3)
    fixed = set_path(copy.deepcopy(back), "services.merchant-api.blue.image", NEXT_MERCHANT)
    tested = upstream_outputs("prod", {"merchant-api": NEXT_MERCHANT})["test"]
    assert judge("prod", fixed, rolled_back.model_dump(mode="json"), TRAIN + timedelta(minutes=5),
                 upstream=tested) == []


REBUILD = "registry.pay.internal/merchant-api:0f1e2d3-v3.1.0"  # a rebuild of green's 3.1.0


def rebuild_promoted_to_blue() -> tuple[dict, dict]:
    """merchant-api's 3.1.0 rebuilt, staged on blue, and promoted at TRAIN: the config and the outputs after it."""
    staged = prod_with("services.merchant-api.blue.image", REBUILD)
    before = stack_outputs(settings("prod", staged), outputs("prod"), now=TRAIN - timedelta(minutes=10))
    promoted = set_path(copy.deepcopy(staged), "services.merchant-api.active", "blue")
    return promoted, stack_outputs(settings("prod", promoted), before.model_dump(mode="json"),
                                   now=TRAIN).model_dump(mode="json")


def test_a_promoted_rebuild_of_the_same_version_keeps_the_first_build_for_the_window() -> None:
    """The served history, not the version, says which switch was a promotion: the first build that served is
    where a rollback of the rebuild goes, so it stays for the window."""
    promoted, applied = rebuild_promoted_to_blue()
    replaced = set_path(copy.deepcopy(promoted), "services.merchant-api.green.image", NEXT_MERCHANT)
    tested = upstream_outputs("prod", {"merchant-api": NEXT_MERCHANT})["test"]
    assert refusal("prod", replaced, applied, TRAIN + timedelta(minutes=5), upstream=tested) == (
        'release policy refuses the update of stack "prod": release-infra:services.merchant-api.green.image = '
        f'"{NEXT_MERCHANT}": green keeps registry.pay.internal/merchant-api:e1f2a3b-v3.1.0 for merchant-api\'s '
        "manual rollback through the 60-minute window after the switch (it served until 2026-11-24 10:30 UTC): "
        "change its image after 2026-11-24 11:30 UTC, in a later update, or under a current emergency change record "
        "(release-infra:emergency_change)")


def test_after_a_rollback_to_the_first_build_of_the_same_version_the_rebuild_may_be_replaced_at_once() -> None:
    """Back on the first 3.1.0 build, the standby holds the rebuild rolled back from, and a fix replaces it."""
    promoted, applied = rebuild_promoted_to_blue()
    back = set_path(copy.deepcopy(promoted), "services.merchant-api.active", "green")
    rolled_back = stack_outputs(settings("prod", back), applied, now=TRAIN + timedelta(minutes=3))
    fixed = set_path(copy.deepcopy(back), "services.merchant-api.blue.image", NEXT_MERCHANT)
    tested = upstream_outputs("prod", {"merchant-api": NEXT_MERCHANT})["test"]
    assert judge("prod", fixed, rolled_back.model_dump(mode="json"), TRAIN + timedelta(minutes=5),
                 upstream=tested) == []


def test_outside_prod_the_next_release_may_replace_the_colour_a_switch_left() -> None:
    """Dev deploys every merge: the release after next may come minutes after a switch."""
    standby = set_path(stack_config("dev"), "services.payin-api.green.image", NEW_PAYIN)  # blue serves 2.4.0-rc.3
    switched = set_path(copy.deepcopy(standby), "services.payin-api.active", "green")  # a promotion to 2.5.0
    applied = stack_outputs(settings("dev", switched), outputs("dev", standby, outputs("dev")), now=TRAIN)
    assert applied.services["payin-api"].switched_at == TRAIN
    later = set_path(copy.deepcopy(switched), "services.payin-api.blue.image",
                     "registry.pay.internal/payin-api:6f7a8b9-v2.6.0")
    assert judge("dev", later, applied.model_dump(mode="json"), TRAIN + timedelta(minutes=5)) == []  # prod: refused


def test_outputs_carry_the_last_switch_until_the_next_one() -> None:
    switched, applied = promoted_to_blue(TRAIN)
    again = stack_outputs(settings("prod", switched), applied, now=TRAIN + timedelta(hours=2))
    assert again.services["merchant-api"].switched_at == TRAIN  # no switch: the last one stays
    assert again.services["payin-api"].switched_at is None  # never switched here
    assert stack_outputs(settings("prod"), now=TRAIN).services["merchant-api"].switched_at is None  # first update


@pytest.mark.parametrize("weight", [5, 25, 100])
@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_switching_colours_with_a_canary_weight_above_0_is_refused(stack: str, weight: int) -> None:
    """merchant-api (standard risk, so no canary rule of its own) at ``weight`` on its standby, then switched by
    hand with the weight left: the preview Service, which the weight goes to, now selects the old release. Any
    share would go there, not only a finished canary's 100%."""
    canary = set_path(stack_config(stack), "services.merchant-api.canary", {"weight": weight})
    active = canary["services"]["merchant-api"]["active"]
    other = "green" if active == "blue" else "blue"
    switched = set_path(copy.deepcopy(canary), "services.merchant-api.active", other)
    assert refusal(stack, switched, outputs(stack, canary), TRAIN) == (
        f'release policy refuses the update of stack "{stack}": release-infra:services.merchant-api.active = '
        f'"{other}": switching merchant-api to {other} with canary.weight {weight} would send {weight}% of its '
        f"traffic to {active}, the colour switched away from (the weight goes to the standby); set canary.weight to 0 "
        "in the same update")
    finished = set_path(copy.deepcopy(switched), "services.merchant-api.canary", {"weight": 0})
    assert judge(stack, finished, outputs(stack, canary), TRAIN) == []


def test_a_canary_step_back_and_warming_a_standby_pass_on_any_day() -> None:
    at_25 = prod_with("services.payin-api.canary", {"weight": 25})
    assert judge("prod", prod_with("services.payin-api.canary", {"weight": 5}),
                 outputs("prod", at_25), FRIDAY) == []
    assert judge("prod", delete_path(stack_config("prod"), "services.payout-api.standby"), outputs("prod"),
                 FRIDAY) == []


def test_a_canary_step_forward_is_a_change_on_a_friday() -> None:
    """Only a step back is safe at any time: 5 -> 25 moves more traffic to the standby's release, a release step
    that waits for the train like any other."""
    at_5 = prod_with("services.payin-api.canary", {"weight": 5})
    at_25 = prod_with("services.payin-api.canary", {"weight": 25})
    assert refusal("prod", at_25, outputs("prod", at_5), FRIDAY) == (
        'release policy refuses the update of stack "prod": release-infra:services.payin-api.canary.weight = 25: it '
        "is Friday 2026-11-27 15:00 UTC: no deploys on Friday (release_policy.no_deploy_weekdays); prod changes only "
        "in the release train, Tuesday 10:00-14:00 UTC; only a rollback or a current emergency change record "
        "(release-infra:emergency_change) may deploy now")
    assert judge("prod", at_25, outputs("prod", at_5), TRAIN) == []


def test_dev_deploys_continuously() -> None:
    config = set_path(stack_config("dev"), "services.payin-api.blue.image", NEW_PAYIN)
    assert judge("dev", config, outputs("dev"), FRIDAY) == []


def test_malformed_previous_outputs_count_as_changes_not_as_a_pass() -> None:
    for previous in ({"services": "garbage"}, {"services": {"payin-api": {"colours": []}}}, {"regions": 3}):
        assert "it is Friday" in refusal("prod", stack_config("prod"), previous, FRIDAY)


# --- strategy by risk class: canaries for high-risk services ---------------------------------------------------

def test_a_high_risk_release_walks_the_canary_and_then_switches() -> None:
    config = prod_with("services.payin-api.blue.image", NEW_PAYIN)  # blue is payin-api's standby in prod
    previous = outputs("prod")
    for weight in (0, 5, 25, 50, 100):
        set_path(config, "services.payin-api.canary", {"weight": weight})
        assert judge("prod", config, previous, TRAIN) == []
        previous = outputs("prod", config, previous)
    set_path(config, "services.payin-api.active", "blue")
    set_path(config, "services.payin-api.canary", {"weight": 0})
    assert judge("prod", config, previous, TRAIN) == []


def walk(config: dict[str, Any], weights: tuple[int, ...], start: datetime, every: timedelta) -> dict[str, Any]:
    """payin-api's canary walked through ``weights`` in updates ``every`` apart from ``start``; the outputs after."""
    previous = outputs("prod")
    for number, weight in enumerate(weights):
        set_path(config, "services.payin-api.canary", {"weight": weight})
        at = start + number * every
        assert judge("prod", config, previous, at) == []
        previous = stack_outputs(settings("prod", config), previous, now=at).model_dump(mode="json")
    return previous


def test_each_canary_step_runs_15_minutes_before_the_next_and_before_the_switch() -> None:
    """Seed 000 §2: 5% -> 25% -> 50% -> 100% at 15-minute intervals. The outputs record when each step was set;
    stepping on sooner, or switching sooner after 100%, is refused; stepping back never waits."""
    config = prod_with("services.payin-api.blue.image", NEW_PAYIN)
    previous = walk(config, (5,), TRAIN, timedelta(0))
    assert previous["services"]["payin-api"]["canary_stepped_at"] == "2026-11-24T10:30:00Z"
    hurried = set_path(copy.deepcopy(config), "services.payin-api.canary", {"weight": 25})
    assert refusal("prod", hurried, previous, TRAIN + timedelta(minutes=10)) == (
        'release policy refuses the update of stack "prod": release-infra:services.payin-api.canary.weight = 25: '
        "payin-api's canary steps to 25% only once 5%, set at 2026-11-24 10:30 UTC, has run 15 minutes (seed 000 "
        "§2): after 2026-11-24 10:45 UTC, or under a current emergency change record (release-infra:emergency_change)")
    assert judge("prod", hurried, previous, TRAIN + timedelta(minutes=15)) == []
    back = set_path(copy.deepcopy(config), "services.payin-api.canary", {"weight": 0})
    assert judge("prod", back, previous, TRAIN + timedelta(minutes=1)) == []

    config = prod_with("services.payin-api.blue.image", NEW_PAYIN)
    at_100 = walk(config, (5, 25, 50, 100), TRAIN, timedelta(minutes=15))
    assert at_100["services"]["payin-api"]["canary_stepped_at"] == "2026-11-24T11:15:00Z"
    switched = set_path(set_path(config, "services.payin-api.active", "blue"), "services.payin-api.canary",
                        {"weight": 0})
    assert 'release-infra:services.payin-api.active = "blue": traffic moves to ' in \
        refusal("prod", switched, at_100, TRAIN + timedelta(minutes=50))
    assert judge("prod", switched, at_100, TRAIN + timedelta(minutes=60)) == []


def test_an_unchanged_canary_keeps_its_step_time_and_a_new_image_resets_it() -> None:
    config = prod_with("services.payin-api.blue.image", NEW_PAYIN)
    at_5 = walk(config, (5,), TRAIN, timedelta(0))
    later = stack_outputs(settings("prod", config), at_5, now=TRAIN + timedelta(minutes=40)).model_dump(mode="json")
    assert later["services"]["payin-api"]["canary_stepped_at"] == "2026-11-24T10:30:00Z"
    other = set_path(copy.deepcopy(config), "services.payin-api.blue.image",
                     "registry.pay.internal/payin-api:6f7a8b9-v2.5.1")
    fresh = stack_outputs(settings("prod", other), at_5, now=TRAIN + timedelta(minutes=40)).model_dump(mode="json")
    assert fresh["services"]["payin-api"]["canary_stepped_at"] == "2026-11-24T11:10:00Z"
    assert outputs("prod")["services"]["payin-api"]["canary_stepped_at"] is None  # weight 0


def test_an_emergency_change_record_shortens_the_canary_wait_but_not_the_steps() -> None:
    config = prod_with("services.payin-api.blue.image", NEW_PAYIN)
    previous = walk(config, (5,), TRAIN, timedelta(0))
    emergency = set_path(set_path(copy.deepcopy(config), "services.payin-api.canary", {"weight": 25}),
                         "emergency_change", {"id": "INC-9", "approver": "cdo@pay.example", "reason": "P1",
                                              "approved_at": "2026-11-24T10:00:00Z",
                                              "review_due": "2026-11-25T10:00:00Z"})
    assert judge("prod", emergency, previous, TRAIN + timedelta(minutes=2)) == []
    skipped = set_path(copy.deepcopy(emergency), "services.payin-api.canary", {"weight": 50})
    assert "from 5% the next step is 25%" in refusal("prod", skipped, previous, TRAIN + timedelta(minutes=2))


def test_a_canary_may_not_skip_a_step() -> None:
    config = set_path(prod_with("services.payin-api.blue.image", NEW_PAYIN), "services.payin-api.canary",
                      {"weight": 5})
    previous = outputs("prod", config)
    message = refusal("prod", set_path(config, "services.payin-api.canary", {"weight": 50}), previous, TRAIN)
    assert ('release-infra:services.payin-api.canary.weight = 50: payin-api is high-risk: its canary moves one step '
            'per update (5% -> 25% -> 50% -> 100%); from 5% the next step is 25%') in message


def test_a_new_image_on_a_standby_starts_its_canary_from_zero() -> None:
    at_50 = outputs("prod", prod_with("services.payin-api.canary", {"weight": 50}))
    config = set_path(prod_with("services.payin-api.blue.image", NEW_PAYIN), "services.payin-api.canary",
                      {"weight": 50})
    assert "from 0% the next step is 5%" in refusal("prod", config, at_50, TRAIN)


def test_a_high_risk_switch_before_the_canary_finished_is_refused() -> None:
    config = set_path(prod_with("services.payin-api.blue.image", NEW_PAYIN), "services.payin-api.canary",
                      {"weight": 50})
    previous = outputs("prod", config)
    switched = set_path(set_path(config, "services.payin-api.active", "blue"), "services.payin-api.canary",
                        {"weight": 0})
    assert ('release-infra:services.payin-api.active = "blue": payin-api is high-risk: traffic moves to '
            'registry.pay.internal/payin-api:5e6f7a8-v2.5.0 only after its canary on the standby colour reached '
            '100% (5% -> 25% -> 50% -> 100%) in the previous update; it was at 50%') \
        in refusal("prod", switched, previous, TRAIN)


def test_a_high_risk_image_may_not_replace_the_active_colours_in_place() -> None:
    message = refusal("prod", prod_with("services.payin-api.green.image", NEW_PAYIN), outputs("prod"), TRAIN)
    assert ('release-infra:services.payin-api.green.image = "registry.pay.internal/payin-api:5e6f7a8-v2.5.0": '
            'payin-api is high-risk') in message


def test_standard_risk_services_switch_blue_green_without_a_canary() -> None:
    config = prod_with("services.merchant-api.blue.image", NEW_MERCHANT)
    previous = outputs("prod", config, outputs("prod"))
    assert judge("prod", set_path(config, "services.merchant-api.active", "blue"), previous, TRAIN) == []


def test_an_image_that_served_this_environment_may_take_traffic_again() -> None:
    rolled_back = outputs("prod", prod_with("services.payin-api.active", "blue"), outputs("prod"))
    assert judge("prod", stack_config("prod"), rolled_back, TRAIN) == []


@pytest.mark.parametrize(("stack", "service", "image", "required"), [
    ("prod", "payin-api", NEW_PAYIN, True),
    ("prod", "merchant-api", NEW_MERCHANT, False),  # standard risk
    ("prod", "payin-api", "registry.pay.internal/payin-api:a1b2c3d-v2.3.0", False),  # it served prod before
    ("test", "payin-api", NEW_PAYIN, False)])  # no canary rule
def test_canary_required_is_what_the_policy_asks_of_a_blue_green_switch(stack: str, service: str, image: str,
                                                                        required: bool) -> None:
    """`release promote` asks it before it puts the image on the standby: the program would refuse only the switch."""
    standby = "blue" if stack_config(stack)["services"][service]["active"] == "green" else "green"
    on_standby = set_path(stack_config(stack), f"services.{service}.{standby}.image", image)
    previous = outputs(stack, on_standby, outputs(stack))
    switched = set_path(copy.deepcopy(on_standby), f"services.{service}.active", standby)
    policy = load_policy(stack, stack, switched, catalogue())
    assert canary_required(policy, catalogue().services[service], previous["services"][service], image) is required
    if required:
        assert f"{service} is high-risk: traffic moves to {image} only after its canary" in refusal(
            stack, switched, previous, TRAIN)
    else:
        assert judge(stack, switched, previous, TRAIN) == []


def test_outside_prod_the_canary_rule_is_off_by_default() -> None:
    config = set_path(stack_config("test"), "services.payin-api.blue.image", NEW_PAYIN)
    assert judge("test", config, outputs("test"), TRAIN) == []


# --- promotion lineage -----------------------------------------------------------------------------------------

def test_prod_may_run_an_image_test_has_run() -> None:
    assert judge("prod", prod_with("services.merchant-api.blue.image", NEW_MERCHANT), outputs("prod"), TRAIN) == []


def test_prod_may_not_run_an_image_test_has_not_run() -> None:
    image = "registry.pay.internal/merchant-api:0123abc-v3.3.0"
    message = refusal("prod", prod_with("services.merchant-api.blue.image", image), outputs("prod"), TRAIN)
    assert message == (
        'release policy refuses the update of stack "prod": release-infra:services.merchant-api.blue.image = '
        '"registry.pay.internal/merchant-api:0123abc-v3.3.0": has not run in test (release-infra:upstream_stack) '
        'and has not run in prod before; prod runs only images test has run (test has run merchant-api '
        'd0e1f2a-v3.0.9, e1f2a3b-v3.1.0, f3a4b5c-v3.2.0)')


def test_the_lineage_refusal_names_the_newest_images_the_upstream_ran() -> None:
    """Test has run four merchant-api builds: the message names the last three, the ones a promotion would pick
    from, not the oldest."""
    newest = "registry.pay.internal/merchant-api:a4b5c6d-v3.2.1"
    upstream = upstream_outputs("prod", {"merchant-api": NEW_MERCHANT})["test"]
    standby = upstream["services"]["merchant-api"]["standby_colour"]
    again = set_path(stack_config("test"), f"services.merchant-api.{standby}.image", newest)
    upstream = stack_outputs(settings("test", again), upstream).model_dump(mode="json")
    assert [image.rsplit(":", 1)[-1] for image in upstream["services"]["merchant-api"]["history"]["ran"]] == [
        "d0e1f2a-v3.0.9", "e1f2a3b-v3.1.0", "f3a4b5c-v3.2.0", "a4b5c6d-v3.2.1"]
    image = "registry.pay.internal/merchant-api:0123abc-v3.3.0"
    assert refusal("prod", prod_with("services.merchant-api.blue.image", image), outputs("prod"), TRAIN,
                   upstream=upstream).endswith(
        "prod runs only images test has run (test has run merchant-api e1f2a3b-v3.1.0, f3a4b5c-v3.2.0, "
        "a4b5c6d-v3.2.1)")


def test_an_image_prod_ran_before_needs_no_upstream() -> None:
    upstream = upstream_outputs("prod")["test"]
    upstream["services"]["payin-api"]["history"] = {"ran": [], "served": []}
    upstream["services"]["payin-api"]["colours"] = {}
    assert judge("prod", stack_config("prod"), outputs("prod"), TRAIN, upstream=upstream) == []


def test_a_first_prod_deploy_needs_every_image_in_test() -> None:
    upstream = upstream_outputs("prod")["test"]
    del upstream["services"]["payout-api"]
    message = refusal("prod", stack_config("prod"), {}, TRAIN, upstream=upstream)
    assert message.count("test has never run payout-api") == 2


def test_lineage_needs_the_upstream_deployed() -> None:
    assert refusal("prod", stack_config("prod"), {}, TRAIN, upstream={}) == (
        'release policy refuses the update of stack "prod": release-infra:upstream_stack = "test": stack "test" has '
        'no outputs yet: prod runs only images test has run, so test deploys first')


def test_a_digest_pin_names_the_same_build() -> None:
    pinned = NEW_MERCHANT + "@sha256:" + "a" * 64
    assert judge("prod", prod_with("services.merchant-api.blue.image", pinned), outputs("prod"), TRAIN) == []


def test_test_may_name_dev_as_its_upstream() -> None:
    config = set_path(stack_config("test"), "upstream_stack", "dev")
    dev, previous = outputs("dev"), outputs("test")
    assert judge("test", config, previous, TRAIN, upstream=dev) == []  # test ran its images before
    assert judge("test", set_path(config, "services.payin-api.green.image",
                                  "registry.pay.internal/payin-api:4d5e6f7-v2.4.0-rc.3"), previous, TRAIN,
                 upstream=dev) == []
    assert ("has not run in dev (release-infra:upstream_stack) and has not run in test before; test runs only "
            "images dev has run (dev has run payin-api 4d5e6f7-v2.4.0-rc.3, 3c4d5e6-v2.4.0-rc.2)") in \
        refusal("test", set_path(config, "services.payin-api.green.image", NEW_PAYIN), previous, TRAIN, upstream=dev)


# --- feature flags and the tag rule ----------------------------------------------------------------------------

@pytest.mark.parametrize("since, reported", [("2026-10-27", False), ("2026-10-26", True), ("2026-08-01", True)])
def test_a_flag_30_days_past_full_rollout_is_reported_not_refused(since: str, reported: bool) -> None:
    config = prod_with("feature_flags", {"payin-webhook-v2": {"rollout_percent": 100, "full_rollout_since": since}})
    reports = judge("prod", config, outputs("prod"), datetime(2026, 11, 25, 10, 30, tzinfo=timezone.utc))
    assert bool(reports) is reported
    if reported:
        assert reports[0].startswith(f"feature flag payin-webhook-v2 has been fully rolled out since {since} (")


def test_flags_below_full_rollout_are_not_reported() -> None:
    assert judge("prod", stack_config("prod"), outputs("prod"), FRIDAY) == []  # payin-webhook-v2 is at 25%


def test_the_tag_rule_is_the_settings_rule() -> None:
    with pytest.raises(ConfigError) as raised:
        settings("prod", prod_with("services.merchant-api.blue.image", "registry.pay.internal/merchant-api:latest"))
    assert str(raised.value) == (
        'invalid config for stack "prod": release-infra:services.merchant-api.blue.image = '
        "\"registry.pay.internal/merchant-api:latest\": 'latest' is a mutable tag; expected "
        "<registry>/<service>:<git-sha>-v<semver>, e.g. registry.example.com/payin-api:a1b2c3d-v2.3.0")


def test_a_pinned_clock_must_name_its_zone() -> None:
    assert pinned_time("2026-11-24T10:30:00Z") == TRAIN == pinned_time("2026-11-24T15:30:00+05:00")
    with pytest.raises(ConfigError, match="RELEASE_INFRA_CLOCK = \"2026-11-24T10:30\": an ISO 8601 time with zone"):
        pinned_time("2026-11-24T10:30")
