"""The wording of release's failure messages, where a failure is put into a longer sentence."""

from __future__ import annotations

from release_infra_tools.promotion import reason
from release_infra_tools.release import CheckFailed, Interrupted
from release_infra_tools.stacks import StackError


def test_a_bare_ctrl_c_reads_as_interrupted_and_other_failures_keep_their_text() -> None:
    assert reason(Interrupted()) == "interrupted"
    assert reason(StackError("update of dev failed: lock held")) == "update of dev failed: lock held"
    assert reason(CheckFailed("error ratio 0.2 above 0.05")) == "error ratio 0.2 above 0.05"
