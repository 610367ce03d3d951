"""The rollback plan of real previews: `pulumi preview --json` of the prod stack captured from the engine
(tests/support/previews.py), and combinations of their real steps for the cases no single capture shows."""

from __future__ import annotations

import copy
import json
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from core.errors import ConfigError
from core.gateway import render
from core.migrations import plan as migration_plan, previous_releases
from core.outputs import stack_outputs
from core.policy.rules import PolicyViolation, evaluate
from core.policy.settings import load_policy
from core.rollback_plan import (Change, FailedPreview, PreviewError, Preview, ServiceChange, _service_section, parse_preview,
                                 render_markdown, rollback_plan)
from release_infra_tools.rollback_plan import main
from tests.support.previews import FAILED, UPSTREAM_RELEASES, fixture
from tests.support.stacks import ROOT, catalogue, set_path, settings, stack_config, upstream_outputs

FLIP_PLAN = """\
### Rollback plan: `prod`

#### payin-api

- **Colour switch**: traffic moves from **green** (`registry.pay.internal/payin-api:a1b2c3d-v2.3.0`) to **blue** \
(`registry.pay.internal/payin-api:9f8e7d6-v2.2.4`); green keeps running as the standby. \
Back to an older version: 2.3.0 -> 2.2.4.
- Updated with it: `prod-alerting-payin-api-deployment` (DeploymentEvents), `prod-alerting-payin-api-rules` \
(PrometheusRule), `prod-payin-api-preview` (Service).

To roll back, switch traffic back to **green**:

```sh
pulumi stack select prod
pulumi config set --path 'services.payin-api.active' green
pulumi up
```
"""

PROMOTION_PLAN = """\
### Rollback plan: `prod`

#### payin-api

- **Promotion**: blue, the standby (green takes traffic), changes image from \
`registry.pay.internal/payin-api:9f8e7d6-v2.2.4` to `registry.pay.internal/payin-api:5e6f7a8-v2.4.0`; \
traffic stays where it is. A newer version: 2.2.4 -> 2.4.0.
- **Migration**: `payin-api-migrate-5e6f7a8` applies the database migrations of \
`registry.pay.internal/payin-api:5e6f7a8-v2.4.0` before the colour updates. Migrations are forward-only: rolling back \
does not undo them, and no image older than 2.4.0 may be deployed afterwards.
- Updated with it: `prod-alerting-payin-api-deployment` (DeploymentEvents), `prod-registry-retention-job` \
(CronJob), `prod-registry-retention-protect` (ConfigMap).

The image is not restored: blue keeps `registry.pay.internal/payin-api:5e6f7a8-v2.4.0`, or gets a fixed build \
(2.4.0 or later). The migrated schema stays backward compatible, so the other colour serves it as before.

Nothing to switch back: traffic stays on **green**.
"""

CANARY_PLAN = """\
### Rollback plan: `prod`

#### payin-api

- **Canary**: blue, the standby (`registry.pay.internal/payin-api:9f8e7d6-v2.2.4`), gets 5% of payin-api's gateway \
traffic, up from 0%.
- Updated with it: `prod-alerting-payin-api-deployment` (DeploymentEvents), `prod-alerting-payin-api-rules` \
(PrometheusRule), `prod-gateway-deployment` (Deployment).

To roll back, set the canary weight back to 0%:

```sh
pulumi stack select prod
pulumi config set --path 'services.payin-api.canary.weight' 0
pulumi up
```
"""


def captured(scenario: str) -> dict[str, Any]:
    return json.loads(fixture(scenario).read_text())


def plan_of(preview: dict[str, Any], stack: str = "prod") -> str:
    return render_markdown(rollback_plan(stack, parse_preview(json.dumps(preview), stack)))


def without_migration(preview: dict[str, Any]) -> dict[str, Any]:
    """The same preview as of a service without database migrations: no migration Job among the steps."""
    preview["steps"] = [s for s in preview["steps"] if not s["urn"].endswith("::prod-payin-api-migration")]
    return preview


