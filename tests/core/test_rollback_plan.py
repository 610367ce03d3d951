"""The rollback plan of real previews: `pulumi preview --json` of the prod stack captured from the engine
(tests/support/previews.py), and combinations of their real steps for the cases no single capture shows."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from core.rollback_plan import PreviewError, Preview, parse_preview, render_markdown, rollback_plan
from tests.support.previews import fixture
from tests.support.stacks import ROOT

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
- Updated with it: `prod-gateway-deployment` (Deployment).

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


@pytest.mark.parametrize("scenario, expected", [("flip", FLIP_PLAN), ("promotion", PROMOTION_PLAN),
                                                ("canary", CANARY_PLAN)])
def test_the_plan_of_a_captured_preview(scenario: str, expected: str) -> None:
    assert plan_of(captured(scenario)) == expected


def test_a_preview_with_no_changes_has_nothing_to_roll_back() -> None:
    assert captured("no-change")["changeSummary"] == {"same": 62}
    assert plan_of(captured("no-change")) == "### Rollback plan: `prod`\n\nNo changes to `prod`: nothing to roll back.\n"


def test_a_promotion_and_a_switch_to_it_roll_back_traffic_first_then_the_image() -> None:
    """The release in one change: blue gets the new build and takes traffic."""
    preview = captured("flip")
    preview["steps"].append(step(captured("promotion"), "prod-payin-api-blue"))
    plan = plan_of(preview)
    assert ("traffic moves from **green** (`registry.pay.internal/payin-api:a1b2c3d-v2.3.0`) to **blue** "
            "(`registry.pay.internal/payin-api:5e6f7a8-v2.4.0`); green keeps running as the standby. "
            "A newer version: 2.3.0 -> 2.4.0.") in plan
    assert "- **Promotion**: blue, the colour that takes traffic, changes image from" in plan
    assert ("To roll back, switch traffic back to **green** and restore blue's image "
            "`registry.pay.internal/payin-api:9f8e7d6-v2.2.4`:") in plan
    assert plan.split("```sh\n")[1].split("```")[0] == (
        "pulumi stack select prod\n"
        "pulumi config set --path 'services.payin-api.active' green\n"
        "pulumi config set --path 'services.payin-api.blue.image' registry.pay.internal/payin-api:9f8e7d6-v2.2.4\n"
        "pulumi up\n")


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
    preview = without_migration(captured("promotion"))
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
    assert line.endswith(" and 9 more")  # 17 changed fields, the first 8 named
    assert "`prod-alerting-payin-api-rules` (PrometheusRule)" in plan.split("#### Other changes")[0]


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


def test_new_gateway_config_that_moves_no_weight_is_listed_with_its_pods_not_flagged() -> None:
    """A new gateway setting is no service's change: reverting it is the rollback, the new ConfigMap no surprise."""
    preview = captured("canary")
    config = step(preview, "prod-gateway-config")
    config["newState"]["inputs"]["data"] = config["oldState"]["inputs"]["data"]
    plan = plan_of(preview)
    assert "[!WARNING]" not in plan and "#### payin-api" not in plan
    assert plan.split("#### Other changes\n\n")[1].splitlines()[2:] == [
        "- `prod-gateway-config` (ConfigMap): `metadata.name`",
        "- `prod-gateway-deployment` (Deployment): `spec.template.metadata.annotations.release-infra/config-checksum`, "
        "`spec.template.spec.volumes[0].configMap.name`"]


def test_pods_that_mount_a_config_map_no_step_renamed_are_another_change() -> None:
    preview = captured("canary")
    gateway = step(preview, "prod-gateway-deployment")["newState"]["inputs"]
    gateway["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"] = "gateway-config-0123456789"
    plan = plan_of(preview)
    assert "Updated with it" not in plan
    assert "- `prod-gateway-deployment` (Deployment): `spec.template.metadata.annotations" in plan
