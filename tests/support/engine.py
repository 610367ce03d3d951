"""The real Pulumi engine for tests and benchmarks: the pinned CLI and plugin from scripts/bootstrap-engine.sh,
and throwaway copies of the project on their own file backends, so `pulumi config set` edits no repo file."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.policy.clock import CLOCK_VARIABLE
from tests.support.stacks import ROOT, TRAIN


def bootstrap_env() -> dict[str, str]:
    """The environment the bootstrap exports (PATH with the pinned pulumi first, PULUMI_HOME, no downloads)."""
    exports = subprocess.run([str(ROOT / "scripts" / "bootstrap-engine.sh")], check=True, capture_output=True,
                             text=True, timeout=5400).stdout
    env = dict(os.environ)
    for line in exports.splitlines():
        assert line.startswith("export "), line
        name, _, value = line[len("export "):].partition("=")
        env[name] = os.path.expandvars(" ".join(shlex.split(value))) if "$" in value else " ".join(shlex.split(value))
    env["PATH"] = env["PATH"].replace("${PATH}", os.environ["PATH"])
    return env


@dataclass
class Project:
    """A copy of the project on its own file backend; `run` is the pulumi CLI in it."""

    directory: Path
    env: dict[str, str]

    @property
    def manifests(self) -> Path:
        return Path(self.env["RELEASE_INFRA_RENDER_DIR"])

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["pulumi", *args, "--non-interactive"], cwd=self.directory, env=self.env,
                                capture_output=True, text=True, timeout=900)
        if check and result.returncode != 0:
            raise AssertionError(f"pulumi {' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args).stdout)

    def refused_preview(self, stack: str, change: tuple[str, ...], undo: tuple[str, ...]) -> str:
        """The output of a `pulumi preview` of ``stack`` that must fail after the config command ``change``
        (`pulumi config <change>`); ``undo`` puts the config back whatever happens."""
        self.run("config", *change, "--stack", stack)
        try:
            result = self.run("preview", "--stack", stack, check=False)
        finally:
            self.run("config", *undo, "--stack", stack)
        assert result.returncode != 0, result.stdout
        return result.stdout + result.stderr

    def init(self, stack: str) -> None:
        self.run("stack", "init", stack, "--secrets-provider", "passphrase")


def make_project(directory: Path, engine_env: dict[str, str], stacks: dict[str, str] | None = None,
                 catalogue: Path | None = None) -> Project:
    """Pulumi.yaml and the stack files (or the given ones) in ``directory``, running the repo's program."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "Pulumi.yaml", directory)
    (directory / "infra").mkdir(exist_ok=True)
    shutil.copy(ROOT / "infra" / "__main__.py", directory / "infra")
    (directory / ".venv").symlink_to(ROOT / ".venv")
    # Python dynamic providers look for the virtualenv relative to `main` (pulumi/pulumi#7061).
    (directory / "infra" / ".venv").symlink_to(ROOT / ".venv")
    if stacks is None:
        for stack_file in ROOT.glob("Pulumi.*.yaml"):
            if stack_file.name != "Pulumi.yaml":
                shutil.copy(stack_file, directory)
    else:
        for stack, text in stacks.items():
            (directory / f"Pulumi.{stack}.yaml").write_text(text)
    (directory / "state").mkdir()
    # The engine tier changes Prod on whatever day CI runs: its release-policy clock is pinned inside the train.
    env = dict(engine_env, **{CLOCK_VARIABLE: TRAIN.isoformat().replace("+00:00", "Z")},
               PULUMI_BACKEND_URL=f"file://{directory / 'state'}",
               PULUMI_CONFIG_PASSPHRASE="release-infra-local",
               RELEASE_INFRA_RENDER_DIR=str(directory / "manifests"))
    if catalogue is not None:
        env["RELEASE_INFRA_CATALOGUE"] = str(catalogue)
    return Project(directory, env)
