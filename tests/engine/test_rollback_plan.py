"""The committed preview fixtures against the real engine: a fresh capture of each scenario gives the same plan."""

from __future__ import annotations

import json

import pytest

from core.rollback_plan import FailedPreview, parse_preview, render_markdown, rollback_plan
from tests.support.engine import Project
from tests.support.previews import FAILED, SCENARIOS, STACK, capture, deploy, fixture

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def deployed(project: Project) -> Project:
    deploy(project)
    return project


def plan(preview_json: str) -> str:
    return render_markdown(rollback_plan(STACK, parse_preview(preview_json, STACK)))


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_a_fresh_preview_gives_the_plan_of_the_committed_fixture(deployed: Project, scenario: str) -> None:
    fresh = capture(deployed, scenario)
    committed = json.loads(fixture(scenario).read_text())
    assert plan(json.dumps(fresh)) == plan(fixture(scenario).read_text())
    assert fresh["changeSummary"] == committed["changeSummary"]
    # Also the steps themselves (the engine runs them in parallel, so their order varies), so a fixture cannot
    # drift in a part the plan happens not to read today.
    steps = lambda preview: sorted((step["op"], step["urn"]) for step in preview["steps"])  # noqa: E731
    assert steps(fresh) == steps(committed)


def errors(preview: dict) -> list[str]:
    with pytest.raises(FailedPreview) as failed:
        plan(json.dumps(preview))
    return failed.value.errors


def test_a_fresh_failed_preview_fails_with_the_errors_of_the_committed_fixture(deployed: Project) -> None:
    """The release policy's refusal on a Friday: `pulumi preview` exits 1, and its JSON must not read as no change."""
    fresh, committed = capture(deployed, FAILED), json.loads(fixture(FAILED).read_text())
    assert errors(fresh) == errors(committed) and len(errors(fresh)) == 2
    assert fresh["changeSummary"] == committed["changeSummary"]
    steps = [sorted((step["op"], step["urn"]) for step in preview["steps"]) for preview in (fresh, committed)]
    assert steps[0] == steps[1]
