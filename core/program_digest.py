"""Which program an update applied: one digest of the files every stack is built from (core.affected_stacks).

The stack outputs record it, so the weekly train can hold Prod to the program Test applied: the newest
release-candidate tag only says what Test was asked to deploy, not that it did.

    .venv/bin/python -m core.program_digest [CHECKOUT]    # the digest of a checkout's program (default: this one)
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from functools import cache
from pathlib import Path

from core.affected_stacks import SHARED_DIRECTORIES, SHARED_FILES

ROOT = Path(__file__).resolve().parent.parent


def program_files(root: Path) -> list[str]:
    """Repository-relative, sorted; Python's bytecode caches are left out, since importing writes them. In a git
    checkout only the files git tracks count, so a stray file on disk (a scratch script, an editor's backup) does
    not make a clean program look changed. A directory without the project file is no checkout: its digest would
    be that of no program."""
    if not (root / "Pulumi.yaml").is_file():
        raise FileNotFoundError(f"{root} holds no Pulumi.yaml: not a checkout of the program")
    found = [name for name in SHARED_FILES if (root / name).is_file()]
    for directory in SHARED_DIRECTORIES:
        found += [path.relative_to(root).as_posix() for path in (root / directory).rglob("*")
                  if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"]
    tracked = _tracked(root)
    return sorted(found if tracked is None else tracked.intersection(found))


class UnreadableCheckout(Exception):
    """A git checkout whose tracked files git cannot list: counting every file on disk instead would give a clean
    program another digest, and Prod's train would refuse it for no visible reason."""


def _tracked(root: Path) -> set[str] | None:
    """The program's files git tracks in ``root``; None where ``root`` is not the top of a git work tree (an
    export, a copy), and every file on disk counts. The checkout is trusted as it is (``safe.directory``): a runner's
    container may own it as another user, and listing files runs nothing of the repository's."""
    if not (root / ".git").exists():
        return None
    command = ["git", "-c", f"safe.directory={root}", "-C", str(root), "ls-files", "-z", "--", *SHARED_FILES,
               *SHARED_DIRECTORIES]
    try:
        listed = subprocess.run(command, capture_output=True, timeout=60, check=True).stdout
    except subprocess.CalledProcessError as error:
        reason = "; ".join(line.strip() for line in error.stderr.decode(errors="replace").splitlines() if line.strip())
        raise UnreadableCheckout(f"{root} is a git checkout, but `git ls-files` failed: {reason}") from None
    except (OSError, subprocess.SubprocessError) as error:
        raise UnreadableCheckout(f"{root} is a git checkout, but git cannot list its files ({error}): install git, "
                                 "or digest an export without .git") from None
    return {name for name in listed.decode().split("\0") if name}


@cache
def program_digest(root: Path = ROOT) -> str:
    """``sha256:<hex>`` over each file's path and content: equal programs, equal digests, on any checkout."""
    digest = hashlib.sha256()
    for name in program_files(root):
        content = (root / name).read_bytes()
        digest.update(f"{name}\0{len(content)}\0".encode())
        digest.update(content)
    return f"sha256:{digest.hexdigest()}"


if __name__ == "__main__":
    try:
        print(program_digest(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else ROOT))
    except (FileNotFoundError, UnreadableCheckout) as error:
        sys.exit(f"program_digest: {error}")
