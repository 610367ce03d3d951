"""What release says, without the engine: when the update that undoes a failed step fails too (the first failure
keeps its exit status, and the message says where the stack was left and what finishes the job), which
services need the synthetic-transaction hook, and a stack file edited by hand."""

from __future__ import annotations

from concurrent.futures import Future

import pytest

from release_infra_tools.probes import PrometheusError, missing_hook, synthetic_problem
from release_infra_tools.promotion import undo
from release_infra_tools.release import CheckFailed, Interrupted, Target, UsageError, rollback
from release_infra_tools.stacks import StackError, Update
from tests.support.stacks import catalogue

LOCKED = "stack dev is locked by another update"


class LockedEnvironments:
    """Every update fails as a held lock makes it fail; the release tier's tests take a real lock."""

    def __init__(self) -> None:
        self.asked: list[dict[str, str]] = []

    def update(self, environment: str, changes: dict[str, str], message: str, before: object = None,
               check: object = None) -> None:
        self.asked.append(changes)
        raise StackError(LOCKED)


NOW = Target(environment="dev", service="payin-api", namespace="payments-dev", active="blue",
             images={"blue": "registry/payin-api:1.0.0", "green": "registry/payin-api:1.1.0"}, canary_weight=5,
             steps=[5, 25, 50, 100], standby_policy={"policy": "warm"}, config={})


@pytest.mark.parametrize(("failure", "kind"), [(Interrupted(), Interrupted), (StackError("x"), StackError),
                                               (CheckFailed("x"), CheckFailed), (PrometheusError("x"), CheckFailed)])
def test_a_failed_undo_keeps_the_first_failures_kind_and_says_where_the_stack_was_left(
        failure: Exception, kind: type[Exception]) -> None:
    environments = LockedEnvironments()
    with pytest.raises(kind) as raised:
        undo(environments, NOW, {"services.payin-api.canary.weight": "0"}, "canary payin-api: rolled back",  # type: ignore[arg-type]
             failure, "interrupted at weight 5%; the rollback to weight 0", "the stack config has canary.weight 5")
    assert type(raised.value) is kind
    assert str(raised.value) == (f"interrupted at weight 5%; the rollback to weight 0 failed too ({LOCKED}): "
                                 "the stack config has canary.weight 5")
    assert environments.asked == [{"services.payin-api.canary.weight": "0"}]


def test_the_synthetic_hook_is_required_and_run_for_payments_services_only() -> None:
    """A merchant service promotes without the hook even when one is exported for the payments services."""
    services = catalogue().services
    common = {"service": "x", "environment": "dev", "base_url": "http://127.0.0.1:9", "timeout": 10}
    assert synthetic_problem("false", services["merchant-api"], **common) is None
    assert missing_hook(None, services["merchant-api"], "merchant-api") is None
    assert synthetic_problem("false", services["payin-api"], **common) == "synthetic-transaction hook failed (exit 1)"
    assert missing_hook(None, services["payout-api"], "payout-api") == (
        "payout-api is a payout service: the standard requires synthetic transactions before a switch; give "
        "--synthetic-hook (or RELEASE_SYNTHETIC_HOOK)")


