"""Reading stack outputs through the engine's readStackOutputs invoke, under mocks."""

from __future__ import annotations

from infra.stack_state import previous_outputs, read_stack_outputs
from tests.support.mock_engine import run_program


def test_previous_outputs_are_this_stacks_last_outputs() -> None:
    run = run_program(previous_outputs, stack="prod", config={},
                      stack_outputs={"prod": {"environment": "prod"}, "test": {"environment": "test"}})
    assert run.result == {"environment": "prod"}


def test_another_stacks_outputs_by_name() -> None:
    run = run_program(lambda: read_stack_outputs("test"), stack="prod", config={},
                      stack_outputs={"test": {"environment": "test"}})
    assert run.result == {"environment": "test"}


def test_a_stack_without_an_update_has_no_outputs() -> None:
    assert run_program(previous_outputs, stack="dev", config={}).result == {}
