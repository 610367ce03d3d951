"""Migrations: which image's migrations an update applies, forward-only, the expand/contract guard, the Job."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from core.catalogue import Catalogue
from core.errors import ConfigError
from core.migrations import check_databases, job_name, plan, previous_releases
from core.outputs import stack_outputs
from core.images import ImageReference
from tests.support.stacks import ROOT, catalogue, set_path, settings, stack_config

PAYIN = "registry.pay.internal/payin-api:{}"


def outputs_of(stack: str, config: dict[str, Any] | None = None, before: dict[str, Any] | None = None) -> dict:
    """The stack outputs an update of ``config`` would export, given the outputs ``before`` it."""
    current = settings(stack, config)
    return stack_outputs(current, before, plan(current, catalogue(), previous_releases(before or {}))).model_dump(mode="json")


def migrate(stack: str, config: dict[str, Any], before: dict[str, Any] | None = None) -> dict:
    return plan(settings(stack, config), catalogue(), previous_releases(before or {}))


def promote(config: dict[str, Any], colour: str, tag: str) -> dict[str, Any]:
    return set_path(config, f"services.payin-api.{colour}.image", PAYIN.format(tag))


def test_a_first_deploy_migrates_to_the_newest_image_of_each_service_that_has_migrations() -> None:
    migrations = migrate("prod", stack_config("prod"))
    assert set(migrations) == {"payin-api", "payout-api"}  # merchant-api has no database migrations
    assert str(migrations["payin-api"].image) == PAYIN.format("a1b2c3d-v2.3.0")  # green; blue runs 2.2.4


def test_an_update_that_changes_no_image_applies_the_same_migration_again() -> None:
    before = outputs_of("prod")
    assert migrate("prod", stack_config("prod"), before)["payin-api"].job == \
        migrate("prod", stack_config("prod"))["payin-api"].job


def test_a_flip_or_rollback_migrates_nothing_new() -> None:
    before = outputs_of("prod")
    flipped = set_path(stack_config("prod"), "services.payin-api.active", "blue")
    assert migrate("prod", flipped, before)["payin-api"].image == ImageReference.parse(PAYIN.format("a1b2c3d-v2.3.0"))


def test_a_promotion_migrates_to_the_new_image() -> None:
    before = outputs_of("prod")
    promoted = promote(stack_config("prod"), "blue", "5e6f7a8-v2.4.0")
    migration = migrate("prod", promoted, before)["payin-api"]
    assert str(migration.image) == PAYIN.format("5e6f7a8-v2.4.0")
    assert migration.job["metadata"]["name"] == "payin-api-migrate-5e6f7a8"


def test_the_last_migration_is_remembered_after_the_standby_goes_back_to_an_older_running_image() -> None:
    """Migrated to 2.4.0 on blue, then blue back to 2.2.4 would be a downgrade, even though prod ran 2.2.4 before."""
    after_promotion = outputs_of("prod", promote(stack_config("prod"), "blue", "5e6f7a8-v2.4.0"), outputs_of("prod"))
    assert after_promotion["migrations"]["payin-api"]["version"] == "2.4.0"
    with pytest.raises(ConfigError) as error:
        migrate("prod", stack_config("prod"), after_promotion)
    assert str(error.value) == (
        'invalid config for stack "prod": release-infra:services.payin-api.blue.image = '
        '"registry.pay.internal/payin-api:9f8e7d6-v2.2.4": migrations only move forward: prod last migrated '
        'payin-api to 2.4.0 (registry.pay.internal/payin-api:5e6f7a8-v2.4.0); an older image cannot run its '
        'migrations; deploy 2.4.0 or later')


def test_a_downgrade_migration_is_refused() -> None:
    before = outputs_of("prod")
    with pytest.raises(ConfigError) as error:
        migrate("prod", promote(stack_config("prod"), "blue", "0a0a0a0-v2.1.0"), before)
    assert 'release-infra:services.payin-api.blue.image = "registry.pay.internal/payin-api:0a0a0a0-v2.1.0": ' \
           'migrations only move forward: prod last migrated payin-api to 2.3.0' in str(error.value)


def test_a_service_removed_and_run_again_does_not_migrate_its_database_backwards() -> None:
    """The database outlives the service's Deployments: removing the service keeps its migration record."""
    promoted = outputs_of("prod", promote(stack_config("prod"), "blue", "5e6f7a8-v2.4.0"), outputs_of("prod"))
    retired = stack_config("prod")
    del retired["services"]["payin-api"]
    after_removal = outputs_of("prod", retired, promoted)
    assert "payin-api" not in after_removal["services"]
    assert after_removal["migrations"]["payin-api"] == promoted["migrations"]["payin-api"]
    assert outputs_of("prod", retired, after_removal)["migrations"] == after_removal["migrations"]
    with pytest.raises(ConfigError) as error:
        migrate("prod", stack_config("prod"), after_removal)  # back, with 2.2.4 and 2.3.0 on its colours
    assert "migrations only move forward: prod last migrated payin-api to 2.4.0" in str(error.value)
    again = promote(promote(stack_config("prod"), "blue", "5e6f7a8-v2.4.0"), "green", "5e6f7a8-v2.4.0")
    assert str(migrate("prod", again, after_removal)["payin-api"].image) == PAYIN.format("5e6f7a8-v2.4.0")


