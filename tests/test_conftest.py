"""tests/conftest.py: a run with a skipped or an expected-to-fail test fails, and names each one."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

CONFTEST = Path(__file__).with_name("conftest.py")


def pytest_run(directory: Path, tests: str) -> subprocess.CompletedProcess[str]:
    shutil.copy(CONFTEST, directory / "conftest.py")
    (directory / "test_sample.py").write_text(tests)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(directory)],
                          cwd=directory, capture_output=True, text=True, timeout=120)


def test_skips_and_xfails_fail_the_run(tmp_path: Path) -> None:
    result = pytest_run(tmp_path, "import pytest\n"
                                  "def test_passes(): pass\n"
                                  "def test_without_its_tool(): pytest.skip('no promtool')\n"
                                  "@pytest.mark.xfail\ndef test_known_bad(): assert False\n"
                                  "@pytest.mark.xfail\ndef test_known_bad_that_passes(): pass\n"
                                  "@pytest.mark.parametrize('stack', [])\ndef test_of_no_stack(stack): pass\n")
    assert result.returncode == 1, result.stdout + result.stderr
    for line in ("SKIPPED test_sample.py::test_without_its_tool", "XFAILED test_sample.py::test_known_bad",
                 "XPASSED test_sample.py::test_known_bad_that_passes", "SKIPPED test_sample.py::test_of_no_stack"):
        assert line in result.stdout, result.stdout


def test_a_module_skipped_at_collection_fails_the_run(tmp_path: Path) -> None:
    result = pytest_run(tmp_path, "import pytest\npytest.skip('no registry', allow_module_level=True)\n")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "SKIPPED AT COLLECTION test_sample.py" in result.stdout


def test_a_run_where_every_test_passed_passes(tmp_path: Path) -> None:
    result = pytest_run(tmp_path, "def test_passes(): pass\n")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "not passed" not in result.stdout
