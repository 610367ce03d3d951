"""What release says, without the engine: when the update that undoes a failed step fails too (the first failure
keeps its exit status, and the message says where the stack was left and what finishes the job), which
services need the synthetic-transaction hook, a stack file edited by hand, and the promote and canary walks on a
stack file in memory (Ctrl-C, a failed switch, a URL typo, no baseline, a change from another terminal)."""

from __future__ import annotations

import re
import subprocess
from collections import Counter
import sys
from concurrent.futures import Future
from typing import Callable

import httpx
import pytest

from core.release.options import OptionsError, ReleaseOptions, seconds
from release_infra_tools import promotion
from release_infra_tools.probes import (Probes, Prometheus, PrometheusError, TraceStoreError, health_problems, missing_hook,
                                        synthetic_problem)
from release_infra_tools.promotion import Applied, undo
from release_infra_tools.release import CheckFailed, Interrupted, Stop, UsageError, rollback, say, target
from release_infra_tools.stacks import ConfigNotPutBack, StackError, Update
from tests.support.stacks import ROOT, catalogue, stack_config

LOCKED = "stack dev is locked by another update"


@pytest.mark.parametrize(("failure", "kind"), [(Interrupted(), Interrupted), (StackError("x"), StackError),
                                               (CheckFailed("x"), CheckFailed), (PrometheusError("x"), CheckFailed)])
def test_a_failed_undo_keeps_the_first_failures_kind_and_says_where_the_stack_was_left(
        failure: Exception, kind: type[Exception]) -> None:
    """Every update fails as a held lock makes it fail; the release tier's tests take a real lock."""
    environments = Walked("payin-api", BLUE, GREEN, refused="services.payin-api.canary.weight")
    environments.set("services.payin-api.canary.weight", "5")
    with pytest.raises(kind) as raised:
        undo(at_weight_5(environments), {"services.payin-api.canary.weight": "0"}, "canary payin-api: rolled back",
             failure, "interrupted at weight 5%; the rollback to weight 0", "the stack config has canary.weight 5")
    assert type(raised.value) is kind
    assert str(raised.value) == (f"interrupted at weight 5%; the rollback to weight 0 failed too ({LOCKED}): "
                                 "the stack config has canary.weight 5")
    assert environments.asked == [{"services.payin-api.canary.weight": "0"}]


def at_weight_5(environments: "Walked") -> Applied:
    """A canary run of payin-api that has applied weight 5."""
    now = target(environments, "dev", "payin-api")  # type: ignore[arg-type]
    return Applied(environments, now, active="blue", weight=5, images=dict(now.images))  # type: ignore[arg-type]


@pytest.mark.parametrize(("failure", "kind"), [(Interrupted(), Interrupted), (CheckFailed("x"), CheckFailed)])
def test_an_undo_does_not_walk_over_a_change_made_meanwhile_and_says_where_traffic_is(
        failure: Exception, kind: type[Exception]) -> None:
    environments = Walked("payin-api", BLUE, GREEN)
    environments.set("services.payin-api.canary.weight", "5")
    applied = at_weight_5(environments)
    environments.set("services.payin-api.active", "green")  # a hand switch: `pulumi config set`, `pulumi up`
    environments.set("services.payin-api.canary.weight", "0")
    with pytest.raises(kind) as raised:
        undo(applied, {"services.payin-api.canary.weight": "0"}, "canary payin-api: rolled back", failure,
             "interrupted at weight 5%; the rollback to weight 0", "the stack config has canary.weight 5")
    assert str(raised.value) == (
        "interrupted at weight 5%; the rollback to weight 0 was not made: payin-api in dev was changed by someone "
        "else while this run went on (active blue -> green, canary.weight 5 -> 0): the run stops and leaves the "
        f"stack as that change set it, all traffic on green ({GREEN})")
    assert environments.asked == []


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
        self.settings: dict[str, object] = {}  # the file's other keys

    def require(self, environment: str) -> str:
        return environment

    def config(self, environment: str) -> dict[str, object]:
        return {"namespace": "payments-dev", "services": self.services, **self.settings}

    def update(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("a hand-edited stack file must not be updated")

    def outputs(self, environment: str) -> dict[str, object]:
        """What the stack applied is what its file says: the fields a release compares."""
        return {"services": {name: {"active_colour": release["active"],  # type: ignore[index]
                                    "colours": {colour: {"image": release[colour]["image"]}  # type: ignore[index]
                                                for colour in ("blue", "green")},
                                    "canary_weight": int(float((release.get("canary") or {}).get("weight", 0)))}  # type: ignore[attr-defined]
                             for name, release in self.services.items()}}


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
        applied = super().outputs(environment)
        applied["services"]["payin-api"]["history"] = {"ran": self.served, "served": self.served}  # type: ignore[index]
        return applied

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


def test_a_canary_rollback_from_a_stale_stack_file_is_refused() -> None:
    """Another terminal's rollback already took the canary to 0 and flipped the service: from this file, weight 0
    would be applied with the active colour the other operator left."""
    stack = Deployed("blue", [GREEN, BLUE])
    applied = stack.outputs("dev")
    applied["services"]["payin-api"]["active_colour"] = "green"  # type: ignore[index]
    stack.outputs = lambda environment: applied  # type: ignore[method-assign]
    stack.services["payin-api"]["canary"] = {"weight": 25}  # type: ignore[index]
    with pytest.raises(UsageError) as raised:
        rollback(stack, "dev", "payin-api")  # type: ignore[arg-type]
    assert str(raised.value) == (
        "Pulumi.dev.yaml is not what dev's last update applied (services.payin-api.active: applied green, the file "
        "says blue): pull it if another release changed dev, or apply or revert the edit (`pulumi preview --stack "
        "dev` shows it) first")
    assert stack.asked == []


def test_a_canary_step_that_never_applied_can_still_be_rolled_back() -> None:
    """A canary killed between setting weight 25 and its update: the rollback sets the weight whatever it holds."""
    stack = Deployed("blue", [GREEN, BLUE])
    applied = stack.outputs("dev")
    applied["services"]["payin-api"]["canary_weight"] = 5  # type: ignore[index]
    stack.outputs = lambda environment: applied  # type: ignore[method-assign]
    stack.services["payin-api"]["canary"] = {"weight": 25}  # type: ignore[index]
    rollback(stack, "dev", "payin-api")  # type: ignore[arg-type]
    assert stack.asked == [{"services.payin-api.canary.weight": "0"}]


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
        "the standby colour green of payin-api in dev is scaled down, so it has no pod to take traffic; make it "
        "warm and `pulumi up` first (`pulumi config rm --path services.payin-api.standby --stack dev`)")
    assert stack.asked == []


