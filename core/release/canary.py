"""The canary walk: which weights remain, and what a person sees at each look."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from core.release.gate import GateReading, LatencyReading


def remaining_steps(steps: list[int], weight: int) -> list[int]:
    """The steps still to walk from ``weight`` (0: from the start). A restarted canary resumes at the step it was
    left at and bakes it again: the run that set it may have stopped before its bake and gate were done. At 100%
    it goes back one step first: the stable colour serves nothing there, so a run that starts at 100% would have no
    baseline for its gate and could never promote."""
    left = [step for step in steps if step >= weight]
    earlier = [step for step in steps if 0 < step < weight]
    return [earlier[-1], *left] if weight >= 100 and earlier else left


class Progress(BaseModel):
    """One line of progress: the step, its weight, the time left in its bake and the gates' last readings."""

    model_config = ConfigDict(frozen=True)

    step: int
    of: int
    weight: int
    left_seconds: float
    reading: GateReading | None
    latency: LatencyReading | None = None

    def line(self) -> str:
        minutes, secs = divmod(max(0, round(self.left_seconds)), 60)
        gate = self.reading.describe() if self.reading else "gate: no reading yet"
        latency = f", {self.latency.describe()}" if self.latency else ""
        return f"step {self.step}/{self.of}: weight {self.weight}%, bake {minutes:d}m{secs:02d}s left, {gate}{latency}"
