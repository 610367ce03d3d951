"""What the program says, as the engine would show it."""

from __future__ import annotations

import pulumi
import pytest


@pytest.fixture
def warnings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The program's warnings, in order."""
    logged: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *args, **kwargs: logged.append(message))
    return logged
