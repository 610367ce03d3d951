"""The suite passes only when every collected test ran and passed.

A skipped test (a missing tool, an empty parameter set, a module skipped at import) and an expected failure
(xfail, or an xfail that passed) are not passes here: the run fails and names them, so a tier that silently
stopped running cannot look green.

Nor does a unit test assert on time: Hypothesis's per-example deadline is off for every property test (speed is
measured by the scripts in benchmarks/, on a machine whose load a test does not control).
"""

from __future__ import annotations

import pytest
from hypothesis import settings

settings.register_profile("release-infra", deadline=None)
settings.load_profile("release-infra")

_not_run: dict[str, str] = {}  # node id -> what happened instead of a pass


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if hasattr(report, "wasxfail"):
        _not_run[report.nodeid] = "xpassed" if report.passed else "xfailed"
    elif report.skipped:
        _not_run[report.nodeid] = "skipped"


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.skipped:
        _not_run[report.nodeid] = "skipped at collection"


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001 (pytest's TerminalReporter)
    if _not_run:
        terminalreporter.section("not passed: each fails the run", red=True)
        for nodeid, outcome in _not_run.items():
            terminalreporter.line(f"{outcome.upper()} {nodeid}")


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _not_run and session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
