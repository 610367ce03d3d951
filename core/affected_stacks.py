"""Which stacks a change affects, so a pull request previews those and no others.

A stack's own file affects that stack; what every stack is built from (the catalogue, the program and every module
it imports, the project file, the pinned dependencies, and the pinned engine and Kubernetes provider) affects all
of them; anything else (docs, tests, other scripts) affects none.
"""

from __future__ import annotations

import re
from typing import Iterable

STACK_FILE = re.compile(r"Pulumi\.(?P<stack>[A-Za-z0-9_.-]+)\.yaml")
# requirements.lock: the exact SDKs every stack runs; the bootstrap and the setup action: the engine CI builds.
SHARED_FILES = ("catalogue.yaml", "Pulumi.yaml", "pyproject.toml", "requirements.lock", "scripts/bootstrap-engine.sh",
                ".github/actions/setup/action.yml")
# release_infra_tools/: the program imports its registry client (digest lookup).
SHARED_DIRECTORIES = ("core/", "components/", "infra/", "release_infra_tools/", "scripts/engine/")


def affected_stacks(paths: Iterable[str], stacks: Iterable[str]) -> list[str]:
    """The stacks, in the order given, that a change to ``paths`` (repository-relative) affects."""
    stacks = list(stacks)
    affected: set[str] = set()
    for path in paths:
        path = path.strip().removeprefix("./")
        if path in SHARED_FILES or path.startswith(SHARED_DIRECTORIES):
            return stacks
        match = STACK_FILE.fullmatch(path)
        if match and match["stack"] in stacks:
            affected.add(match["stack"])
    return [stack for stack in stacks if stack in affected]
