"""Stack outputs: the committed JSON Schema is the model's, and every stack's outputs satisfy it."""

from __future__ import annotations

import json

import jsonschema
import pytest

from core.outputs import SCHEMA_FILE, SCHEMA_VERSION, json_schema, stack_outputs
from core.policy.history import HISTORY_LIMIT, accumulate, previous_history
from tests.support.stacks import STACKS, set_path, settings, stack_config


def test_committed_schema_matches_the_model() -> None:
    assert SCHEMA_FILE.read_text() == json_schema(), "run `python -m core.outputs` and commit the schema"


@pytest.mark.parametrize("stack", STACKS)
def test_outputs_of_every_stack_validate_against_the_schema(stack: str) -> None:
    outputs = stack_outputs(settings(stack)).model_dump(mode="json")
    jsonschema.validate(outputs, json.loads(SCHEMA_FILE.read_text()))
    assert outputs["schema_version"] == SCHEMA_VERSION


def test_the_schema_rejects_an_output_missing_a_colour_or_its_image() -> None:
    for missing in (("green", "image"), ("green",)):
        outputs = stack_outputs(settings("dev")).model_dump(mode="json")
        colours = outputs["services"]["payin-api"]["colours"]
        del (colours[missing[0]] if len(missing) == 2 else colours)[missing[-1]]
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(outputs, json.loads(SCHEMA_FILE.read_text()))


def test_outputs_say_what_runs_where() -> None:
    payout = stack_outputs(settings("prod")).services["payout-api"]
    assert (payout.active_colour, payout.standby_colour) == ("blue", "green")
    assert payout.colours["blue"].image == "registry.pay.internal/payout-api:0a1b2c3-v1.8.2"
    assert (payout.colours["blue"].replicas, payout.colours["green"].replicas) == (3, 0)
    assert (payout.service_names.active, payout.service_names.preview) == ("payout-api", "payout-api-preview")


def test_history_starts_with_what_the_first_update_runs() -> None:
    payout = stack_outputs(settings("prod")).services["payout-api"]
    # green is scaled down in prod: it has a Deployment but no pods, so prod has not run its image.
    assert payout.history.ran == ["registry.pay.internal/payout-api:0a1b2c3-v1.8.2"]
    # Its older image is taken as the release the active one replaced, so going back to it is a rollback.
    assert payout.history.served == ["registry.pay.internal/payout-api:f6e5d4c-v1.8.1",
                                     "registry.pay.internal/payout-api:0a1b2c3-v1.8.2"]


def test_a_first_record_counts_only_an_older_standby_as_served() -> None:
    """A newer standby is a release waiting for its switch, not one that served."""
    config = set_path(stack_config("prod"), "services.payout-api.green.image",
                      "registry.pay.internal/payout-api:5e6f7a8-v1.9.0")
    assert stack_outputs(settings("prod", config)).services["payout-api"].history.served == [
        "registry.pay.internal/payout-api:0a1b2c3-v1.8.2"]


def test_history_accumulates_over_updates_and_a_no_change_update_keeps_it() -> None:
    first = stack_outputs(settings("test")).model_dump(mode="json")
    config = set_path(stack_config("test"), "services.payin-api.green.image",
                      "registry.pay.internal/payin-api:5e6f7a8-v2.5.0")
    second = stack_outputs(settings("test", config), first).model_dump(mode="json")
    flipped = stack_outputs(settings("test", set_path(config, "services.payin-api.active", "green")),
                            second).model_dump(mode="json")
    history = flipped["services"]["payin-api"]["history"]
    assert history["ran"] == ["registry.pay.internal/payin-api:a1b2c3d-v2.3.0",
                              "registry.pay.internal/payin-api:9f8e7d6-v2.2.4",
                              "registry.pay.internal/payin-api:5e6f7a8-v2.5.0"]
    assert history["served"] == ["registry.pay.internal/payin-api:9f8e7d6-v2.2.4",
                                 "registry.pay.internal/payin-api:a1b2c3d-v2.3.0",
                                 "registry.pay.internal/payin-api:5e6f7a8-v2.5.0"]
    assert stack_outputs(settings("test", config), flipped).model_dump(mode="json") == flipped  # config is flipped


def test_outputs_of_schema_1_0_count_what_they_ran() -> None:
    old = stack_outputs(settings("test")).model_dump(mode="json")
    for service in old["services"].values():
        del service["history"]
    old["schema_version"] = "1.0"
    history = stack_outputs(settings("test"), old).services["merchant-api"].history
    assert set(history.ran) == {"registry.pay.internal/merchant-api:d0e1f2a-v3.0.9",
                                "registry.pay.internal/merchant-api:e1f2a3b-v3.1.0"}
    # The older standby is taken as the release the active one replaced, as in a first record.
    assert history.served == ["registry.pay.internal/merchant-api:d0e1f2a-v3.0.9",
                              "registry.pay.internal/merchant-api:e1f2a3b-v3.1.0"]


def test_history_keeps_the_newest_images_and_ignores_malformed_entries() -> None:
    assert accumulate([f"r.io/a:{i:07x}-v1.0.{i}" for i in range(HISTORY_LIMIT)], ["r.io/a:fffffff-v9.0.0"])[-1] \
        == "r.io/a:fffffff-v9.0.0"
    assert len(accumulate([f"r.io/a:{i:07x}-v1.0.{i}" for i in range(HISTORY_LIMIT)], ["r.io/a:fffffff-v9.0.0"])) \
        == HISTORY_LIMIT
    assert accumulate(["r.io/a:abcdef0-v1.0.0"], ["r.io/a:abcdef0-v1.0.0@sha256:" + "0" * 64]) == \
        ["r.io/a:abcdef0-v1.0.0"]
    assert previous_history({"history": {"ran": "not a list"}, "colours": [1]}) == ([], [])
    assert previous_history(None) == ([], [])
