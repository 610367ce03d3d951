"""A gateway config change through the real engine: a new immutable ConfigMap, and the old one gone afterwards.

On the test stack (no upstream, no train: those are the release policy's business)."""

from __future__ import annotations

import pytest
import yaml

from tests.support.engine import Project, make_project
from tests.support.stacks import ROOT

pytestmark = pytest.mark.engine


def public_gateway(project: Project) -> tuple[list[str], str]:
    """The public gateway's ConfigMaps in the rendered manifests, and the one its pods mount."""
    config_maps, mounted = [], ""
    for path in (project.manifests / "test").rglob("*.yaml"):
        for document in yaml.safe_load_all(path.read_text()):
            name = (document or {}).get("metadata", {}).get("name", "")
            if document and document["kind"] == "ConfigMap" and name.startswith("gateway-config-"):
                assert document["immutable"] is True
                config_maps.append(name)
            if document and document["kind"] == "Deployment" and name == "gateway":
                mounted = document["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"]
    return config_maps, mounted


def test_a_canary_step_replaces_the_gateway_config_with_a_new_one(tmp_path_factory: pytest.TempPathFactory,
                                                                  engine_env: dict[str, str]) -> None:
    project = make_project(tmp_path_factory.mktemp("gateway"), engine_env,
                           stacks={"test": (ROOT / "Pulumi.test.yaml").read_text()})
    project.init("test")
    project.run("up", "--yes", "--stack", "test")
    [before], mounted = public_gateway(project)
    assert mounted == before
    project.run("config", "set", "--path", "services.payin-api.canary.weight", "5", "--stack", "test")
    steps = {step["urn"].rsplit("::", 1)[-1]: step for step in project.json("preview", "--json", "--stack", "test")["steps"]}
    assert steps["test-gateway-config"]["op"] == "replace"
    assert "metadata.name" in steps["test-gateway-config"]["replaceReasons"]  # a new name: created before the old goes
    project.run("up", "--yes", "--stack", "test")
    [after], mounted = public_gateway(project)
    assert after != before and mounted == after
    project.run("preview", "--expect-no-changes", "--stack", "test")
