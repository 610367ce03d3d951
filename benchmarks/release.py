"""The real engine: `release rollback` (the console script, start to exit, i.e. until the routing update is
applied) against a bare colour flip by hand (`pulumi config set --path` then `pulumi up`) on the dev stack, and
against that `pulumi up` alone; interleaved, median of N in one run.

    .venv/bin/python -m benchmarks.release [--repeat 7]
"""

from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.synthetic import repeat_count
from tests.support.engine import bootstrap_env, make_project
from tests.support.stacks import ROOT

STACK, SERVICE = "dev", "payin-api"


def main() -> None:
    repeat = repeat_count(__doc__)
    env = bootstrap_env()
    with tempfile.TemporaryDirectory() as workdir:
        project = make_project(Path(workdir) / "project", env)
        project.env["RELEASE_INFRA_CATALOGUE"] = str(ROOT / "catalogue.yaml")
        project.init(STACK)
        project.run("up", "--yes", "--skip-preview", "--stack", STACK)
        colour = project.json("stack", "output", "services", "--json", "--stack", STACK)[SERVICE]["active_colour"]
        rollbacks, flips, ups = [], [], []
        for _ in range(repeat):  # interleaved, so drift in the machine hits both alike
            start = time.perf_counter()
            subprocess.run([str(ROOT / ".venv" / "bin" / "release"), "--project-dir", str(project.directory),
                            "rollback", STACK, SERVICE], env=project.env, check=True, capture_output=True)
            rollbacks.append(time.perf_counter() - start)
            start = time.perf_counter()
            project.run("config", "set", "--path", f"services.{SERVICE}.active", colour, "--stack", STACK)
            up_start = time.perf_counter()
            project.run("up", "--yes", "--skip-preview", "--stack", STACK)
            flips.append(time.perf_counter() - start)
            ups.append(time.perf_counter() - up_start)
    rollback, flip, up = (statistics.median(values) for values in (rollbacks, flips, ups))
    print(f"median of {repeat}, wall time, dev stack (3 services), local file backend, manifests rendered")
    print("| measurement | seconds |")
    print("|---|---:|")
    print(f"| `release rollback dev {SERVICE}` (process start to exit) | {rollback:.2f} |")
    print(f"| bare flip: `pulumi config set --path` + `pulumi up --skip-preview` | {flip:.2f} |")
    print(f"| of which `pulumi up --skip-preview` alone | {up:.2f} |")
    print(f"| ratio rollback / bare flip (target at most 1.2x) | {rollback / flip:.2f}x |")
    print(f"| ratio rollback / `pulumi up` alone | {rollback / up:.2f}x |")


if __name__ == "__main__":
    main()
