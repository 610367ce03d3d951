"""The release policy and promotion lineage in the program, under mocks: refused before anything is registered."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from pulumi import RunError

from core.policy.clock import CLOCK_VARIABLE
from core.policy.rules import CANARY_INTERVAL, PolicyViolation, evaluate
from core.policy.settings import load_policy
from infra.program import main
from tests.support.mock_engine import Run, run_program
from tests.support.stacks import TRAIN, catalogue, live_config, set_path, settings, stack_config, upstream_outputs

FRIDAY = datetime(2026, 11, 27, 15, 0, tzinfo=timezone.utc)
NEW_MERCHANT = "registry.pay.internal/merchant-api:f3a4b5c-v3.2.0"


def update_prod(config: dict[str, Any], now: datetime | None, previous: dict[str, Any] | None = None) -> Run:
    """An update of prod after a first one of its committed config; test has run NEW_MERCHANT."""
    stacks = upstream_outputs("prod", {"merchant-api": NEW_MERCHANT})
    if previous is None:
        previous = run_program(lambda: main(now=lambda: TRAIN), stack="prod", config=stack_config("prod"),
                               stack_outputs=stacks).result.model_dump(mode="json")
    return run_program(lambda: main(now=None if now is None else lambda: now), stack="prod", config=config,
                       stack_outputs={**stacks, "prod": previous}, keep_error=True)


def test_the_committed_prod_stack_is_promoted_from_test() -> None:
    assert stack_config("prod")["upstream_stack"] == "test"


def test_a_no_change_update_passes_on_a_friday() -> None:
    run = update_prod(stack_config("prod"), FRIDAY)
    assert run.error is None and run.registrations


def test_a_change_on_a_friday_fails_with_the_policys_line_and_registers_nothing() -> None:
    config = set_path(stack_config("prod"), "services.merchant-api.blue.image", NEW_MERCHANT)
    run = update_prod(config, FRIDAY)
    assert isinstance(run.error, RunError) and run.registrations == []
    assert str(run.error) == (
        'release policy refuses the update of stack "prod": release-infra:services.merchant-api.blue.image = '
        f'"{NEW_MERCHANT}": it is Friday 2026-11-27 15:00 UTC: no deploys on Friday '
        "(release_policy.no_deploy_weekdays); prod changes only in the release train, Tuesday 10:00-14:00 UTC; only a "
        "rollback or a current emergency change record (release-infra:emergency_change) may deploy now")
    previous = update_prod(stack_config("prod"), TRAIN).result.model_dump(mode="json")
    with pytest.raises(PolicyViolation) as expected:  # the program passes the policy's own line on, unchanged
        evaluate(settings("prod", config), load_policy("prod", "prod", config, catalogue()), catalogue(), previous,
                 upstream_outputs("prod", {"merchant-api": NEW_MERCHANT})["test"], FRIDAY)
    assert str(run.error) == str(expected.value)


def test_a_change_in_the_train_is_deployed_and_recorded_in_the_history() -> None:
    run = update_prod(set_path(stack_config("prod"), "services.merchant-api.blue.image", NEW_MERCHANT), TRAIN)
    assert run.error is None
    assert run.result.services["merchant-api"].history.ran[-1] == NEW_MERCHANT


def test_an_image_test_has_not_run_fails_before_registration() -> None:
    image = "registry.pay.internal/merchant-api:0123abc-v3.3.0"
    run = update_prod(set_path(stack_config("prod"), "services.merchant-api.blue.image", image), TRAIN)
    assert isinstance(run.error, RunError) and run.registrations == []
    assert f'release-infra:services.merchant-api.blue.image = "{image}": has not run in test' in str(run.error)


def test_prod_cannot_deploy_before_test() -> None:
    run = run_program(lambda: main(now=lambda: TRAIN), stack="prod", config=stack_config("prod"), keep_error=True)
    assert isinstance(run.error, RunError) and run.registrations == []
    assert 'release-infra:upstream_stack = "test": stack "test" has no outputs yet' in str(run.error)


def test_bad_policy_config_fails_like_any_bad_config() -> None:
    run = update_prod(set_path(stack_config("prod"), "feature_flags", {"payments-v2": {"rollout_percent": 5}}),
                      TRAIN)
    assert isinstance(run.error, RunError) and run.registrations == []
    assert str(run.error).startswith('invalid config for stack "prod": release-infra:feature_flags = "payments-v2": '
                                     'flags are named {product}-{feature}')


def test_an_old_flag_is_reported_as_a_warning(warnings: list[str]) -> None:
    config = set_path(stack_config("prod"), "feature_flags",
                      {"payin-webhook-v2": {"rollout_percent": 100, "full_rollout_since": "2026-10-01"}})
    run = update_prod(config, FRIDAY)
    assert run.error is None
    assert [w for w in warnings if w.startswith("feature flag")] == [
        "feature flag payin-webhook-v2 has been fully rolled out since 2026-10-01 (57 days): remove it from the code, "
        "PostHog and release-infra:feature_flags (flags go within 30 days of full rollout)"]


def test_a_pinned_clock_is_used_and_announced(monkeypatch: pytest.MonkeyPatch, warnings: list[str]) -> None:
    config = set_path(stack_config("prod"), "services.merchant-api.blue.image", NEW_MERCHANT)
    monkeypatch.setenv(CLOCK_VARIABLE, "2026-11-27T15:00:00Z")
    assert "it is Friday 2026-11-27 15:00 UTC" in str(update_prod(config, None).error)
    monkeypatch.setenv(CLOCK_VARIABLE, "2026-11-24T10:30:00Z")
    assert update_prod(config, None).error is None
    assert any(w.startswith(f"{CLOCK_VARIABLE}=2026-11-24T10:30:00Z pins the release-policy clock") for w in warnings)


def test_a_stack_with_a_cluster_refuses_a_pinned_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    config = {**live_config("prod"), "cluster": {"context": "prod-eu"}}
    monkeypatch.setenv(CLOCK_VARIABLE, "2026-11-24T10:30:00Z")
    run = update_prod(config, None, previous={})
    assert isinstance(run.error, RunError) and run.registrations == []
    assert str(run.error) == ('invalid config for stack "prod": RELEASE_INFRA_CLOCK = "2026-11-24T10:30:00Z": a pinned '
                              "clock is for rendered stacks only; this stack deploys to cluster context 'prod-eu', "
                              "so unset it")


def test_a_malformed_pinned_clock_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CLOCK_VARIABLE, "next tuesday")
    run = update_prod(stack_config("prod"), None, previous={})
    assert str(run.error) == ('invalid config for environment variable RELEASE_INFRA_CLOCK: RELEASE_INFRA_CLOCK = '
                              '"next tuesday": an ISO 8601 time with zone, e.g. 2026-11-24T10:30:00Z')


def test_a_high_risk_canary_walks_its_steps_and_steps_back_on_a_friday() -> None:
    """The previous weight comes back through the engine's invoke as a float (5.0): it is still the step reached."""
    previous = None
    for number, weight in enumerate((5, 25)):  # each step runs 15 minutes before the next
        run = update_prod(set_path(stack_config("prod"), "services.payin-api.canary.weight", weight),
                          TRAIN + number * CANARY_INTERVAL, previous)
        assert run.error is None, run.error
        previous = run.result.model_dump(mode="json")
    run = update_prod(set_path(stack_config("prod"), "services.payin-api.canary.weight", 0), FRIDAY, previous)
    assert run.error is None, run.error
