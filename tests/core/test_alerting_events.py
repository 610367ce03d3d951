"""Classifying a stack update into deployment events, and the alerts that carry them."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from core.alerting.events import EventKind, ReleaseState, applied_states, classify, failure, postable_alerts
from core.release.canary import remaining_steps
from tests.support.stacks import settings

IMG = "registry.pay.internal/payin-api:"
V220, V230, V240 = IMG + "9f8e7d6-v2.2.0", IMG + "a1b2c3d-v2.3.0", IMG + "5e6f7a8-v2.4.0"
RC1, RC2 = IMG + "1111111-v2.4.0-rc.1", IMG + "2222222-v2.4.0-rc.2"
V250 = IMG + "6f7a8b9-v2.5.0"
BUILD_1, BUILD_2 = IMG + "aaaaaaa-v2.4.0", IMG + "bbbbbbb-v2.4.0"  # 2.4.0 built twice: a new tag, the same version
# 2.3.0 live on blue, 2.2.0, which served before it, kept on green for rollback
LIVE = ReleaseState("blue", blue=V230, green=V220, served=(V220, V230))
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)


def kinds(before: ReleaseState | None, after: ReleaseState) -> list[tuple[str, str, str]]:
    return [(e.kind.value, e.colour, e.version) for e in classify("payin-api", before, after)]


def after_live(active: str, blue: str, green: str) -> ReleaseState:
    """An update after LIVE, with the history its outputs carry (ReleaseState.of keeps the colours' builds)."""
    state = ReleaseState(active, blue=blue, green=green)  # type: ignore[arg-type]
    served = dict.fromkeys([*LIVE.served, state.image(state.active)])
    return ReleaseState(active, blue=blue, green=green,  # type: ignore[arg-type]
                        served=tuple(image for image in served if image in (blue, green)))


@pytest.mark.parametrize(("after", "expected"), [
    (("blue", V230, V220), []),
    # README's step 1: a new build on the standby colour; traffic stays.
    (("blue", V230, V240), [("deployment-started", "green", "2.4.0")]),
    # Switching to the colour that keeps the build that served before is a rollback.
    (("green", V230, V220), [("rollback", "green", "2.2.0")]),
    # The live colour's image replaced in place: judged by what served before too.
    (("blue", V240, V220), [("deployment-succeeded", "blue", "2.4.0")]),
    (("blue", V220, V220), [("rollback", "blue", "2.2.0")]),
    # New build and switch in one update: straight to live.
    (("green", V230, V240), [("deployment-succeeded", "green", "2.4.0")]),
    # Switch back, and the old colour gets the next build at once: a start and a rollback.
    (("green", V240, V220), [("deployment-started", "blue", "2.4.0"), ("rollback", "green", "2.2.0")]),
])
def test_an_update_is_classified_by_what_moved_and_in_which_direction(after, expected) -> None:
    assert kinds(LIVE, after_live(*after)) == expected


def test_an_older_version_that_never_served_goes_live_as_a_release() -> None:
    """A hotfix on an older line (2.2.5 while 2.3.0 serves) is a release, announced as one; going back to 2.3.0
    after it is the rollback."""
    hotfix = IMG + "7a7a7a7-v2.2.5"
    staged = ReleaseState("blue", blue=V230, green=hotfix, served=(V230,))
    released = ReleaseState("green", blue=V230, green=hotfix, served=(V230, hotfix))
    assert kinds(staged, released) == [("deployment-succeeded", "green", "2.2.5")]
    assert kinds(released, staged) == [("rollback", "blue", "2.3.0")]


def test_a_promotion_then_its_rollback() -> None:
    staged = ReleaseState("blue", blue=V230, green=V240, served=(V230,))
    promoted = ReleaseState("green", blue=V230, green=V240, served=(V230, V240))
    rolled_back = ReleaseState("blue", blue=V230, green=V240, served=(V230, V240))
    assert kinds(staged, promoted) == [("deployment-succeeded", "green", "2.4.0")]
    assert kinds(promoted, rolled_back) == [("rollback", "blue", "2.3.0")]
    [event] = classify("payin-api", promoted, rolled_back)
    assert event.previous_version == "2.4.0" and event.summary == "payin-api rolled back from 2.4.0 to 2.3.0 (blue)"


def test_back_to_an_earlier_build_of_the_same_version_is_a_rollback() -> None:
    staged = ReleaseState("blue", blue=BUILD_1, green=BUILD_2, served=(BUILD_1,))
    promoted = ReleaseState("green", blue=BUILD_1, green=BUILD_2, served=(BUILD_1, BUILD_2))
    rolled_back = ReleaseState("blue", blue=BUILD_1, green=BUILD_2, served=(BUILD_1, BUILD_2))
    assert kinds(staged, promoted) == [("deployment-succeeded", "green", "2.4.0")]
    [event] = classify("payin-api", promoted, rolled_back)
    assert (event.kind, event.colour, event.previous_image) == (EventKind.ROLLBACK, "blue", BUILD_2)
    assert event.summary == "payin-api rolled back from bbbbbbb-v2.4.0 to aaaaaaa-v2.4.0 (blue)"
    # Promoting the rebuild again: it served before, but after the first build did.
    [event] = classify("payin-api", rolled_back, promoted)
    assert event.kind == EventKind.SUCCEEDED
    assert event.summary == "payin-api bbbbbbb-v2.4.0 is live (green), replacing aaaaaaa-v2.4.0"


def test_back_to_the_first_build_while_replacing_the_other_is_a_rollback_as_the_policy_says() -> None:
    """The rebuild leaves both colours in the same update, so only the state before knows it served second."""
    promoted = ReleaseState("green", blue=BUILD_1, green=BUILD_2, served=(BUILD_1, BUILD_2))
    rebuilt = BUILD_2.replace("bbbbbbb", "ccccccc")
    back = ReleaseState("blue", blue=BUILD_1, green=rebuilt, served=(BUILD_1,))
    assert [event.kind for event in classify("payin-api", promoted, back)] == [EventKind.STARTED, EventKind.ROLLBACK]


CANARY = ReleaseState("blue", blue=V230, green=V240, canary_weight=25)  # 2.4.0 on standby green has 25%


@pytest.mark.parametrize(("after", "expected"), [
    (ReleaseState("blue", blue=V230, green=V240, canary_weight=50), []),  # a step forward
    (ReleaseState("blue", blue=V230, green=V240, canary_weight=0),
     ("rollback", "payin-api canary rolled back from 25% to 0% (green 2.4.0), 100% on blue 2.3.0")),
    # A step back that is no undo: no event (`release canary` resuming at 100% steps back one step, forward).
    (ReleaseState("blue", blue=V230, green=V240, canary_weight=5), None),
    # A new build on the standby starts its canary again from 0: a start, not a rollback.
    (ReleaseState("blue", blue=V230, green=V250, canary_weight=0),
     ("deployment-started", "payin-api 2.5.0 deployed to standby green, not yet live")),
])
def test_a_canary_undone_to_0_is_a_rollback(after, expected) -> None:
    events = [(e.kind.value, e.summary) for e in classify("payin-api", CANARY, after)]
    assert events == ([expected] if expected else [])
    if expected and expected[0] == "rollback":
        [event] = classify("payin-api", CANARY, after)
        assert (event.colour, event.image, event.previous_image) == ("blue", V230, V240)


def test_resuming_a_canary_left_at_100_is_no_rollback() -> None:
    """`release canary` resuming at 100% steps back one step first (remaining_steps): a forward move, which must
    not reach #incidents or page on-call."""
    at_100 = ReleaseState("blue", blue=V230, green=V240, canary_weight=100, served=(V230,))
    resumed = ReleaseState("blue", blue=V230, green=V240, canary_weight=remaining_steps([5, 25, 50, 100], 100)[0],
                           served=(V230,))
    assert resumed.canary_weight == 50 and classify("payin-api", at_100, resumed) == []
    assert kinds(at_100, ReleaseState("blue", blue=V230, green=V240, served=(V230,))) == [("rollback", "blue", "2.3.0")]


def test_a_finished_canary_is_a_successful_deployment() -> None:
    at_100 = ReleaseState("blue", blue=V230, green=V240, canary_weight=100, served=(V230,))
    finished = ReleaseState("green", blue=V230, green=V240, canary_weight=0, served=(V230, V240))
    assert kinds(at_100, finished) == [("deployment-succeeded", "green", "2.4.0")]


def test_release_candidates_are_releases_like_any_other() -> None:
    assert kinds(ReleaseState("blue", RC1, RC2, served=(RC1,)),
                 ReleaseState("green", RC1, RC2, served=(RC1, RC2)))[0][0] == "deployment-succeeded"
    assert kinds(ReleaseState("green", RC1, RC2, served=(RC1, RC2)),
                 ReleaseState("blue", RC1, RC2, served=(RC1, RC2)))[0][0] == "rollback"
    assert kinds(ReleaseState("blue", V230, RC2, served=(V230,)),
                 ReleaseState("green", V230, RC2, served=(V230, RC2)))[0][0] == "deployment-succeeded"


def test_a_new_service_is_a_successful_deployment() -> None:
    [event] = classify("payin-api", None, LIVE)
    assert (event.kind, event.version, event.previous_image) == (EventKind.SUCCEEDED, "2.3.0", None)


def service_outputs(active: str, blue: str, green: str, served: list[str], weight: int = 5) -> dict:
    return {"active_colour": active, "canary_weight": weight, "history": {"ran": served, "served": served},
            "colours": {"blue": {"image": blue, "version": "x", "replicas": 2},
                        "green": {"image": green, "version": "x", "replicas": 2}}}


def test_the_last_outputs_give_each_services_applied_release() -> None:
    outputs = {"services": {
        "payin-api": service_outputs("blue", V230, V220, [V220 + "@sha256:" + "a" * 64, V230, V220]),
        "payout-api": {"active_colour": "green", "colours": {"blue": {"image": V230}}},  # recorded in part
        "orders-api": service_outputs("amber", V230, V220, []),
    }}
    assert applied_states(outputs) == {"payin-api": ReleaseState("blue", V230, V220, 5, (V220, V230, V220))}
    assert applied_states({}) == {} and applied_states({"services": {"x": "broken"}}) == {}
    assert applied_states({"services": []}) == {}
    # Malformed parts count as nothing, as in the release policy's reading of the same outputs.
    odd = {**service_outputs("blue", V230, V220, []), "canary_weight": "n/a", "history": ["not", "a", "map"]}
    assert applied_states({"services": {"payin-api": odd}}) == {"payin-api": ReleaseState("blue", V230, V220, 0,
                                                                                         (V230,))}


def test_an_applied_release_is_pinned_as_it_ran() -> None:
    digest = "sha256:" + "c" * 64
    outputs = service_outputs("blue", V230, V220, [V220, V230])
    outputs["colours"]["blue"]["digest"] = digest
    [state] = applied_states({"services": {"payin-api": outputs}}).values()
    assert (state.blue, state.green) == (f"{V230}@{digest}", V220)


def test_a_service_the_stack_already_ran_is_no_first_release() -> None:
    """A new events resource for a live service (renamed, or dropped from the state) compares with the last
    outputs: unchanged is no event, a switch since is that switch."""
    [applied] = applied_states({"services": {"payin-api": service_outputs("blue", V230, V220, [V220, V230],
                                                                           weight=0)}}).values()
    assert applied == LIVE and classify("payin-api", applied, LIVE) == []
    assert kinds(applied, after_live("green", V230, V220)) == [("rollback", "green", "2.2.0")]


@pytest.mark.parametrize("stack", ["sandbox", "dev", "test", "prod"])
def test_state_of_every_real_release(stack: str) -> None:
    for name, release in settings(stack).services.items():
        state = ReleaseState.of(release)
        assert state.image(release.active) == str(release.image(release.active))
        assert ReleaseState.from_inputs({"active": state.active, "images": {"blue": state.blue,
                                                                            "green": state.green}}) == state
        assert classify(name, state, state) == []


def test_alerts_carry_the_labels_routing_needs_and_expire() -> None:
    events = classify("payin-api", LIVE, ReleaseState("green", blue=V230, green=V240))
    [alert] = postable_alerts(events, stack="prod", environment="prod", namespace="payments-prod", now=NOW,
                              sequence=1)
    labels = alert["labels"]
    assert {k: labels[k] for k in ("alertname", "event", "service", "environment", "namespace", "color", "version")} \
        == {"alertname": "DeploymentSucceeded", "event": "deployment-succeeded", "service": "payin-api",
            "environment": "prod", "namespace": "payments-prod", "color": "green", "version": "2.4.0"}
    assert alert["startsAt"] == "2026-11-22T12:00:00Z" and alert["endsAt"] == "2026-11-22T13:00:00Z"
    assert alert["annotations"] == {"summary": "payin-api 2.4.0 is live (green), replacing 2.3.0", "image": V240,
                                    "previous_image": V230}


def test_each_event_is_distinct_but_a_retry_of_the_same_post_is_not() -> None:
    """A retry counts from the same saved state (the same ``sequence``), whenever it runs: the same id, so
    Alertmanager deduplicates it. The next post of the same change (A -> B -> A -> B) counts one more: a new id."""
    events = classify("payin-api", LIVE, ReleaseState("green", blue=V230, green=V240))

    def event_id(sequence: int, now: datetime = NOW) -> str:
        [alert] = postable_alerts(events, stack="prod", environment="prod", namespace="payments-prod", now=now,
                                  sequence=sequence)
        return alert["labels"]["event_id"]

    assert event_id(3) == event_id(3, NOW.replace(minute=3)) != event_id(4)


def test_two_failures_of_one_run_are_two_alerts() -> None:
    """A re-run of a failed job keeps its run id, so its reason; failing again within the hold, it must still reach
    #deployments and #incidents, not merge into the first failure's alert."""
    events = [failure("payin-api", ReleaseState("blue", blue=V230, green=V240), "run 4711")]

    def event_id(now: datetime) -> str:
        [alert] = postable_alerts(events, stack="prod", environment="prod", namespace="payments-prod", now=now,
                                  sequence=0)
        return alert["labels"]["event_id"]

    assert event_id(NOW) != event_id(NOW.replace(minute=20)) and event_id(NOW) == event_id(NOW)


def test_a_failure_names_the_build_that_did_not_make_it() -> None:
    event = failure("payin-api", ReleaseState("blue", blue=V230, green=V240), "pulumi up failed")
    assert (event.kind, event.colour, event.version) == (EventKind.FAILED, "green", "2.4.0")
    assert event.record()["kind"] == "deployment-failed"
    # A failed switch: the colour traffic was to move to, named in the desired state as its active colour.
    switch = failure("payin-api", ReleaseState("green", blue=V230, green=V240), "pulumi up failed", colour="green")
    assert (switch.colour, switch.version) == ("green", "2.4.0")


def test_a_release_put_back_after_failing_its_checks_is_a_failed_deployment() -> None:
    """`release promote` put 2.4.0 on green; its checks failed and green gets 2.2.0 back, which served before:
    #deployments and #incidents hear of a failed deployment, not of 2.2.0 "deployed to standby"."""
    staged = ReleaseState("blue", blue=V230, green=V240, served=(V230,))
    put_back = ReleaseState("blue", blue=V230, green=V220, served=(V220, V230))
    [event] = classify("payin-api", staged, put_back)
    assert (event.kind, event.colour, event.version, event.previous_version) == (
        EventKind.FAILED, "green", "2.2.0", "2.4.0")
    assert event.summary == "payin-api 2.4.0 withdrawn from standby green before it took traffic; green runs 2.2.0 again"
    # A build that served, replaced on the standby by the next one, is a new deployment as before.
    assert kinds(put_back, ReleaseState("blue", blue=V230, green=V250, served=(V230,))) == [
        ("deployment-started", "green", "2.5.0")]
