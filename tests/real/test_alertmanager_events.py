"""Deployment events against a real Alertmanager on loopback, loaded with prod's routing as the operator builds it.

Slack, PagerDuty and the dead-man's switch are a local sink, so a test sees the notification each receiver sends.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from pulumi.automation import Deployment

from components.deployment_events import DeploymentEventsProvider, PostFailed, post_alerts
from core.alerting import routing
from core.alerting.settings import load_alerting
from release_infra_tools import release
from release_infra_tools.stacks import Environments
from tests.real.conftest import AlertmanagerServer, Sink, free_port
from tests.support.stacks import settings

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "payments-prod"
PREFIX = f"{NAMESPACE}/{routing.CONFIG_NAME}/"
OLD = "registry.pay.internal/payin-api:9f8e7d6-v2.2.4"
NEW = "registry.pay.internal/payin-api:a1b2c3d-v2.3.0"
NEXT = "registry.pay.internal/payin-api:5e6f7a8-v2.4.0"
REBUILD = "registry.pay.internal/payin-api:0f1e2d3-v2.3.0"  # 2.3.0 built again: a new tag, the same version
SECRETS = {
    "alerting_slack_deployments_url": "https://hooks.slack.test/services/T0/B0/deployments",
    "alerting_slack_incidents_url": "https://hooks.slack.test/services/T0/B0/incidents",
    "alerting_slack_alerts_url": "https://hooks.slack.test/services/T0/B0/alerts",
    "alerting_pagerduty_routing_key": "0123456789abcdef0123456789abcdef",
    "alerting_watchdog_url": "https://deadman.test/ping/prod",
}


@pytest.fixture
def alertmanager_config(alertmanager_sink: Sink) -> dict[str, Any]:
    """Prod's AlertmanagerConfig merged as the operator does, every endpoint pointing at the sink."""
    stack = settings("prod")
    alerting = load_alerting("prod", stack.environment, None, SECRETS, live=False)
    data = {
        "slack-deployments-url": alertmanager_sink.url + "/slack/deployments",
        "slack-incidents-url": alertmanager_sink.url + "/slack/incidents",
        "slack-alerts-url": alertmanager_sink.url + "/slack/alerts",
        "pagerduty-routing-key": SECRETS["alerting_pagerduty_routing_key"],
        "watchdog-url": alertmanager_sink.url + "/watchdog",
    }
    config = routing.operator_view(routing.alertmanager_config(stack, alerting), data)
    for receiver in config["receivers"]:
        for pagerduty in receiver.get("pagerduty_configs", []):
            pagerduty["url"] = alertmanager_sink.url + "/pagerduty"
    return config


def props(url: str | None, active: str = "green", blue: str = OLD, green: str = NEW, canary_weight: int = 0,
          served: tuple[str, ...] = (OLD, NEW)) -> dict[str, Any]:
    return {"stack": "prod", "environment": "prod", "namespace": NAMESPACE, "service": "payin-api",
            "active": active, "images": {"blue": blue, "green": green}, "canary_weight": canary_weight,
            "served": list(served), "alertmanager_url": url}


def alerts(server: AlertmanagerServer, **labels: str) -> list[dict[str, Any]]:
    found = server.get("/api/v2/alerts")
    return [a for a in found if all(a["labels"].get(k) == v for k, v in labels.items())]


def receivers_of(alert: dict[str, Any]) -> list[str]:
    return [receiver["name"] for receiver in alert["receivers"]]


def slack_texts(sink: Sink, path: str) -> list[str]:
    return [json.dumps(body) for body in sink.wait_for(path)]


def test_a_promotion_is_posted_and_reaches_deployments(alertmanager_server: AlertmanagerServer,
                                                       alertmanager_sink: Sink) -> None:
    provider = DeploymentEventsProvider()
    before = props(alertmanager_server.url, active="blue")
    result = provider.update("prod/payin-api", {**before, "events": []}, props(alertmanager_server.url))
    assert [e["kind"] for e in result.outs["events"]] == ["deployment-succeeded"] and result.outs["delivered"]
    [alert] = alerts(alertmanager_server, event="deployment-succeeded")
    assert alert["labels"] | {"event_id": "-"} == {
        "alertname": "DeploymentSucceeded", "event": "deployment-succeeded", "service": "payin-api",
        "environment": "prod", "namespace": NAMESPACE, "stack": "prod", "color": "green", "version": "2.3.0",
        "event_id": "-"}
    assert receivers_of(alert) == [PREFIX + "deployments"]
    [text] = slack_texts(alertmanager_sink, "/slack/deployments")
    assert "#deployments" in text and "payin-api 2.3.0 is live (green), replacing 2.2.4" in text
    assert "/slack/incidents" not in alertmanager_sink.paths() and "/pagerduty" not in alertmanager_sink.paths()


