"""`release failed` as .github/workflows/deploy.yml runs it after a failed `pulumi up`: the workflow's own step, on
the dev stack deployed by the real engine, posting to a real Alertmanager on loopback."""

from __future__ import annotations

import json
import subprocess
from typing import Any, Iterator

import pytest
import yaml

from tests.engine.conftest import engine_env  # noqa: F401  (the session's bootstrapped engine)
from tests.real.conftest import AlertmanagerServer, alertmanager_binary, alertmanager_server  # noqa: F401
from tests.release.conftest import ENVIRONMENT, another_update_holds, deploy
from tests.support.engine import Project
from tests.support.stacks import ROOT

pytestmark = pytest.mark.engine

NEW = "registry.pay.internal/payin-api:5e6f7a8-v2.4.0"
PAYOUT = "registry.pay.internal/payout-api:1b2c3d4-v1.9.0"
RUN = {"GITHUB_SERVER_URL": "https://github.example", "GITHUB_REPOSITORY": "pay/release-infra",
       "GITHUB_RUN_ID": "4242"}


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory, engine_env: dict[str, str]) -> Project:  # noqa: F811
    """The dev stack alone: one `pulumi up`."""
    return deploy(tmp_path_factory.mktemp("failed"), engine_env, (ENVIRONMENT,))


@pytest.fixture
def alertmanager_config() -> dict[str, Any]:
    """Alertmanager holds every posted alert whatever its routing; tests/real checks the routes."""
    return {"route": {"receiver": "log-only"}, "receivers": [{"name": "log-only"}]}


@pytest.fixture
def announcing(dev: Project, alertmanager_server: AlertmanagerServer) -> Iterator[Project]:  # noqa: F811
    """Dev's stack file with a cluster and this test's Alertmanager, as a stack that deploys has it; put back after."""
    stack_file = dev.directory / f"Pulumi.{ENVIRONMENT}.yaml"
    before = stack_file.read_text()
    dev.run("config", "set", "--path", "cluster.context", "dev", "--stack", ENVIRONMENT)
    dev.run("config", "set", "--path", "alerting.alertmanager_url", alertmanager_server.url, "--stack", ENVIRONMENT)
    try:
        yield dev
    finally:
        stack_file.write_text(before)


def workflow_step(stack: str) -> str:
    """The script of the deploy workflow's step after `pulumi up` in ``stack``'s job."""
    steps = yaml.safe_load((ROOT / ".github" / "workflows" / "deploy.yml").read_text())["jobs"][stack]["steps"]
    ids = [step.get("id") for step in steps]
    return steps[ids.index("up") + 1]["run"]


def run_step(project: Project, stack: str) -> subprocess.CompletedProcess[str]:
    """That script as a runner runs it (bash -eo pipefail, in the checkout, with the job's stack access)."""
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", workflow_step(stack)],
                          cwd=project.directory, env={**project.env, **RUN}, capture_output=True, text=True,
                          timeout=120)


def labels(server: AlertmanagerServer) -> list[dict[str, str]]:
    return [{key: alert["labels"][key] for key in ("alertname", "event", "service", "color", "version", "stack",
                                                   "namespace")}
            for alert in server.get("/api/v2/alerts")]


def test_a_failed_pulumi_up_is_announced_by_the_workflows_step(
        announcing: Project, alertmanager_server: AlertmanagerServer) -> None:  # noqa: F811
    """A promotion's step 1 (a new image on dev's standby, green) whose `pulumi up` fails: another update holds the
    stack. The step posts one deployment-failed event, for payin-api's green, and names the run."""
    announcing.run("config", "set", "--path", "services.payin-api.green.image", NEW, "--stack", ENVIRONMENT)
    with another_update_holds(announcing) as take:
        take()
        up = announcing.run("up", "--yes", "--stack", ENVIRONMENT, check=False)
    assert up.returncode != 0, up.stdout
    step = run_step(announcing, ENVIRONMENT)
    assert step.returncode == 0, step.stderr
    assert step.stdout == ("posted deployment-failed for payin-api in dev: green 2.4.0 (the new image on standby "
                           "green)\n")
    assert labels(alertmanager_server) == [
        {"alertname": "DeploymentFailed", "event": "deployment-failed", "service": "payin-api", "color": "green",
         "version": "2.4.0", "stack": "dev", "namespace": "payments-dev"}]
    [alert] = alertmanager_server.get("/api/v2/alerts")
    assert alert["annotations"]["summary"] == ("payin-api: deployment failed in the stack update: pulumi up failed "
                                               "(run https://github.example/pay/release-infra/actions/runs/4242)")
    assert alert["annotations"]["image"] == NEW


