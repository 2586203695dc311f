"""Time left of a long preparation (a GPTQ build by layer, a GGUF rung by tensor, lm-eval by item),
for the same live line the rounds use. Pure: the clock is given, the text is returned."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from pytest_inferlab.ground.child import Step


@dataclass
class StepProgress:
    """Lines for the steps of one job: ``line(step)`` -> "<label>: <what> 12/30, ~40 s left". The
    time left is the time per unit so far x the units to go, per phase (``what``): a phase that
    starts over (tensors of the float rewrite, then of the quantizer) starts its own estimate."""

    label: str
    say: Callable[[str], None]
    clock: Callable[[], float] = time.monotonic
    _phase: str | None = None
    _started: float = 0.0
    every_s: float = 1.0  # at most one line per second within a phase (a log gets every line)
    _first_done: int = 0
    _last: str = ""
    _said_at: float | None = None

    def __call__(self, step: Step) -> None:
        new_phase = step.what != self._phase
        line = self.line(step)
        now = self.clock()
        due = new_phase or step.done >= step.total or self._said_at is None or now - self._said_at >= self.every_s
        if due and line != self._last:  # a child may report the same step twice (a start, then its first hook)
            self._last, self._said_at = line, now
            self.say(line)

    def line(self, step: Step) -> str:
        now = self.clock()
        if step.what != self._phase:
            self._phase, self._started, self._first_done = step.what, now, step.done
        units = step.done - self._first_done
        elapsed = now - self._started
        if step.done >= step.total:
            left = "done"
        elif units > 0 and elapsed > 0:
            left = f"~{elapsed / units * (step.total - step.done):.0f} s left"
        else:
            left = "estimating time left"
        return f"{self.label}: {step.what} {step.done}/{step.total}, {left}"
