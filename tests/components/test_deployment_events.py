"""DeploymentEvents under mocks: any number of them in one process, each with the same serialized provider; the
provider's update of existing stacks, and the pipeline's `failed` command when Alertmanager is unreachable."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from components.deployment_events import DeploymentEvents, DeploymentEventsProvider, PostFailed, main, post_alerts
from core.alerting.events import ReleaseState
from tests.support.mock_engine import run_program
from tests.support.servers import free_port

SERVICES = 1000  # beyond the ~980 dynamic resources after which the SDK's own pickling exceeds the recursion limit
OLD = "registry.pay.internal/payin-api:9f8e7d6-v2.2.4"
NEW = "registry.pay.internal/payin-api:a1b2c3d-v2.3.0"
NOW = datetime(2026, 11, 24, 10, 30, tzinfo=timezone.utc)


def test_a_thousand_services_register_in_one_process() -> None:
    def program() -> None:
        for index in range(SERVICES):
            DeploymentEvents(f"prod-service-{index:04d}-deployment", stack="prod", environment="prod",
                             namespace="payments-prod", service=f"service-{index:04d}",
                             release=ReleaseState("blue", f"registry.pay.internal/s:{index:07x}-v1.0.0",
                                                  f"registry.pay.internal/s:{index + 1:07x}-v1.0.1"),
                             alertmanager_url=None)

    run = run_program(program, stack="prod", config={})
    assert len(run.registrations) == SERVICES
    assert len({registration.inputs["__provider"] for registration in run.registrations}) == 1


def props(url: str | None, **changes: Any) -> dict[str, Any]:
    return {"stack": "prod", "environment": "prod", "namespace": "payments-prod", "service": "payin-api",
            "active": "green", "images": {"blue": OLD, "green": NEW}, "alertmanager_url": url,
            "served": [OLD, NEW], "canary_weight": 0, **changes}


def test_state_from_before_the_served_and_canary_inputs_updates_once_and_posts_nothing() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens: a post would fail the update
    provider = DeploymentEventsProvider()
    olds = {key: value for key, value in props(url).items() if key not in ("served", "canary_weight")}
    assert provider.diff("prod/payin-api", olds, props(url)).changes
    result = provider.update("prod/payin-api", {**olds, "events": [], "delivered": False}, props(url))
    assert result.outs["events"] == [] and result.outs["delivered"] is False
    # The engine hands numbers back as floats: the same weight is no change.
    assert not provider.diff("prod/payin-api", {**result.outs, "canary_weight": 0.0}, props(url)).changes


def test_a_new_resource_for_a_service_the_stack_ran_reports_only_what_changed_since() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens: a post would fail the create
    provider = DeploymentEventsProvider()
    applied = {"active": "green", "images": {"blue": OLD, "green": NEW}, "canary_weight": 0, "served": [OLD, NEW]}
    result = provider.create({**props(url), "applied": applied})
    assert result.outs["events"] == [] and result.outs["delivered"] is False
    assert "applied" not in result.outs  # read by create alone: an update never sees it differ
    assert not provider.diff("prod/payin-api", result.outs, {**props(url), "applied": None}).changes
    first = provider.create(props(None)).outs  # a service new to the stack
    assert [event["summary"] for event in first["events"]] == ["payin-api 2.3.0 is live (green), first release here"]


def test_the_failed_command_reports_an_unreachable_alertmanager_in_one_line(monkeypatch, capsys) -> None:
    monkeypatch.setattr("components.deployment_events.time.sleep", lambda _: None)
    url = f"http://127.0.0.1:{free_port()}"
    status = main(["failed", f"--alertmanager-url={url}", "--stack=prod", "--environment=prod",
                   "--namespace=payments-prod", "--service=payin-api", "--active=green", f"--blue={OLD}",
                   f"--green={NEW}", "--reason=pulumi up failed"])
    err = capsys.readouterr().err
    assert status == 1
    assert err.count("\n") == 1 and "Traceback" not in err and "`pulumi up`" not in err
    assert err.startswith(f"posting deployment-failed for payin-api to {url} failed: ")
    assert "Connection refused" in err


@pytest.mark.parametrize("host", ["127.0.0.1:9", "alertmanager.pay.internal"])  # without a port urllib's error
def test_the_failed_command_never_prints_credentials_of_the_url(monkeypatch, capsys, host: str) -> None:  # names it
    monkeypatch.setattr("components.deployment_events.time.sleep", lambda _: None)
    monkeypatch.setattr("components.deployment_events.urllib.request.urlopen",
                        lambda *_args, **_kwargs: pytest.fail("posted to a URL the program refuses"))
    status = main(["failed", f"--alertmanager-url=https://events:pa55w0rd@{host}", "--stack=prod",
                   "--environment=prod", "--namespace=payments-prod", "--service=payin-api", "--active=green",
                   f"--blue={OLD}", f"--green={NEW}", "--reason=pulumi up failed"])
    err = capsys.readouterr().err
    assert status == 1 and "pa55w0rd" not in err
    assert err == (f"posting deployment-failed for payin-api to https://[secret]@{host} failed: must be an http(s) "
                   "URL without credentials or a query, e.g. http://alertmanager.monitoring:9093\n")


def test_the_failed_command_reports_a_malformed_url_in_one_line(capsys) -> None:
    status = main(["failed", "--alertmanager-url=not-a-url", "--stack=prod", "--environment=prod",
                   "--namespace=payments-prod", "--service=payin-api", "--active=green", f"--blue={OLD}",
                   f"--green={NEW}", "--reason=pulumi up failed"])
    err = capsys.readouterr().err
    assert status == 1 and err.count("\n") == 1 and err.startswith("posting deployment-failed for payin-api to ")


def test_a_failed_posts_reason_shows_no_credential_even_where_urllib_repeats_the_url() -> None:
    failed = PostFailed(1, "://events:pa55w0rd@am:9093",
                        "unknown url type: '://events:pa55w0rd@am:9093/api/v2/alerts'")
    assert "pa55w0rd" not in str(failed) and "pa55w0rd" not in failed.reason


def test_a_port_that_is_no_number_is_a_failed_post_not_a_traceback() -> None:
    with pytest.raises(PostFailed) as failed:
        post_alerts("http://alertmanager:notaport", [{"labels": {}}], sleep=lambda _: None)
    assert "port" in failed.value.reason


def test_a_retried_update_posts_the_same_event_id_and_a_real_repeat_a_new_one(monkeypatch) -> None:
    """The first update's post reached Alertmanager but the engine saved nothing (a timeout, a cancelled step):
    the retry has the same olds and must send the same id, or the rollback pages twice."""
    posts: list[list[dict[str, Any]]] = []
    monkeypatch.setattr("components.deployment_events.post_alerts", lambda _url, alerts: posts.append(alerts))
    url = "http://alertmanager:9093"
    olds, rollback = {**props(url), "sequence": 4}, props(url, active="blue")
    first = DeploymentEventsProvider(clock=lambda: NOW).update("prod/payin-api", olds, rollback).outs
    DeploymentEventsProvider(clock=lambda: NOW + timedelta(minutes=3)).update("prod/payin-api", olds, rollback)
    assert first["sequence"] == 5
    [[first_post], [retry]] = posts
    assert first_post["labels"]["event"] == "rollback"
    assert retry["labels"]["event_id"] == first_post["labels"]["event_id"]
    # Promoted again (green, the 6th post) and rolled back again: a new rollback, a new id.
    again = DeploymentEventsProvider().update("prod/payin-api", {**olds, "sequence": 6}, rollback).outs
    assert again["sequence"] == 7 and posts[-1][0]["labels"]["event_id"] != first_post["labels"]["event_id"]


def test_a_post_that_is_not_sent_counts_nothing() -> None:
    outs = DeploymentEventsProvider().update("prod/payin-api", {**props(None), "sequence": 2},
                                             props(None, active="blue")).outs
    assert outs["events"] and outs["sequence"] == 2


@pytest.mark.parametrize("option", ["blue", "green"])
def test_the_failed_command_names_a_malformed_image_in_one_line(option, capsys) -> None:
    images = {"blue": OLD, "green": NEW, option: "payin-api:latest"}
    status = main(["failed", "--alertmanager-url=http://alertmanager:9093", "--stack=prod", "--environment=prod",
                   "--namespace=payments-prod", "--service=payin-api", "--active=green", f"--blue={images['blue']}",
                   f"--green={images['green']}", "--reason=pulumi up failed"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"--{option} 'payin-api:latest': ")
    assert "expected <registry>/<service>:<git-sha>-v<semver>" in err
