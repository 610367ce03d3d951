"""release-infra-affected-stacks: the stacks a change affects, for the pull-request preview's job matrix.

    git diff --no-renames --name-only origin/main...HEAD | release-infra-affected-stacks --json   # ["dev", "prod"]

Paths come as arguments or one per line on stdin. The stacks are the environments, sandbox to prod. Without
--no-renames, git names only the new path of a moved file, and a program file moved out of infra/ would go unseen.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from core.affected_stacks import affected_stacks
from core.settings import EnvironmentKind


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="release-infra-affected-stacks", description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", help="changed paths, relative to the repository (default: stdin)")
    parser.add_argument("--json", action="store_true", help="print a JSON list (for a job matrix), not lines")
    args = parser.parse_args(argv)
    paths = args.paths or [line for line in sys.stdin.read().splitlines() if line.strip()]
    stacks = affected_stacks(paths, [kind.value for kind in EnvironmentKind])
    print(json.dumps(stacks) if args.json else "\n".join(stacks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