def test_a_new_build_of_the_same_version_runs_its_migrations() -> None:
    before = outputs_of("prod")
    rebuilt = promote(stack_config("prod"), "blue", "b0b0b0b-v2.3.0")
    assert migrate("prod", rebuilt, before)["payin-api"].job["metadata"]["name"] == "payin-api-migrate-b0b0b0b"


def test_a_contract_release_waits_until_both_colours_run_the_expand_release() -> None:
    """Catalogue: payin-api 3.0.0 contracts what 2.4.0 expanded. Prod's green runs 2.3.0."""
    before = outputs_of("prod", promote(stack_config("prod"), "blue", "5e6f7a8-v2.4.0"), outputs_of("prod"))
    contract = promote(promote(stack_config("prod"), "blue", "5e6f7a8-v2.4.0"), "blue", "c0ffee0-v3.0.0")
    with pytest.raises(ConfigError) as error:
        migrate("prod", contract, before)
    assert str(error.value) == (
        'invalid config for stack "prod": release-infra:services.payin-api.blue.image = '
        '"registry.pay.internal/payin-api:c0ffee0-v3.0.0": 3.0.0 includes the contract release 3.0.0, which drops '
        'schema that the expand release 2.4.0 replaced; both colours must run 2.4.0 or later first, and green '
        'runs 2.3.0 (a rollback to it would meet a schema it cannot read): put 2.4.0 or later on green and '
        'update before this release')


def test_a_contract_release_goes_ahead_once_both_colours_run_the_expand_release() -> None:
    both_expanded = promote(promote(stack_config("prod"), "blue", "5e6f7a8-v2.4.0"), "green", "6f7a8b9-v2.4.1")
    before = outputs_of("prod", both_expanded)
    contract = promote(both_expanded, "blue", "c0ffee0-v3.0.0")
    assert migrate("prod", contract, before)["payin-api"].image.version.major == 3


def test_a_release_after_an_applied_contract_is_not_held_back_again() -> None:
    both_expanded = promote(promote(stack_config("prod"), "blue", "5e6f7a8-v2.4.0"), "green", "6f7a8b9-v2.4.1")
    contracted = outputs_of("prod", promote(both_expanded, "blue", "c0ffee0-v3.0.0"), outputs_of("prod", both_expanded))
    later = promote(promote(both_expanded, "blue", "c0ffee0-v3.0.0"), "green", "d1d1d1d-v3.1.0")
    assert migrate("prod", later, contracted)["payin-api"].image.version.minor == 1


