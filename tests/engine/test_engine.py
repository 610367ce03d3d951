"""All four stacks through the real engine: preview, up, no perpetual diff, flip, promote, outputs, bad config."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from core.outputs import SCHEMA_FILE
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
    """(op, kind, name) of every step of `pulumi preview --json` that is not 'same'."""
    preview = project.json("preview", "--json", "--stack", stack)
    steps = []
    for step in preview.get("steps", []):
        if step["op"] == "same" or step["urn"].endswith("::release-infra-" + stack):
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


def test_a_colour_flip_updates_only_the_two_routing_services(deployed: Project) -> None:
    services = lambda: deployed.json("stack", "output", "services", "--json", "--stack", "prod")  # noqa: E731
    active, standby = services()["payin-api"]["active_colour"], services()["payin-api"]["standby_colour"]
    deployed.run("config", "set", "--path", "services.payin-api.active", standby, "--stack", "prod")
    assert changes(deployed, "prod") == [("update", "Service", "prod-payin-api-active"),
                                         ("update", "Service", "prod-payin-api-preview")]
    deployed.run("up", "--yes", "--stack", "prod")
    assert services()["payin-api"]["active_colour"] == standby
    deployed.run("config", "set", "--path", "services.payin-api.active", active, "--stack", "prod")
    assert len(changes(deployed, "prod")) == 2
    deployed.run("up", "--yes", "--stack", "prod")
    deployed.run("preview", "--expect-no-changes", "--stack", "prod")


def test_a_promotion_updates_only_the_standby_deployment(deployed: Project) -> None:
    image = "registry.pay.internal/payin-api:5e6f7a8-v2.5.0"
    deployed.run("config", "set", "--path", "services.payin-api.green.image", image, "--stack", "dev")
    assert changes(deployed, "dev") == [("update", "Deployment", "dev-payin-api-green")]
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
