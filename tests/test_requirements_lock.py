"""requirements.lock, which the virtualenv is installed from, holds every pin of pyproject.toml, hash-checked."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", requirement.split("==", 1)[0]).lower()


def locked() -> dict[str, tuple[str, int]]:
    """Package -> (version, number of hashes) in the lock."""
    entries, current = {}, None
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if re.match(r"^[A-Za-z0-9]", line):
            requirement = line.split(";")[0].split()[0]
            current = _name(requirement)
            entries[current] = (requirement.split("==", 1)[1], 0)
        elif current and line.strip().startswith("--hash=sha256:"):
            version, hashes = entries[current]
            entries[current] = (version, hashes + 1)
    return entries


def test_every_pin_of_pyproject_is_locked_at_its_version_with_hashes() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    lock = locked()
    assert len(lock) > len(pins)  # the transitive packages too
    for pin in pins:
        assert "==" in pin, f"{pin}: pyproject.toml pins exact versions"
        version, hashes = lock.get(_name(pin), (None, 0))
        assert version == pin.split("==", 1)[1], f"{pin}: requirements.lock has {version}; regenerate it"
        assert hashes > 0, f"{pin}: no hash in requirements.lock"
    assert all(hashes > 0 for _, hashes in lock.values())
