"""Which stacks a pull request previews: a stack file affects its stack, shared inputs all, docs none."""

from __future__ import annotations

import io
import json

import pytest

from core.affected_stacks import affected_stacks
from release_infra_tools.affected_stacks import main
from tests.support.stacks import STACKS


@pytest.mark.parametrize("paths, expected", [
    (["Pulumi.prod.yaml"], ["prod"]),
    (["Pulumi.test.yaml", "Pulumi.sandbox.yaml"], ["sandbox", "test"]),
    (["catalogue.yaml"], list(STACKS)),
    (["Pulumi.yaml"], list(STACKS)),
    (["pyproject.toml"], list(STACKS)),
    (["core/gateway.py"], list(STACKS)),
    (["components/environment.py"], list(STACKS)),
    (["infra/program.py", "docs/alerting.md"], list(STACKS)),
    (["docs/pull-requests.md", "README.md"], []),
    (["tests/core/test_gateway.py", "scripts/up.sh", ".github/workflows/deploy.yml"], []),
    ([], []),
    (["Pulumi.staging.yaml"], []),  # not one of the environments
    (["docs/core/notes.md", "corey.py", "Pulumi.prod.yaml.orig"], []),  # only real prefixes and names count
])
def test_affected_stacks(paths: list[str], expected: list[str]) -> None:
    assert affected_stacks(paths, STACKS) == expected


def test_the_command_reads_git_diff_output_on_stdin(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("docs/x.md\nPulumi.dev.yaml\n\nPulumi.prod.yaml\n"))
    assert main(["--json"]) == 0
    assert json.loads(capsys.readouterr().out) == ["dev", "prod"]


def test_the_command_takes_paths_as_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["core/settings.py"]) == 0
    assert capsys.readouterr().out.split() == list(STACKS)
