"""Migrations through the real engine in render mode: the Job for the new image only, ordered before the colour.

On the test stack: it has no upstream and no train, which are the release policy's business, not the migrations'.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.support.engine import Project, make_project
from tests.support.stacks import ROOT

pytestmark = pytest.mark.engine

NEW_PAYIN = "registry.pay.internal/payin-api:5e6f7a8-v2.4.0"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, engine_env: dict[str, str]) -> Project:
    project = make_project(tmp_path_factory.mktemp("migrations"), engine_env,
                           stacks={"test": (ROOT / "Pulumi.test.yaml").read_text()})
    project.init("test")
    project.run("up", "--yes", "--stack", "test")
    return project


def rendered_jobs(project: Project) -> dict[str, str]:
    """Job name -> image, from the manifests the provider wrote."""
    jobs = {}
    for path in (project.manifests / "test").rglob("*.yaml"):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document["kind"] == "Job":
                jobs[document["metadata"]["name"]] = document["spec"]["template"]["spec"]["containers"][0]["image"]
    return jobs


def test_a_promotion_runs_the_new_images_migration_before_its_deployment(stack: Project) -> None:
    assert rendered_jobs(stack)["payin-api-migrate-a1b2c3d"].endswith("a1b2c3d-v2.3.0")
    stack.run("config", "set", "--path", "services.payin-api.green.image", NEW_PAYIN, "--stack", "test")
    steps = [(step["op"], step["urn"].rsplit("::", 1)[-1])
             for step in stack.json("preview", "--json", "--stack", "test")["steps"] if step["op"] != "same"]
    job = next(i for i, (op, name) in enumerate(steps) if name == "test-payin-api-migration")
    deployment = steps.index(("update", "test-payin-api-green"))
    assert job < deployment, steps
    assert not any(name.startswith(("test-payin-api-blue", "test-payout-api")) for _, name in steps)

    stack.run("up", "--yes", "--stack", "test")
    jobs = rendered_jobs(stack)
    assert jobs["payin-api-migrate-5e6f7a8"] == NEW_PAYIN
    assert "payin-api-migrate-a1b2c3d" not in jobs, "only the new image's Job stays in the rendered manifests"
    export = stack.json("stack", "export", "--stack", "test")["deployment"]["resources"]
    urn = next(r["urn"] for r in export if r["urn"].endswith("::test-payin-api-migration"))
    green = next(r for r in export if r["urn"].endswith("Deployment::test-payin-api-green"))
    assert urn in green["dependencies"]
    assert stack.json("stack", "output", "migrations", "--json", "--stack", "test")["payin-api"]["version"] == "2.4.0"


def test_a_flip_runs_no_migration(stack: Project) -> None:
    stack.run("config", "set", "--path", "services.payin-api.active", "green", "--stack", "test")
    steps = {step["urn"].rsplit("::", 1)[-1] for step in stack.json("preview", "--json", "--stack", "test")["steps"]
             if step["op"] != "same"}
    assert {"test-payin-api-active", "test-payin-api-preview"} <= steps, steps  # the flip itself is in the preview
    assert not any("migration" in name or "database" in name for name in steps), steps
    stack.run("up", "--yes", "--stack", "test")
    stack.run("preview", "--expect-no-changes", "--stack", "test")


def test_a_downgrade_fails_the_preview_with_one_line(stack: Project) -> None:
    old = "registry.pay.internal/payin-api:9f8e7d6-v2.2.4"
    stack.run("config", "set", "--path", "services.payin-api.blue.image", old, "--stack", "test")  # the standby
    preview = stack.run("preview", "--stack", "test", check=False)
    # The update phase too, where the engine writes checkpoints while the program reads the last outputs.
    update = stack.run("up", "--yes", "--skip-preview", "--stack", "test", check=False)
    stack.run("config", "set", "--path", "services.payin-api.blue.image",
              "registry.pay.internal/payin-api:a1b2c3d-v2.3.0", "--stack", "test")
    for result in (preview, update):
        assert result.returncode != 0
        assert (f'release-infra:services.payin-api.blue.image = "{old}": migrations only move forward: test last '
                "migrated payin-api to 2.4.0") in result.stdout + result.stderr
        assert "Traceback" not in result.stdout + result.stderr


def test_the_database_url_stays_a_secret(stack: Project) -> None:
    url = "postgres://payout:not-for-the-state-7d1e@db.payments-test:5432/payout"
    stack.run("config", "set", "--secret", "--path", "databases.payout-api", url, "--stack", "test")
    stack.run("up", "--yes", "--stack", "test")
    assert url not in stack.run("stack", "export", "--stack", "test").stdout
    assert url not in stack.run("stack", "output", "--json", "--show-secrets", "--stack", "test").stdout
    assert url not in (stack.directory / "Pulumi.test.yaml").read_text()


def test_a_plain_database_url_beside_a_secret_one_is_refused(stack: Project) -> None:
    """Pulumi marks the whole `databases` object secret when one entry is; the stack file shows the plain one."""
    url = "postgres://payin:in-plain-sight-5c2a@db.payments-test:5432/payin"
    stack.run("config", "set", "--secret", "--path", "databases.payout-api",
              "postgres://payout:secret-ok@db.payments-test:5432/payout", "--stack", "test")
    output = stack.refused_preview("test", ("set", "--path", "databases.payin-api", url),
                                   ("rm", "--path", "databases.payin-api"))
    assert ('invalid config for stack "test": release-infra:databases.payin-api = "[secret]": is in plain text in '
            "the stack file: set it with pulumi config set --secret --path 'databases.payin-api' ... and rotate "
            "it") in output, output
    assert url not in output and "in-plain-sight" not in output
    stack.run("preview", "--stack", "test")  # the secret entry alone passes


def test_new_resources_for_a_migrated_image_leave_its_job_alone(stack: Project, tmp_path: Path) -> None:
    """A Job's template cannot change, so the provider would replace the Job: run the migrations again, or on a
    cluster that keeps finished Jobs, fail to create one under the same name. The Job ran; the next image's takes
    the new resources."""
    catalogue = yaml.safe_load((ROOT / "catalogue.yaml").read_text())
    catalogue["services"]["payout-api"]["resources"]["limits"]["memory_mib"] = 768
    path = tmp_path / "catalogue.yaml"
    path.write_text(yaml.safe_dump(catalogue))
    bigger = Project(stack.directory, dict(stack.env, RELEASE_INFRA_CATALOGUE=str(path)))
    steps = {(step["op"], step["urn"].rsplit("::", 1)[-1])
             for step in bigger.json("preview", "--json", "--stack", "test")["steps"] if step["op"] != "same"}
    assert {("update", "test-payout-api-blue"), ("update", "test-payout-api-green")} <= steps, steps
    assert not any("migration" in name for _, name in steps), steps
    bigger.run("up", "--yes", "--stack", "test")
    bigger.run("preview", "--expect-no-changes", "--stack", "test")


def test_a_failed_update_leaves_the_outputs_of_the_last_good_one(stack: Project) -> None:
    """The engine would save a failed update's outputs: a migration it never ran would read as done (and its Job
    left as it failed), and the release tool would see a stack file that differs from what was applied."""
    before = stack.json("stack", "output", "--json", "--stack", "test")
    newer = "registry.pay.internal/payin-api:6f7a8b9-v2.5.0"
    standby = before["services"]["payin-api"]["standby_colour"]
    job = stack.manifests / "test" / "1-manifest" / "batch_v1-job-payments-test-payin-api-migrate-6f7a8b9.yaml"
    job.mkdir(parents=True)  # the provider cannot write the Job, root or not
    stack.run("config", "set", "--path", f"services.payin-api.{standby}.image", newer, "--stack", "test")
    try:
        failed = stack.run("up", "--yes", "--stack", "test", check=False)
    finally:
        job.rmdir()
    assert failed.returncode != 0 and "failed to write YAML file" in failed.stdout + failed.stderr
    assert stack.json("stack", "output", "--json", "--stack", "test") == before
    stack.run("up", "--yes", "--stack", "test")
    after = stack.json("stack", "output", "--json", "--stack", "test")
    assert after["migrations"]["payin-api"]["version"] == "2.5.0"
    assert after["services"]["payin-api"]["colours"][standby]["image"] == newer
    stack.run("preview", "--expect-no-changes", "--stack", "test")
