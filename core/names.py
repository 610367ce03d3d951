"""The product's fixed names: its project, its four environments, the two colours and the canary's steps.

They import nothing, so a tool that only needs the names (a rollback, say) does not pay for the models at start-up.
"""

from __future__ import annotations

from typing import Literal

PROJECT = "release-infra"

EnvironmentName = Literal["sandbox", "dev", "test", "prod"]
ENVIRONMENTS: tuple[EnvironmentName, ...] = ("sandbox", "dev", "test", "prod")  # in the order a release walks them

Colour = Literal["blue", "green"]
COLOURS: tuple[Colour, ...] = ("blue", "green")

DEFAULT_CANARY_STEPS = (5, 25, 50, 100)  # seed 000 §2


def other(colour: Colour) -> Colour:
    return "green" if colour == "blue" else "blue"
