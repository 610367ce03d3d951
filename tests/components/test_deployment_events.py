"""DeploymentEvents under mocks: any number of them in one process, each with the same serialized provider."""

from __future__ import annotations

from components.deployment_events import DeploymentEvents
from core.alerting.events import ReleaseState
from tests.support.mock_engine import run_program

SERVICES = 1000  # beyond the ~980 dynamic resources after which the SDK's own pickling exceeds the recursion limit


def test_a_thousand_services_register_in_one_process() -> None:
    def program() -> None:
        for index in range(SERVICES):
            DeploymentEvents(f"prod-service-{index:04d}-deployment", stack="prod", environment="prod",
                             namespace="payments-prod", service=f"service-{index:04d}",
                             release=ReleaseState("blue", f"registry.pay.internal/s:{index:07x}-v1.0.0",
                                                  f"registry.pay.internal/s:{index + 1:07x}-v1.0.1"),
                             alertmanager_url=None)

    run = run_program(program, stack="prod", config={})
    assert len(run.registrations) == SERVICES
    assert len({registration.inputs["__provider"] for registration in run.registrations}) == 1
