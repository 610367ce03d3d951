"""Evaluation time of the whole program under mocks, against registering the same resources directly.

Each repetition runs in a fresh process, as every `pulumi` run does. The baseline is what the program would cost with no settings, no pure core and no components: the same
resources, with the same inputs the program registered, created flat with the SDK. Both run on the same
recording mocks, so the ratio is the program's own overhead.

    .venv/bin/python -m benchmarks.program_eval [--repeat 5]
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import re
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable

import pulumi
import pulumi_kubernetes as k8s

from benchmarks.synthetic import prod_config, upstream_outputs, write_catalogue
from infra.program import main
from tests.support.mock_engine import Registration, run_program
from tests.support.stacks import NOW

SIZES = (10, 50, 100)


def sdk_resource(registration: Registration, options: pulumi.ResourceOptions) -> None:
    """Register one recorded resource through the SDK class a program would use for its type token."""
    package, module, kind = registration.type.split(":")
    inputs = dict(registration.inputs)
    if package == "kubernetes":
        group, version = module.rsplit("/", 1)
        namespace = getattr(getattr(k8s, group.split(".")[0], None), version, None)
        if namespace is not None and hasattr(namespace, kind):
            getattr(namespace, kind)(registration.name, opts=options, **{
                re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower(): value  # stringData -> string_data
                for key, value in inputs.items() if key not in ("apiVersion", "kind")})
            return
        k8s.apiextensions.CustomResource(registration.name, api_version=f"{group}/{version}", kind=kind, opts=options,
                                         **{key: value for key, value in inputs.items()
                                            if key not in ("apiVersion", "kind")})
        return
    pulumi.CustomResource(registration.type, registration.name, inputs, opts=options)  # e.g. dynamic resources


def baseline(registrations: list[Registration]) -> Callable[[], None]:
    """A flat program registering every recorded custom resource with the same inputs: no settings, no
    components, no pure core."""
    def program() -> None:
        options = pulumi.ResourceOptions(provider=k8s.Provider("kubernetes", render_yaml_to_directory="/tmp/unused"))
        for registration in registrations:
            if registration.custom and not registration.type.startswith("pulumi:providers:"):
                sdk_resource(registration, options)
    return program


def timed(program: Callable[[], object], config: dict, upstream: dict) -> tuple[float, float, int]:
    """Seconds, CPU seconds of the process (less moved by other load on the machine), and how many full passes of
    the garbage collector the run paid for."""
    full_passes = []

    def count(phase: str, info: dict) -> None:
        if phase == "start" and info["generation"] == 2:
            full_passes.append(info)

    gc.callbacks.append(count)
    try:
        start, cpu = time.perf_counter(), time.process_time()
        run_program(program, stack="prod", config=config, stack_outputs=upstream)
        return time.perf_counter() - start, time.process_time() - cpu, len(full_passes)
    finally:
        gc.callbacks.remove(count)


def one_repetition(services: int, directory: str) -> tuple[tuple[float, float, int], tuple[float, float, int], int]:
    """One warm program run and one warm baseline run, in a process of its own like every `pulumi` run."""
    catalogue, config = write_catalogue(Path(directory), services), prod_config(services)
    upstream = upstream_outputs(services, catalogue)  # what test ran, which prod's lineage reads
    program = lambda: main(now=lambda: NOW, catalogue_file=catalogue)  # noqa: E731
    recorded = run_program(program, stack="prod", config=config, stack_outputs=upstream).registrations  # warm-up
    flat = baseline(recorded)
    custom = sum(1 for r in recorded if r.custom and not r.type.startswith("pulumi:providers:"))
    assert len(run_program(flat, stack="prod", config=config).registrations) == custom + 1  # + the provider
    return timed(program, config, upstream), timed(flat, config, upstream), custom


def measure(services: int, repeat: int, directory: Path) -> tuple[tuple[float, ...], tuple[float, ...], int]:
    """Medians of (seconds, CPU seconds, full collector passes) for the program and for the baseline, and the
    number of resources."""
    context = multiprocessing.get_context("spawn")
    program_runs, baseline_runs = [], []
    for _ in range(repeat):
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            program_run, baseline_run, custom = pool.submit(one_repetition, services, str(directory)).result()
        program_runs.append(program_run)
        baseline_runs.append(baseline_run)
    return (tuple(statistics.median(column) for column in zip(*program_runs)),
            tuple(statistics.median(column) for column in zip(*baseline_runs)), custom)


def main_cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as directory:
        for services in SIZES:
            results[services] = measure(services, args.repeat, Path(directory))
    print(f"median of {args.repeat} runs each, program vs flat SDK baseline, same recording mocks")
    print("| services | resources | program (s) | baseline (s) | ratio | program CPU (s) | full GC passes, "
          "program / baseline |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for services, (program, flat, resources) in results.items():
        print(f"| {services} | {resources} | {program[0]:.3f} | {flat[0]:.3f} | {program[0] / flat[0]:.2f}x "
              f"| {program[1]:.3f} | {program[2]:g} / {flat[2]:g} |")
    growth = results[100][0][0] / results[10][0][0]
    print(f"\ngrowth 10 -> 100 services: {growth:.2f}x (linear would be 10x; target at most 11x)")
    print(f"growth in CPU time: {results[100][0][1] / results[10][0][1]:.2f}x")
    worst = max(program[0] / flat[0] for program, flat, _ in results.values())
    print(f"worst ratio to baseline: {worst:.2f}x (target at most 1.2x)")


if __name__ == "__main__":
    main_cli()
