"""The registry retention job of the committed prod stack through the real engine: its StackReferences read the
other environments' outputs, the rendered ConfigMap is what the tool protects, and the tool keeps what they run."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.registry.job import PROTECT_DIR, protected_view
from release_infra_tools.retention import main as retention_main
from tests.registry.harness import Image, install, push_all, running_registry
from tests.support.engine import Project, make_project
from tests.support.stacks import STACKS

pytestmark = pytest.mark.engine

PROTECT = "prod-registry-retention-protect"  # the resource; the ConfigMap is this and a checksum of its files
JOB = "prod-registry-retention-job"
PROMOTED = "registry.pay.internal/payin-api:5e6f7a8-v2.5.0-rc.1"  # a candidate: kept only because dev runs it


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory, engine_env: dict[str, str]) -> Project:
    """The four committed stacks, updated in the order a new backend needs: prod, which reads the others, last."""
    project = make_project(tmp_path_factory.mktemp("retention"), engine_env)
    for stack in STACKS:
        project.init(stack)
        project.run("up", "--yes", "--stack", stack)
    return project


def rendered(project: Project, kind: str, name: str) -> dict[str, Any]:
    for path in (project.manifests / "prod").rglob("*.yaml"):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document["kind"] == kind and document["metadata"]["name"] == name:
                return document
    raise AssertionError(f"no rendered {kind} {name}")


def protect_config_map(project: Project) -> dict[str, Any]:
    """The one rendered ConfigMap of outputs (an old one is deleted once the job mounts its successor)."""
    found = [document for path in (project.manifests / "prod").rglob("*.yaml")
             for document in yaml.safe_load_all(path.read_text())
             if document and document["kind"] == "ConfigMap" and document["metadata"]["name"].startswith(f"{PROTECT}-")]
    assert len(found) == 1, [document["metadata"]["name"] for document in found]
    return found[0]


def mounted(project: Project) -> str:
    [volume] = rendered(project, "CronJob", "prod-registry-retention")["spec"]["jobTemplate"]["spec"]["template"][
        "spec"]["volumes"]
    return volume["configMap"]["name"]


def outputs(project: Project, stack: str) -> dict[str, Any]:
    return project.json("stack", "output", "--json", "--stack", stack)


def test_the_job_is_rendered_in_prods_namespace_with_every_stacks_images(deployed: Project) -> None:
    job = rendered(deployed, "CronJob", "prod-registry-retention")
    assert job["metadata"]["namespace"] == "payments-prod"
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    config_map = protect_config_map(deployed)
    assert config_map["metadata"]["namespace"] == "payments-prod"
    assert config_map["immutable"] is True and mounted(deployed) == config_map["metadata"]["name"]
    # Read through StackReferences (sandbox, dev, test) and from prod's own outputs: each stack's images, exactly.
    assert {name: json.loads(text) for name, text in config_map["data"].items()} == {
        f"{stack}.json": protected_view(outputs(deployed, stack)) for stack in STACKS}


def test_prod_has_no_changes_until_another_stack_runs_a_new_image(deployed: Project) -> None:
    deployed.run("preview", "--expect-no-changes", "--stack", "prod")
    deployed.run("config", "set", "--path", "services.payin-api.green.image", PROMOTED, "--stack", "dev")
    deployed.run("up", "--yes", "--stack", "dev")
    before = protect_config_map(deployed)["metadata"]["name"]
    preview = deployed.json("preview", "--json", "--stack", "prod")
    # The StackReferences are read at every update: new files are a new ConfigMap, and the job mounts it.
    changed = {step["urn"].rsplit("::", 1)[-1]: step for step in preview["steps"]
               if step["op"] not in ("same", "read") and not step["urn"].endswith("::release-infra-prod")}
    assert {name: step["op"] for name, step in changed.items()} == {PROTECT: "replace", JOB: "update"}
    assert "metadata.name" in changed[PROTECT]["replaceReasons"]  # a new name: created before the old goes
    deployed.run("up", "--yes", "--stack", "prod")
    config_map = protect_config_map(deployed)
    assert config_map["metadata"]["name"] != before and mounted(deployed) == config_map["metadata"]["name"]
    dev = json.loads(config_map["data"]["dev.json"])
    assert dev["services"]["payin-api"]["colours"]["green"]["image"] == PROMOTED
    deployed.run("preview", "--expect-no-changes", "--stack", "prod")


def test_the_tool_keeps_every_image_the_rendered_configmap_names(deployed: Project, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """The CronJob's own arguments and the files it mounts, straight from the engine's render, protect an old
    image dev just promoted and the job's own image, which lives in the registry it cleans; the registry's mirror of
    the gateway's image, whose version tag follows no rule of the standard, is not the job's to read."""
    for name, text in protect_config_map(deployed)["data"].items():
        (tmp_path / name).write_text(text)
    [container] = rendered(deployed, "CronJob", "prod-registry-retention")["spec"]["jobTemplate"]["spec"][
        "template"]["spec"]["containers"]
    job_image = container["image"]
    [gateway] = rendered(deployed, "Deployment", "gateway")["spec"]["template"]["spec"]["containers"]
    mirror, mirrored_tag = gateway["image"].split("/", 1)[1].rsplit(":", 1)  # devopsfaith/krakend, 2.13.1
    old = datetime(2025, 1, 1, tzinfo=timezone.utc)
    builds = [Image(repository, (f"{i:07x}-v3.0.{i}-rc.1",), old + timedelta(days=30 + i))  # candidates
              for repository in ("payin-api", "release-infra-retention") for i in range(25)]
    # Each older than all 25 builds of its repository.
    promoted = Image("payin-api", (PROMOTED.rsplit(":", 1)[1],), old)
    job = Image("release-infra-retention", (job_image.rsplit(":", 1)[1],), old)
    others = [Image(service, ("0000001-v1.0.0",), old) for service in ("payout-api", "merchant-api")]
    (tmp_path / "registry").mkdir()
    with running_registry(install(), tmp_path / "registry") as registry:
        push_all(registry, [promoted, job, *builds, *others, Image(mirror, (mirrored_tag, "2.13.0"), old)])
        arguments = [registry.url if previous == "--registry" else argument.replace(PROTECT_DIR, str(tmp_path))
                     for previous, argument in zip(["", *container["args"]], container["args"])]
        assert retention_main([*arguments, "--apply"]) == 0
        report = json.loads(capsys.readouterr().out)
        survivors = registry.tags()
    newest = {f"{i:07x}-v3.0.{i}-rc.1" for i in range(5, 25)}
    assert survivors == {"payin-api": {PROMOTED.rsplit(":", 1)[1]} | newest,
                         "release-infra-retention": {job_image.rsplit(":", 1)[1]} | newest,
                         "payout-api": {"0000001-v1.0.0"}, "merchant-api": {"0000001-v1.0.0"},
                         mirror: {mirrored_tag, "2.13.0"}}
    assert mirror not in report["repositories"]
    [kept] = [k for k in report["repositories"]["payin-api"]["keep"] if k["tags"] == [PROMOTED.rsplit(":", 1)[1]]]
    assert kept["why"] == ["runs in dev payin-api green"]
    [kept] = [k for k in report["repositories"]["release-infra-retention"]["keep"]
              if k["tags"] == [job_image.rsplit(":", 1)[1]]]
    assert "runs in a workload named by --protect-image" in kept["why"]  # a release build too


def test_a_missing_environment_stops_prods_preview_rather_than_protect_less(tmp_path: Path,
                                                                           engine_env: dict[str, str]) -> None:
    project = make_project(tmp_path / "fresh", engine_env)
    project.init("test")  # prod's upstream: its lineage check passes, so the retention job's references are reached
    project.run("up", "--yes", "--stack", "test")
    project.init("prod")
    result = project.run("preview", "--stack", "prod", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    # Sandbox and dev are both missing; the engine may report either reference first.
    assert any(f"organization/release-infra/{stack}" in output for stack in ("sandbox", "dev")), output[-3000:]