def test_a_promotion_onto_a_scaled_down_standby_is_refused_with_the_command_that_makes_it_warm() -> None:
    stack = Deployed("blue", [GREEN, BLUE])
    stack.services["payin-api"]["standby"] = {"policy": "scaled-down", "colour": "green",  # type: ignore[index]
                                              "since": "2026-11-20T10:00:00Z"}
    stack.pending_operations = lambda environment: []  # type: ignore[attr-defined]
    with pytest.raises(UsageError) as raised:
        promotion.ready_for_release(stack, target(stack, "dev", "payin-api"))  # type: ignore[arg-type]
    assert str(raised.value) == (
        "the standby colour green of payin-api in dev is scaled down; make it warm and `pulumi up` first "
        "(`pulumi config rm --path services.payin-api.standby --stack dev`)")
    assert stack.asked == []


def test_a_whole_number_written_as_a_float_is_a_percentage_as_the_program_reads_it() -> None:
    stack = Deployed("blue", [GREEN, BLUE])
    stack.services["payin-api"]["canary"] = {"weight": 5.0}  # type: ignore[index]
    rollback(stack, "dev", "payin-api")  # type: ignore[arg-type]
    assert stack.asked == [{"services.payin-api.canary.weight": "0"}]


# -- the walks, on a stack file in memory --------------------------------------------------------------------------

M_ACTIVE = "registry.pay.internal/merchant-api:e1f2a3b-v3.1.0"
M_STANDBY = "registry.pay.internal/merchant-api:d0e1f2a-v3.0.9"
M_NEW, P_NEW = "registry.pay.internal/merchant-api:f00baa1-v3.2.0", "registry.pay.internal/payin-api:6f7a8b9-v2.5.0"


class Walked(StackFile):
    """Blue active, green the standby; each update is recorded and applied, except one that changes ``refused``,
    which fails as a held lock makes it fail (its config put back)."""

    def __init__(self, service: str, active: str, standby: str, refused: str | None = None,
                 failure: StackError = StackError(LOCKED)) -> None:
        super().__init__({service: {"active": "blue", "blue": {"image": active}, "green": {"image": standby}}})
        self.service, self.refused, self.asked = service, refused, []  # type: str, str | None, list[dict[str, str]]
        self.failure = failure

    def pending_operations(self, environment: str) -> list[str]:
        return []

    def update(self, environment: str, changes: dict[str, str], message: str, before: object = None,
               check: object = None) -> Update:
        self.asked.append(dict(changes))
        if self.refused in changes:
            raise self.failure
        for path, value in changes.items():
            self.set(path, value)
        return Update(1.0, {"update": 1})

    def set(self, path: str, value: str) -> None:
        """As an update applies it; a test also calls it for another terminal's change."""
        node = self.services
        *parents, last = path.split(".")[1:]
        for part in parents:
            node = node.setdefault(part, {})  # type: ignore[assignment, attr-defined]
        node[last] = value


class Readings(Prometheus):
    """Each colour's error ratio (None: no data), or a function called at each query; every colour's P95 is
    100 ms, or what ``p95s`` gives."""

    def __init__(self, p95s: dict[str, float | None] | None = None,
                 **ratios: float | None | Callable[[], float | None]) -> None:
        self.ratios, self.p95s = ratios, p95s or {}

    def error_ratio(self, namespace: str, service: str, colour: str, window: str) -> float | None:
        ratio = self.ratios[colour]
        return ratio() if callable(ratio) else ratio

    def p95(self, namespace: str, service: str, colour: str, window: str) -> float | None:
        return self.p95s.get(colour, 0.1)

    def close(self) -> None:
        pass


class Traces:
    """A trace store that answers, and what the trace check after a switch finds: an end-to-end trace unless a
    test gives a problem. The check itself runs against a real gateway and Jaeger in tests/tracing."""

    problem: str | None = None
    down: str | None = None  # the error of the checks ``fails`` says (1 is the first)
    fails: Callable[[int], bool] = staticmethod(lambda number: True)
    asked: list[str] = []
    checked: list[tuple[str, ...]] = []

    def __init__(self, url: str, timeout: float) -> None:
        Traces.asked, Traces.checked = [], []

    def check(self, *services: str) -> None:
        self.checked.append(services)
        if self.down and self.fails(len(self.checked)):
            raise TraceStoreError(self.down)

    def close(self) -> None:
        pass


def after_switch(store: Traces, _gateway: object, *, colour: str, **_: object) -> tuple[str | None, str]:
    store.asked.append(colour)
    return store.problem, "traces: 1 of 1 traces through the gateway into the colour, after 49 requests"


