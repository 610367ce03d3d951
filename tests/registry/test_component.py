"""RegistryRetention under mocks, and its settings: one optional stack key plus one secret."""

from __future__ import annotations

import copy
from collections import Counter

import pulumi
import pytest

from components.registry_retention import RegistryRetention
from core.errors import ConfigError
from core.content_address import checksum
from core.outputs import stack_outputs
from core.registry.job import protected_view
from core.registry.retention import RetentionError, protected_from_outputs
from core.registry.settings import load_retention
from tests.support.mock_engine import run_program
from tests.support.stacks import STACKS, settings

SECRET_SIG = "4dabf18193072939515e22adb298388d"  # how the mock engine marks a secret value


def register(raw: dict | None = None, outputs: dict | None = None):
    retention = load_retention("prod", raw or {"apply": True}, {"retention_registry_password": "pw"},
                               "registry.pay.internal", live=True)
    outputs = outputs or {stack: stack_outputs(settings(stack)).model_dump(mode="json") for stack in STACKS}

    def program() -> RegistryRetention:
        return RegistryRetention("prod-retention", retention, pulumi.Output.secret("hunter2-password"), outputs,
                                 {"app.kubernetes.io/part-of": "payments"}, namespace="payments-prod",
                                 services=["payout-api", "payin-api"])

    return run_program(program, stack="prod", config={})


def test_registers_an_account_a_secret_the_protected_outputs_and_the_job_under_the_component():
    run = register()
    assert Counter(r.kind for r in run.registrations) == {
        "RegistryRetention": 1, "ServiceAccount": 1, "Secret": 1, "ConfigMap": 1, "CronJob": 1}
    component = run.named("prod-retention")
    assert component.type == "release-infra:registry_retention:RegistryRetention"
    assert {r.name for r in run.registrations if r.parent == component.urn} == {
        "prod-retention-account", "prod-retention-credentials", "prod-retention-protect", "prod-retention-job"}
    assert not run.of_kind("Role") and not run.of_kind("RoleBinding")


def test_the_job_is_daily_single_bounded_and_restricted():
    spec = register().named("prod-retention-job").inputs["spec"]
    assert spec["schedule"] == "30 3 * * *" and spec["concurrencyPolicy"] == "Forbid"
    assert spec["successfulJobsHistoryLimit"] == 3 and spec["failedJobsHistoryLimit"] == 5
    job = spec["jobTemplate"]["spec"]
    assert job["activeDeadlineSeconds"] == 3600
    pod = job["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False and pod["serviceAccountName"] == "registry-retention"
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    [container] = pod["containers"]
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}
    assert container["args"][-1] == "--apply"
    assert [a for a in container["args"] if a.endswith(".json")] == [
        f"/etc/release-infra-retention/protect/{stack}.json" for stack in STACKS]
    # The services' repositories and its own: none of the registry's mirrors of other images.
    chosen = [(a, b) for a, b in zip(container["args"], container["args"][1:]) if a in ("--repository", "--service")]
    assert chosen == [("--repository", "release-infra-retention"), ("--service", "payin-api"),
                      ("--service", "payout-api")]
    assert container["env"][1]["valueFrom"] == {"secretKeyRef": {"name": "prod-retention-credentials",
                                                                 "key": "password"}}


def test_the_password_stays_a_secret_and_the_account_mounts_no_token():
    run = register()
    string_data = run.named("prod-retention-credentials").inputs["stringData"]
    assert string_data[SECRET_SIG] and string_data["value"] == {"password": "hunter2-password"}
    assert run.named("prod-retention-account").inputs["automountServiceAccountToken"] is False
    assert set(run.named("prod-retention-protect").inputs["data"]) == {f"{stack}.json" for stack in STACKS}


def every_stacks_outputs() -> dict:
    return {stack: stack_outputs(settings(stack)).model_dump(mode="json") for stack in STACKS}


def protect_name(outputs: dict) -> str:
    return register(outputs=outputs).named("prod-retention-protect").inputs["metadata"]["name"]


