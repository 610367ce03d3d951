"""Evaluation time of the whole program under mocks, against registering the same resources directly.

The baseline is what the program would cost with no settings, no pure core and no components: the same
resources, with the same inputs the program registered, created flat with the SDK. Both run on the same
recording mocks, so the ratio is the program's own overhead.

    .venv/bin/python -m benchmarks.program_eval [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import pulumi
import pulumi_kubernetes as k8s

from benchmarks.synthetic import prod_config, write_catalogue
from infra.program import main
from tests.support.mock_engine import Registration, run_program
from tests.support.stacks import NOW

SIZES = (10, 50, 100)
RESOURCE_CLASSES = {
    "kubernetes:core/v1:Namespace": k8s.core.v1.Namespace,
    "kubernetes:core/v1:ResourceQuota": k8s.core.v1.ResourceQuota,
    "kubernetes:core/v1:LimitRange": k8s.core.v1.LimitRange,
    "kubernetes:core/v1:Service": k8s.core.v1.Service,
    "kubernetes:networking.k8s.io/v1:NetworkPolicy": k8s.networking.v1.NetworkPolicy,
    "kubernetes:apps/v1:Deployment": k8s.apps.v1.Deployment,
    "kubernetes:policy/v1:PodDisruptionBudget": k8s.policy.v1.PodDisruptionBudget,
}


def baseline(registrations: list[Registration]) -> Callable[[], None]:
    """A flat program registering the given custom resources with the same inputs."""
    def program() -> None:
        provider = k8s.Provider("kubernetes", render_yaml_to_directory="/tmp/unused")
        options = pulumi.ResourceOptions(provider=provider)
        for registration in registrations:
            if registration.type in RESOURCE_CLASSES:
                inputs = {key: value for key, value in registration.inputs.items() if key in ("metadata", "spec")}
                RESOURCE_CLASSES[registration.type](registration.name, opts=options, **inputs)
    return program


def timed(program: Callable[[], object], config: dict) -> float:
    start = time.perf_counter()
    run_program(program, stack="prod", config=config)
    return time.perf_counter() - start


def measure(services: int, repeat: int, directory: Path) -> tuple[float, float, int]:
    catalogue, config = write_catalogue(directory, services), prod_config(services)
    program = lambda: main(now=lambda: NOW, catalogue_file=catalogue)  # noqa: E731
    recorded = run_program(program, stack="prod", config=config).registrations
    flat = baseline(recorded)
    custom = sum(1 for r in recorded if r.type in RESOURCE_CLASSES)
    assert len(run_program(flat, stack="prod", config=config).registrations) == custom + 1  # + the provider
    timed(program, config), timed(flat, config)  # warm-up
    program_times, baseline_times = [], []
    for _ in range(repeat):  # interleaved, so drift in the machine's speed hits both alike
        program_times.append(timed(program, config))
        baseline_times.append(timed(flat, config))
    return statistics.median(program_times), statistics.median(baseline_times), custom


def main_cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as directory:
        for services in SIZES:
            results[services] = measure(services, args.repeat, Path(directory))
    print(f"median of {args.repeat} runs each, program vs flat SDK baseline, same recording mocks")
    print("| services | resources | program (s) | baseline (s) | ratio |")
    print("|---:|---:|---:|---:|---:|")
    for services, (program, flat, resources) in results.items():
        print(f"| {services} | {resources} | {program:.3f} | {flat:.3f} | {program / flat:.2f}x |")
    growth = results[100][0] / results[10][0]
    print(f"\ngrowth 10 -> 100 services: {growth:.2f}x (linear would be 10x; target at most 11x)")
    worst = max(program / flat for program, flat, _ in results.values())
    print(f"worst ratio to baseline: {worst:.2f}x (target at most 1.2x)")


if __name__ == "__main__":
    main_cli()
