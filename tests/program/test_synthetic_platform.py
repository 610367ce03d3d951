"""The benchmarks' synthetic platform (benchmarks/synthetic.py) is one the program accepts: a benchmark whose
platform the checks refused would time an error, or stop, instead of measuring the program."""

from __future__ import annotations

from pathlib import Path

from benchmarks.synthetic import prod_config, upstream_outputs, write_catalogue
from infra.program import main
from tests.support.mock_engine import run_program
from tests.support.stacks import NOW


def test_the_synthetic_platform_runs_through_the_program(tmp_path: Path) -> None:
    catalogue = write_catalogue(tmp_path, 3)
    run = run_program(lambda: main(now=lambda: NOW, catalogue_file=catalogue), stack="prod", config=prod_config(3),
                      stack_outputs=upstream_outputs(3, catalogue), keep_error=True)
    assert run.error is None
    assert {r.name for r in run.of_kind("Deployment") if r.name.startswith("prod-service-")} == {
        f"prod-service-00{i}-{colour}" for i in range(3) for colour in ("blue", "green")}
    assert {r.name for r in run.of_kind("Secret") if r.name.endswith("-database")} == {
        f"prod-service-00{i}-database" for i in range(3)}
