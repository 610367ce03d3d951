"""Reading stack outputs through the engine's readStackOutputs invoke, under mocks."""

from __future__ import annotations

import pulumi
import pytest
from pulumi.runtime.invoke import InvokeResult

from infra.stack_state import READ_STACK_OUTPUTS, previous_outputs, read_stack_outputs
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


def failing_once(monkeypatch: pytest.MonkeyPatch, message: str) -> list[str]:
    """The engine's invoke, failing with ``message`` on its first call."""
    calls: list[str] = []

    def invoke(token: str, args: dict, *rest: object, **options: object) -> InvokeResult:
        calls.append(token)
        if len(calls) == 1:
            raise Exception(f"invoke of {token} failed: {message}")
        return InvokeResult({"name": args["name"], "outputs": {"environment": "prod"}})

    monkeypatch.setattr(pulumi.runtime, "invoke", invoke)
    return calls


def test_a_checkpoint_read_while_the_engine_writes_it_is_read_again(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = failing_once(monkeypatch, "failed to load checkpoint: EOF")
    assert run_program(previous_outputs, stack="prod", config={}).result == {"environment": "prod"}
    assert calls == [READ_STACK_OUTPUTS, READ_STACK_OUTPUTS]


def test_other_errors_are_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = failing_once(monkeypatch, "stack 'organization/release-infra/nope' not found")
    run = run_program(lambda: read_stack_outputs("nope"), stack="prod", config={}, keep_error=True)
    assert "not found" in str(run.error) and len(calls) == 1
