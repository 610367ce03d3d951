"""BlueGreenService under mocks: what it registers, under which names and parent."""

from __future__ import annotations

from collections import Counter

from components.blue_green_service import BlueGreenService
from core.blue_green import plan
from tests.support.mock_engine import run_program
from tests.support.stacks import catalogue, settings


def register_pair():
    def program() -> BlueGreenService:
        pair = BlueGreenService("dev-payin-api", plan(settings("dev"), "payin-api", catalogue().services["payin-api"]))
        pair.route_preview()
        return pair

    return run_program(program, stack="dev", config={})


def test_registers_a_deployment_service_pair_and_budget_per_colour() -> None:
    run = register_pair()
    assert Counter(r.kind for r in run.registrations) == {
        "BlueGreenService": 1, "Deployment": 2, "Service": 2, "PodDisruptionBudget": 2}
    component = run.named("dev-payin-api")
    assert component.type == "release-infra:services:BlueGreenService" and not component.custom


def test_every_child_is_parented_to_the_component_and_prefixed_with_its_name() -> None:
    run = register_pair()
    component = run.named("dev-payin-api")
    children = [r for r in run.registrations if r is not component]
    assert {r.parent for r in children} == {component.urn}
    assert sorted(r.name for r in children) == sorted([
        "dev-payin-api-blue", "dev-payin-api-green", "dev-payin-api-active", "dev-payin-api-preview",
        "dev-payin-api-blue", "dev-payin-api-green"])


def test_registered_inputs_are_the_plan() -> None:
    run = register_pair()
    deployment = next(r for r in run.of_kind("Deployment") if r.name == "dev-payin-api-green")
    assert deployment.inputs["metadata"]["name"] == "payin-api-green"
    assert deployment.inputs["spec"]["selector"] == {"matchLabels": {"app": "payin-api", "color": "green"}}
    active = next(r for r in run.of_kind("Service") if r.name == "dev-payin-api-active")
    assert active.inputs["spec"]["selector"] == {"app": "payin-api", "color": "blue"}
