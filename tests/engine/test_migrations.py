"""Migrations through the real engine in render mode: the Job for the new image only, ordered before the colour."""

from __future__ import annotations

import pytest
import yaml

from tests.support.engine import Project, make_project
from tests.support.stacks import ROOT

pytestmark = pytest.mark.engine

NEW_PAYIN = "registry.pay.internal/payin-api:5e6f7a8-v2.4.0"


@pytest.fixture(scope="module")
def prod(tmp_path_factory: pytest.TempPathFactory, engine_env: dict[str, str]) -> Project:
    project = make_project(tmp_path_factory.mktemp("migrations"), engine_env,
                           stacks={"prod": (ROOT / "Pulumi.prod.yaml").read_text()})
    project.init("prod")
    project.run("up", "--yes", "--stack", "prod")
    return project


def rendered_jobs(project: Project) -> dict[str, str]:
    """Job name -> image, from the manifests the provider wrote."""
    jobs = {}
    for path in (project.manifests / "prod").rglob("*.yaml"):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document["kind"] == "Job":
                jobs[document["metadata"]["name"]] = document["spec"]["template"]["spec"]["containers"][0]["image"]
    return jobs


def test_a_promotion_runs_the_new_images_migration_before_its_deployment(prod: Project) -> None:
    assert rendered_jobs(prod)["payin-api-migrate-a1b2c3d"].endswith("a1b2c3d-v2.3.0")
    prod.run("config", "set", "--path", "services.payin-api.blue.image", NEW_PAYIN, "--stack", "prod")
    steps = [(step["op"], step["urn"].rsplit("::", 1)[-1])
             for step in prod.json("preview", "--json", "--stack", "prod")["steps"] if step["op"] != "same"]
    job = next(i for i, (op, name) in enumerate(steps) if name == "prod-payin-api-migration")
    deployment = steps.index(("update", "prod-payin-api-blue"))
    assert job < deployment, steps
    assert not any(name.startswith(("prod-payin-api-green", "prod-payout-api")) for _, name in steps)

    prod.run("up", "--yes", "--stack", "prod")
    jobs = rendered_jobs(prod)
    assert jobs["payin-api-migrate-5e6f7a8"] == NEW_PAYIN
    assert "payin-api-migrate-a1b2c3d" not in jobs, "only the new image's Job stays in the rendered manifests"
    export = prod.json("stack", "export", "--stack", "prod")["deployment"]["resources"]
    urn = next(r["urn"] for r in export if r["urn"].endswith("::prod-payin-api-migration"))
    blue = next(r for r in export if r["urn"].endswith("Deployment::prod-payin-api-blue"))
    assert urn in blue["dependencies"]
    assert prod.json("stack", "output", "migrations", "--json", "--stack", "prod")["payin-api"]["version"] == "2.4.0"


def test_a_flip_runs_no_migration(prod: Project) -> None:
    prod.run("config", "set", "--path", "services.payin-api.active", "blue", "--stack", "prod")
    steps = {step["urn"].rsplit("::", 1)[-1] for step in prod.json("preview", "--json", "--stack", "prod")["steps"]
             if step["op"] != "same"}
    assert not any("migration" in name or "database" in name for name in steps), steps
    prod.run("up", "--yes", "--stack", "prod")
    prod.run("preview", "--expect-no-changes", "--stack", "prod")


def test_a_downgrade_fails_the_preview_with_one_line(prod: Project) -> None:
    old = "registry.pay.internal/payin-api:9f8e7d6-v2.2.4"
    prod.run("config", "set", "--path", "services.payin-api.green.image", old, "--stack", "prod")
    preview = prod.run("preview", "--stack", "prod", check=False)
    # The update phase too, where the engine writes checkpoints while the program reads the last outputs.
    update = prod.run("up", "--yes", "--skip-preview", "--stack", "prod", check=False)
    prod.run("config", "set", "--path", "services.payin-api.green.image",
             "registry.pay.internal/payin-api:a1b2c3d-v2.3.0", "--stack", "prod")
    for result in (preview, update):
        assert result.returncode != 0
        assert (f'release-infra:services.payin-api.green.image = "{old}": migrations only move forward: prod last '
                "migrated payin-api to 2.4.0") in result.stdout + result.stderr
        assert "Traceback" not in result.stdout + result.stderr


def test_the_database_url_stays_a_secret(prod: Project) -> None:
    url = "postgres://payout:not-for-the-state-7d1e@db.payments-prod:5432/payout"
    prod.run("config", "set", "--secret", "--path", "databases.payout-api", url, "--stack", "prod")
    prod.run("up", "--yes", "--stack", "prod")
    assert url not in prod.run("stack", "export", "--stack", "prod").stdout
    assert url not in prod.run("stack", "output", "--json", "--show-secrets", "--stack", "prod").stdout
    assert url not in (prod.directory / "Pulumi.prod.yaml").read_text()
