"""The real engine: `pulumi up` of a colour flip on a 20-service prod stack against `pulumi up` of an empty
program, median of 5 in one run; and `pulumi preview` at 20 and 100 services.

    .venv/bin/python -m benchmarks.engine [--repeat 5]
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks.synthetic import prod_config, repeat_count, upstream_config, write_catalogue
from tests.support.engine import Project, bootstrap_env, make_project

EMPTY_PROGRAM = "import pulumi\n"


def stack_file(config: dict) -> str:
    return yaml.safe_dump({"config": {f"release-infra:{key}": value for key, value in config.items()}})


def timed(project: Project, *args: str) -> float:
    start = time.perf_counter()
    project.run(*args)
    return time.perf_counter() - start


def main() -> None:
    repeat = repeat_count(__doc__)
    env = bootstrap_env()
    with tempfile.TemporaryDirectory() as workdir:
        root = Path(workdir)
        previews = {}
        for services in (20, 100):
            project = make_project(root / f"p{services}", env, {"prod": stack_file(prod_config(services)),
                                                                "test": stack_file(upstream_config(services))},
                                   write_catalogue(root, services))
            project.init("test")  # prod runs only images test has run: test deploys them first
            project.run("up", "--yes", "--skip-preview", "--stack", "test")
            project.init("prod")
            project.run("up", "--yes", "--skip-preview", "--stack", "prod")
            previews[services] = statistics.median(timed(project, "preview", "--stack", "prod")
                                                   for _ in range(repeat))
            if services == 20:
                flip_project = project
        empty = make_project(root / "empty", env, {"prod": "config: {}\n"})
        (empty.directory / "infra" / "__main__.py").write_text(EMPTY_PROGRAM)
        empty.init("prod")
        flips, unchanged, baselines = [], [], []
        colours = ["blue", "green"]
        for index in range(repeat):  # interleaved, so drift in the machine hits all alike
            flip_project.run("config", "set", "--path", "services.service-000.active", colours[index % 2],
                             "--stack", "prod")
            flips.append(timed(flip_project, "up", "--yes", "--skip-preview", "--stack", "prod"))
            unchanged.append(timed(flip_project, "up", "--yes", "--skip-preview", "--stack", "prod"))
            baselines.append(timed(empty, "up", "--yes", "--skip-preview", "--stack", "prod"))
    flip, baseline = statistics.median(flips), statistics.median(baselines)
    logs = Path(env["PULUMI_HOME"]) / "logs"
    automatic_log = "off" if logs.is_symlink() and os.readlink(logs) == "/dev/null" else "on"
    print(f"median of {repeat}, wall time of the pulumi CLI, local file backend, manifests rendered, "
          f"Pulumi's automatic log {automatic_log} (scripts/engine/README.md)")
    print("| measurement | seconds |")
    print("|---|---:|")
    print(f"| `pulumi up` of a colour flip, prod with 20 services | {flip:.2f} |")
    print(f"| `pulumi up` with no change, same stack | {statistics.median(unchanged):.2f} |")
    print(f"| `pulumi up` of an empty program | {baseline:.2f} |")
    print(f"| ratio (target at most 1.5x) | {flip / baseline:.2f}x |")
    for services, seconds in previews.items():
        print(f"| `pulumi preview`, prod with {services} services | {seconds:.2f} |")


if __name__ == "__main__":
    main()