@pytest.fixture
def probes(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Healthy colours, end-to-end traces, and the error ratios a test gives."""
    monkeypatch.setattr(promotion, "health_problems", lambda base_url, spec, timeout: [])
    monkeypatch.setattr(promotion, "TraceStore", Traces)
    monkeypatch.setattr(promotion, "trace_problem_after_switch", after_switch)
    monkeypatch.setattr(promotion, "through_gateway", lambda *_: Probes(["0" * 32], Counter({"HTTP 200": 1}), None))
    monkeypatch.setattr(Traces, "problem", None)
    monkeypatch.setattr(Traces, "down", None)
    monkeypatch.setattr(Traces, "fails", staticmethod(lambda number: True))

    def ratios(p95s: dict[str, float | None] | None = None, **given: float | None | Callable[[], float | None]) -> None:
        monkeypatch.setattr(promotion, "Prometheus", lambda url, timeout: Readings(p95s, **given))
    ratios(blue=0.001, green=0.001)
    return ratios


def walk(command: str, stack: Walked, image: str, stop: Stop | None = None, **options: str) -> None:
    """One bake look per step and one watch look, unless a test asks for more; no sleep. The looks of a test may
    come faster than the one-second floor a person's --interval has."""
    values = {"bake": "0", "watch": "0", "preview_url": "http://preview", "active_url": "http://active",
              **({"traces_url": "http://traces"} if isinstance(stack, Prod) else {}), **options}
    interval = seconds(values.pop("interval", "0"))
    run = promotion.promote if command == "promote" else promotion.canary
    run(stack, ROOT, ReleaseOptions.build(**values).model_copy(update={"interval": interval}), "dev",
        stack.service, image, stop or Stop())  # type: ignore[arg-type]


@pytest.mark.parametrize("during", ["health checks", "baseline query"])
def test_ctrl_c_before_the_switch_stops_before_it_and_puts_the_standby_back(
        probes: Callable[..., None], monkeypatch: pytest.MonkeyPatch, during: str) -> None:
    stop, stack = Stop(), Walked("merchant-api", M_ACTIVE, M_STANDBY)

    def ctrl_c(answer: object) -> Callable[..., object]:
        return lambda *_: (stop.event.set(), answer)[1]
    if during == "health checks":
        monkeypatch.setattr(promotion, "health_problems", ctrl_c([]))
    else:
        probes(blue=ctrl_c(0.001), green=0.001)
    with pytest.raises(Interrupted) as raised:
        walk("promote", stack, M_NEW, stop)
    assert str(raised.value) == (f"interrupted before the switch; traffic stays on blue ({M_ACTIVE}), green back on "
                                 f"{M_STANDBY}")
    assert stack.asked == [{"services.merchant-api.green.image": M_NEW},
                           {"services.merchant-api.green.image": M_STANDBY}]


def test_a_hook_that_ctrl_c_killed_is_an_interruption_not_a_failed_check(probes: Callable[..., None],
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    stop, stack = Stop(), Walked("payin-api", BLUE, GREEN)

    def killed_by_the_terminals_sigint(*_: object, **__: object) -> str:
        stop.event.set()
        return "synthetic-transaction hook failed (exit -2)"
    monkeypatch.setattr(promotion, "synthetic_problem", killed_by_the_terminals_sigint)
    with pytest.raises(Interrupted) as raised:
        walk("promote", stack, P_NEW, stop, synthetic_hook="./synthetic.sh")
    assert str(raised.value).startswith(f"interrupted before the switch; traffic stays on blue ({BLUE}), green keeps")
    assert stack.asked == [{"services.payin-api.green.image": P_NEW}]  # its migrations ran: no way back


@pytest.mark.parametrize(("option", "url", "port"), [("active_url", "http://{service}.{namespace}.svc:808O", "808O"),
                                                     ("prometheus_url", "http://prometheus.svc:9O90", "9O90"),
                                                     ("gateway_url", "http://gateway.{namespace}.svc:8O", "8O"),
                                                     ("traces_url", "http://jaeger.svc:166S6", "166S6")])
def test_a_url_typo_is_bad_input_before_anything_changes(option: str, url: str, port: str) -> None:
    with pytest.raises(OptionsError) as raised:
        ReleaseOptions.build(**{option: url})
    assert str(raised.value) == f"--{option.replace('_', '-')}: '{url}' is not a URL: Invalid port: '{port}'"


@pytest.mark.parametrize(("option", "value", "message"), [
    ("traces_url", "http://jaeger.svc:16686/?token=abc",
     "'http://jaeger.svc:16686/?[secret]' has a query string or fragment; give a base URL"),
    ("traces_url", "http://jaeger.svc:16686#", "'http://jaeger.svc:16686#' has a query string or fragment; give a base URL"),
    ("gateway_url", "http://gateway.{namespace}.svc?", "'http://gateway.{namespace}.svc?' has a query string or fragment; "
                                                       "give a base URL"),
    ("trace_wait", "5s", "5s is too short: at least 10s for the trace check: the gateway sends its spans every 5s"),
])
def test_a_trace_check_option_that_could_not_work_is_bad_input(option: str, value: str, message: str) -> None:
    with pytest.raises(OptionsError) as raised:
        ReleaseOptions.build(**{option: value})
    assert str(raised.value) == f"--{option.replace('_', '-')}: {message}"


def test_a_url_httpx_cannot_read_is_a_probes_failure_not_an_escape_past_the_flip_back() -> None:
    assert health_problems("http://active:808O", catalogue().services["merchant-api"], 1)[0] == (
        "http://active:808O/health/ready: InvalidURL")
    prometheus = Prometheus("http://prometheus:9O90", 1)
    with pytest.raises(PrometheusError, match="^Prometheus at http://prometheus:9O90 cannot be queried: InvalidURL$"):
        prometheus.error_ratio("payments-dev", "merchant-api", "green", "5m")
    prometheus.close()


def test_a_rollback_from_another_terminal_stops_the_canary_without_another_update(
        probes: Callable[..., None]) -> None:
    stack = Walked("merchant-api", M_ACTIVE, M_STANDBY)

    def canary_ratio() -> float:
        if stack.services["merchant-api"]["canary"]["weight"] == "25":  # type: ignore[index]
            stack.set("services.merchant-api.canary.weight", "0")  # `release rollback` in another terminal
        return 0.002
    probes(blue=0.001, green=canary_ratio)
    with pytest.raises(CheckFailed) as raised:
        walk("canary", stack, M_NEW)
    assert str(raised.value) == ("merchant-api in dev was changed by someone else while this run went on "
                                 "(canary.weight 25 -> 0): the run stops and leaves the stack as that change set it, "
                                 f"all traffic on blue ({M_ACTIVE})")
    assert [list(changes.values())[0] for changes in stack.asked] == [M_NEW, "5", "25"]


def test_a_rollback_during_the_watch_is_neither_flipped_over_nor_reported_as_promoted(
        probes: Callable[..., None]) -> None:
    stack = Walked("merchant-api", M_ACTIVE, M_STANDBY)

    def green_ratio() -> float:
        stack.set("services.merchant-api.active", "blue")  # `release rollback` in another terminal
        return 0.001
    probes(blue=0.001, green=green_ratio)
    with pytest.raises(CheckFailed) as raised:  # the second look sees it
        walk("promote", stack, M_NEW, watch="10s", interval="10ms")
    assert "(active green -> blue): the run stops and leaves the stack as that change set it" in str(raised.value)
    assert stack.asked == [{"services.merchant-api.green.image": M_NEW}, {"services.merchant-api.active": "green"}]


def test_without_a_baseline_the_watch_holds_the_new_colour_to_zero(probes: Callable[..., None]) -> None:
    probes(blue=None, green=0.40)  # the old colour served nothing before the switch
    stack = Walked("merchant-api", M_ACTIVE, M_STANDBY)
    with pytest.raises(CheckFailed) as raised:
        walk("promote", stack, M_NEW)
    assert str(raised.value) == ("green broke the error-rate gate during the watch: errors 40.00% vs baseline 0.00% "
                                 f"(limit +0.5 pp): fail; flipped back: traffic on blue ({M_ACTIVE})")
    assert stack.asked[-1] == {"services.merchant-api.active": "blue"}


@pytest.mark.parametrize(("command", "option", "refused"), [
    ("canary", {"bake": "14m"}, "--bake 840s"), ("promote", {"watch": "60s"}, "--watch 60s")])
def test_prod_waits_as_long_as_the_standard_asks(command: str, option: dict[str, str], refused: str) -> None:
    """Seed 000: 15 minutes a canary step, 5 minutes of watch; before anything changes."""
    stack = Walked("merchant-api", M_ACTIVE, M_STANDBY)
    values = {"bake": "15m", "watch": "5m", "preview_url": "http://preview", "active_url": "http://active", **option}
    run = promotion.promote if command == "promote" else promotion.canary
    with pytest.raises(UsageError) as raised:
        run(stack, ROOT, ReleaseOptions.build(**values), "prod", "merchant-api", M_NEW, Stop())  # type: ignore[arg-type]
    assert str(raised.value).startswith(f"{refused} is shorter than prod allows: each canary step bakes at least 15 "
                                        "minutes")
    assert stack.asked == []


def test_the_gate_takes_the_stacks_own_alerting_thresholds(probes: Callable[..., None]) -> None:
    """A stack that holds the watch to 0.2 points, as its PostDeploy alert does: 0.4 points over fails the gate,
    where the seed's default 0.5 would have let it through."""
    probes(blue=0.001, green=0.005)
    stack = Walked("merchant-api", M_ACTIVE, M_STANDBY)
    stack.settings["alerting"] = {"thresholds": {"baseline_error_increase_points": 0.2}}
    with pytest.raises(CheckFailed) as raised:
        walk("promote", stack, M_NEW)
    assert "errors 0.50% vs baseline 0.10% (limit +0.2 pp): fail" in str(raised.value)
    probes(blue=0.001, green=0.005)
    walk("promote", Walked("merchant-api", M_ACTIVE, M_STANDBY), M_NEW)  # the default, +0.5: passes


def test_the_latency_gate_takes_the_stacks_own_p95_margin(probes: Callable[..., None]) -> None:
    """A stack whose PostDeployLatencyAboveBaseline fires at +5%: a P95 8% over fails the watch there, and passes
    the seed's default +10%."""
    probes({"blue": 0.1, "green": 0.108}, blue=0.001, green=0.001)
    stack = Walked("merchant-api", M_ACTIVE, M_STANDBY)
    stack.settings["alerting"] = {"thresholds": {"baseline_p95_increase_percent": 5}}
    with pytest.raises(CheckFailed) as raised:
        walk("promote", stack, M_NEW)
    assert str(raised.value) == ("green broke the latency gate during the watch: P95 108.0ms vs baseline 100.0ms "
                                 f"(limit +5%): fail; flipped back: traffic on blue ({M_ACTIVE})")
    probes({"blue": 0.1, "green": 0.108}, blue=0.001, green=0.001)
    walk("promote", Walked("merchant-api", M_ACTIVE, M_STANDBY), M_NEW)


def test_without_a_p95_baseline_the_watch_shows_no_data_and_judges_the_rest(
        probes: Callable[..., None], capsys: pytest.CaptureFixture[str]) -> None:
    probes({"blue": None, "green": 0.5}, blue=0.001, green=0.001)
    walk("promote", Walked("merchant-api", M_ACTIVE, M_STANDBY), M_NEW)
    out = capsys.readouterr().out
    assert "P95 against no data before the switch, no trace check (no --traces-url))" in out
    assert "P95 500.0ms vs baseline no data (limit +10%): no-data" in out


def test_a_canary_whose_bake_ends_without_latency_data_is_not_promoted(probes: Callable[..., None]) -> None:
    probes({"green": None}, blue=0.001, green=0.001)
    stack = Walked("merchant-api", M_ACTIVE, M_STANDBY)
    with pytest.raises(CheckFailed) as raised:
        walk("canary", stack, M_NEW)
    assert str(raised.value).startswith("no latency data for the canary at 5% at the end of its bake (P95 no data "
                                        "vs baseline 100.0ms (limit +10%): no-data); a canary is not promoted")
    assert stack.asked[-1] == {"services.merchant-api.canary.weight": "0"}


def test_a_failed_switch_puts_the_standby_back_and_says_where_traffic_is(probes: Callable[..., None]) -> None:
    stack = Walked("merchant-api", M_ACTIVE, M_STANDBY, refused="services.merchant-api.active")
    with pytest.raises(StackError) as raised:
        walk("promote", stack, M_NEW)
    assert str(raised.value) == f"{LOCKED}; traffic stays on blue ({M_ACTIVE}), green back on {M_STANDBY}"
    assert stack.asked == [{"services.merchant-api.green.image": M_NEW}, {"services.merchant-api.active": "green"},
                           {"services.merchant-api.green.image": M_STANDBY}]


HALF_SET = ConfigNotPutBack(f"{LOCKED}; and the config could not be put back (disk full): put it back with "
                            "`pulumi config set --path services.merchant-api.active blue --stack dev`")


@pytest.mark.parametrize(("command", "refused"), [("promote", "services.merchant-api.active"),
                                                  ("canary", "services.merchant-api.active")])
def test_a_step_whose_config_was_not_put_back_runs_no_undo_on_the_half_set_file(
        probes: Callable[..., None], command: str, refused: str) -> None:
    """The undo would apply the half-set change with its own: a flip or a promoted canary, said to be undone."""
    stack = Walked("merchant-api", M_ACTIVE, M_STANDBY, refused=refused, failure=HALF_SET)
    with pytest.raises(ConfigNotPutBack) as raised:
        walk(command, stack, M_NEW)
    assert raised.value is HALF_SET
    assert refused in stack.asked[-1], "the failed step is the last update asked for"


def test_a_payments_canary_runs_the_synthetic_hook_before_its_first_step(probes: Callable[..., None]) -> None:
    refused = Walked("payin-api", BLUE, GREEN)
    with pytest.raises(UsageError, match="^payin-api is a payin service: the standard requires synthetic"):
        walk("canary", refused, P_NEW)
    stack = Walked("payin-api", BLUE, GREEN)
    with pytest.raises(CheckFailed) as raised:
        walk("canary", stack, P_NEW, synthetic_hook="false")
    assert str(raised.value) == ("green failed verification: synthetic-transaction hook failed (exit 1); weight 0, "
                                 f"all traffic on blue ({BLUE}); green keeps {P_NEW}")
    assert (refused.asked, stack.asked) == ([], [{"services.payin-api.green.image": P_NEW}])


def test_a_password_in_a_url_option_reaches_no_message(capsys: pytest.CaptureFixture[str]) -> None:
    """httpx sends a URL's user:password@ as Basic auth, so it is a working setting; CI logs keep every line."""
    password = "S3cretPW"
    with pytest.raises(OptionsError) as raised:
        ReleaseOptions.build(prometheus_url=f"http://admin:{password}@prom:90x90")
    assert password not in str(raised.value) and "[secret]@prom" in str(raised.value)
    closed = f"http://admin:{password}@127.0.0.1:9"  # nothing listens on the discard port
    prometheus = Prometheus(closed, 2)
    try:
        with pytest.raises(PrometheusError) as failed:
            prometheus.error_ratio("payments-dev", "payin-api", "blue", "5m")
    finally:
        prometheus.close()
    problems = health_problems(closed, catalogue().services["payin-api"], 2)
    for message in (str(failed.value), *problems):
        assert password not in message and "http://[secret]@127.0.0.1:9" in message, message
    say(f"verifying green at {closed}")
    assert capsys.readouterr().out == "verifying green at http://[secret]@127.0.0.1:9\n"


M_OTHER = "registry.pay.internal/merchant-api:abcdef0-v3.3.0"  # another operator's build, never verified by this run


@pytest.mark.parametrize("look", [1, 2])
def test_a_promotion_does_not_flip_back_onto_an_image_another_release_put_on_the_old_colour(
        probes: Callable[..., None], look: int) -> None:
    """After the switch the old colour is the standby, where another terminal's `release promote` puts its image;
    a flip back would put traffic on that unverified build. Seen at the next look, or by the flip back itself when
    the change came with the failing reading."""
    stack = Walked("merchant-api", M_ACTIVE, M_STANDBY)
    looks: list[int] = []

    def green_ratio() -> float:
        looks.append(1)
        if len(looks) == 1:
            stack.set("services.merchant-api.blue.image", M_OTHER)
        return 0.30 if len(looks) == look else 0.001
    probes(blue=0.001, green=green_ratio)
    with pytest.raises(CheckFailed) as raised:
        walk("promote", stack, M_NEW, watch="10s", interval="10ms")
    overridden = (f"merchant-api in dev was changed by someone else while this run went on (blue.image {M_ACTIVE} -> "
                  f"{M_OTHER}): the run stops and leaves the stack as that change set it, all traffic on green "
                  f"({M_NEW})")
    assert str(raised.value) == overridden if look == 2 else str(raised.value).endswith(
        f"; the flip back to blue was not made: {overridden}")
    assert stack.asked == [{"services.merchant-api.green.image": M_NEW}, {"services.merchant-api.active": "green"}]


def test_a_failed_verification_puts_nothing_back_over_a_switch_made_meanwhile(
        probes: Callable[..., None], monkeypatch: pytest.MonkeyPatch) -> None:
    """Another terminal switched to the candidate colour: putting the old image back would roll the colour that now
    takes traffic onto the release before last."""
    stack = Walked("merchant-api", M_ACTIVE, M_STANDBY)

    def switched_meanwhile(base_url: str, spec: object, timeout: float) -> list[str]:
        stack.set("services.merchant-api.active", "green")
        return ["http://preview/health/ready: HTTP 503"]
    monkeypatch.setattr(promotion, "health_problems", switched_meanwhile)
    with pytest.raises(CheckFailed) as raised:
        walk("promote", stack, M_NEW)
    assert str(raised.value) == (
        f"green failed verification: http://preview/health/ready: HTTP 503; putting {M_STANDBY} back on green was "
        "not made: merchant-api in dev was changed by someone else while this run went on (active blue -> green): "
        f"the run stops and leaves the stack as that change set it, all traffic on green ({M_NEW})")
    assert stack.asked == [{"services.merchant-api.green.image": M_NEW}]


class Elsewhere(Walked):
    """A stack another checkout also releases to: its updates change the stack's outputs, not this stack file."""

    def __init__(self, *args: str) -> None:
        super().__init__(*args)
        self.outputs_read, self.applied_there = 0, {}  # type: int, dict[str, object]

    def outputs(self, environment: str) -> dict[str, object]:
        self.outputs_read += 1
        applied = super().outputs(environment)
        for key, value in self.applied_there.items():
            applied["services"][self.service][key] = value  # type: ignore[index]
        return applied


def test_the_canary_reads_what_the_stack_applied_before_each_step() -> None:
    stack = Elsewhere("merchant-api", M_ACTIVE, M_STANDBY)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(promotion, "health_problems", lambda base_url, spec, timeout: [])
        patch.setattr(promotion, "Prometheus", lambda url, timeout: Readings(blue=0.001, green=0.001))
        walk("canary", stack, M_NEW)
    assert len(stack.asked) == 6 and stack.outputs_read == 6  # before the walk, each of 4 steps, the promotion


def test_a_release_from_another_checkout_stops_the_canary_before_its_next_step(probes: Callable[..., None]) -> None:
    """Another operator's `release rollback` from their own checkout: the stack went back to weight 0, this file
    still says 5, and the next step would apply this file over their rollback."""
    stack = Elsewhere("merchant-api", M_ACTIVE, M_STANDBY)

    def canary_ratio() -> float:
        stack.applied_there["canary_weight"] = 0
        return 0.001
    probes(blue=0.001, green=canary_ratio)
    with pytest.raises(CheckFailed) as raised:
        walk("canary", stack, M_NEW)
    assert str(raised.value) == (
        "merchant-api in dev was changed by someone else while this run went on (dev's last update was not this "
        "run's: services.merchant-api.canary.weight: applied 0, the file says 5): the run stops and leaves the stack "
        f"as that change set it, the stack has all traffic on blue ({M_ACTIVE})")
    assert stack.asked == [{"services.merchant-api.green.image": M_NEW}, {"services.merchant-api.canary.weight": "5"}]


@pytest.mark.parametrize(("body", "problem"), [
    ({"status": "success", "data": {}}, "answered without a vector in data.result (KeyError)"),
    ({"status": "success"}, "answered without a vector in data.result (KeyError)"),
    ({"status": "success", "data": {"result": [{"metric": {}}]}}, "answered without a vector in data.result"),
    ({"status": "success", "data": {"resultType": "scalar", "result": [1, "0.5"]}},
     "answered without a vector in data.result (TypeError)"),
    ([1, 2], "answered HTTP 200 with JSON that is not the query API's (not an object)"),
    ("ok", "answered HTTP 200 with JSON that is not the query API's (not an object)"),
])
def test_an_answer_that_is_not_the_query_apis_is_a_prometheus_error_and_rolls_the_canary_back(
        monkeypatch: pytest.MonkeyPatch, body: object, problem: str) -> None:
    """A proxy's page or a success without a vector: as a traceback it would leave the canary at its step."""
    def odd(url: str, timeout: float) -> Prometheus:
        prometheus = Prometheus(url, timeout)
        prometheus.client = httpx.Client(transport=httpx.MockTransport(lambda _: httpx.Response(200, json=body)))
        return prometheus
    with pytest.raises(PrometheusError, match=f"^Prometheus at http://prometheus:9090 {re.escape(problem)}"):
        odd("http://prometheus:9090", 1).error_ratio("payments-dev", "merchant-api", "green", "5m")
    monkeypatch.setattr(promotion, "health_problems", lambda base_url, spec, timeout: [])
    monkeypatch.setattr(promotion, "Prometheus", odd)
    stack = Walked("merchant-api", M_ACTIVE, M_STANDBY)
    with pytest.raises(CheckFailed) as raised:
        walk("canary", stack, M_NEW)
    assert problem in str(raised.value) and "rolled back to weight 0" in str(raised.value)
    assert stack.asked[-1] == {"services.merchant-api.canary.weight": "0"}


@pytest.fixture
def prod_waits_in_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Prod's 15-minute bakes and 5-minute watch, waived for tests of what comes after them."""
    monkeypatch.setattr(promotion, "PROD_MINIMUM", {"bake": 0.0, "watch": 0.0})


class Prod(Walked):
    """The same stack file, as prod's: its release policy takes high-risk services to traffic only by canary."""

    def config(self, environment: str) -> dict[str, object]:
        return {**super().config(environment), "environment": "prod", "upstream_stack": "test",
                "release_policy": stack_config("prod")["release_policy"]}


def test_a_promotion_of_a_high_risk_service_where_it_needs_a_canary_is_refused_before_anything_changes(
        probes: Callable[..., None], prod_waits_in_seconds: None) -> None:
    """The program would refuse only the switch, after the standby got the image and its migrations ran."""
    stack = Prod("payin-api", BLUE, GREEN)
    with pytest.raises(UsageError) as raised:
        walk("promote", stack, P_NEW, synthetic_hook="true")
    assert str(raised.value) == (
        "payin-api is high-risk and dev takes its new releases only through a canary "
        "(release_policy.canary_for_high_risk), so a blue/green switch to it would be refused; use "
        f"`release canary dev payin-api {P_NEW}`")
    assert stack.asked == []


@pytest.mark.parametrize(("stack", "image"), [
    (Walked("payin-api", BLUE, GREEN), P_NEW),  # dev: blue/green
    (Prod("merchant-api", M_ACTIVE, M_STANDBY), M_NEW),  # a standard-risk service
    (Prod("payin-api", BLUE, GREEN), GREEN)])  # a release that served prod before: a roll forward again
def test_a_promotion_the_release_policy_lets_switch_goes_ahead(probes: Callable[..., None], stack: Walked,
                                                               image: str, prod_waits_in_seconds: None) -> None:
    walk("promote", stack, image, synthetic_hook="true")
    assert stack.services[stack.service]["active"] == "green"  # type: ignore[index]


def test_a_canary_resumed_at_100_steps_back_for_a_baseline_and_can_be_promoted(probes: Callable[..., None]) -> None:
    """At 100% the stable colour serves nothing: a run that starts there has no baseline and never promotes."""
    stack = Walked("merchant-api", M_ACTIVE, M_NEW)
    stack.set("services.merchant-api.canary.weight", "100")  # a run killed after it set 100%
    probes(blue=lambda: None if stack.services["merchant-api"]["canary"]["weight"] == "100" else 0.001,  # type: ignore[index]
           green=0.001)
    walk("canary", stack, M_NEW)
    assert stack.asked == [{"services.merchant-api.canary.weight": "50"},
                           {"services.merchant-api.canary.weight": "100"},
                           {"services.merchant-api.active": "green", "services.merchant-api.canary.weight": "0"}]


def test_the_release_command_starts_without_the_models() -> None:
    """A rollback in an incident starts at once: `release` imports the settings models and pydantic only for the
    commands that use them (release.py's docstring), and a message helper must not pull them in."""
    loaded = subprocess.run([sys.executable, "-c", "import sys, release_infra_tools.release; "
                             "print(sorted(m for m in ('pydantic', 'core.settings') if m in sys.modules))"],
                            cwd=ROOT, capture_output=True, text=True, check=True, timeout=60).stdout
    assert loaded == "[]\n"


def test_a_prod_promotion_without_a_trace_store_is_refused_before_anything_changes(
        probes: Callable[..., None], prod_waits_in_seconds: None) -> None:
    stack = Prod("merchant-api", M_ACTIVE, M_STANDBY)
    with pytest.raises(UsageError) as raised:
        walk("promote", stack, M_NEW, traces_url=None)  # type: ignore[arg-type]
    assert str(raised.value) == (
        "prod checks after the switch that traces go through the gateway into the new colour (seed 000 §9); give "
        "--traces-url (or RELEASE_TRACES_URL), the trace store's Jaeger query API")
    assert stack.asked == []


def test_a_promotion_checks_the_traces_into_the_new_colour_once_after_the_switch(
        probes: Callable[..., None], prod_waits_in_seconds: None, capsys: pytest.CaptureFixture[str]) -> None:
    stack = Prod("merchant-api", M_ACTIVE, M_STANDBY)
    walk("promote", stack, M_NEW, watch="2", interval="1")
    assert Traces.asked == ["green"]  # at the first look, not at every one
    out = capsys.readouterr().out
    assert "P95 against 100.0ms, traces through the gateway)" in out
    assert "  traces: 1 of 1 traces through the gateway into the colour, after 49 requests\n" in out


def test_a_promotion_whose_traces_stop_at_the_gateway_is_flipped_back(probes: Callable[..., None]) -> None:
    stack = Walked("merchant-api", M_ACTIVE, M_STANDBY)
    Traces.problem = "no trace reached merchant-api on green: ..."
    with pytest.raises(CheckFailed) as raised:
        walk("promote", stack, M_NEW, traces_url="http://traces")
    assert str(raised.value) == ("green failed its checks during the watch: no trace reached merchant-api on green: "
                                 f"...; flipped back: traffic on blue ({M_ACTIVE})")
    assert stack.asked[-1] == {"services.merchant-api.active": "blue"}


class Clock(Stop):
    """A Stop whose sleeps take no time, and are counted."""

    def __init__(self) -> None:
        super().__init__()
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.check()


def test_a_trace_store_that_cannot_answer_stops_the_promotion_before_the_switch(probes: Callable[..., None]) -> None:
    stack, clock = Walked("merchant-api", M_ACTIVE, M_STANDBY), Clock()
    Traces.down = "the trace store at http://traces cannot be queried: ConnectError"
    with pytest.raises(CheckFailed) as raised:
        walk("promote", stack, M_NEW, clock, traces_url="http://traces", trace_wait="20s")
    assert str(raised.value) == ("the trace check cannot start: the trace store at http://traces cannot be queried: "
                                 f"ConnectError; traffic stays on blue ({M_ACTIVE}), green back on {M_STANDBY}")
    assert len(Traces.checked) == 10 and clock.slept == [2] * 9  # asked again, for --trace-wait
    assert all("services.merchant-api.active" not in asked for asked in stack.asked)


def test_a_trace_store_down_for_a_moment_before_the_switch_is_asked_again(probes: Callable[..., None]) -> None:
    stack = Walked("merchant-api", M_ACTIVE, M_STANDBY)
    Traces.down = "the trace store at http://traces answered HTTP 502 to /api/services"
    Traces.fails = staticmethod(lambda number: number < 3)  # type: ignore[assignment]
    walk("promote", stack, M_NEW, Clock(), traces_url="http://traces")
    assert len(Traces.checked) == 3 and Traces.asked == ["green"]
    assert stack.services["merchant-api"]["active"] == "green"  # type: ignore[index]


def test_a_gateway_this_machine_cannot_reach_stops_the_promotion_before_the_switch(
        probes: Callable[..., None], monkeypatch: pytest.MonkeyPatch) -> None:
    """prod's gateway admits only the edge and the release checks' namespaces: found only after the switch, a run
    from anywhere else would flip back every release."""
    monkeypatch.setattr(promotion, "through_gateway", lambda *_: Probes([], Counter({"ConnectTimeout": 3}), None))
    stack = Walked("merchant-api", M_ACTIVE, M_STANDBY)
    with pytest.raises(CheckFailed) as raised:
        walk("promote", stack, M_NEW, traces_url="http://traces")
    assert str(raised.value) == (
        "the trace check cannot start: the gateway cannot be reached: 3 requests through "
        f"http://gateway.payments-dev.svc (3 x ConnectTimeout); traffic stays on blue ({M_ACTIVE}), green back on "
        f"{M_STANDBY}")


def test_the_trace_check_is_skipped_when_the_first_look_already_failed(
        probes: Callable[..., None], monkeypatch: pytest.MonkeyPatch) -> None:
    """Its requests and wait would keep live traffic on a colour already known to be broken."""
    monkeypatch.setattr(promotion, "health_problems", lambda base_url, spec, timeout: (
        ["http://active/health/ready: HTTP 500"] if base_url == "http://active" else []))
    stack = Walked("merchant-api", M_ACTIVE, M_STANDBY)
    with pytest.raises(CheckFailed, match="^green failed its checks during the watch: http://active/health/ready: "):
        walk("promote", stack, M_NEW, traces_url="http://traces")
    assert Traces.asked == []


@pytest.mark.parametrize("answered", [0, 1])
def test_a_canary_checks_the_trace_store_before_its_first_step_and_its_final_switch(
        probes: Callable[..., None], answered: int) -> None:
    stack = Walked("merchant-api", M_ACTIVE, M_STANDBY)
    Traces.down = "the trace store at http://traces answered HTTP 503 to /api/services"
    Traces.fails = staticmethod(lambda number: number > answered)  # type: ignore[assignment]
    with pytest.raises(CheckFailed) as raised:
        walk("canary", stack, M_NEW, Clock(), traces_url="http://traces", trace_wait="10s")
    assert Traces.checked == [("gateway", "merchant-api")] * (answered + 5)  # 5 tries in 10s
    back = "rolled back to weight 0" if answered else "weight 0"  # down after the bakes, or before any step
    assert str(raised.value).startswith("the trace check cannot start: the trace store at http://traces answered "
                                        f"HTTP 503 to /api/services; {back}, all traffic on blue")
    assert len(stack.asked) == (6 if answered else 1)  # the image, then 4 steps and the rollback to weight 0
    assert all("services.merchant-api.active" not in asked for asked in stack.asked)


@pytest.mark.parametrize(("gateway", "rate"), [(None, 10), ({"rate_limit": {"max_rate": 4}}, 4),
                                               ('{"rate_limit": {"max_rate": 6}}', 6)])
def test_the_trace_checks_requests_keep_to_the_stacks_health_route_limit(gateway: object, rate: int) -> None:
    """The rendered health routes allow min(max_rate, 10) a second and pod; faster, the limit refuses them."""
    stack = Walked("merchant-api", M_ACTIVE, M_STANDBY)
    if gateway is not None:
        stack.settings["gateway"] = gateway  # a map in the stack file, or the JSON text `pulumi config` hands out
    check = promotion.TraceCheck(ReleaseOptions.build(traces_url="http://traces"),
                                 target(stack, "dev", "merchant-api"))  # type: ignore[arg-type]
    assert check.gateway.health_rate == rate
    assert check.gateway.name == "gateway"
    assert check.gateway.url == "http://gateway.payments-dev.svc"
    assert (check.gateway.sample_rate, check.gateway.joins_callers_traces) == (1.0, True)


@pytest.mark.parametrize(("gateway", "message"), [
    ({"rate_limit": {"max_rate": 0}},
     "release-infra:gateway.rate_limit.max_rate = 0: input should be greater than or equal to 1"),
    ('{"rate_limit": null}', "release-infra:gateway.rate_limit = null: input should be a valid dictionary or instance "
                             "of RateLimit"),
    ("[1]", "release-infra:gateway = [1]: input should be a valid dictionary or instance of RateLimit"),
    ({"rate_limit": {"max_rat": 4}}, "release-infra:gateway.rate_limit.max_rat: unknown key (did you mean "
                                     "max_rate?); known keys are max_rate, client_max_rate"),
])
def test_a_gateway_rate_limit_the_program_would_refuse_stops_the_promotion_before_anything_changes(
        probes: Callable[..., None], gateway: object, message: str) -> None:
    """The standby may already run the image: then no update would let the program refuse the key first."""
    stack = Walked("merchant-api", M_ACTIVE, M_STANDBY)
    stack.settings["gateway"] = gateway
    with pytest.raises(UsageError) as raised:
        walk("promote", stack, M_NEW, traces_url="http://traces")
    assert str(raised.value) == f'invalid config for stack "dev": {message}'
    assert stack.asked == []
