"""The bootstrap as scripts and people use it: a failure stops whoever sources it, and a PULUMI_HOME of the
caller's own keeps its plugin (scripts/bootstrap-engine.sh, scripts/pulumi-env.sh)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

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
