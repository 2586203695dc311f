"""The live progress line of a run: what a case is doing while it runs, through pytest's terminal,
also while pytest captures the test's output.

A case's rounds report to a ``RoundProgress``: after each round its line says the round, the output
tokens/s of the timed rounds so far and the time the case has left (the wall time per round so far
x the rounds to go). On a terminal the line is rewritten in place; in a log (CI) each update is a line.
Loading and quantizing a model say what they do and, once done, how long it took.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

import pytest


class TerminalLine:
    """Writes progress to pytest's terminal reporter: ``live`` text replaces the previous live text
    on a terminal (a log gets every update as its own line); other text is a line of its own."""

    def __init__(self, config: pytest.Config, quiet: bool) -> None:
        self.config = config
        self.quiet = quiet
        self._live = False  # a live line is on the screen, not yet ended by a newline

    def write(self, text: str, live: bool = False) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if self.quiet:
            return
        if reporter is None:  # a fresh-process child runs without one: its lines reach the controller's output
            sys.stderr.write(f"[inferlab] {text}\n")
            return
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        if capture is None:
            self._emit(reporter, text, live)
            return
        with capture.global_and_fixture_disabled():
            self._emit(reporter, text, live)

    def _emit(self, reporter: Any, text: str, live: bool) -> None:
        line = f"[inferlab] {text}"
        if live and reporter.isatty():
            if not self._live:
                reporter.ensure_newline()
            reporter.rewrite(line, erase=True)
            reporter.flush()
            self._live = True
            return
        if self._live:
            reporter.write("\n")
            self._live = False
        reporter.ensure_newline()
        reporter.write_line(line)


@dataclass
class RoundProgress:
    """One case's rounds: ``done(tokens, seconds, warmup)`` after each; the line it writes."""

    total: int  # warm-up and timed rounds (at most, when adaptive)
    say: Callable[[str], None]
    at_most: bool = False  # adaptive rounds: the case may stop before ``total``
    clock: Callable[[], float] = time.monotonic
    _done: int = 0
    _timed_tokens: int = 0
    _timed_seconds: float = 0.0
    _started: float | None = None

    def __post_init__(self) -> None:
        self._started = self.clock()

    def done(self, tokens: int, seconds: float, warmup: bool, unit: str = "round") -> str:
        """``seconds``: the round's own trace; the time left comes from the wall clock (a round of a
        paired case also runs its reference's or its undrafted twin's round)."""
        self._done += 1
        if not warmup:
            self._timed_tokens += tokens
            self._timed_seconds += seconds
        label = "warm-up" if warmup else unit
        rate = (f"{self._timed_tokens / self._timed_seconds:.1f} tok/s so far" if self._timed_seconds > 0
                else f"{tokens / seconds:.1f} tok/s" if seconds > 0 else "")
        left = self.total - self._done
        mean = (self.clock() - self._started) / self._done
        bound = "<=" if self.at_most else ""
        eta = f", {bound or '~'}{left * mean:.0f} s left" if left else ", done"
        line = f"{label} {self._done}/{bound}{self.total}: {tokens} tok in {seconds:.1f} s, {rate}{eta}"
        self.say(line)
        return line
