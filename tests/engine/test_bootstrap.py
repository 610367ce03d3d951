"""The bootstrap as scripts and people use it: a failure stops whoever sources it, and a PULUMI_HOME of the
caller's own keeps its plugin (scripts/bootstrap-engine.sh, scripts/pulumi-env.sh)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.stacks import ROOT

pytestmark = pytest.mark.engine


def versions() -> dict[str, str]:
    lines = (ROOT / "scripts" / "engine" / "versions.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.lstrip().startswith("#"))


def test_a_failed_bootstrap_stops_a_script_that_sources_the_environment(tmp_path: Path) -> None:
    """A cold cache and no Go: `eval` of no exports would succeed and the caller go on with another pulumi."""
    result = subprocess.run(["bash", "-c", "set -e; . scripts/pulumi-env.sh; echo reached"], cwd=ROOT,
                            env={"HOME": os.environ["HOME"], "PATH": "/usr/bin:/bin",
                                 "RELEASE_INFRA_CACHE": str(tmp_path / "cache")},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "reached" not in result.stdout
    assert "Go >= " in result.stderr and "is required" in result.stderr


def test_a_pulumi_home_of_the_callers_own_keeps_its_kubernetes_plugin(tmp_path: Path) -> None:
    plugin = tmp_path / "plugins" / f"resource-kubernetes-v{versions()['PULUMI_KUBERNETES_VERSION'].strip()}" \
        / "pulumi-resource-kubernetes"
    plugin.parent.mkdir(parents=True)
    plugin.write_text("#!/bin/sh\necho the official build\n")
    plugin.chmod(0o755)
    exports = subprocess.run([str(ROOT / "scripts" / "bootstrap-engine.sh")],
                             env={**os.environ, "PULUMI_HOME": str(tmp_path)}, check=True, capture_output=True,
                             text=True, timeout=5400).stdout
    assert f"export PULUMI_HOME={tmp_path}" in exports
    assert plugin.read_text() == "#!/bin/sh\necho the official build\n"


def test_the_ci_setup_gives_later_steps_the_pinned_engine(tmp_path: Path) -> None:
    """The setup action's engine step, run as a runner runs it: the steps after it find the pinned CLI on PATH and
    the Kubernetes provider of the pinned version installed, with update checks and plugin downloads off."""
    setup = yaml.safe_load((ROOT / ".github" / "actions" / "setup" / "action.yml").read_text())
    [step] = [step for step in setup["runs"]["steps"] if "bootstrap-engine.sh" in step.get("run", "")]
    assert step["shell"] == "bash"
    path = [entry for entry in os.environ["PATH"].split(os.pathsep)
            if entry and not (Path(entry) / "pulumi").exists()]  # no pulumi but the one the step provides
    runner = {"HOME": os.environ["HOME"], "PATH": os.pathsep.join(path)}
    github_path, github_env = tmp_path / "github_path", tmp_path / "github_env"
    github_path.touch()
    github_env.touch()
    subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=ROOT, check=True,
                   env={**runner, "GITHUB_PATH": str(github_path), "GITHUB_ENV": str(github_env)},
                   capture_output=True, text=True, timeout=5400)
    later = dict(line.split("=", 1) for line in github_env.read_text().splitlines())
    assert later["PULUMI_SKIP_UPDATE_CHECK"] == later["PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"] == "true"
    later = {**runner, **later,
             "PATH": os.pathsep.join([*reversed(github_path.read_text().splitlines()), runner["PATH"]])}
    pulumi = lambda *args: subprocess.run(["pulumi", *args], env=later, cwd=tmp_path, check=True,  # noqa: E731
                                          capture_output=True, text=True, timeout=120).stdout
    assert pulumi("version").strip() == f"v{versions()['PULUMI_VERSION'].strip()}"
    plugins = {(p["kind"], p["name"], p["version"]) for p in json.loads(pulumi("plugin", "ls", "--json"))}
    assert ("resource", "kubernetes", versions()["PULUMI_KUBERNETES_VERSION"].strip()) in plugins
