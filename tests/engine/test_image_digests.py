"""Digest pinning through the real engine, against a real registry on loopback: a stack whose registry it is."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterator

import pytest
import yaml

from core.settings import KRAKEND_IMAGE
from infra.program import main
from tests.registry.harness import Image, Registry, install, push_all, running_registry
from tests.support.engine import Project, make_project
from tests.support.mock_engine import run_program
from tests.support.stacks import NOW, ROOT

pytestmark = pytest.mark.engine

CREATED = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with running_registry(install(), tmp_path_factory.mktemp("registry")) as running:
        yield running


@pytest.fixture(scope="module")
def pushed(registry: Registry) -> dict[str, str]:
    """Every image of the dev stack, pushed to the loopback registry: image -> manifest digest; KrakenD's mirror
    too, which the lookups check."""
    images = sorted(set(images_of(stack_file(registry)).values()))
    references = [image.split("/", 1)[1].split(":") for image in images]
    digests = push_all(registry, [Image(repository, (tag,), CREATED)
                                  for repository, tag in [*references, KRAKEND_IMAGE.split(":")]])
    return dict(zip(images, digests))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, engine_env: dict[str, str], registry: Registry,
            pushed: dict[str, str]) -> Project:
    project = make_project(tmp_path_factory.mktemp("digests"), engine_env,
                           stacks={"dev": yaml.safe_dump(stack_file(registry), sort_keys=False)})
    project.init("dev")
    return project


def stack_file(registry: Registry) -> dict[str, Any]:
    """Pulumi.dev.yaml moved to the loopback registry, with digest lookups on (it has no cluster)."""
    host = registry.url.removeprefix("http://")
    text = (ROOT / "Pulumi.dev.yaml").read_text().replace("registry.pay.internal", host)
    document = yaml.safe_load(text)
    document["config"]["release-infra:image_digests"] = "lookup"
    return document


def images_of(document: dict[str, Any]) -> dict[str, str]:
    """'<service>-<colour>' -> the image the stack file configures for it."""
    services = document["config"]["release-infra:services"]
    return {f"{name}-{colour}": release[colour]["image"] for name, release in services.items()
            for colour in ("blue", "green")}


def preview_images(project: Project) -> dict[str, str]:
    """The image of each service Deployment as `pulumi preview --json` would register it."""
    preview = project.json("preview", "--json", "--stack", "dev")
    images = {}
    for step in preview["steps"]:
        state = step.get("newState") or {}
        if state.get("type") == "kubernetes:apps/v1:Deployment" and "gateway" not in step["urn"]:
            name = step["urn"].rsplit("::", 1)[-1].removeprefix("dev-")
            images[name] = state["inputs"]["spec"]["template"]["spec"]["containers"][0]["image"]
    return images


def test_preview_pins_every_service_image_by_the_registrys_digest(project: Project, registry: Registry,
                                                                 pushed: dict[str, str]) -> None:
    configured = images_of(stack_file(registry))
    assert preview_images(project) == {name: f"{image}@{pushed[image]}" for name, image in configured.items()}


def test_up_exports_and_renders_the_pinned_digests(project: Project, registry: Registry,
                                                   pushed: dict[str, str]) -> None:
    project.run("up", "--yes", "--stack", "dev")
    outputs = project.json("stack", "output", "services", "--json", "--stack", "dev")
    blue = outputs["payin-api"]["colours"]["blue"]
    image = images_of(stack_file(registry))["payin-api-blue"]
    assert (blue["image"], blue["digest"]) == (image, pushed[image])
    rendered = next((project.manifests / "dev").rglob("*payin-api-blue*.yaml")).read_text()
    assert f"image: {image}@{pushed[image]}" in rendered


def test_off_keeps_the_last_updates_digests_so_an_offline_preview_shows_no_change(project: Project) -> None:
    project.run("config", "set", "image_digests", "off", "--stack", "dev")
    try:
        project.run("preview", "--expect-no-changes", "--stack", "dev")
    finally:
        project.run("config", "set", "image_digests", "lookup", "--stack", "dev")


def test_an_unknown_tag_fails_the_preview_with_the_same_line_as_under_mocks(project: Project,
                                                                          registry: Registry) -> None:
    unknown = images_of(stack_file(registry))["payout-api-green"].rsplit(":", 1)[0] + ":fedcba9-v9.9.9"
    project.run("config", "set", "--path", "services.payout-api.green.image", unknown, "--stack", "dev")
    try:
        result = project.run("preview", "--stack", "dev", check=False)
    finally:
        (project.directory / "Pulumi.dev.yaml").write_text(yaml.safe_dump(stack_file(registry), sort_keys=False))
    config = {key.split(":", 1)[1]: value for key, value in stack_file(registry)["config"].items()}
    config["services"]["payout-api"]["green"]["image"] = unknown
    mocked = run_program(lambda: main(now=lambda: NOW), stack="dev", config=config, keep_error=True)
    expected = (f'invalid config for stack "dev": release-infra:services.payout-api.green.image = "{unknown}": tag '
                f"not found in the registry {registry.url}: push the image first or correct the tag")
    assert str(mocked.error) == expected
    assert result.returncode != 0
    assert expected in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    project.run("preview", "--expect-no-changes", "--stack", "dev")  # the stack file is back as it was


def test_a_tag_overwritten_after_the_update_fails_the_next_preview(project: Project, registry: Registry,
                                                                   pushed: dict[str, str]) -> None:
    image = images_of(stack_file(registry))["merchant-api-green"]
    repository, tag = image.split("/", 1)[1].split(":")
    [moved] = push_all(registry, [Image(repository, (tag,), CREATED, "rebuilt from another commit")])
    try:
        result = project.run("preview", "--stack", "dev", check=False)
    finally:
        push_all(registry, [Image(repository, (tag,), CREATED)])  # the original bytes again (same digest)
    assert result.returncode != 0
    assert (f"release-infra:services.merchant-api.green.image = \"{image}\": the tag was overwritten: the last "
            f"update ran {pushed[image]} and the registry now resolves it to {moved}") in result.stdout + result.stderr
    project.run("preview", "--expect-no-changes", "--stack", "dev")