def test_a_rollback_reaches_incidents_and_pages_on_call(alertmanager_server: AlertmanagerServer,
                                                        alertmanager_sink: Sink) -> None:
    provider = DeploymentEventsProvider()
    result = provider.update("prod/payin-api", props(alertmanager_server.url), props(alertmanager_server.url,
                                                                                     active="blue"))
    assert [e["kind"] for e in result.outs["events"]] == ["rollback"]
    [alert] = alerts(alertmanager_server, event="rollback")
    assert receivers_of(alert) == [PREFIX + "incident-events", PREFIX + "on-call-events"]
    [text] = slack_texts(alertmanager_sink, "/slack/incidents")
    assert "#incidents" in text and "rolled back from 2.3.0 to 2.2.4" in text
    [page] = alertmanager_sink.wait_for("/pagerduty")
    assert page["routing_key"] == SECRETS["alerting_pagerduty_routing_key"] and page["event_action"] == "trigger"
    assert "/slack/deployments" not in alertmanager_sink.paths()


@pytest.mark.parametrize(("before", "after", "summary"), [
    # A rebuild of 2.3.0 was promoted; back to the first build, which served before it.
    ({"blue": REBUILD, "served": (NEW, REBUILD), "active": "blue"}, {"blue": REBUILD, "served": (NEW, REBUILD)},
     "rolled back from 0f1e2d3-v2.3.0 to a1b2c3d-v2.3.0 (green)"),
    # `release canary` failing its gate at 25%: the weight goes back to 0.
    ({"blue": NEXT, "canary_weight": 25}, {"blue": NEXT}, "canary rolled back from 25% to 0% (blue 2.4.0)"),
])
def test_every_kind_of_rollback_pages_on_call(alertmanager_server: AlertmanagerServer, alertmanager_sink: Sink,
                                              before: dict[str, Any], after: dict[str, Any], summary: str) -> None:
    url = alertmanager_server.url
    result = DeploymentEventsProvider().update("prod/payin-api", props(url, **before), props(url, **after))
    assert [e["kind"] for e in result.outs["events"]] == ["rollback"]
    [alert] = alerts(alertmanager_server, event="rollback")
    assert receivers_of(alert) == [PREFIX + "incident-events", PREFIX + "on-call-events"]
    [text] = slack_texts(alertmanager_sink, "/slack/incidents")
    assert summary in text
    alertmanager_sink.wait_for("/pagerduty")


def test_amtool_sees_the_posted_event(alertmanager_server: AlertmanagerServer, alertmanager_amtool: str) -> None:
    DeploymentEventsProvider().update("prod/payin-api", props(alertmanager_server.url),
                                      props(alertmanager_server.url, blue=NEXT))
    query = subprocess.run([alertmanager_amtool, "alert", "query", f"--alertmanager.url={alertmanager_server.url}",
                            "-o", "json", "event=deployment-started", "service=payin-api"],
                           capture_output=True, text=True, timeout=30)
    assert query.returncode == 0, query.stderr
    [alert] = json.loads(query.stdout)
    assert alert["labels"]["version"] == "2.4.0" and alert["labels"]["color"] == "blue"


def test_preview_and_render_mode_post_nothing(alertmanager_server: AlertmanagerServer) -> None:
    provider = DeploymentEventsProvider()
    # A preview only diffs.
    diff = provider.diff("prod/payin-api", props(alertmanager_server.url), props(alertmanager_server.url,
                                                                                 active="blue"))
    assert diff.changes and diff.replaces == []
    # Without an Alertmanager URL the events are recorded, not sent.
    result = provider.update("prod/payin-api", props(None), props(None, active="blue"))
    assert [e["kind"] for e in result.outs["events"]] == ["rollback"] and result.outs["delivered"] is False
    assert provider.create(props(None)).outs["events"][0]["kind"] == "deployment-succeeded"
    assert alertmanager_server.get("/api/v2/alerts") == []
    # And an unchanged release is no change at all.
    assert not provider.diff("prod/payin-api", {**props(None), "events": [], "__provider": "x"}, props(None)).changes


