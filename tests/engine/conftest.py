"""Fixtures of the engine tier: the bootstrapped engine once per session, a fresh project per module."""

from __future__ import annotations

import pytest

from tests.support.engine import Project, bootstrap_env, make_project


@pytest.fixture(scope="session")
def engine_env() -> dict[str, str]:
    return bootstrap_env()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, engine_env: dict[str, str]) -> Project:
    return make_project(tmp_path_factory.mktemp("project"), engine_env)
