"""Real `pulumi preview --json` output of the prod stack, for the rollback-plan tests.

The fixtures in tests/fixtures/previews/ are captured from the engine by this module, and the engine-tier test
captures the same scenarios again and compares the plans, so the fixtures cannot drift from the engine unnoticed.
Re-capture them (after `scripts/bootstrap-engine.sh` has built the engine):

    .venv/bin/python -m tests.support.previews
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from core.policy.clock import CLOCK_VARIABLE
from tests.support.engine import Project, bootstrap_env, make_project
from tests.support.stacks import ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "previews"
STACK = "prod"
# Each scenario: the `pulumi config set --path` edits made to the deployed prod stack before the preview.
SCENARIOS: dict[str, dict[str, str]] = {
    "flip": {"services.payin-api.active": "blue"},
    "promotion": {"services.payin-api.blue.image": "registry.pay.internal/payin-api:5e6f7a8-v2.4.0"},
    "canary": {"services.payin-api.canary.weight": "5"},
    "no-change": {},
}
# A preview that fails: the release policy refuses the canary step on a Friday, out of Prod's train. The engine
# still prints JSON, with its errors in `diagnostics` and only the steps it got to.
FAILED = "friday-canary"
FRIDAY = "2026-11-27T15:00:00Z"
VOLATILE = ("duration",)  # differs on every run and says nothing about the change
# Where the program registered each resource: paths of the machine that captured it, nothing about the change.
REGISTRATION_SITE = ("sourcePosition", "stackTrace")


# Prod runs only images its upstream, test, has run (docs/release-policy.md), so test runs them first; and prod's
# retention job protects what every other environment runs, so they all exist before it.
UPSTREAM = "test"
UPSTREAM_RELEASES = {"services.payin-api.green.image": "registry.pay.internal/payin-api:5e6f7a8-v2.4.0"}
BEFORE_PROD = ("sandbox", "dev", UPSTREAM)


def deploy(project: Project) -> None:
    """The other stacks (test with the builds the scenarios promote), then prod as committed, on one backend."""
    for stack in BEFORE_PROD:
        project.init(stack)
        project.run("up", "--yes", "--stack", stack)
    for path, value in UPSTREAM_RELEASES.items():
        project.run("config", "set", "--path", path, value, "--stack", UPSTREAM)
    project.run("up", "--yes", "--stack", UPSTREAM)
    project.init(STACK)
    project.run("up", "--yes", "--stack", STACK)


def capture(project: Project, scenario: str) -> dict[str, Any]:
    """The preview of one scenario (or FAILED, on a Friday); the stack file is restored afterwards, so scenarios do
    not add up."""
    failed = scenario == FAILED
    try:
        for path, value in SCENARIOS["canary" if failed else scenario].items():
            project.run("config", "set", "--path", path, value, "--stack", STACK)
        if failed:
            friday = dataclasses.replace(project, env={**project.env, CLOCK_VARIABLE: FRIDAY})
            result = friday.run("preview", "--json", "--stack", STACK, check=False)
            assert result.returncode != 0, f"the preview on a Friday did not fail:\n{result.stdout[-4000:]}"
            preview = json.loads(result.stdout)
        else:
            preview = project.json("preview", "--json", "--stack", STACK)
    finally:
        shutil.copy(ROOT / f"Pulumi.{STACK}.yaml", project.directory)
    for step in preview.get("steps", []):
        for state in (step.get("oldState"), step.get("newState")):
            for key in REGISTRATION_SITE:
                (state or {}).pop(key, None)
    return {key: value for key, value in preview.items() if key not in VOLATILE}


def fixture(scenario: str) -> Path:
    return FIXTURES / f"{STACK}-{scenario}.json"


def main() -> int:
    with tempfile.TemporaryDirectory() as directory:
        project = make_project(Path(directory) / "project", bootstrap_env())
        deploy(project)
        FIXTURES.mkdir(parents=True, exist_ok=True)
        for scenario in (*SCENARIOS, FAILED):
            fixture(scenario).write_text(json.dumps(capture(project, scenario), indent=2, sort_keys=True) + "\n")
            print(f"captured {fixture(scenario).relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
