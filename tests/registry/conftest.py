"""A real registry per test (fresh storage); the Debian package is installed by scripts/debian-packages.sh here,
so CI needs nothing beyond the repository. A missing registry fails the tests; it never skips them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from core.outputs import stack_outputs
from tests.registry.harness import Registry, install, running_registry
from tests.support.stacks import STACKS, settings


@pytest.fixture(scope="session")
def registry_binary() -> str:
    return install()


@pytest.fixture
def registry(registry_binary: str, tmp_path: Path) -> Iterator[Registry]:
    with running_registry(registry_binary, tmp_path) as running:
        yield running


@pytest.fixture
def authenticated_registry(registry_binary: str, tmp_path: Path) -> Iterator[Registry]:
    """Basic auth from an htpasswd (bcrypt) file made by Debian's htpasswd."""
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(subprocess.run(["htpasswd", "-Bbn", "retention", "s3cret-pa55"], check=True,
                                       capture_output=True, text=True).stdout)
    with running_registry(registry_binary, tmp_path, htpasswd=htpasswd) as running:
        running.auth = ("retention", "s3cret-pa55")
        yield running


@pytest.fixture
def stack_output_files(tmp_path: Path) -> list[Path]:
    """`pulumi stack output --json` of the four real stacks, as the program would export them."""
    files = []
    for stack in STACKS:
        file = tmp_path / f"outputs-{stack}.json"
        file.write_text(json.dumps(stack_outputs(settings(stack)).model_dump(mode="json")))
        files.append(file)
    return files