def test_a_release_candidate_of_a_contract_release_is_held_to_its_expand_release() -> None:
    """3.0.0-rc.1 runs the migrations of 3.0.0, the contract among them; an expand release's candidate carries the
    expand, and a contract its candidate applied is not held back again."""
    before = outputs_of("prod")
    with pytest.raises(ConfigError, match="3.0.0-rc.1 includes the contract release 3.0.0"):
        migrate("prod", promote(stack_config("prod"), "blue", "c0ffee0-v3.0.0-rc.1"), before)
    expanded = promote(promote(stack_config("prod"), "blue", "5e6f7a8-v2.4.0-rc.2"), "green", "6f7a8b9-v2.4.0")
    contract = promote(expanded, "blue", "c0ffee0-v3.0.0-rc.1")
    assert str(migrate("prod", contract, outputs_of("prod", expanded))["payin-api"].image.version) == "3.0.0-rc.1"
    final = promote(contract, "blue", "d1d1d1d-v3.0.0")
    assert migrate("prod", final, outputs_of("prod", contract, outputs_of("prod", expanded)))["payin-api"].image \
        .version.prerelease is None


def test_skipping_past_a_contract_release_is_guarded_too() -> None:
    before = outputs_of("prod")
    with pytest.raises(ConfigError) as raised:
        migrate("prod", promote(stack_config("prod"), "blue", "e2e2e2e-v3.2.0"), before)
    skipped = ('release-infra:services.payin-api.blue.image = "registry.pay.internal/payin-api:e2e2e2e-v3.2.0": 3.2.0 '
               "includes the contract release 3.0.0, which drops schema that the expand release 2.4.0 replaced; both "
               "colours must run 2.4.0 or later first, and {colour} runs {version} (a rollback to it would meet a "
               "schema it cannot read): put 2.4.0 or later on {colour} and update before this release")
    assert str(raised.value) == 'invalid config for stack "prod": ' + "; ".join(
        skipped.format(colour=colour, version=version) for colour, version in (("blue", "2.2.4"), ("green", "2.3.0")))


def test_the_job_runs_the_new_image_once_with_restricted_security_and_the_database_secret() -> None:
    spec = migrate("prod", stack_config("prod"))["payin-api"].job["spec"]
    pod = spec["template"]["spec"]
    [container] = pod["containers"]
    assert container["image"] == PAYIN.format("a1b2c3d-v2.3.0")
    assert container["command"] == ["/app/migrate", "up"]
    assert {"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "payin-api-database",
                                                                   "key": "DATABASE_URL"}}} in container["env"]
    assert spec["backoffLimit"] == 1 and spec["activeDeadlineSeconds"] == 600
    assert spec["ttlSecondsAfterFinished"] == 7 * 24 * 3600 and pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}
    assert "color" not in spec["template"]["metadata"]["labels"], "a Service selecting {app, color} must not reach it"


def test_job_names_fit_kubernetes() -> None:
    image = ImageReference.parse("registry.pay.internal/a:0123456789abcdef-v1.0.0")
    assert job_name("x" * 47, image) == "x" * 47 + "-migrate-0123456"
    assert job_name("x" * 63, image) == "x" * 40 + "-" + hashlib.sha256(b"x" * 63).hexdigest()[:6] + "-migrate-0123456"
    candidate = ImageReference.parse("registry.pay.internal/a:0123456789abcdef-v1.0.0-RC-1.Build-with-a-long-name")
    assert len(job_name("x" * 63, candidate)) == 63
    assert job_name("x" * 63, candidate).endswith("-migrate-0123456-rc-1.build-w")


def test_two_long_service_names_with_one_beginning_get_two_jobs() -> None:
    image = ImageReference.parse("registry.pay.internal/a:a1b2c3d-v1.0.0")
    names = {job_name(f"merchant-settlement-reconciliation-export-service-{region}", image) for region in ("eu", "us")}
    assert len(names) == 2 and all(len(name) <= 63 for name in names)


