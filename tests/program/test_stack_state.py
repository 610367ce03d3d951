"""Reading stack outputs through the engine's readStackOutputs invoke, under mocks."""

from __future__ import annotations

import grpc
import pytest

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


class _EngineError(grpc.RpcError):
    """What the engine's monitor raises when it cannot answer the invoke."""

    def __init__(self, details: str):
        self._details = details

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNKNOWN

    def details(self) -> str:
        return self._details


class _Backend(dict):
    """Stack outputs whose first ``failures`` reads fail as the engine would, with ``error``."""

    def __init__(self, outputs: dict, failures: int, error: str):
        super().__init__(outputs)
        self.failures, self.error, self.reads = failures, error, 0

    def get(self, *args):
        self.reads += 1
        if self.reads <= self.failures:
            raise _EngineError(self.error)
        return super().get(*args)


BUSY = "invocation of pulumi:pulumi:readStackOutputs returned an error: failed to load checkpoint: EOF"


def test_a_checkpoint_caught_mid_write_is_read_again() -> None:
    backend = _Backend({"prod": {"environment": "prod"}}, failures=2, error=BUSY)
    assert run_program(previous_outputs, stack="prod", config={}, stack_outputs=backend).result == \
        {"environment": "prod"}
    assert backend.reads == 3


@pytest.mark.parametrize(("failures", "error", "reads"), [(9, BUSY, 4), (1, "permission denied", 1)])
def test_a_lasting_or_other_failure_is_raised(failures: int, error: str, reads: int) -> None:
    backend = _Backend({"prod": {"environment": "prod"}}, failures=failures, error=error)
    run = run_program(previous_outputs, stack="prod", config={}, stack_outputs=backend, keep_error=True)
    assert error in str(run.error) and backend.reads == reads
