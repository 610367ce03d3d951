"""All four stacks through the real engine: preview, up, no perpetual diff, flip, promote, outputs, bad config."""

from __future__ import annotations

import base64
import json
import subprocess

import jsonschema
import pytest
import yaml

from core.outputs import SCHEMA_FILE
from core.program_digest import program_digest
from infra.program import main
from tests.support.engine import Project
from tests.support.mock_engine import run_program
from tests.support.stacks import NOW, STACKS, set_path, stack_config

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def deployed(project: Project) -> Project:
    for stack in STACKS:
        project.init(stack)
        project.run("preview", "--stack", stack)
        project.run("up", "--yes", "--stack", stack)
    return project


def changes(project: Project, stack: str) -> list[tuple[str, str, str]]:
    """(op, kind, name) of every step of `pulumi preview --json` that changes something (not 'same', nor the
    'read' of a StackReference)."""
    preview = project.json("preview", "--json", "--stack", stack)
    steps = []
    for step in preview.get("steps", []):
        if step["op"] in ("same", "read") or step["urn"].endswith("::release-infra-" + stack):
            continue
        state = step.get("newState") or step.get("oldState") or {}
        steps.append((step["op"], state.get("type", "").rsplit(":", 1)[-1], step["urn"].rsplit("::", 1)[-1]))
    return sorted(steps)


@pytest.mark.parametrize("stack", STACKS)
def test_up_renders_a_manifest_for_every_kubernetes_resource(deployed: Project, stack: str) -> None:
    export = deployed.json("stack", "export", "--stack", stack)
    expected = set()
    for resource in export["deployment"]["resources"]:
        if resource["type"].startswith("kubernetes:") and resource.get("custom"):
            outputs = resource["outputs"]
            expected.add((outputs["kind"], outputs["metadata"].get("namespace"), outputs["metadata"]["name"]))
    rendered = set()
    for path in (deployed.manifests / stack).rglob("*.yaml"):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                rendered.add((document["kind"], document["metadata"].get("namespace"), document["metadata"]["name"]))
    assert len(expected) > 20
    assert rendered == expected


@pytest.mark.parametrize("stack", STACKS)
def test_a_second_preview_has_no_changes(deployed: Project, stack: str) -> None:
    deployed.run("preview", "--expect-no-changes", "--stack", stack)


@pytest.mark.parametrize("stack", STACKS)
def test_outputs_match_the_committed_schema(deployed: Project, stack: str) -> None:
    outputs = deployed.json("stack", "output", "--json", "--stack", stack)
    jsonschema.validate(outputs, json.loads(SCHEMA_FILE.read_text()))
    assert outputs["environment"] == stack


def test_the_outputs_name_the_program_as_the_weekly_train_reads_it(deployed: Project) -> None:
    """Prod's train compares `pulumi stack output --stack test program_digest`, read without Test's passphrase, with
    the digest of main's checkout (.github/workflows/deploy.yml)."""
    env = {key: value for key, value in deployed.env.items() if not key.startswith("PULUMI_CONFIG_PASSPHRASE")}
    answered = subprocess.run(["pulumi", "stack", "output", "--stack", "test", "program_digest", "--non-interactive"],
                              cwd=deployed.directory, env=env, capture_output=True, text=True, timeout=120)
    assert answered.returncode == 0, answered.stderr
    assert answered.stdout == f"{program_digest()}\n"


@pytest.mark.parametrize("stack", STACKS)
def test_the_routing_services_wait_for_both_colours_deployments(deployed: Project, stack: str) -> None:
    """So a switch onto a colour scaled up in the same update reaches it only after the engine awaited its pods;
    the dependencies are the state's, as the engine recorded them."""
    resources = deployed.json("stack", "export", "--stack", stack)["deployment"]["resources"]
    deployments = {r["urn"].rsplit("::", 1)[-1]: r["urn"] for r in resources
                   if r["type"] == "kubernetes:apps/v1:Deployment"}
    routing = [r for r in resources
               if r["type"] == "kubernetes:core/v1:Service" and r["urn"].endswith(("-active", "-preview"))]
    assert len(routing) >= 4
    for service in routing:
        name = service["urn"].rsplit("::", 1)[-1].rsplit("-", 1)[0]
        assert {deployments[f"{name}-blue"], deployments[f"{name}-green"]} <= set(service["dependencies"]), name
    # ...and at the end of a canary: active Services, then the gateways' rollout, then the preview Services.
    gateways = {urn for name, urn in deployments.items() if name.endswith("-deployment")}
    assert gateways
    for resource in resources:
        if resource["urn"] in gateways:
            active = {r["urn"] for r in routing if r["urn"].endswith("-active")}
            assert active <= set(resource["dependencies"]), resource["urn"]
        if resource in routing and resource["urn"].endswith("-preview"):
            assert gateways <= set(resource["dependencies"]), resource["urn"]


def test_a_colour_flip_updates_the_routing_services_and_what_watches_them(deployed: Project) -> None:
    """The two Services that route by colour, the alert rules and deployment events that follow the active colour:
    nothing replaced, created or deleted, and no Deployment (the issue asked for one resource; these four are it)."""
    services = lambda: deployed.json("stack", "output", "services", "--json", "--stack", "prod")  # noqa: E731
    active, standby = services()["payin-api"]["active_colour"], services()["payin-api"]["standby_colour"]
    deployed.run("config", "set", "--path", "services.payin-api.active", standby, "--stack", "prod")
    assert changes(deployed, "prod") == [("update", "DeploymentEvents", "prod-alerting-payin-api-deployment"),
                                         ("update", "PrometheusRule", "prod-alerting-payin-api-rules"),
                                         ("update", "Service", "prod-payin-api-active"),
                                         ("update", "Service", "prod-payin-api-preview")]
    deployed.run("up", "--yes", "--stack", "prod")
    assert services()["payin-api"]["active_colour"] == standby
    deployed.run("config", "set", "--path", "services.payin-api.active", active, "--stack", "prod")
    assert len(changes(deployed, "prod")) == 4
    deployed.run("up", "--yes", "--stack", "prod")
    deployed.run("preview", "--expect-no-changes", "--stack", "prod")