def test_the_job_that_migrated_an_image_keeps_its_name() -> None:
    """Names have changed over time (a candidate's now carries its pre-release): a new name would be a new Job,
    which runs the migrations again, so an image already migrated keeps the Job that did it."""
    before = outputs_of("dev")
    before["migrations"]["payin-api"]["job"] = "payin-api-migrate-4d5e6f7"  # as an earlier version named it
    assert migrate("dev", stack_config("dev"), before)["payin-api"].job["metadata"]["name"] == \
        "payin-api-migrate-4d5e6f7"
    assert migrate("dev", stack_config("dev"), {})["payin-api"].job["metadata"]["name"] == \
        "payin-api-migrate-4d5e6f7-rc.3"


def test_a_candidate_and_its_release_from_one_commit_are_two_jobs() -> None:
    """b7c8d9e-v1.9.0-rc.1, then b7c8d9e-v1.9.0: a Job's template cannot change, and a finished Job may be kept."""
    names = {job_name("payout-api", ImageReference.parse(f"registry.pay.internal/payout-api:b7c8d9e-v{version}"))
             for version in ("1.9.0-rc.1", "1.9.0-rc.2", "1.9.0")}
    assert names == {"payout-api-migrate-b7c8d9e-rc.1", "payout-api-migrate-b7c8d9e-rc.2", "payout-api-migrate-b7c8d9e"}


def test_outputs_of_an_older_schema_are_read_without_a_migration_record() -> None:
    old = outputs_of("prod")
    del old["migrations"]
    assert previous_releases(old)["payin-api"].migrated is None
    with pytest.raises(ConfigError) as raised:
        migrate("prod", promote(stack_config("prod"), "blue", "0a0a0a0-v2.2.0"), old)
    assert str(raised.value) == (
        'invalid config for stack "prod": release-infra:services.payin-api.blue.image = '
        '"registry.pay.internal/payin-api:0a0a0a0-v2.2.0": migrations only move forward: prod last migrated payin-api '
        "to 2.3.0 (registry.pay.internal/payin-api:a1b2c3d-v2.3.0); an older image cannot run its migrations; "
        "deploy 2.3.0 or later")


@pytest.mark.parametrize(("value", "live", "message"), [
    ({"merchant-api": "postgres://db/merchant"}, False,
     "release-infra:databases.merchant-api = \"[secret]\": only services with migrations need a database URL; "
     "these have: payin-api, payout-api"),
    ({"payin-api": ""}, False, 'release-infra:databases.payin-api = "[secret]": must be a non-empty database URL'),
    ("postgres://db", False, 'release-infra:databases = "[secret]": must be a map of service -> database URL'),
    ({"payin-api": "postgres://db/payin"}, True,
     "release-infra:databases.payout-api is missing: a secret database URL for payout-api's migrations"),
])
def test_database_urls_are_checked_without_showing_them(value: Any, live: bool, message: str) -> None:
    problems = check_databases(settings("prod"), catalogue(), value, live=live)
    assert len(problems) == 1 and str(problems[0]).startswith(message)
    assert "postgres://" not in str(problems[0])


def test_a_rendered_stack_needs_no_database_urls() -> None:
    assert check_databases(settings("prod"), catalogue(), None, live=False) == []


def test_a_contract_must_come_after_its_expand_release(tmp_path) -> None:
    text = (ROOT / "catalogue.yaml").read_text().replace('contracts: {"3.0.0": "2.4.0"}', 'contracts: {"2.4.0": "3.0.0"}')
    (tmp_path / "catalogue.yaml").write_text(text)
    with pytest.raises(ConfigError, match="contract release 2.4.0 must come after its expand release 3.0.0"):
        Catalogue.load(tmp_path / "catalogue.yaml")


def test_the_job_runs_the_digest_its_colour_is_pinned_to() -> None:
    digest = "sha256:" + "e" * 64
    current = settings("prod")
    migration = plan(current, catalogue(), {}, {("payin-api", "green"): digest, ("payin-api", "blue"): "sha256:" + "f" * 64})
    assert migration["payin-api"].job["spec"]["template"]["spec"]["containers"][0]["image"] == \
        PAYIN.format("a1b2c3d-v2.3.0") + "@" + digest  # green runs 2.3.0, the newest: its migrations run
    assert str(migration["payin-api"].image) == PAYIN.format("a1b2c3d-v2.3.0"), "outputs keep the configured image"
