"""The round driver: warm-up and timed rounds, inside the probes, into pytest-benchmark's statistics.

A fixed count of rounds runs in pytest-benchmark's own loop (``pedantic``); adaptive rounds
(judge/sequential.py) are timed here, one look after each, and handed to pytest-benchmark as its
rounds (compat.record_benchmark_rounds), so --benchmark-json/-autosave/-compare keep working either
way and carry the LLM metrics in ``extra_info``. When pytest-benchmark is disabled (xdist,
--benchmark-disable) the record says timing conditions were not exclusive. The memory probe
brackets the rounds, and the host-speed reference brackets the memory probe (its matrix never
counts in a case's peak).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Any, Callable

from pytest_inferlab.compat import record_benchmark_rounds
from pytest_inferlab.device import Device
from pytest_inferlab.judge.sequential import Decide, Look, StoppingRule, look
from pytest_inferlab.measure.metrics import Measurement, scalar
from pytest_inferlab.run.probes.host_speed import HostSpeed
from pytest_inferlab.run.probes.interference import InterferenceProbe
from pytest_inferlab.run.probes.memory import PeakMemory


@dataclass(frozen=True, slots=True)
class DrivenRounds:
    """What the probes saw around one case's rounds."""

    conditions: dict[str, Any]  # benchmark_disabled, xdist_worker, shard, other_cpu_share, gpu_other_processes, host_ref_s
    peak_memory: dict[str, Measurement]
    memory_absent: dict[str, str]


@dataclass(frozen=True, slots=True)
class RoundPlan:
    """A case's rounds: ``warmup`` untimed, then a fixed ``rounds``, or (``rounds`` None) rounds until
    ``rule`` stops them, judging ``figure()`` (each timed round's figure so far) with ``decide``."""

    warmup: int
    rounds: int | None = None
    rule: StoppingRule = StoppingRule()
    figure: Callable[[], list[float]] | None = None
    decide: Decide | None = None

    @property
    def adaptive(self) -> bool:
        return self.rounds is None

    @classmethod
    def fixed(cls, rounds: int, warmup: int) -> "RoundPlan":
        return cls(warmup, rounds)


@dataclass(frozen=True, slots=True)
class RoundDriver:
    """Runs ``one_round`` ``warmup + rounds`` times for one test."""

    benchmark: Any  # pytest-benchmark's fixture of the test
    device: Device
    host_ref: bool  # time the host-speed reference before and after (--inferlab-host-ref)
    identity: dict[str, Any]  # xdist_worker, shard: where this run measured
    turn: Callable[[int], None] | None = None  # A/B lock-step: wait for round i's turn (run/lockstep.py)

    def drive(self, one_round: Callable[[], None], plan: RoundPlan, plain: bool = False) -> DrivenRounds:
        """``plain``: a re-measurement (pytest-benchmark's fixture times one case only)."""
        memory = PeakMemory(self.device)
        interference = InterferenceProbe(self.device)
        host = HostSpeed(self.device, self.host_ref)
        turns = itertools.count()
        wait_turn = (lambda: self.turn(next(turns))) if self.turn else None  # untimed: pedantic's setup
        host.before()
        memory.start()
        interference.start()
        stopped, durations = None, []
        if plan.adaptive:
            durations, stopped = self._adaptive(one_round, plan, wait_turn)
            if not plain and not self.benchmark.disabled:
                record_benchmark_rounds(self.benchmark, durations)
        else:
            self._fixed(one_round, plan.rounds, plan.warmup, wait_turn, plain)
        interference.stop()
        peaks, absent = memory.stop()
        host.after()
        conditions = {"benchmark_disabled": bool(self.benchmark.disabled), **self.identity,
                      "other_cpu_share": interference.other_cpu_share(),
                      "gpu_other_processes": interference.gpu_others, "host_ref_s": host.seconds,
                      "rounds": rounds_condition(plan, stopped, len(durations))}
        return DrivenRounds(conditions, {name: scalar(name, value) for name, value in peaks.items()}, absent)

    def _adaptive(self, one_round: Callable[[], None], plan: RoundPlan,
                  wait_turn: Callable[[], None] | None) -> tuple[list[float], Look]:
        """Warm-up rounds, then timed rounds until the stopping rule says the answer is known."""
        for _ in range(plan.warmup):
            if wait_turn:
                wait_turn()
            one_round()
        durations: list[float] = []
        while True:
            if wait_turn:
                wait_turn()
            started = time.perf_counter()
            one_round()
            durations.append(time.perf_counter() - started)
            seen = look(plan.figure() if plan.figure else [], sum(durations), plan.rule, plan.decide)
            if seen.stop:
                return durations, seen
            if len(durations) >= plan.rule.max_rounds:  # a figure too short to look at: the maximum ends it
                return durations, Look(None, True, f"max rounds ({plan.rule.max_rounds}) reached without an interval")

    def _fixed(self, one_round: Callable[[], None], rounds: int, warmup: int, wait_turn: Callable[[], None] | None,
               plain: bool) -> None:
        if plain or self.benchmark.disabled:
            def every_round() -> None:
                for _ in range(warmup + rounds):
                    if wait_turn:
                        wait_turn()
                    one_round()

            every_round() if plain else self.benchmark.pedantic(every_round, rounds=1)
        else:
            self.benchmark.pedantic(one_round, setup=wait_turn, rounds=rounds, warmup_rounds=warmup, iterations=1)


def rounds_condition(plan: RoundPlan, stopped: Look | None, used: int) -> dict[str, Any]:
    """``conditions.rounds``: fixed or adaptive, the rule, the rounds used and why the case stopped."""
    if not plan.adaptive:
        return {"mode": "fixed", "rounds": plan.rounds, "warmup": plan.warmup}
    interval = stopped.interval if stopped else None
    return {"mode": "adaptive", "rule": plan.rule.to_dict(), "warmup": plan.warmup, "used": used,
            "stopped": stopped.reason if stopped else None, "interval": interval.to_dict() if interval else None}