def test_a_promotion_updates_only_the_standby_deployment_after_its_migration(deployed: Project) -> None:
    image = "registry.pay.internal/payin-api:5e6f7a8-v2.5.0"
    deployed.run("config", "set", "--path", "services.payin-api.green.image", image, "--stack", "dev")
    assert changes(deployed, "dev") == [("replace", "Job", "dev-payin-api-migration"),
                                        ("update", "Deployment", "dev-payin-api-green"),
                                        ("update", "DeploymentEvents", "dev-alerting-payin-api-deployment")]
    deployed.run("up", "--yes", "--stack", "dev")
    rendered = next((deployed.manifests / "dev").rglob("*payin-api-green*.yaml")).read_text()
    assert image in rendered


def test_bad_config_fails_the_preview_with_the_same_line_as_under_mocks(deployed: Project) -> None:
    deployed.run("config", "set", "--path", "services.payout-api.active", "purple", "--stack", "test")
    result = deployed.run("preview", "--stack", "test", check=False)
    deployed.run("config", "set", "--path", "services.payout-api.active", "blue", "--stack", "test")
    mocked = run_program(lambda: main(now=lambda: NOW), stack="test", keep_error=True,
                         config=set_path(stack_config("test"), "services.payout-api.active", "purple"))
    assert result.returncode != 0
    assert str(mocked.error) in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_a_rollback_is_recorded_as_a_deployment_event(deployed: Project) -> None:
    """Through the real engine: the dynamic provider classifies the update (no Alertmanager URL: recorded only)."""
    # test runs payin-api 2.3.0 on blue and keeps 2.2.4 on green: switching to green goes back a version.
    deployed.run("config", "set", "--path", "services.payin-api.active", "green", "--stack", "test")
    deployed.run("up", "--yes", "--stack", "test")
    export = deployed.json("stack", "export", "--stack", "test")
    [events] = [r for r in export["deployment"]["resources"]
                if r["urn"].endswith("::test-alerting-payin-api-deployment")]
    assert [e["kind"] for e in events["outputs"]["events"]] == ["rollback"]
    assert events["outputs"]["delivered"] is False
    deployed.run("preview", "--expect-no-changes", "--stack", "test")


def test_a_new_events_resource_for_a_running_service_announces_no_first_release(deployed: Project) -> None:
    """The events resource made anew (here dropped from the state) for a service the stack runs compares with
    the stack's last outputs: nothing changed, so no event, where it used to announce a first release."""
    urn = next(r["urn"] for r in deployed.json("stack", "export", "--stack", "dev")["deployment"]["resources"]
               if r["urn"].endswith("::dev-alerting-payin-api-deployment"))
    deployed.run("state", "delete", urn, "--yes", "--stack", "dev")
    update = deployed.run("up", "--yes", "--stack", "dev")
    assert "1 created" in update.stdout, update.stdout
    [events] = [r for r in deployed.json("stack", "export", "--stack", "dev")["deployment"]["resources"]
                if r["urn"] == urn]
    assert events["outputs"]["events"] == [] and events["outputs"]["delivered"] is False
    deployed.run("preview", "--expect-no-changes", "--stack", "dev")
    # Read by create alone, the input stays out of an update's diff, though the last outputs move with every
    # release: a flip and the flip back, and the second one's preview shows only the release.
    deployed.run("config", "set", "--path", "services.payin-api.active", "green", "--stack", "dev")
    deployed.run("up", "--yes", "--skip-preview", "--stack", "dev")
    deployed.run("config", "set", "--path", "services.payin-api.active", "blue", "--stack", "dev")
    diff = deployed.run("preview", "--diff", "--stack", "dev").stdout
    deployed.run("up", "--yes", "--skip-preview", "--stack", "dev")
    assert "DeploymentEvents: (update)" in diff and "active       : \"green\" => \"blue\"" in diff, diff
    assert "~ applied" not in diff, diff  # listed with the inputs, unchanged
    deployed.run("preview", "--expect-no-changes", "--stack", "dev")


def test_secret_config_never_reaches_the_state_in_plain_text(deployed: Project) -> None:
    webhook = "https://hooks.slack.example/services/T000/B000/not-for-the-state-4f9c2e"
    deployed.run("config", "set", "--secret", "alerting_slack_incidents_url", webhook, "--stack", "sandbox")
    assert webhook not in (deployed.directory / "Pulumi.sandbox.yaml").read_text()
    update = deployed.run("up", "--yes", "--stack", "sandbox")
    export = deployed.run("stack", "export", "--stack", "sandbox").stdout
    assert webhook not in export
    assert '"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270"' in export  # Pulumi's secret sig
    outputs = deployed.run("stack", "output", "--json", "--show-secrets", "--stack", "sandbox").stdout
    assert webhook not in outputs
    # Render mode writes a Secret's data out in plain text (base64): a stack without a cluster writes placeholders.
    rendered = "".join(path.read_text() for path in (deployed.manifests / "sandbox").rglob("*.yaml"))
    receivers = base64.b64encode(b"https://placeholder.invalid/alerting_slack_incidents_url").decode()
    assert receivers in rendered
    assert webhook not in rendered and base64.b64encode(webhook.encode()).decode() not in rendered
    assert "configured, not written: alerting_slack_incidents_url" in update.stdout + update.stderr
