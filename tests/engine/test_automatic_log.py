"""Pulumi's automatic log in the bootstrap's own PULUMI_HOME: off unless asked for (scripts/bootstrap-engine.sh)."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.support.stacks import ROOT

pytestmark = pytest.mark.engine


def bootstrap(**settings: str) -> Path:
    """Run the bootstrap as a new user would (no PULUMI_HOME of their own); the PULUMI_HOME it exports."""
    env = {key: value for key, value in os.environ.items() if key not in ("PULUMI_HOME", "RELEASE_INFRA_PULUMI_LOGS")}
    exports = subprocess.run([str(ROOT / "scripts" / "bootstrap-engine.sh")], env={**env, **settings}, check=True,
                             capture_output=True, text=True, timeout=5400).stdout
    [home] = [shlex.split(line.partition("=")[2])[0] for line in exports.splitlines()
              if line.startswith("export PULUMI_HOME=")]
    return Path(home)


def pulumi_version(engine_env: dict[str, str], home: Path) -> None:
    subprocess.run(["pulumi", "version"], env={**engine_env, "PULUMI_HOME": str(home)}, check=True,
                   capture_output=True, timeout=120)


def test_the_cli_writes_no_automatic_log_unless_asked_to_keep_it(engine_env: dict[str, str]) -> None:
    home = bootstrap()
    logs = home / "logs"
    try:
        assert os.readlink(logs) == "/dev/null"
        pulumi_version(engine_env, home)
        assert os.readlink(logs) == "/dev/null"

        assert bootstrap(RELEASE_INFRA_PULUMI_LOGS="keep") == home
        assert not logs.is_symlink()
        pulumi_version(engine_env, home)
        assert list(logs.glob("pulumi-*-version.log"))
    finally:
        bootstrap()
    assert os.readlink(logs) == "/dev/null"
