"""The program digest the outputs record: what the weekly train compares with Test's."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from core.affected_stacks import affected_stacks
from core.outputs import stack_outputs
from core.program_digest import ROOT, program_digest, program_files
from core.settings import EnvironmentKind
from tests.support.stacks import settings

STACKS = [kind.value for kind in EnvironmentKind]


def copy(files: list[str], to: Path) -> Path:
    for name in files:
        (to / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, to / name)
    return to


def test_it_covers_what_every_stack_is_built_from_and_nothing_else() -> None:
    files = program_files(ROOT)
    assert {"catalogue.yaml", "Pulumi.yaml", "pyproject.toml", "infra/program.py", "core/outputs.py",
            "components/blue_green_service.py", "release_infra_tools/registry.py"} <= set(files)
    assert any(name.startswith("scripts/engine/") for name in files)
    assert all(affected_stacks([name], STACKS) == STACKS for name in files), files
    assert not any(name.startswith(("tests/", "docs/")) or name.startswith("Pulumi.") and name != "Pulumi.yaml"
                   for name in files)


def test_equal_programs_have_equal_digests_and_one_changed_byte_changes_it(tmp_path: Path) -> None:
    root = copy(program_files(ROOT), tmp_path / "checkout")
    assert program_digest(root) == program_digest(ROOT)
    (root / "core" / "__pycache__").mkdir(exist_ok=True)
    (root / "core" / "__pycache__" / "names.cpython-311.pyc").write_bytes(b"\0")
    (root / "docs").mkdir()
    (root / "docs" / "new.md").write_text("what a release does\n")
    (root / "Pulumi.prod.yaml").write_text("config: {}\n")  # a promotion, not a program change
    assert program_digest.__wrapped__(root) == program_digest(ROOT)
    (root / "core" / "names.py").write_bytes((root / "core" / "names.py").read_bytes() + b"\n")
    assert program_digest.__wrapped__(root) != program_digest(ROOT)


def test_a_file_moved_changes_it(tmp_path: Path) -> None:
    root = copy(program_files(ROOT), tmp_path / "checkout")
    (root / "core" / "names.py").rename(root / "core" / "names2.py")
    assert program_digest(root) != program_digest(ROOT)


def test_the_outputs_record_it_and_the_module_prints_it() -> None:
    assert stack_outputs(settings("dev")).program_digest == program_digest()
    printed = subprocess.run([sys.executable, "-m", "core.program_digest"], cwd=ROOT, capture_output=True,
                             text=True, check=True, timeout=60).stdout
    assert printed == f"{program_digest()}\n"


def test_a_directory_that_is_no_checkout_has_no_digest(tmp_path: Path) -> None:
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "names.py").write_text("")
    result = subprocess.run([sys.executable, "-m", "core.program_digest", str(tmp_path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"program_digest: {tmp_path} holds no Pulumi.yaml: not a checkout of the program\n"


def test_in_a_git_checkout_only_tracked_files_count(tmp_path: Path) -> None:
    root = copy(program_files(ROOT), tmp_path / "checkout")
    git = lambda *args: subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True,  # noqa: E731
                                       timeout=60)
    git("init", "--quiet")
    git("add", "--all")
    assert program_digest.__wrapped__(root) == program_digest(ROOT)
    (root / "core" / "scratch.py").write_text("print('trying something')\n")
    assert program_digest.__wrapped__(root) == program_digest(ROOT)  # untracked: not the program
    (root / ".git").rename(tmp_path / "git")  # an export of the same files: every file on disk counts
    assert program_digest.__wrapped__(root) != program_digest(ROOT)
    (tmp_path / "git").rename(root / ".git")
    git("add", "core/scratch.py")
    assert program_digest.__wrapped__(root) != program_digest(ROOT)


def test_a_git_checkout_git_cannot_read_has_no_digest(tmp_path: Path) -> None:
    """Not every file on disk instead, which would give a clean program another digest, unexplained."""
    root = copy(program_files(ROOT), tmp_path / "checkout")
    (root / ".git").write_text(f"gitdir: {tmp_path / 'gone'}\n")  # a worktree whose repository was removed
    result = subprocess.run([sys.executable, "-m", "core.program_digest", str(root)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.startswith(f"program_digest: {root} is a git checkout, but `git ls-files` failed: fatal: ")
    assert result.stderr.count("\n") == 1


def test_gits_error_of_several_lines_is_told_in_one(tmp_path: Path) -> None:
    root = copy(program_files(ROOT), tmp_path / "checkout")
    subprocess.run(["git", "-C", str(root), "init", "--quiet"], check=True, timeout=60)
    subprocess.run(["git", "-C", str(root), "add", "--all"], check=True, timeout=60)
    (root / ".git" / "index").write_bytes(b"DIRC" + b"\0" * 60)  # a corrupt index: git says so in two lines
    result = subprocess.run([sys.executable, "-m", "core.program_digest", str(root)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "; fatal: " in result.stderr