def step(preview: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [step for step in preview["steps"] if step["urn"].endswith("::" + name)]
    return found


def never_migrated(preview: dict[str, Any]) -> dict[str, Any]:
    """The same preview as of a service without database migrations: no migration Job among the steps, and no
    migration record in the outputs the last update left."""
    without_migration(preview)
    del step(preview, "release-infra-prod")["oldState"]["outputs"]["migrations"]["payin-api"]
    return preview


def commands(plan: str) -> list[str]:
    """Each `pulumi up` the plan asks for, as its block of commands."""
    return [block.split("```")[0] for block in plan.split("```sh\n")[1:]]


@pytest.mark.parametrize("scenario, expected", [("flip", FLIP_PLAN), ("promotion", PROMOTION_PLAN),
                                                ("canary", CANARY_PLAN)])
def test_the_plan_of_a_captured_preview(scenario: str, expected: str) -> None:
    assert plan_of(captured(scenario)) == expected


def test_a_preview_with_no_changes_has_nothing_to_roll_back() -> None:
    summary = captured("no-change")["changeSummary"]  # every resource of the prod stack, none changed
    assert set(summary) == {"same"} and summary["same"] > 50, summary
    assert plan_of(captured("no-change")) == "### Rollback plan: `prod`\n\nNo changes to `prod`: nothing to roll back.\n"


def promoted_and_switched() -> dict[str, Any]:
    """The release in one change: blue gets the new build and takes traffic (a service that never migrated)."""
    preview = never_migrated(captured("flip"))
    preview["steps"].append(step(captured("promotion"), "prod-payin-api-blue"))
    return preview


def test_a_promotion_and_a_switch_to_it_roll_back_traffic_first_then_the_image_in_a_later_update() -> None:
    """In one update the engine would roll blue, which still takes traffic, onto the old image before the Services
    move traffic back: the switch back is an update of its own, the image comes after."""
    plan = plan_of(promoted_and_switched())
    assert ("traffic moves from **green** (`registry.pay.internal/payin-api:a1b2c3d-v2.3.0`) to **blue** "
            "(`registry.pay.internal/payin-api:5e6f7a8-v2.4.0`); green keeps running as the standby. "
            "A newer version: 2.3.0 -> 2.4.0.") in plan
    assert "- **Promotion**: blue, the colour that takes traffic, changes image from" in plan
    assert "To roll back, switch traffic back to **green**, in an update of its own:" in plan
    assert ("Then, once traffic is back, restore blue's image `registry.pay.internal/payin-api:9f8e7d6-v2.2.4` in a "
            "later update: ") in plan
    assert commands(plan) == [
        "pulumi stack select prod\n"
        "pulumi config set --path 'services.payin-api.active' green\n"
        "pulumi up\n",
        "pulumi stack select prod\n"
        "pulumi config set --path 'services.payin-api.blue.image' registry.pay.internal/payin-api:9f8e7d6-v2.2.4\n"
        "pulumi up\n"]


def test_the_colour_traffic_goes_back_to_gets_its_image_back_first_when_the_change_replaced_it() -> None:
    """A switch away from blue that also gave blue a new build (a dev push, or prod under an emergency record):
    switching back first would put traffic on a build that never served; blue is restored while still standby."""
    old, new = "registry.pay.internal/merchant-api:d0e1f2a-v3.0.9", "registry.pay.internal/merchant-api:0123abc-v3.3.0"
    change = ServiceChange("merchant-api", switch=Change("services.merchant-api.active", "blue", "green"),
                           images=[Change("services.merchant-api.blue.image", old, new)],
                           images_after={"blue": new, "green": "registry.pay.internal/merchant-api:e1f2a3b-v3.1.0"},
                           active_after="green")
    assert [[(item.key, item.old) for item in update] for update in change.rollback] == [
        [("services.merchant-api.blue.image", old)], [("services.merchant-api.active", "blue")]]
    section = "\n".join(_service_section("dev", change))
    assert "; blue becomes the standby, with a new image (below). A newer version: 3.0.9 -> 3.1.0." in section
    assert f"To roll back, first restore blue's image `{old}`, in an update of its own:" in section
    assert "Then switch traffic back to **blue**:" in section


def test_a_canary_step_with_a_new_image_rolls_back_the_weight_first_then_the_image() -> None:
    preview = never_migrated(captured("canary"))
    preview["steps"].append(step(captured("promotion"), "prod-payin-api-blue"))
    plan = plan_of(preview)
    assert "To roll back, set the canary weight back to 0%, in an update of its own:" in plan
    assert commands(plan) == [
        "pulumi stack select prod\npulumi config set --path 'services.payin-api.canary.weight' 0\npulumi up\n",
        "pulumi stack select prod\n"
        "pulumi config set --path 'services.payin-api.blue.image' registry.pay.internal/payin-api:9f8e7d6-v2.2.4\n"
        "pulumi up\n"]


def test_the_switch_back_of_a_promotion_and_switch_passes_the_release_policy_outside_the_train() -> None:
    """A rollback passes at any time; an image put back is a change, which outside the train would have taken the
    switch back down with it."""
    new, old = "registry.pay.internal/payin-api:5e6f7a8-v2.4.0", "registry.pay.internal/payin-api:9f8e7d6-v2.2.4"
    released = set_path(set_path(stack_config("prod"), "services.payin-api.blue.image", new),
                        "services.payin-api.active", "blue")
    after = stack_outputs(settings("prod", released), stack_outputs(settings("prod")).model_dump(mode="json"))

    def judge(config: dict[str, Any]) -> list[str]:
        upstream = upstream_outputs("prod", {"payin-api": UPSTREAM_RELEASES["services.payin-api.green.image"]})
        closed = datetime(2026, 11, 24, 14, 30, tzinfo=timezone.utc)  # Tuesday, after the train
        return evaluate(settings("prod", config), load_policy("prod", "prod", config, catalogue()), catalogue(),
                        after.model_dump(mode="json"), upstream["test"], closed)

    first, second = [[line.split()[4:] for line in block.splitlines() if line.startswith("pulumi config set")]
                     for block in commands(plan_of(promoted_and_switched()))]
    rolled_back = copy.deepcopy(released)
    for key, value in first:
        set_path(rolled_back, key.strip("'"), value)
    assert judge(rolled_back) == []
    assert second == [["'services.payin-api.blue.image'", old]]
    with pytest.raises(PolicyViolation, match="changes only in the release train"):  # both in one update
        judge(set_path(rolled_back, "services.payin-api.blue.image", old))


def test_a_promotion_of_the_active_colour_says_its_pods_roll() -> None:
    preview = captured("promotion")
    blue = step(preview, "prod-payin-api-blue")
    for state in ("oldState", "newState"):
        containers = blue[state]["inputs"]["spec"]["template"]["spec"]["containers"]
        containers[0]["image"] = containers[0]["image"].replace("payin-api:", "payout-api:")
        blue[state]["inputs"]["spec"]["selector"]["matchLabels"]["app"] = "payout-api"  # payout-api runs blue
    assert "- **Promotion**: blue, the colour that takes traffic, changes image" in plan_of(preview)
    assert "its pods roll onto the new image while serving." in plan_of(preview)


def test_replaced_and_deleted_resources_are_flagged_above_everything_else() -> None:
    preview = never_migrated(captured("promotion"))
    blue = step(preview, "prod-payin-api-blue")
    blue["op"], blue["replaceReasons"] = "replace", ["spec.selector"]
    gone = copy.deepcopy(step(captured("flip"), "prod-payin-api-preview"))
    gone["op"], gone["newState"] = "delete", None
    preview["steps"].append(gone)
    plan = plan_of(preview)
    assert plan.index("> [!WARNING]") < plan.index("#### payin-api")
    assert "> **2 resource(s) created, replaced or deleted.**" in plan
    assert "- **DELETED** `prod-payin-api-preview` (Service)\n" in plan
    assert "- **REPLACED** `prod-payin-api-blue` (Deployment), because of `spec.selector`\n" in plan
    assert "pulumi config set --path 'services.payin-api.blue.image' " in plan  # still read for the image


def test_a_deleted_deployment_and_its_disruption_budget_of_the_same_name_are_both_flagged() -> None:
    """Removing a service deletes each colour's Deployment and PodDisruptionBudget, named alike."""
    preview = without_migration(captured("promotion"))
    deployment = copy.deepcopy(step(preview, "prod-payin-api-blue"))
    deployment["op"], deployment["newState"] = "delete", None
    budget_type = "kubernetes:policy/v1:PodDisruptionBudget"
    budget = {"op": "delete", "urn": deployment["urn"].replace("kubernetes:apps/v1:Deployment", budget_type),
              "oldState": {"type": budget_type, "inputs": {"metadata": {"name": "payin-api-blue"}}}}
    preview["steps"] = [s for s in preview["steps"] if not s["urn"].endswith("::prod-payin-api-blue")]
    preview["steps"] += [deployment, budget]
    plan = plan_of(preview)
    assert "> **2 resource(s) created, replaced or deleted.**" in plan
    assert "- **DELETED** `prod-payin-api-blue` (Deployment)\n" in plan
    assert "- **DELETED** `prod-payin-api-blue` (PodDisruptionBudget)\n" in plan


def test_an_update_the_plan_cannot_restore_from_config_is_listed_with_its_fields() -> None:
    preview = captured("promotion")
    blue = step(preview, "prod-payin-api-blue")
    blue["newState"]["inputs"]["spec"]["replicas"] = 5
    rules = step(captured("flip"), "prod-alerting-payin-api-rules")
    preview["steps"].append(rules)  # named after payin-api: it moves with the promotion
    namespace = copy.deepcopy(rules)
    namespace["urn"] = namespace["urn"].replace("prod-alerting-payin-api-rules", "prod-namespace")
    preview["steps"].append(namespace)
    plan = plan_of(preview)
    assert "#### Other changes" in plan
    assert "- `prod-payin-api-blue` (Deployment): `spec.replicas`\n" in plan
    [line] = [line for line in plan.splitlines() if line.startswith("- `prod-namespace`")]
    assert line.startswith("- `prod-namespace` (PrometheusRule): `spec.groups[0].rules[22].annotations.description`, ")
    assert line.endswith(" and 6 more")  # 14 changed fields, the first 8 named
    assert "`prod-alerting-payin-api-rules` (PrometheusRule)" in plan.split("#### Other changes")[0]


def test_what_a_new_image_does_not_explain_on_a_colours_deployment_is_listed_not_carried() -> None:
    """A promotion that also raises a CPU limit on both colours: the image's own fields (image, version label and
    environment) go with the promotion, the limit on either colour is a change of its own."""
    preview = without_migration(captured("promotion"))
    blue = step(preview, "prod-payin-api-blue")
    green = copy.deepcopy(blue)
    green["urn"] = green["urn"].replace("prod-payin-api-blue", "prod-payin-api-green")
    for state in ("oldState", "newState"):
        green[state]["inputs"] = copy.deepcopy(blue["oldState"]["inputs"])  # same image before and after
    for state in (blue, green):
        state["newState"]["inputs"]["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = "2"
    preview["steps"].append(green)
    plan = plan_of(preview)
    carried, other = plan.split("#### Other changes")
    assert "- **Promotion**: blue, the standby" in carried
    assert "prod-payin-api-blue" not in carried and "prod-payin-api-green" not in carried
    assert "- `prod-payin-api-blue` (Deployment): `spec.template.spec.containers[0].resources.limits.cpu`\n" in other
    assert "- `prod-payin-api-green` (Deployment): `spec.template.spec.containers[0].resources.limits.cpu`\n" in other


def test_a_deployment_whose_selector_adds_to_app_and_color_is_not_a_colour() -> None:
    """A colour's Deployment is known by its fixed selector {app, color}: a worker that also selects on its tier is
    no promotion of payin-api's blue, and its new image is a change of its own, with no command restoring blue."""
    preview = captured("promotion")
    worker = copy.deepcopy(step(preview, "prod-payin-api-blue"))
    worker["urn"] = worker["urn"].replace("prod-payin-api-blue", "prod-payin-api-blue-worker")
    for state in ("oldState", "newState"):
        worker[state]["inputs"]["spec"]["selector"]["matchLabels"]["release-infra/tier"] = "worker"
    preview["steps"] = [step(preview, "release-infra-prod"), worker]
    plan = plan_of(preview)
    assert "#### payin-api" not in plan and "Promotion" not in plan and "pulumi config set" not in plan
    assert other_changes(plan) == [
        "- `prod-payin-api-blue-worker` (Deployment): `spec.template.metadata.labels.app.kubernetes.io/version`, "
        "`spec.template.spec.containers[0].env[2].value`, `spec.template.spec.containers[0].env[6].value`, "
        "`spec.template.spec.containers[0].image`"]


def test_without_stack_outputs_the_plan_says_only_what_the_steps_show() -> None:
    """A stack never updated has no outputs: which colour is active is unknown, the rollback is not."""
    preview = without_migration(captured("promotion"))
    preview["steps"] = [s for s in preview["steps"] if not s["urn"].endswith("::release-infra-prod")]
    plan = plan_of(preview)
    assert ("- **Promotion**: blue changes image from `registry.pay.internal/payin-api:9f8e7d6-v2.2.4` to "
            "`registry.pay.internal/payin-api:5e6f7a8-v2.4.0`. A newer version: 2.2.4 -> 2.4.0.") in plan
    assert "pulumi config set --path 'services.payin-api.blue.image' registry.pay.internal/" in plan


def test_a_promotion_moves_the_retention_job_to_a_new_config_map_without_a_warning() -> None:
    """The engine replaces the job's ConfigMap on every promotion; under a name made of its content that is a new
    ConfigMap created before the old one goes, which the job then mounts: nothing for a reviewer to check."""
    preview = captured("promotion")
    protect, job = step(preview, "prod-registry-retention-protect"), step(preview, "prod-registry-retention-job")
    assert protect["op"] == "replace" and "metadata.name" in protect["replaceReasons"]
    old, new = (protect[state]["inputs"]["metadata"]["name"] for state in ("oldState", "newState"))
    assert job["newState"]["inputs"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["volumes"] == [
        {"name": "protect", "configMap": {"name": new}}] and old != new
    plan = plan_of(captured("promotion"))
    assert "[!WARNING]" not in plan and "REPLACED" not in plan and "#### Other changes" not in plan


def test_another_environments_promotion_lists_the_retention_job_under_other_changes() -> None:
    """No service of prod changed: reverting is not prod's business, but the new ConfigMap is still no surprise."""
    preview = captured("promotion")
    preview["steps"] = [s for s in preview["steps"] if s["urn"].rsplit("::", 1)[-1] in
                        ("release-infra-prod", "prod-registry-retention-protect", "prod-registry-retention-job")]
    assert plan_of(preview) == """\
### Rollback plan: `prod`

#### Other changes

No config value of a service restores these: roll them back by reverting this change and running `pulumi up` again.

- `prod-registry-retention-job` (CronJob): `spec.jobTemplate.spec.template.spec.volumes[0].configMap.name`
- `prod-registry-retention-protect` (ConfigMap): `data.prod.json`, `metadata.name`
"""


def test_a_migration_is_not_flagged_and_never_rolled_back_to_an_older_image() -> None:
    """The migration Job's replacement is the expected first stage of a promotion, and it cannot be undone."""
    plan = plan_of(captured("promotion"))
    assert "REPLACED** `prod-payin-api-migration`" not in plan and "migrate" not in plan.split("#### payin-api")[0]
    assert "services.payin-api.blue.image" not in plan


def test_an_image_older_than_the_last_migration_is_not_restored_and_the_plan_says_why() -> None:
    """A colour that gets an image whose migrations already ran has no Job step; the outputs still say how far the
    database went (payin-api: 2.3.0), and the program refuses to put 2.2.4 back on blue."""
    preview = without_migration(captured("promotion"))
    outputs = step(preview, "release-infra-prod")["oldState"]["outputs"]
    assert outputs["migrations"]["payin-api"]["version"] == "2.3.0"
    plan = plan_of(preview)
    assert "services.payin-api.blue.image" not in plan
    assert ("The image `registry.pay.internal/payin-api:9f8e7d6-v2.2.4` is not put back on blue: prod last migrated "
            "payin-api to 2.3.0 and migrations only move forward, so the program refuses an older image; blue keeps "
            "`registry.pay.internal/payin-api:5e6f7a8-v2.4.0`, or gets a fixed build (2.3.0 or later).\n") in plan
    assert "Nothing to switch back: traffic stays on **green**." in plan
    applied = set_path(copy.deepcopy(outputs), "services.payin-api.colours.blue.image",
                       "registry.pay.internal/payin-api:5e6f7a8-v2.4.0")  # what the update leaves; no Job, no record
    restored = set_path(stack_config("prod"), "services.payin-api.blue.image",
                        "registry.pay.internal/payin-api:9f8e7d6-v2.2.4")
    with pytest.raises(ConfigError, match="migrations only move forward: prod last migrated payin-api to 2.3.0"):
        migration_plan(settings("prod", restored), catalogue(), previous_releases(applied))
    outputs["migrations"]["payin-api"]["version"] = "2.2.4"  # the database at blue's old version: it may go back
    assert ("pulumi config set --path 'services.payin-api.blue.image' registry.pay.internal/payin-api:9f8e7d6-v2.2.4"
            in plan_of(preview))


def test_an_image_is_not_restored_after_this_updates_migration_even_at_the_last_migrated_version() -> None:
    """The last migration went to 2.2.4, blue's old image: by that record alone it could go back. This update's
    Job migrates to 2.4.0, though, so 2.2.4 is behind the database once it has run: the plan restores no image."""
    preview = captured("promotion")
    step(preview, "release-infra-prod")["oldState"]["outputs"]["migrations"]["payin-api"]["version"] = "2.2.4"
    plan = plan_of(preview)
    assert "services.payin-api.blue.image" not in plan
    assert plan == PROMOTION_PLAN  # "The image is not restored: blue keeps ... 2.4.0 ...", nothing to switch back


def test_a_switch_to_a_migrated_colour_rolls_back_traffic_only() -> None:
    preview = captured("flip")
    promotion = captured("promotion")
    preview["steps"] += [step(promotion, "prod-payin-api-blue"), step(promotion, "prod-payin-api-migration")]
    commands = plan_of(preview).split("```sh\n")[1].split("```")[0]
    assert commands == "pulumi stack select prod\npulumi config set --path 'services.payin-api.active' green\npulumi up\n"


@pytest.mark.parametrize("text, message", [
    ("not json", "the preview is not JSON"),
    ("[1, 2]", "the preview is not a JSON object; pass the output of `pulumi preview --json`"),
    ('{"steps": [{"op": "update"}]}', "the preview has a bad step at steps.0.urn: Field required"),
    ('{"diagnostics": "none"}', "the preview has a bad diagnostic at diagnostics: Input should be a valid list"),
])
def test_input_that_is_not_a_preview_is_refused_in_one_line(text: str, message: str) -> None:
    with pytest.raises(PreviewError) as error:
        parse_preview(text, "prod")
    assert str(error.value).startswith(message)


def test_a_preview_of_another_stack_is_refused() -> None:
    with pytest.raises(PreviewError, match=r"^the preview is of stack prod, not 'test'$"):
        parse_preview(fixture("flip").read_text(), "test")


def test_the_command_reads_a_file_or_stdin_and_refuses_bad_input_without_a_traceback(tmp_path: Path) -> None:
    command = [str(ROOT / ".venv" / "bin" / "release-infra-rollback-plan"), "--stack", "prod"]
    from_file = subprocess.run([*command, str(fixture("flip"))], capture_output=True, text=True, check=True)
    from_stdin = subprocess.run(command, input=fixture("flip").read_text(), capture_output=True, text=True,
                                check=True)
    assert from_file.stdout == from_stdin.stdout == FLIP_PLAN
    bad = subprocess.run(command, input="{", capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.startswith("release-infra-rollback-plan: the preview is not JSON")
    assert len(bad.stderr.splitlines()) == 1


# The engine's errors in the failed preview (tests/support/previews.py: the canary step on a Friday).
REFUSAL = ('error: release policy refuses the update of stack "prod": release-infra:services.payin-api.canary.weight '
           "= 5: it is Friday 2026-11-27 15:00 UTC: no deploys on Friday (release_policy.no_deploy_weekdays); prod "
           "changes only in the release train, Tuesday 10:00-14:00 UTC; only a rollback or a current emergency change "
           "record (release-infra:emergency_change) may deploy now")
ENGINE_EXIT = "error: an unhandled error occurred: Program exited with non-zero exit code: 1"


def test_a_failed_preview_is_no_plan_but_the_engines_errors() -> None:
    """`pulumi preview --json` exits 1 yet prints JSON whose steps stop where the program did: read as a plan, a
    refused change would be "No changes"."""
    preview = captured(FAILED)
    assert preview["changeSummary"] == {"same": 1}
    with pytest.raises(FailedPreview) as failed:
        parse_preview(json.dumps(preview), "prod")
    assert str(failed.value) == "the preview of stack 'prod' failed, so there is no rollback plan; the engine's errors:"
    assert failed.value.errors == [REFUSAL, ENGINE_EXIT]  # its warnings (the pinned clock) are left out


def test_the_command_fails_on_a_failed_preview_with_the_engines_errors_and_no_plan() -> None:
    command = [str(ROOT / ".venv" / "bin" / "release-infra-rollback-plan"), "--stack", "prod", str(fixture(FAILED))]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == ("release-infra-rollback-plan: the preview of stack 'prod' failed, so there is no "
                             f"rollback plan; the engine's errors:\n  {REFUSAL}\n  {ENGINE_EXIT}\n")


def test_a_program_that_raises_shows_the_whole_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The engine's one diagnostic for an unhandled exception, as it prints it, is several lines: all are shown."""
    preview = captured(FAILED)
    preview["diagnostics"] = [{"severity": "error", "message": (
        "error: Program failed with an unhandled exception:\nTraceback (most recent call last):\n"
        '  File "/project/infra/__main__.py", line 5, in <module>\n    main()\nKeyError: \'payin-api\'\n\n')}]
    (tmp_path / "preview.json").write_text(json.dumps(preview))
    assert main(["--stack", "prod", str(tmp_path / "preview.json")]) == 1
    assert capsys.readouterr().err.splitlines()[1:] == [
        "  error: Program failed with an unhandled exception:", "  Traceback (most recent call last):",
        '    File "/project/infra/__main__.py", line 5, in <module>', "      main()", "  KeyError: 'payin-api'"]


def test_a_resource_moves_with_the_service_of_the_longest_name_it_holds() -> None:
    """payin-api-webhooks switches next to an unchanged payin-api: `prod-alerting-payin-api-webhooks-rules` names
    both, and it is the webhooks' alert rules that move with the switch, not a change of payin-api's."""
    preview = json.loads(json.dumps(captured("flip")).replace("payin-api", "payin-api-webhooks"))
    services = step(preview, "release-infra-prod")["oldState"]["outputs"]["services"]
    services["payin-api"] = step(captured("flip"), "release-infra-prod")["oldState"]["outputs"]["services"]["payin-api"]
    assert plan_of(preview) == FLIP_PLAN.replace("payin-api", "payin-api-webhooks")


def test_the_plan_does_not_depend_on_the_order_of_the_steps() -> None:
    preview = captured("flip")
    preview["steps"].reverse()
    assert plan_of(preview) == FLIP_PLAN


def test_preview_ignores_fields_it_does_not_read() -> None:
    assert Preview.model_validate({"steps": [], "changeSummary": {}, "config": {"a": "[secret]"}}).steps == []


@pytest.mark.parametrize("edit", [
    lambda inputs: inputs["metadata"].update(name="gateway-config"),  # a fixed name: deleted first
    lambda inputs: inputs.update(immutable=False),  # could change in place under the pods that mount it
    lambda inputs: inputs["metadata"].update(name="gateway-preview-config-2d8e4ba97f"),  # another ConfigMap
])
def test_a_config_map_replaced_other_than_by_its_content_is_flagged(edit) -> None:
    preview = captured("canary")
    edit(step(preview, "prod-gateway-config")["newState"]["inputs"])
    assert "- **REPLACED** `prod-gateway-config` (ConfigMap), because of " in plan_of(preview)


GATEWAY_PODS_ROLL = ("- `prod-gateway-deployment` (Deployment): `spec.template.metadata.annotations.release-infra/"
                     "config-checksum`, `spec.template.spec.volumes[0].configMap.name`")


def other_changes(plan: str) -> list[str]:
    """The lines listed under Other changes, after its heading's explanation."""
    return plan.split("#### Other changes\n\n")[1].splitlines()[2:]


def canary_without_weight() -> tuple[dict[str, Any], dict[str, Any]]:
    """The captured canary preview with its weight unmoved (the gateway's new file as its old one, so no events or
    alert rules update either), and its gateway ConfigMap step to edit."""
    preview = captured("canary")
    preview["steps"] = [s for s in preview["steps"] if not s["urn"].endswith(
        ("::prod-alerting-payin-api-deployment", "::prod-alerting-payin-api-rules"))]
    config = step(preview, "prod-gateway-config")
    config["newState"]["inputs"]["data"] = copy.deepcopy(config["oldState"]["inputs"]["data"])
    return preview, config


def test_new_gateway_config_that_moves_no_weight_is_listed_with_its_pods_not_flagged() -> None:
    """A new gateway setting is no service's change: reverting it is the rollback, the new ConfigMap no surprise."""
    preview, _ = canary_without_weight()
    plan = plan_of(preview)
    assert "[!WARNING]" not in plan and "#### payin-api" not in plan
    assert other_changes(plan) == ["- `prod-gateway-config` (ConfigMap): `metadata.name`", GATEWAY_PODS_ROLL]


def test_pods_that_mount_a_config_map_no_step_renamed_are_another_change() -> None:
    preview = captured("canary")
    gateway = step(preview, "prod-gateway-deployment")["newState"]["inputs"]
    gateway["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"] = "gateway-config-0123456789"
    plan = plan_of(preview)
    assert ("- Updated with it: `prod-alerting-payin-api-deployment` (DeploymentEvents), "
            "`prod-alerting-payin-api-rules` (PrometheusRule).\n") in plan  # not the pods
    assert "- `prod-gateway-deployment` (Deployment): `spec.template.metadata.annotations" in plan


def test_the_engines_own_keys_are_no_change_of_a_resource() -> None:
    """`__provider` is the engine's pickle of a dynamic resource's provider, new with any new provider attribute or
    Python: a new Alertmanager URL in the same update is the one change listed for the events resource."""
    preview = captured("flip")
    preview["steps"] = [s for s in preview["steps"]
                        if s["urn"].endswith(("::release-infra-prod", "::prod-alerting-payin-api-deployment"))]
    events = step(preview, "prod-alerting-payin-api-deployment")
    old, new = events["oldState"]["inputs"], events["newState"]["inputs"]
    new["active"] = old["active"]  # no switch: only the URL and the pickle change
    old["alertmanager_url"] = "http://alertmanager.monitoring:9093"
    new["alertmanager_url"] = "http://alertmanager.observability:9093"
    new["__provider"] = old["__provider"][::-1]
    plan = plan_of(preview)
    assert "#### payin-api" not in plan
    assert other_changes(plan) == ["- `prod-alerting-payin-api-deployment` (DeploymentEvents): `alertmanager_url`"]


def krakend(config_map: dict[str, Any], state: str, edit) -> None:
    """Edit the KrakenD document in one state of the gateway's ConfigMap step, rendered as the program renders it."""
    data = config_map[state]["inputs"]["data"]
    document = json.loads(data["krakend.json"])
    edit(document)
    data["krakend.json"] = render(document)


def payin_hosts(hosts: list[str]):
    def edit(document: dict[str, Any]) -> None:
        for endpoint in document["endpoints"]:
            for backend in endpoint["backend"]:
                if any("//payin-api" in host for host in backend["host"]):
                    backend["host"] = hosts
    return edit


def test_a_gateway_setting_changed_with_a_canary_step_is_another_change() -> None:
    """The canary explains only its hosts: a new timeout in the same file is no service's, and its pods roll for it."""
    preview = captured("canary")
    krakend(step(preview, "prod-gateway-config"), "newState", lambda document: document.update(timeout="30000ms"))
    plan = plan_of(preview)
    assert "- **Canary**: blue, the standby" in plan
    assert ("- Updated with it: `prod-alerting-payin-api-deployment` (DeploymentEvents), "
            "`prod-alerting-payin-api-rules` (PrometheusRule).\n") in plan  # not the pods
    assert "pulumi config set --path 'services.payin-api.canary.weight' 0\n" in plan
    assert other_changes(plan) == ["- `prod-gateway-config` (ConfigMap): `data.krakend.json.timeout`",
                                   GATEWAY_PODS_ROLL]


def test_a_gateway_setting_changed_with_a_promotion_is_another_change() -> None:
    preview = captured("promotion")
    canary = captured("canary")
    config, gateway = step(canary, "prod-gateway-config"), step(canary, "prod-gateway-deployment")
    config["newState"]["inputs"]["data"] = copy.deepcopy(config["oldState"]["inputs"]["data"])
    krakend(config, "newState", lambda document: document.update(timeout="30000ms"))
    preview["steps"] += [config, gateway]
    plan = plan_of(preview)
    assert ("- Updated with it: `prod-alerting-payin-api-deployment` (DeploymentEvents), "
            "`prod-registry-retention-job` (CronJob), `prod-registry-retention-protect` (ConfigMap).\n") in plan
    assert "- `prod-gateway-config` (ConfigMap): `data.krakend.json.timeout`\n" in plan.split("#### Other changes")[1]
    assert "- `prod-gateway-deployment` (Deployment): " in plan.split("#### Other changes")[1]


def test_a_new_backend_port_is_not_hidden_by_a_canary_step() -> None:
    """Only the weight (how often each colour's host repeats) is the canary's: any other change to a host is not."""
    preview = captured("canary")
    config = step(preview, "prod-gateway-config")
    krakend(config, "newState", lambda document: [
        backend.update(host=[host.replace(":80", ":8080") for host in backend["host"]])
        for endpoint in document["endpoints"] for backend in endpoint["backend"] if "payin-api" in str(backend)])
    other = plan_of(preview).split("#### Other changes")[1]
    assert "- `prod-gateway-config` (ConfigMap): `data.krakend.json.endpoints[" in other


def canary_promotion() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """payin-api's canary on blue reached 100% in the last update; this one switches to blue and sets the weight to 0.

    Returns the preview, the config it applies and the stack's outputs after it: the previous update's outputs are
    the old outputs of the preview's stack resource, the flip's switch and the canary's gateway steps its steps.
    """
    new = UPSTREAM_RELEASES["services.payin-api.green.image"]  # the build Test runs
    at_100 = set_path(set_path(stack_config("prod"), "services.payin-api.blue.image", new),
                      "services.payin-api.canary", {"weight": 100})
    before = stack_outputs(settings("prod", at_100), stack_outputs(settings("prod")).model_dump(mode="json"))
    before = before.model_dump(mode="json")
    promoted = set_path(set_path(copy.deepcopy(at_100), "services.payin-api.active", "blue"),
                        "services.payin-api.canary", {"weight": 0})
    after = stack_outputs(settings("prod", promoted), before).model_dump(mode="json")
    preview, canary = captured("flip"), captured("canary")
    step(preview, "release-infra-prod")["oldState"]["outputs"]["services"] = before["services"]
    config = step(canary, "prod-gateway-config")
    config["newState"]["inputs"]["data"] = copy.deepcopy(config["oldState"]["inputs"]["data"])
    krakend(config, "oldState", payin_hosts(["http://payin-api-preview.payments-prod.svc.cluster.local:80"]))
    preview["steps"] += [config, step(canary, "prod-gateway-deployment")]
    return preview, promoted, after


def assert_traffic_goes_back_to_green_whole(plan: str) -> None:
    """A rollback after a switch that ended a canary: green takes all traffic back, with no weight on blue."""
    assert "To roll back, switch traffic back to **green** and keep the canary weight at 0%:" in plan
    assert plan.split("```sh\n")[1].split("```")[0] == (
        "pulumi stack select prod\n"
        "pulumi config set --path 'services.payin-api.active' green\n"
        "pulumi config set --path 'services.payin-api.canary.weight' 0\n"
        "pulumi up\n")


def test_a_finished_canary_rolls_back_to_the_old_colour_with_no_weight() -> None:
    """All gateway traffic was on blue (the standby at 100%) and stays there as blue becomes active: the rollback
    puts it all back on green, which still runs what it ran, rather than the weight back on blue."""
    preview, _, _ = canary_promotion()
    plan = plan_of(preview)
    assert ("- **Canary finished**: blue, which had 100% of payin-api's gateway traffic as the standby, now takes it "
            "as the active colour; green, the new standby (`registry.pay.internal/payin-api:a1b2c3d-v2.3.0`), "
            "gets 0%.\n") in plan
    assert "green, the standby" not in plan and "down from 100%" not in plan
    assert ("Updated with it: `prod-alerting-payin-api-deployment` (DeploymentEvents), "
            "`prod-alerting-payin-api-rules` (PrometheusRule), `prod-gateway-deployment` (Deployment), "
            "`prod-payin-api-preview` (Service).\n") in plan
    assert_traffic_goes_back_to_green_whole(plan)


def test_a_switch_that_cuts_a_canary_short_rolls_back_with_no_weight() -> None:
    """Blue had 25% as the standby, not all the gateway traffic: the switch gives it all, and green, the new standby,
    gets nothing. The plan does not read that as a canary that reached 100%, and its rollback does not put 25% back
    in the switch's update, which the release policy refuses; traffic goes back to green whole."""
    preview, _, _ = canary_promotion()
    krakend(step(preview, "prod-gateway-config"), "oldState", payin_hosts(
        ["http://payin-api.payments-prod.svc.cluster.local:80"] * 3
        + ["http://payin-api-preview.payments-prod.svc.cluster.local:80"]))
    plan = plan_of(preview)
    assert ("- **Canary**: green, the standby (`registry.pay.internal/payin-api:a1b2c3d-v2.3.0`), gets 0% of "
            "payin-api's gateway traffic; before the switch blue, then the standby, had 25%.\n") in plan
    assert "Canary finished" not in plan and "had 100%" not in plan
    assert_traffic_goes_back_to_green_whole(plan)


def test_the_release_policy_accepts_the_rollback_of_a_finished_canary_on_any_day() -> None:
    """payin-api is high-risk: weight 100 on its standby again would be refused (its canary restarts at 5%)."""
    preview, promoted, after = canary_promotion()
    commands = [line.split()[4:] for line in plan_of(preview).splitlines()
                if line.startswith("pulumi config set --path ")]

    def judge(config: dict[str, Any]) -> list[str]:
        policy = load_policy("prod", "prod", config, catalogue())
        upstream = upstream_outputs("prod", {"payin-api": UPSTREAM_RELEASES["services.payin-api.green.image"]})
        friday = datetime(2026, 11, 27, 15, 0, tzinfo=timezone.utc)
        return evaluate(settings("prod", config), policy, catalogue(), after, upstream["test"], friday)

    rolled_back = copy.deepcopy(promoted)
    for key, value in commands:
        set_path(rolled_back, key.strip("'"), int(value) if value.isdigit() else value)
    assert commands and judge(rolled_back) == []
    with pytest.raises(PolicyViolation, match="from 0% the next step is 5%"):  # what the plan said before
        judge(set_path(rolled_back, "services.payin-api.canary", {"weight": 100}))


def test_the_preview_gateways_file_carries_no_canary_weight() -> None:
    """Its hosts are all preview Services: a service that appears in it is not a canary at 100%."""
    preview, config = canary_without_weight()
    for state in ("oldState", "newState"):
        config[state]["inputs"]["metadata"]["name"] = config[state]["inputs"]["metadata"]["name"].replace(
            "gateway-config-", "gateway-preview-config-")
    krakend(config, "oldState", lambda document: document.update(
        endpoints=[e for e in document["endpoints"] if "payin-api" not in str(e["backend"])]))
    krakend(config, "newState", payin_hosts(["http://payin-api-preview.payments-prod.svc.cluster.local:80"]))
    plan = plan_of(preview)
    assert "Canary" not in plan and "canary.weight" not in plan
    assert "- `prod-gateway-config` (ConfigMap): `data.krakend.json.endpoints" in plan.split("#### Other changes")[1]


def test_a_removed_service_gets_the_commands_that_add_it_back_as_it_ran() -> None:
    preview = without_migration(captured("promotion"))
    blue = copy.deepcopy(step(preview, "prod-payin-api-blue"))
    blue["op"], blue["newState"] = "delete", None
    green = copy.deepcopy(blue)
    green["urn"] = green["urn"].replace("prod-payin-api-blue", "prod-payin-api-green")
    green["oldState"]["inputs"]["spec"]["selector"]["matchLabels"]["color"] = "green"
    green["oldState"]["inputs"]["spec"]["template"]["spec"]["containers"][0]["image"] = (
        "registry.pay.internal/payin-api:a1b2c3d-v2.3.0")
    preview["steps"] = [s for s in preview["steps"] if not s["urn"].endswith("::prod-payin-api-blue")]
    plan = plan_of({**preview, "steps": [*preview["steps"], blue, green]})
    assert ("#### payin-api (removed)\n\n- **Removed**: both colours' Deployments go, with the Services that route "
            "to them: blue ran `registry.pay.internal/payin-api:9f8e7d6-v2.2.4`; green ran "
            "`registry.pay.internal/payin-api:a1b2c3d-v2.3.0` and took traffic.\n") in plan
    assert plan.split("```sh\n")[1].split("```")[0] == (
        "pulumi stack select prod\n"
        "pulumi config set --path 'services.payin-api.active' green\n"
        "pulumi config set --path 'services.payin-api.blue.image' registry.pay.internal/payin-api:9f8e7d6-v2.2.4\n"
        "pulumi config set --path 'services.payin-api.green.image' registry.pay.internal/payin-api:a1b2c3d-v2.3.0\n"
        "pulumi up\n")
    # One colour's Deployment deleted is no removal of the service.
    assert "(removed)" not in plan_of({**preview, "steps": [*preview["steps"], blue]})
