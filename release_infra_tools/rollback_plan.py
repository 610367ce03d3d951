"""release-infra-rollback-plan: the rollback plan of one stack's `pulumi preview --json`, as Markdown.

    pulumi preview --json --stack prod > preview.json
    release-infra-rollback-plan --stack prod preview.json      # or: ... | release-infra-rollback-plan --stack prod

Exit status: 0 the plan is on stdout; 1 the preview failed (`pulumi preview` exited non-zero): one line naming
the stack, then the engine's errors, on stderr and no plan; 2 bad input (one line on stderr).
"""

from __future__ import annotations

import argparse
import sys
from textwrap import indent
from typing import Sequence

from core.rollback_plan import FailedPreview, PreviewError, parse_preview, render_markdown, rollback_plan


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="release-infra-rollback-plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", required=True, help="the stack the preview is of (sandbox, dev, test, prod)")
    parser.add_argument("preview", nargs="?", type=argparse.FileType("r"), default=sys.stdin,
                        help="the JSON of `pulumi preview --json` (default: stdin)")
    args = parser.parse_args(argv)
    try:
        plan = rollback_plan(args.stack, parse_preview(args.preview.read(), args.stack))
    except PreviewError as error:
        print(f"release-infra-rollback-plan: {error}", file=sys.stderr)
        return 2
    except FailedPreview as failed:
        print(f"release-infra-rollback-plan: {failed}", file=sys.stderr)
        for message in failed.errors:
            print(indent(message, "  "), file=sys.stderr)
        return 1
    sys.stdout.write(render_markdown(plan))
    return 0


if __name__ == "__main__":
    sys.exit(main())
