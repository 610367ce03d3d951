"""Stack outputs: the committed JSON Schema is the model's, and every stack's outputs satisfy it."""

from __future__ import annotations

import json

import jsonschema
import pytest

from core.outputs import SCHEMA_FILE, json_schema, stack_outputs
from tests.support.stacks import STACKS, settings


def test_committed_schema_matches_the_model() -> None:
    assert SCHEMA_FILE.read_text() == json_schema(), "run `python -m core.outputs` and commit the schema"


@pytest.mark.parametrize("stack", STACKS)
def test_outputs_of_every_stack_validate_against_the_schema(stack: str) -> None:
    outputs = stack_outputs(settings(stack)).model_dump(mode="json")
    jsonschema.validate(outputs, json.loads(SCHEMA_FILE.read_text()))
    assert outputs["schema_version"] == "1.1"


def test_the_schema_rejects_an_output_missing_a_colour() -> None:
    outputs = stack_outputs(settings("dev")).model_dump(mode="json")
    del outputs["services"]["payin-api"]["colours"]["green"]["image"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(outputs, json.loads(SCHEMA_FILE.read_text()))


def test_outputs_say_what_runs_where() -> None:
    payout = stack_outputs(settings("prod")).services["payout-api"]
    assert (payout.active_colour, payout.standby_colour) == ("blue", "green")
    assert payout.colours["blue"].image == "registry.pay.internal/payout-api:0a1b2c3-v1.8.2"
    assert (payout.colours["blue"].replicas, payout.colours["green"].replicas) == (3, 0)
    assert (payout.service_names.active, payout.service_names.preview) == ("payout-api", "payout-api-preview")
