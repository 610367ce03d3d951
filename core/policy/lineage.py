"""Promotion lineage: an environment runs only images its upstream stack has run (Prod from Test, seed 000 §1).

Only images new to the environment are checked: an image it ran before was checked when it arrived, so a
rollback to it never depends on what the upstream runs or remembers today. An environment's first deploy has
nothing of its own, so every image it runs must have run upstream; the upstream deploys first.
"""

from __future__ import annotations

from typing import Any, Mapping

from core.errors import Problem
from core.policy.changes import mapping, path
from core.policy.history import image_key, previous_history, ran_in
from core.policy.settings import UPSTREAM
from core.settings import COLOURS, StackSettings

SHOWN = 3  # upstream images named in a message, the newest


def lineage_problems(settings: StackSettings, previous: Mapping[str, Any], upstream: str,
                     upstream_outputs: Mapping[str, Any]) -> list[Problem]:
    stack = settings.stack
    if not upstream_outputs:
        return [Problem(path(UPSTREAM), upstream, f'stack "{upstream}" has no outputs yet: {stack} runs only '
                                                  f"images {upstream} has run, so {upstream} deploys first")]
    problems = []
    for name, release in settings.services.items():
        own, theirs = ran_in(previous, name), ran_in(upstream_outputs, name)
        for colour in COLOURS:
            image = str(release.image(colour))
            if image_key(image) in own or image_key(image) in theirs:
                continue
            ran = previous_history(mapping(upstream_outputs.get("services")).get(name))[0]
            there = (f"{upstream} has run {name} " + ", ".join(i.rsplit(":", 1)[-1] for i in ran[-SHOWN:])
                     if ran else f"{upstream} has never run {name}")
            problems.append(Problem(path("services", name, colour, "image"), image,
                                    f"has not run in {upstream} (release-infra:{UPSTREAM}) and has not run in "
                                    f"{stack} before; {stack} runs only images {upstream} has run ({there})"))
    return problems
