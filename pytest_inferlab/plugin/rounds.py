"""The round driver: warm-up and timed rounds through pytest-benchmark, inside the probes.

pytest-benchmark owns the round loop (so --benchmark-json/-autosave/-compare keep working and
carry the LLM metrics in ``extra_info``); when it is disabled (xdist, --benchmark-disable) the same
rounds run in one call and the record says timing conditions were not exclusive. The memory probe
brackets the rounds, and the host-speed reference brackets the memory probe (its matrix never
counts in a case's peak).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Callable

from pytest_inferlab.device import Device
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
class RoundDriver:
    """Runs ``one_round`` ``warmup + rounds`` times for one test."""

    benchmark: Any  # pytest-benchmark's fixture of the test
    device: Device
    host_ref: bool  # time the host-speed reference before and after (--inferlab-host-ref)
    identity: dict[str, Any]  # xdist_worker, shard: where this run measured
    turn: Callable[[int], None] | None = None  # A/B lock-step: wait for round i's turn (run/lockstep.py)

    def drive(self, one_round: Callable[[], None], rounds: int, warmup: int, plain: bool = False) -> DrivenRounds:
        """``plain``: a re-measurement (pytest-benchmark's fixture times one case only)."""
        memory = PeakMemory(self.device)
        interference = InterferenceProbe(self.device)
        host = HostSpeed(self.device, self.host_ref)
        turns = itertools.count()
        wait_turn = (lambda: self.turn(next(turns))) if self.turn else None  # untimed: pedantic's setup
        host.before()
        memory.start()
        interference.start()
        if plain or self.benchmark.disabled:
            def every_round() -> None:
                for _ in range(warmup + rounds):
                    if wait_turn:
                        wait_turn()
                    one_round()

            every_round() if plain else self.benchmark.pedantic(every_round, rounds=1)
        else:
            self.benchmark.pedantic(one_round, setup=wait_turn, rounds=rounds, warmup_rounds=warmup, iterations=1)
        interference.stop()
        peaks, absent = memory.stop()
        host.after()
        conditions = {"benchmark_disabled": bool(self.benchmark.disabled), **self.identity,
                      "other_cpu_share": interference.other_cpu_share(),
                      "gpu_other_processes": interference.gpu_others, "host_ref_s": host.seconds}
        return DrivenRounds(conditions, {name: scalar(name, value) for name, value in peaks.items()}, absent)