class StackFile:
    """The environments as a hand-edited stack file has them; any update is a failure of the test."""

    def __init__(self, services: dict[str, object]) -> None:
        self.services = services

    def require(self, environment: str) -> str:
        return environment

    def config(self, environment: str) -> dict[str, object]:
        return {"namespace": "payments-dev", "services": self.services}

    def update(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("a hand-edited stack file must not be updated")


BLUE, GREEN = "registry.pay.internal/payin-api:4d5e6f7-v2.4.0", "registry.pay.internal/payin-api:3c4d5e6-v2.3.0"
REBUILD = "registry.pay.internal/payin-api:5e6f7a8-v2.3.0"


@pytest.mark.parametrize(("release", "problem"), [
    ({"active": "blue", "blue": {"image": BLUE}},
     "release-infra:services.payin-api.green.image is missing: both colours need an image, "
     "<registry>/<service>:<git-sha>-v<semver>"),
    ({"active": "Blue", "blue": {"image": BLUE}, "green": {"image": GREEN}},
     'release-infra:services.payin-api.active = "Blue": expected blue or green'),
    ({"blue": {"image": BLUE}, "green": {"image": GREEN}},
     "release-infra:services.payin-api.active is missing: expected blue or green"),
    ({"active": "blue", "blue": {"image": BLUE}, "green": {"image": GREEN}, "canary": {"weight": "five"}},
     'release-infra:services.payin-api.canary.weight = "five": expected whole percentages, 0 to 100'),
    ({"active": "blue", "blue": {"image": BLUE}, "green": {"image": GREEN}, "canary": {"weight": 150}},
     "release-infra:services.payin-api.canary.weight = 150: expected whole percentages, 0 to 100"),
    ({"active": "blue", "blue": {"image": BLUE}, "green": {"image": GREEN}, "canary": {"steps": [5, 2.5, 100]}},
     "release-infra:services.payin-api.canary.steps = [5, 2.5, 100]: expected whole percentages, 0 to 100"),
    ("blue", 'release-infra:services.payin-api = "blue": expected a map with active, blue and green'),
])
def test_a_hand_edited_service_is_one_line_naming_the_key_before_anything_changes(release: object,
                                                                                 problem: str) -> None:
    with pytest.raises(UsageError) as raised:
        rollback(StackFile({"payin-api": release}), "dev", "payin-api")  # type: ignore[arg-type]
    assert str(raised.value) == f'invalid config for stack "dev": {problem}'


class Deployed(StackFile):
    """A valid stack file, its last outputs' `history.served`, and the updates asked for."""

    def __init__(self, active: str, served: list[str]) -> None:
        super().__init__({"payin-api": {"active": active, "blue": {"image": BLUE}, "green": {"image": GREEN}}})
        self.served, self.asked = served, []  # type: list[str], list[dict[str, str]]

    def outputs(self, environment: str) -> dict[str, object]:
        return {"services": {"payin-api": {"history": {"ran": self.served, "served": self.served}}}}

    def update(self, environment: str, changes: dict[str, str], message: str, before: object = None,
               check: Future[None] | None = None) -> Update:
        if check is not None:
            check.result()  # as Environments.update: a refusal puts the config back and updates nothing
        self.asked.append(changes)
        return Update(1.0, {"update": 4})


def test_a_rollback_flips_to_the_earlier_release_on_the_standby() -> None:
    stack = Deployed("blue", [GREEN, BLUE])
    rollback(stack, "dev", "payin-api")  # type: ignore[arg-type]
    assert stack.asked == [{"services.payin-api.active": "green"}]


def test_a_second_rollback_is_refused_rather_than_putting_the_newer_release_back_unchecked() -> None:
    stack = Deployed("green", [GREEN, BLUE])  # the first rollback left 2.3.0 active, 2.4.0 on the standby
    with pytest.raises(UsageError) as raised:
        rollback(stack, "dev", "payin-api")  # type: ignore[arg-type]
    assert str(raised.value) == (
        f"blue of payin-api in dev runs {BLUE}, not an earlier release than the active green ({GREEN}): flipping "
        "to it is no rollback (was it rolled back already?); to release it again with its checks: "
        f"`release promote dev payin-api {BLUE}`")
    assert stack.asked == []


@pytest.mark.parametrize(("served", "allowed"), [([GREEN, REBUILD], True), ([REBUILD, GREEN], False)])
def test_a_rebuild_of_the_same_version_is_judged_by_which_served_first(served: list[str], allowed: bool) -> None:
    stack = Deployed("blue", served)
    stack.services["payin-api"]["blue"] = {"image": REBUILD}  # type: ignore[index]
    if allowed:
        rollback(stack, "dev", "payin-api")  # type: ignore[arg-type]
    else:
        with pytest.raises(UsageError, match="not an earlier release"):
            rollback(stack, "dev", "payin-api")  # type: ignore[arg-type]
    assert stack.asked == ([{"services.payin-api.active": "green"}] if allowed else [])


def test_a_rollback_to_a_scaled_down_standby_is_refused_before_any_update() -> None:
    stack = Deployed("blue", [GREEN, BLUE])
    stack.services["payin-api"]["standby"] = {"policy": "scaled-down", "colour": "green",  # type: ignore[index]
                                              "since": "2026-11-20T10:00:00Z"}
    with pytest.raises(UsageError) as raised:
        rollback(stack, "dev", "payin-api")  # type: ignore[arg-type]
    assert str(raised.value) == (
        "the standby colour green of payin-api in dev is scaled down, so it has no pod to take traffic; set "
        "services.payin-api.standby.policy to warm and `pulumi up` first")
    assert stack.asked == []


def test_a_whole_number_written_as_a_float_is_a_percentage_as_the_program_reads_it() -> None:
    stack = Deployed("blue", [GREEN, BLUE])
    stack.services["payin-api"]["canary"] = {"weight": 5.0}  # type: ignore[index]
    rollback(stack, "dev", "payin-api")  # type: ignore[arg-type]
    assert stack.asked == [{"services.payin-api.canary.weight": "0"}]