def test_the_pipeline_reports_a_failed_update(alertmanager_server: AlertmanagerServer,
                                              alertmanager_sink: Sink) -> None:
    command = [sys.executable, "-m", "components.deployment_events", "failed",
               f"--alertmanager-url={alertmanager_server.url}", "--stack=prod", "--environment=prod",
               f"--namespace={NAMESPACE}", "--service=payin-api", "--active=green", f"--blue={NEXT}",
               f"--green={NEW}", "--reason=pulumi up failed"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    [alert] = alerts(alertmanager_server, event="deployment-failed")
    assert receivers_of(alert) == [PREFIX + "deployments", PREFIX + "incident-events"]
    assert alert["labels"]["version"] == "2.4.0"
    alertmanager_sink.wait_for("/slack/deployments")
    alertmanager_sink.wait_for("/slack/incidents")


def firing(name: str, severity: str, service: str) -> dict[str, Any]:
    """An alert as Prometheus posts it, firing now."""
    now = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
    return {"labels": {"alertname": name, "severity": severity, "namespace": NAMESPACE, "environment": "prod",
                       "service": service}, "annotations": {"summary": name}, "startsAt": now}


def settled(server: AlertmanagerServer, count: int, inhibited: tuple[str, str]) -> dict[tuple[str, str], Any]:
    """The alerts by (alertname, service) once Alertmanager's inhibitor, which marks alerts asynchronously, has
    seen the inhibiting alerts: ``inhibited`` is marked."""
    deadline = time.monotonic() + 15
    while True:
        found = {(a["labels"]["alertname"], a["labels"]["service"]): a for a in alerts(server)}
        done = len(found) == count and all(a["status"]["state"] != "unprocessed" for a in found.values()) \
            and found[inhibited]["status"]["inhibitedBy"]
        if done or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_each_failing_service_is_one_page(alertmanager_server: AlertmanagerServer) -> None:
    """Three criticals and a warning of two services: one on-call group per service, the warning inhibited; one
    group for the environment would make payout-api's outage an update of payin-api's incident."""
    post_alerts(alertmanager_server.url, [
        firing("ServiceUnreachable", "critical", "payin-api"),
        firing("ServiceErrorRateCritical", "critical", "payin-api"),
        firing("ServiceErrorRateHigh", "warning", "payin-api"),
        firing("ServiceErrorRateCritical", "critical", "payout-api"),
    ])
    found = settled(alertmanager_server, 4, ("ServiceErrorRateHigh", "payin-api"))
    assert found[("ServiceErrorRateHigh", "payin-api")]["status"]["state"] == "suppressed"
    assert found[("ServiceErrorRateHigh", "payin-api")]["status"]["inhibitedBy"]
    # ServiceUnreachable silences the other pages of its service; another service still counts.
    assert found[("ServiceErrorRateCritical", "payin-api")]["status"]["state"] == "suppressed"
    assert found[("ServiceErrorRateCritical", "payout-api")]["status"]["state"] == "active"
    groups = [g for g in alertmanager_server.get("/api/v2/alerts/groups")
              if g["receiver"]["name"] == PREFIX + "on-call"]
    assert sorted(sorted({a["labels"]["service"] for a in group["alerts"]}) for group in groups) == [
        ["payin-api"], ["payout-api"]]


def test_a_page_does_not_hide_that_a_rollback_would_fail(alertmanager_server: AlertmanagerServer) -> None:
    """While payin-api pages, its other warnings are inhibited, but not StandbyColourDown: the incident is when a
    rollback is most likely, and the standby being down is what would make it fail."""
    post_alerts(alertmanager_server.url, [
        firing("ServiceErrorRateAboveRollbackTrigger", "critical", "payin-api"),
        firing("ServiceErrorRateHigh", "warning", "payin-api"),
        firing("StandbyColourDown", "warning", "payin-api"),
    ])
    found = settled(alertmanager_server, 3, ("ServiceErrorRateHigh", "payin-api"))
    assert found[("ServiceErrorRateHigh", "payin-api")]["status"]["state"] == "suppressed"
    standby = found[("StandbyColourDown", "payin-api")]
    assert standby["status"]["state"] == "active" and not standby["status"]["inhibitedBy"], standby["status"]
    assert receivers_of(standby) == [PREFIX + "alerts"]


def test_a_post_to_an_unreachable_alertmanager_fails_clearly() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    waits: list[float] = []
    with pytest.raises(PostFailed, match=r"posting 1 deployment event\(s\) to .* failed: Connection refused$"):
        post_alerts(url, [{"labels": {"alertname": "x"}}], sleep=waits.append)
    assert waits == [1, 2]  # between the three attempts, none after the last


def test_a_provider_update_against_an_unreachable_alertmanager_fails_the_update(monkeypatch) -> None:
    monkeypatch.setattr("components.deployment_events.time.sleep", lambda _: None)
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(RuntimeError, match="failed after the change was applied: Connection refused; run `pulumi up` "
                                           "again to send them"):
        DeploymentEventsProvider().update("prod/payin-api", props(url), props(url, active="blue"))



# -- `release failed`: the pipeline's step after a failed `pulumi up` -------------------------------------------------

class AppliedStack(Environments):
    """The `release` command's view of one stack: Environments' own reading of a real Pulumi.<env>.yaml in a
    directory, and as outputs what the stack's last update exported (`pulumi stack output --json`), given here
    without the engine (tests/release runs the command on a stack the real engine deployed). Its state
    (`pulumi stack export`) has no events resource that announced the file's release: the failed update applied
    nothing (tests/release has one that applied a service before it failed)."""

    def __init__(self, project_dir: Path, applied: dict[str, Any]) -> None:  # no CLI: nothing here runs pulumi
        self.project_dir = project_dir
        self.applied = applied
        self.workspace = SimpleNamespace(export_stack=lambda _: Deployment(version=3, deployment={"resources": []}))

    def outputs(self, environment: str) -> dict[str, Any]:
        return self.applied[self.require(environment)]


@dataclass
class ProdStack:
    """Prod's stack file in a directory, with a cluster and this test's Alertmanager, and what prod applied."""

    directory: Path
    config: dict[str, Any]
    applied: dict[str, Any]

    @property
    def services(self) -> dict[str, Any]:
        return self.config["release-infra:services"]

    def release_failed(self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                       reason: str = "pulumi up failed (run 4242)") -> tuple[int, str, str]:
        """`release failed prod --reason ...` as the deploy workflow runs it, on the stack file as the test left
        it: exit status, stdout, stderr."""
        (self.directory / "Pulumi.prod.yaml").write_text(yaml.safe_dump({"config": self.config}, sort_keys=False))
        monkeypatch.setattr(release, "Environments", lambda directory: AppliedStack(directory,
                                                                                    {"prod": self.applied}))
        capsys.readouterr()
        code = release.main(["--project-dir", str(self.directory), "failed", "prod", "--reason", reason])
        out, err = capsys.readouterr()
        return code, out, err


def applied_outputs(services: dict[str, Any]) -> dict[str, Any]:
    """The release fields of the outputs a stack exports once it has applied ``services`` (core/outputs.py)."""
    return {"services": {name: {"active_colour": spec["active"],
                                "colours": {colour: {"image": spec[colour]["image"]} for colour in ("blue", "green")},
                                "canary_weight": int((spec.get("canary") or {}).get("weight", 0))}
                         for name, spec in services.items()}}


@pytest.fixture
def prod_stack(tmp_path: Path, alertmanager_server: AlertmanagerServer) -> ProdStack:
    """Prod as committed, applied; its stack file with a cluster and `alerting.alertmanager_url`."""
    directory = tmp_path / "project"
    directory.mkdir()
    (directory / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    config = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())["config"]
    config["release-infra:cluster"] = {"context": "prod"}
    config["release-infra:alerting"] = {"alertmanager_url": alertmanager_server.url}
    assert config["release-infra:services"]["payin-api"] == {"active": "green", "blue": {"image": OLD},
                                                             "green": {"image": NEW}}
    return ProdStack(directory, config, applied_outputs(copy.deepcopy(config["release-infra:services"])))


def failed_alerts(server: AlertmanagerServer) -> list[tuple[str, ...]]:
    """Every alert Alertmanager holds, as (alertname, event, service, color, version, stack, namespace)."""
    keys = ("alertname", "event", "service", "color", "version", "stack", "namespace")
    return sorted(tuple(alert["labels"].get(key, "") for key in keys) for alert in alerts(server))


def test_release_failed_announces_a_promotion_whose_update_failed(
        prod_stack: ProdStack, alertmanager_server: AlertmanagerServer, alertmanager_sink: Sink,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Step 1 of a promotion: the standby (blue) got the new image in the file, and its `pulumi up` failed."""
    prod_stack.services["payin-api"]["blue"]["image"] = NEXT
    code, out, err = prod_stack.release_failed(monkeypatch, capsys)
    assert code == 0, err
    assert failed_alerts(alertmanager_server) == [
        ("DeploymentFailed", "deployment-failed", "payin-api", "blue", "2.4.0", "prod", NAMESPACE)]
    [alert] = alerts(alertmanager_server)
    assert alert["labels"]["environment"] == "prod"
    assert receivers_of(alert) == [PREFIX + "deployments", PREFIX + "incident-events"]
    assert out == "posted deployment-failed for payin-api in prod: blue 2.4.0 (the new image on standby blue)\n"
    for channel in ("deployments", "incidents"):
        [text] = slack_texts(alertmanager_sink, f"/slack/{channel}")
        assert "payin-api: deployment failed in the stack update: pulumi up failed (run 4242)" in text


def test_release_failed_announces_a_switch_whose_update_failed(
        prod_stack: ProdStack, alertmanager_server: AlertmanagerServer, alertmanager_sink: Sink,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Step 3: blue runs 2.4.0 (applied), the file moves traffic to it, and that update failed: the colour named is
    the one traffic was to move to, not the file's standby (green, 2.3.0)."""
    prod_stack.services["payin-api"]["blue"]["image"] = NEXT
    prod_stack.applied = applied_outputs(prod_stack.services)
    prod_stack.services["payin-api"]["active"] = "blue"
    code, out, err = prod_stack.release_failed(monkeypatch, capsys)
    assert code == 0, err
    assert failed_alerts(alertmanager_server) == [
        ("DeploymentFailed", "deployment-failed", "payin-api", "blue", "2.4.0", "prod", NAMESPACE)]
    assert out == "posted deployment-failed for payin-api in prod: blue 2.4.0 (the switch of traffic to blue)\n"
    alertmanager_sink.wait_for("/slack/deployments")
    alertmanager_sink.wait_for("/slack/incidents")


def test_release_failed_posts_one_event_per_service_the_update_was_deploying(
        prod_stack: ProdStack, alertmanager_server: AlertmanagerServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A switch of merchant-api and the first canary step of payin-api (blue runs 2.4.0, applied) in one failed
    update; payout-api is as applied, and is not announced."""
    prod_stack.services["payin-api"]["blue"]["image"] = NEXT
    prod_stack.applied = applied_outputs(prod_stack.services)
    prod_stack.services["payin-api"]["canary"] = {"weight": 5}
    prod_stack.services["merchant-api"]["active"] = "blue"
    code, out, err = prod_stack.release_failed(monkeypatch, capsys)
    assert code == 0, err
    assert failed_alerts(alertmanager_server) == [
        ("DeploymentFailed", "deployment-failed", "merchant-api", "blue", "3.0.9", "prod", NAMESPACE),
        ("DeploymentFailed", "deployment-failed", "payin-api", "blue", "2.4.0", "prod", NAMESPACE)]
    assert out.splitlines()[-2:] == [
        "posted deployment-failed for merchant-api in prod: blue 3.0.9 (the switch of traffic to blue)",
        "posted deployment-failed for payin-api in prod: blue 2.4.0 (the canary weight 5% on blue)"]


def test_release_failed_posts_nothing_when_the_stack_file_is_what_the_stack_applied(
        prod_stack: ProdStack, alertmanager_server: AlertmanagerServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = prod_stack.release_failed(monkeypatch, capsys)
    assert (code, err) == (0, "")
    assert out == ("Pulumi.prod.yaml is what prod's last update applied: no deployment to announce, nothing "
                   "posted\n")
    assert alertmanager_server.get("/api/v2/alerts") == []


@pytest.mark.parametrize(("key", "said"), [
    ("release-infra:cluster",
     "prod has no cluster (its manifests are rendered, nothing is deployed): no deployment to announce, nothing "
     "posted\n"),
    ("release-infra:alerting",
     "prod has no alerting.alertmanager_url: the failed update is not announced, nothing posted\n"),
])
def test_release_failed_without_a_cluster_or_an_alertmanager_says_so_and_posts_nothing(
        prod_stack: ProdStack, alertmanager_server: AlertmanagerServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], key: str, said: str) -> None:
    prod_stack.services["payin-api"]["blue"]["image"] = NEXT
    del prod_stack.config[key]
    code, out, err = prod_stack.release_failed(monkeypatch, capsys)
    assert (code, out, err) == (0, said, "")
    assert alertmanager_server.get("/api/v2/alerts") == []


def test_release_failed_says_in_one_line_when_alertmanager_cannot_be_reached(
        prod_stack: ProdStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Exit status 1 and one line."""
    monkeypatch.setattr("components.deployment_events.time.sleep", lambda _: None)
    port = free_port()
    prod_stack.config["release-infra:alerting"] = {"alertmanager_url": f"http://127.0.0.1:{port}"}
    prod_stack.services["payin-api"]["blue"]["image"] = NEXT
    code, out, err = prod_stack.release_failed(monkeypatch, capsys)
    assert (code, out) == (1, "")
    assert err == f"release failed: posting deployment-failed for payin-api to http://127.0.0.1:{port} failed: " \
                  "Connection refused\n"


@pytest.mark.parametrize("host", ["127.0.0.1:9093", "alertmanager.pay.internal"])
def test_release_failed_refuses_a_url_with_credentials_without_showing_them(
        prod_stack: ProdStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], host: str) -> None:
    """Bad input, exit 2, the program's own rule for the URL, and nothing posted: urllib cannot send user:password@,
    and its error would have repeated the password (without a port, in a form no redaction recognises)."""
    monkeypatch.setattr("components.deployment_events.urllib.request.urlopen",
                        lambda *_args, **_kwargs: pytest.fail("posted to a URL the program refuses"))
    prod_stack.config["release-infra:alerting"] = {"alertmanager_url": f"http://ops:hunter2@{host}"}
    prod_stack.services["payin-api"]["blue"]["image"] = NEXT
    code, out, err = prod_stack.release_failed(monkeypatch, capsys)
    assert (code, out) == (2, "")
    assert err == (f'release failed: invalid config for stack "prod": release-infra:alerting.alertmanager_url = '
                   f'"http://[secret]@{host}": must be an http(s) URL without credentials or a query, e.g. '
                   "http://alertmanager.monitoring:9093\n")



def test_release_failed_shows_a_webhook_pasted_as_the_url_cut_short_as_the_program_does(
        prod_stack: ProdStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    webhook = "https://hooks.slack.com/services/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"
    prod_stack.config["release-infra:alerting"] = {"alertmanager_url": webhook}
    prod_stack.services["payin-api"]["blue"]["image"] = NEXT
    code, out, err = prod_stack.release_failed(monkeypatch, capsys)
    assert (code, out) == (2, "") and err.count("\n") == 1
    assert "Zq8XwVbN3mK2pL9rT4sY6uHd" not in err
    assert 'release-infra:alerting.alertmanager_url = "https://hooks.slack.com/services/...": ' in err
    assert "a credential: it belongs in the secret key alerting_slack_<channel>_url" in err

def test_release_failed_refuses_a_release_it_cannot_name_and_posts_nothing(
        prod_stack: ProdStack, alertmanager_server: AlertmanagerServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    prod_stack.services["payin-api"]["blue"]["image"] = "registry.pay.internal/payin-api:latest"
    code, out, err = prod_stack.release_failed(monkeypatch, capsys)
    assert (code, out) == (2, "")
    assert err == ('release failed: invalid config for stack "prod": release-infra:services.payin-api.blue.image = '
                   '"registry.pay.internal/payin-api:latest": \'latest\' is a mutable tag; expected '
                   '<registry>/<service>:<git-sha>-v<semver>, e.g. registry.example.com/payin-api:a1b2c3d-v2.3.0\n')
    assert alertmanager_server.get("/api/v2/alerts") == []