def test_the_outputs_are_an_immutable_config_map_named_after_them_that_the_job_mounts():
    """A change is a new ConfigMap created before the old one goes: the job never has nothing to mount."""
    run = register()
    protect = run.named("prod-retention-protect").inputs
    assert protect["immutable"] is True
    assert protect["metadata"]["name"] == f"prod-retention-protect-{checksum(protect['data'])[:10]}"
    pod = run.named("prod-retention-job").inputs["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["volumes"] == [{"name": "protect", "configMap": {"name": protect["metadata"]["name"]}}]


def test_the_config_map_gets_a_new_name_when_a_stack_runs_a_new_image_and_only_then():
    base = every_stacks_outputs()
    flipped = copy.deepcopy(base)
    for service in flipped["dev"]["services"].values():  # what retention does not read: not a new ConfigMap
        service["active_colour"], service["standby_colour"] = service["standby_colour"], service["active_colour"]
    promoted = copy.deepcopy(base)
    promoted["dev"]["services"]["payin-api"]["colours"]["green"]["image"] = \
        "registry.pay.internal/payin-api:5e6f7a8-v2.5.0"
    assert protect_name(flipped) == protect_name(base) == protect_name(every_stacks_outputs())
    assert protect_name(promoted) != protect_name(base)


@pytest.mark.parametrize("schedule", ["0-59/15 0-23 1-31 1-12 0-7", "59 23 31 12 7", "0 0 1 1 0", "*/5 1,13 * * 1-5"])
def test_cron_schedules_at_the_edges_of_each_fields_range_are_accepted(schedule):
    assert load_retention("prod", {"schedule": schedule}, {}, "registry.pay.internal", live=False).schedule == schedule


def test_the_policy_is_in_the_outputs():
    policy = register({"keep_last": 30, "schedule": "0 4 * * 1"}).result.policy
    assert (policy["keep_last"], policy["schedule"], policy["apply"]) == (30, "0 4 * * 1", False)
    assert policy["protect_stacks"] == list(STACKS)


def test_a_missing_stack_output_is_refused():
    retention = load_retention("prod", {}, {}, "registry.pay.internal", live=False)
    with pytest.raises(ValueError, match="protect_outputs lacks sandbox"):
        run_program(lambda: RegistryRetention("r", retention, "pw", {"dev": {}, "test": {}, "prod": {}}, {},
                                              namespace="payments-prod", services=[]),
                    stack="prod", config={})


def test_absent_key_means_no_job_and_defaults_follow_the_seed():
    assert load_retention("dev", None, {}, "registry.pay.internal", live=True) is None
    defaults = load_retention("prod", {}, {}, "registry.pay.internal", live=False)
    assert (defaults.keep_last, defaults.schedule, defaults.apply) == (20, "30 3 * * *", False)
    assert defaults.registry_url == "https://registry.pay.internal"
    assert load_retention("prod", '{"keep_last": 25}', {}, "registry.pay.internal", live=False).keep_last == 25


@pytest.mark.parametrize("raw, secrets, live, message", [
    ({"keep_last": 0}, {}, False,
     'release-infra:retention.keep_last = 0: input should be greater than or equal to 1'),
    ({"schedule": "daily"}, {}, False,
     'release-infra:retention.schedule = "daily": must be a five-field cron schedule'),
    ({"schedule": "99 99 99 99 99"}, {}, False,
     'release-infra:retention.schedule = "99 99 99 99 99": minute 99 is outside 0-59; hour 99 is outside 0-23; day '
     "of month 99 is outside 1-31; month 99 is outside 1-12; day of week 99 is outside 0-7 (minute 0-59, hour 0-23, "
     "day of month 1-31, month 1-12, day of week 0-7 with 0 and 7 Sunday)"),
    ({"schedule": "30 3 0 * 8"}, {}, False,
     'release-infra:retention.schedule = "30 3 0 * 8": day of month 0 is outside 1-31; day of week 8 is outside 0-7'),
    ({"schedule": "0,60 3 * 1-13 *"}, {}, False,
     'release-infra:retention.schedule = "0,60 3 * 1-13 *": minute 60 is outside 0-59; month 1-13 is outside 1-12'),
    ({"schedule": "30-10 */0 * * *"}, {}, False,
     'release-infra:retention.schedule = "30-10 */0 * * *": minute range 30-10 runs backwards; hour step */0 is 0'),
    ({"image": "registry.pay.internal/release-infra-retention:latest"}, {}, False,
     "release-infra:retention.image = \"registry.pay.internal/release-infra-retention:latest\": 'latest' is a "
     "mutable tag"),
    ({"image": "docker.io/acme/retention:a1b2c3d-v1.0.0"}, {}, False,
     'release-infra:retention.image = "docker.io/acme/retention:a1b2c3d-v1.0.0": must come from the private '
     'registry registry.pay.internal'),
    ({"protect_stacks": ["prod"]}, {}, False,
     'release-infra:retention.protect_stacks = ["prod"]: must name each of sandbox, dev, test, prod once: an image '
     "any environment runs must never be deleted (missing: sandbox, dev, test)"),
    ({"keep_lats": 20}, {}, False,
     "release-infra:retention.keep_lats: unknown key (did you mean keep_last?); known keys are keep_last, schedule, "
     "image, apply, registry_url, username, protect_stacks, deadline_minutes, service_account"),
    ({}, {}, True, "release-infra:retention_registry_password is missing: the registry password"),
    ({}, {"retention_registry_password": ""}, False,
     'release-infra:retention_registry_password = "[secret]": must be the registry password of the retention user'),
    ("weekly", {}, False, 'release-infra:retention = "weekly": must be an object of retention settings'),
    (None, {"retention_registry_password": "x"}, False,
     'release-infra:retention_registry_password = "[secret]": is set but release-infra:retention is not; set both '
     "to run the retention job, or neither"),
    ({"registry_url": "https://retention:hunter2@registry.pay.internal"}, {}, False,
     'release-infra:retention.registry_url = "https://[secret]@registry.pay.internal": must be the registry\'s base '
     "URL without credentials, e.g. https://registry.pay.internal"),
    ({"registry_url": "http://registry.pay.internal:5000"}, {}, False,
     'release-infra:retention.registry_url = "http://registry.pay.internal:5000": must be https://: plain http would '
     "send the registry credentials unencrypted; http:// only for a loopback registry (127.0.0.0/8, ::1, localhost)"),
])
def test_bad_settings_name_the_key_and_what_is_allowed(raw, secrets, live, message):
    with pytest.raises(ConfigError) as error:
        load_retention("prod", raw, secrets, "registry.pay.internal", live=live)
    assert str(error.value).startswith('invalid config for stack "prod": ' + message)
    assert "hunter2" not in str(error.value)


@pytest.mark.parametrize("stack", STACKS)
def test_the_job_gets_each_stacks_images_and_digests_and_nothing_a_colour_switch_changes(stack: str) -> None:
    full = stack_outputs(settings(stack), digests={("payin-api", "blue"): "sha256:" + "d" * 64}).model_dump(mode="json")
    view = protected_view(full)
    assert protected_from_outputs(view, "view") == protected_from_outputs(full, "full")
    assert view["services"]["payin-api"]["colours"]["blue"]["digest"] == "sha256:" + "d" * 64
    flipped = {**full, "services": {name: {**service, "active_colour": service["standby_colour"]}
                                    for name, service in full["services"].items()}}
    assert protected_view(flipped) == view


NO_SCHEMA = "view: schema_version = None: expected 1.x stack outputs (schemas/stack-outputs.v1.schema.json)"


@pytest.mark.parametrize("unreadable, refusal", [
    (None, NO_SCHEMA),
    ([], NO_SCHEMA),
    ({"services": {"x": {"colours": {}}}}, NO_SCHEMA),
    ({"schema_version": "1.1"}, "view: services must be a non-empty object; a stack runs at least one service"),
    ({"schema_version": "1.0", "services": {"x": "y"}}, "view: services.x.colours must be an object of colours"),
])
def test_unreadable_outputs_give_a_view_the_tool_refuses_rather_than_protect_less(unreadable, refusal) -> None:
    with pytest.raises(RetentionError) as raised:
        protected_from_outputs(protected_view(unreadable), "view")
    assert str(raised.value) == refusal
