"""The product's fixed names: its project, its four environments, the two colours and the canary's steps.

They import nothing, so a tool that only needs the names (a rollback, say) does not pay for the models at start-up.
"""

from __future__ import annotations

from typing import Any, Literal

PROJECT = "release-infra"

EnvironmentName = Literal["sandbox", "dev", "test", "prod"]
ENVIRONMENTS: tuple[EnvironmentName, ...] = ("sandbox", "dev", "test", "prod")  # in the order a release walks them

Colour = Literal["blue", "green"]
COLOURS: tuple[Colour, ...] = ("blue", "green")

DEFAULT_CANARY_STEPS = (5, 25, 50, 100)  # seed 000 §2


def whole_percent(value: Any) -> int | None:
    """A canary weight or step as the program reads it: a whole number from 0 to 100 ("25", 25 and 25.0 are 25;
    true is no number), else None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if not isinstance(value, bool) and number.is_integer() and 0 <= number <= 100 else None


def other(colour: Colour) -> Colour:
    return "green" if colour == "blue" else "blue"


def warm_again(service: str) -> str:
    """How a scaled-down standby becomes warm: `pulumi config set` cannot write ``standby: {policy: warm}``, and
    policy warm beside the colour and since of a scaled-down one is refused; without the key a standby is warm."""
    return f"pulumi config rm --path services.{service}.standby"
