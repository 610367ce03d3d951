"""The release policy and promotion lineage through the real engine: the four stacks on one backend (prod's
retention job protects what the others run, so they exist before it)."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import pytest

from core.policy.clock import CLOCK_VARIABLE
from core.policy.rules import CANARY_INTERVAL
from infra.program import main
from tests.support.engine import Project
from tests.support.mock_engine import run_program
from tests.support.stacks import STACKS, TRAIN, set_path, stack_config

pytestmark = pytest.mark.engine

FRIDAY = datetime(2026, 11, 27, 15, 0, tzinfo=timezone.utc)
TESTED = "registry.pay.internal/merchant-api:f3a4b5c-v3.2.0"  # test runs it before prod does
UNTESTED = "registry.pay.internal/merchant-api:0123abc-v3.3.0"


@pytest.fixture(scope="module")
def promoted(project: Project) -> Project:
    """The stacks from their committed files, then a new merchant-api build on test's standby colour."""
    for stack in STACKS:
        project.init(stack)
        project.run("up", "--yes", "--stack", stack)
    project.run("config", "set", "--path", "services.merchant-api.blue.image", TESTED, "--stack", "test")
    project.run("up", "--yes", "--stack", "test")
    project.run("up", "--yes", "--stack", "prod")  # its retention job now protects test's new build too
    return project


def at(project: Project, moment: datetime) -> Project:
    """The same project with the release-policy clock pinned to ``moment``."""
    return dataclasses.replace(project, env={**project.env, CLOCK_VARIABLE: moment.isoformat()})


def preview_prod_with(project: Project, image: str, moment: datetime | None = None) -> tuple[int, str, str]:
    """`pulumi preview` of prod with ``image`` on merchant-api's standby colour at ``moment`` (default: the tier's
    pinned TRAIN), and the mocks' error for it against the real outputs of both stacks; the config is restored."""
    project.run("config", "set", "--path", "services.merchant-api.blue.image", image, "--stack", "prod")
    try:
        result = (at(project, moment) if moment else project).run("preview", "--stack", "prod", check=False)
    finally:
        project.run("config", "set", "--path", "services.merchant-api.blue.image",
                    stack_config("prod")["services"]["merchant-api"]["blue"]["image"], "--stack", "prod")
    outputs = {stack: project.json("stack", "output", "--json", "--stack", stack) for stack in ("test", "prod")}
    mocked = run_program(lambda: main(now=lambda: moment or TRAIN), stack="prod", keep_error=True,
                         config=set_path(stack_config("prod"), "services.merchant-api.blue.image", image),
                         stack_outputs=outputs)
    return result.returncode, result.stdout + result.stderr, str(mocked.error)


def test_the_warning_announces_the_pinned_clock(promoted: Project) -> None:
    output = promoted.run("preview", "--stack", "prod").stdout
    assert f"{CLOCK_VARIABLE}=2026-11-24T10:30:00Z pins the release-policy clock" in output


def test_a_no_change_preview_passes_on_a_friday(promoted: Project) -> None:
    at(promoted, FRIDAY).run("preview", "--expect-no-changes", "--stack", "prod")


def test_an_image_test_has_run_passes_in_the_train(promoted: Project) -> None:
    code, output, _ = preview_prod_with(promoted, TESTED)
    assert code == 0, output


def test_an_image_test_has_not_run_fails_the_preview(promoted: Project) -> None:
    code, output, mocked = preview_prod_with(promoted, UNTESTED)
    assert code != 0
    assert (f'release-infra:services.merchant-api.blue.image = "{UNTESTED}": has not run in test '
            "(release-infra:upstream_stack) and has not run in prod before; prod runs only images test has run "
            "(test has run merchant-api d0e1f2a-v3.0.9, e1f2a3b-v3.1.0, f3a4b5c-v3.2.0)") in mocked
    assert mocked in output and "Traceback" not in output


def test_a_change_on_a_friday_fails_the_preview(promoted: Project) -> None:
    code, output, mocked = preview_prod_with(promoted, TESTED, FRIDAY)
    assert code != 0
    assert mocked.startswith('release policy refuses the update of stack "prod": release-infra:services.merchant-api.'
                             f'blue.image = "{TESTED}": it is Friday 2026-11-27 15:00 UTC: no deploys on Friday')
    assert mocked in output and "Traceback" not in output


def test_a_missing_upstream_stack_fails_the_preview_with_one_line(promoted: Project) -> None:
    output = promoted.refused_preview("prod", ("set", "upstream_stack", "qa"), ("set", "upstream_stack", "test"))
    assert 'invalid config for stack "prod": release-infra:upstream_stack = "qa": cannot be read' in output, output
    assert "Traceback" not in output


def test_a_high_risk_canary_walks_its_steps_and_steps_back_on_a_friday(promoted: Project) -> None:
    """The previous weight and its step time come back through the engine's readStackOutputs like any other output:
    each update moves one step from it once that step has run 15 minutes, and stepping back is a rollback, allowed
    outside the train."""
    key = "services.payin-api.canary.weight"
    try:
        for number, weight in enumerate((5, 25)):
            promoted.run("config", "set", "--path", key, str(weight), "--stack", "prod")
            at(promoted, TRAIN + number * CANARY_INTERVAL).run("up", "--yes", "--skip-preview", "--stack", "prod")
        payin = promoted.json("stack", "output", "services", "--json", "--stack", "prod")["payin-api"]
        assert (payin["canary_weight"], payin["canary_stepped_at"]) == (25, "2026-11-24T10:45:00Z")
        promoted.run("config", "set", "--path", key, "50", "--stack", "prod")
        hurried = at(promoted, TRAIN + 2 * CANARY_INTERVAL - timedelta(minutes=1)).run("preview", "--stack", "prod",
                                                                                       check=False)
        assert hurried.returncode != 0 and f"release-infra:{key} = 50: payin-api's canary steps to 50% only once " \
            "25%, set at 2026-11-24 10:45 UTC, has run 15 minutes" in hurried.stdout, hurried.stdout
        refused = at(promoted, FRIDAY).run("preview", "--stack", "prod", check=False)
        assert refused.returncode != 0 and f"release-infra:{key} = 50: it is Friday" in refused.stdout, \
            refused.stdout
    finally:
        promoted.run("config", "set", "--path", key, "0", "--stack", "prod")
    at(promoted, FRIDAY).run("up", "--yes", "--skip-preview", "--stack", "prod")
    at(promoted, FRIDAY).run("preview", "--expect-no-changes", "--stack", "prod")