def test_a_service_the_failed_update_applied_and_announced_is_not_announced_again(
        announcing: Project, alertmanager_server: AlertmanagerServer, tmp_path) -> None:  # noqa: F811
    """One update puts a new build on payin-api's standby and fails on payout-api's: payin-api's events resource,
    which waits for payin-api alone, has applied and announced it, while the outputs stay at the last good update.
    That state is made here by a good update of payin-api whose outputs are then put back (the engine's order in a
    failed update is not the test's to choose). The step announces payout-api only."""
    exported = tmp_path / "before.json"
    before = announcing.json("stack", "export", "--stack", ENVIRONMENT)
    exported.write_text(json.dumps(before))
    stack_file = announcing.directory / f"Pulumi.{ENVIRONMENT}.yaml"
    as_deployed = stack_file.read_text()
    try:
        announcing.run("config", "rm", "cluster", "--stack", ENVIRONMENT)  # applied as dev is, manifests rendered
        announcing.run("config", "set", "--path", "services.payin-api.green.image", NEW, "--stack", ENVIRONMENT)
        announcing.run("up", "--yes", "--skip-preview", "--stack", ENVIRONMENT)
        state = announcing.json("stack", "export", "--stack", ENVIRONMENT)
        outputs = {resource["urn"]: resource.get("outputs") for resource in before["deployment"]["resources"]
                   if resource["type"] == "pulumi:pulumi:Stack"}
        for resource in state["deployment"]["resources"]:
            if resource["urn"] in outputs:
                resource["outputs"] = outputs[resource["urn"]]
        failed = tmp_path / "failed.json"
        failed.write_text(json.dumps(state))
        announcing.run("stack", "import", "--file", str(failed), "--stack", ENVIRONMENT)
        announcing.run("config", "set", "--path", "cluster.context", "dev", "--stack", ENVIRONMENT)
        announcing.run("config", "set", "--path", "services.payout-api.blue.image", PAYOUT, "--stack", ENVIRONMENT)
        step = run_step(announcing, ENVIRONMENT)
    finally:
        stack_file.write_text(as_deployed)
        announcing.run("stack", "import", "--file", str(exported), "--stack", ENVIRONMENT)
    assert step.returncode == 0, step.stderr
    assert step.stdout == (
        "payin-api in dev: the failed update applied and announced its release before it failed, not announced "
        "again\nposted deployment-failed for payout-api in dev: blue 1.9.0 (the new image on standby blue)\n")
    assert [(alert["service"], alert["color"]) for alert in labels(alertmanager_server)] == [("payout-api", "blue")]


def test_with_nothing_unapplied_the_step_posts_nothing(announcing: Project,
                                                       alertmanager_server: AlertmanagerServer) -> None:  # noqa: F811
    step = run_step(announcing, ENVIRONMENT)
    assert (step.returncode, step.stderr) == (0, "")
    assert step.stdout == ("Pulumi.dev.yaml is what dev's last update applied: no deployment to announce, nothing "
                           "posted\n")
    assert alertmanager_server.get("/api/v2/alerts") == []


def test_an_unknown_stack_is_bad_input(dev: Project) -> None:
    done = subprocess.run([str(ROOT / ".venv" / "bin" / "release"), "failed", "staging", "--reason", "x"],
                          cwd=dev.directory, env=dev.env, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "release failed: unknown environment 'staging'; known: sandbox, dev, test, prod\n"
