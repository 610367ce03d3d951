"""Migrations through the whole program under mocks, with the previous outputs the engine would read.

On the test stack, which has no upstream and no train: these tests are about migrations, not release policy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pulumi import RunError
from pulumi.runtime.rpc import _special_sig_key as SECRET_SIGNATURE

from infra.program import CATALOGUE, main
from tests.support.mock_engine import Run, run_program
from tests.support.stacks import NOW, set_path, stack_config

NEW_PAYIN = "registry.pay.internal/payin-api:5e6f7a8-v2.4.0"


def update(config: dict[str, Any], before: Run | None = None, stack: str = "test") -> Run:
    """One `pulumi up` of ``config`` after the update that produced ``before``."""
    previous = {stack: before.result.model_dump(mode="json")} if before else {}
    return run_program(lambda: main(now=lambda: NOW), stack=stack, config=config, stack_outputs=previous,
                       keep_error=True)


def jobs(run: Run) -> dict[str, dict]:
    return {r.name: r.inputs for r in run.of_kind("Job")}


def test_a_promotion_registers_the_new_images_job_and_both_colours_wait_for_it() -> None:
    before = update(stack_config("test"))
    after = update(set_path(stack_config("test"), "services.payin-api.green.image", NEW_PAYIN), before)
    job = after.named("test-payin-api-migration")
    assert job.inputs["metadata"]["name"] == "payin-api-migrate-5e6f7a8"
    assert job.inputs["spec"]["template"]["spec"]["containers"][0]["image"] == NEW_PAYIN
    deployments = {r.name: r for r in after.of_kind("Deployment")}
    for colour in ("blue", "green"):
        assert job.urn in deployments[f"test-payin-api-{colour}"].dependencies
    assert after.result.migrations["payin-api"].image == NEW_PAYIN
    # Awaited as long as the Job may run, past the provider's own 10 minutes.
    deadline = int(job.inputs["spec"]["activeDeadlineSeconds"])
    assert job.timeouts == (f"{deadline + 60}s", f"{deadline + 60}s")


def test_a_flip_and_a_rollback_register_no_new_job() -> None:
    before = update(stack_config("test"))
    flipped = update(set_path(stack_config("test"), "services.payin-api.active", "green"), before)
    rolled_back = update(stack_config("test"), flipped)
    assert jobs(flipped) == jobs(before) == jobs(rolled_back)


def test_only_a_job_yet_to_run_takes_changes_to_its_template() -> None:
    """The provider replaces a Job whose template changes: for a Job that ran, that is its migrations again."""
    promoted = update(set_path(stack_config("test"), "services.payin-api.green.image", NEW_PAYIN),
                      update(stack_config("test")))
    assert promoted.named("test-payin-api-migration").ignore_changes == ()
    again = update(set_path(stack_config("test"), "services.payin-api.green.image", NEW_PAYIN), promoted)
    assert again.named("test-payin-api-migration").ignore_changes == ("spec",)
    assert again.named("test-payin-api-migration").inputs["metadata"]["name"] == "payin-api-migrate-5e6f7a8"


def test_a_downgrade_migration_fails_before_anything_is_registered() -> None:
    promoted = update(set_path(stack_config("test"), "services.payin-api.green.image", NEW_PAYIN),
                      update(stack_config("test")))
    downgrade = update(stack_config("test"), promoted)  # green back to 2.2.4
    assert isinstance(downgrade.error, RunError) and downgrade.registrations == []
    assert "release-infra:services.payin-api.green.image = \"registry.pay.internal/payin-api:9f8e7d6-v2.2.4\": " \
           "migrations only move forward: test last migrated payin-api to 2.4.0" in str(downgrade.error)


def test_a_premature_contract_fails_before_anything_is_registered() -> None:
    contract = set_path(stack_config("test"), "services.payin-api.green.image",
                        "registry.pay.internal/payin-api:c0ffee0-v3.0.0")
    run = update(contract, update(stack_config("test")))
    assert isinstance(run.error, RunError) and run.registrations == []
    assert "3.0.0 includes the contract release 3.0.0" in str(run.error)
    assert "both colours must run 2.4.0 or later first, and blue runs 2.3.0" in str(run.error)


def test_a_rendered_stack_writes_placeholder_database_urls() -> None:
    """With a cluster each URL reaches only its Secret (tests/program/test_program.py); rendered, none is written."""
    url = "postgres://payin:s3cret@db.payments-test:5432/payin"
    run = update({**stack_config("test"), "databases": {"payin-api": url}})
    for service in ("payin-api", "payout-api"):
        secret = run.named(f"test-{service}-database").inputs["stringData"]
        assert secret["value"] == {"DATABASE_URL": f"postgres://migrations.invalid/{service}"}
        assert SECRET_SIGNATURE in secret
    assert not any(url in str(r.inputs) for r in run.registrations)


def test_a_stack_with_a_cluster_needs_every_database_url() -> None:
    config = {**stack_config("test"), "cluster": {"context": "test"}, "databases": {"payin-api": "postgres://db"},
              "image_digests": "off",
              "alerting": {"alertmanager_url": "http://alertmanager.monitoring:9093"},
              **{key: "https://hooks.slack.com/services/T/B/x" for key in (
                  "alerting_slack_deployments_url", "alerting_slack_incidents_url", "alerting_slack_alerts_url")},
              "alerting_pagerduty_routing_key": "0123456789abcdef0123456789abcdef"}
    run = update(config)
    assert isinstance(run.error, RunError) and run.registrations == []
    assert "release-infra:databases.payout-api is missing" in str(run.error)


def test_a_renamed_service_keeps_its_database_secret(tmp_path: Path) -> None:
    """The Secret is named after its Kubernetes name: under the service's new name Pulumi would create the same
    Secret, then delete it, and the renamed service's migrations would find no database URL."""
    raw = yaml.safe_load(CATALOGUE.read_text())
    raw["services"]["payouts-api"] = raw["services"].pop("payout-api")
    raw["routes"] = [{**route, "service": "payouts-api"} if route["service"] == "payout-api" else route
                     for route in raw["routes"]]
    catalogue = tmp_path / "catalogue.yaml"
    catalogue.write_text(yaml.safe_dump(raw))
    config = stack_config("test")
    config["services"]["payouts-api"] = yaml.safe_load(
        yaml.safe_dump(config["services"].pop("payout-api")).replace("/payout-api:", "/payouts-api:"))
    before = update(stack_config("test"))
    after = run_program(lambda: main(now=lambda: NOW, catalogue_file=catalogue), stack="test", config=config,
                        stack_outputs={"test": before.result.model_dump(mode="json")}, keep_error=True)
    assert after.error is None
    secrets = [(r.name, r.inputs["metadata"]["name"]) for r in after.of_kind("Secret") if "payout" in r.name]
    assert secrets == [("test-payout-api-database", "payout-api-database")]
    assert "test-payout-api-database" in [r.name for r in before.of_kind("Secret")]
    [job] = [r for r in after.of_kind("Job") if r.name == "test-payouts-api-migration"]
    assert "payout-api-database" in str(job.inputs["spec"])
