"""Which stacks a pull request previews: a stack file affects its stack, shared inputs all, docs none."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.affected_stacks import affected_stacks
from release_infra_tools.affected_stacks import main
from tests.support.stacks import ROOT, STACKS


@pytest.mark.parametrize("paths, expected", [
    (["Pulumi.prod.yaml"], ["prod"]),
    (["Pulumi.test.yaml", "Pulumi.sandbox.yaml"], ["sandbox", "test"]),
    (["catalogue.yaml"], list(STACKS)),
    (["Pulumi.yaml"], list(STACKS)),
    (["pyproject.toml"], list(STACKS)),
    (["core/gateway.py"], list(STACKS)),
    (["components/environment.py"], list(STACKS)),
    (["infra/program.py", "docs/alerting.md"], list(STACKS)),
    (["release_infra_tools/registry.py"], list(STACKS)),  # the program's digest lookup
    (["scripts/engine/versions.env"], list(STACKS)),  # the engine and provider every preview runs
    ([".github/actions/setup/action.yml"], list(STACKS)),  # how the workflows provide the engine
    (["scripts/bootstrap-engine.sh"], list(STACKS)),  # which builds it
    (["requirements.lock"], list(STACKS)),  # the exact SDKs: a bump of the Kubernetes SDK changes every stack
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


def test_every_module_the_program_imports_affects_every_stack() -> None:
    """A change to any file the program runs must be previewed on every stack; asked of a fresh interpreter."""
    script = ("import json, sys, infra.program; print(json.dumps(sorted(m.__file__ for m in list(sys.modules.values()) "
              "if getattr(m, '__file__', None))))")
    files = json.loads(subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, capture_output=True,
                                      text=True).stdout)
    own = [str(Path(file).relative_to(ROOT)) for file in files
           if Path(file).is_relative_to(ROOT) and not Path(file).is_relative_to(ROOT / ".venv")]
    assert "release_infra_tools/registry.py" in own and "infra/program.py" in own
    assert [path for path in own if affected_stacks([path], STACKS) != list(STACKS)] == []
