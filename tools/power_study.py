"""Detection power of the lab's two ways of judging, on this machine: ``python tools/power_study.py``.

History mode (the gate's default): a baseline history of K runs of one small case is saved first;
every later run is judged against it with the gate's own functions (``judge_run`` per series, its
run-to-run noise pooled with the case's other series as the gate pools a machine's saved series,
``blame_the_host`` on the host-speed reference, a confirming re-measurement of a regression).
A/B mode (``inferlab ab``): each repeat measures a base and a candidate in alternating rounds
(B C C B ...) and judges the per-round paired ratios (``judge_paired``). Here both sides run in one
process on one engine, the candidate's rounds with the planted slowdown; ``inferlab ab`` runs them
in two processes that take turns, which orders the rounds the same way.

Each repeat visits every condition (unchanged, then +5/+10/+20%: a sleep before every forward pass
sized from the baseline's TPOT, so TTFT and TPOT slow together as a slower kernel would, or with
``--plant token`` a sleep after every token; tools/planted_delay.py) in both modes, so drift of the machine over the study hits
every cell alike. Prints, per metric and mode: the noise, false alarms among unchanged runs and
detections per slowdown.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import math
import os
import statistics
from typing import Any, Sequence

from planted_delay import DELAY_ENV, FORWARD_DELAY_ENV
from planted_delay import install as install_planted_delay
from pytest_inferlab.device import CPU
from pytest_inferlab.engines import load_engine
from pytest_inferlab.engines.sources import resolve_model
from pytest_inferlab.judge.paired import judge_paired
from pytest_inferlab.judge.policy import policy_of
from pytest_inferlab.judge.noise import NoisePool
from pytest_inferlab.judge.gate import merge
from pytest_inferlab.judge.verdict import (REGRESSED, HostEvidence, Verdict, blame_the_host, bonferroni_alpha,
                                            in_host_units, judge_run)
from pytest_inferlab.measure.metrics import measure, round_values
from pytest_inferlab.run.probes.host_speed import HostSpeed
from pytest_inferlab.run.runner import run_round
from pytest_inferlab.ground.trace import RoundTrace
from pytest_inferlab.run.workloads import materialize
from pytest_inferlab.specs.workloads import workloads
from pytest_inferlab.specs.core import SamplingSpec

METRICS = ("itl_p25_ms", "tpot_ms", "ttft_ms", "e2e_ms", "output_tok_per_s")
POLICIES = {name: policy_of(name) for name in METRICS}


@dataclasses.dataclass
class Case:
    """The engine, the requests and the run's sizes."""

    engine: Any
    requests: Sequence[Any]
    rounds: int
    pairs: int
    host_ref: bool
    plant: str = FORWARD_DELAY_ENV
    last_run: Any = None  # the latest history run (values, host reference): a re-measurement is judged with it

    def round_(self, delay_ms: float, warmup: bool = False) -> RoundTrace:
        os.environ[self.plant] = str(delay_ms)
        try:
            return run_round(self.engine, self.requests, 1, SamplingSpec(), warmup=warmup)
        finally:
            os.environ.pop(self.plant, None)

    def history_run(self, delay_ms: float) -> tuple[dict[str, float], float | None]:
        """Warm-up + timed rounds inside the host-speed reference, as the lab fixture does."""
        probe = HostSpeed(CPU, self.host_ref)
        probe.before()
        traces = [self.round_(delay_ms, warmup=True)] + [self.round_(delay_ms) for _ in range(self.rounds)]
        probe.after()
        measured, _ = measure(traces)
        self.last_run = {name: measured[name].value for name in METRICS}, probe.seconds
        return self.last_run

    def ab_run(self, delay_ms: float) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
        """One warm-up pair, then ``pairs`` pairs in B C C B order: (base, candidate) round values."""
        sides: dict[str, list[RoundTrace]] = {"base": [], "candidate": []}
        for index in range(self.pairs + 1):
            for side in ("base", "candidate") if index % 2 == 0 else ("candidate", "base"):
                trace = self.round_(delay_ms if side == "candidate" else 0.0, warmup=index == 0)
                sides[side].append(trace)
        return round_values(sides["base"], METRICS), round_values(sides["candidate"], METRICS)


def noise_pools(history: list) -> tuple[NoisePool, NoisePool]:
    """The gate's pools over the saved series (here the case's own metrics: a one-case suite's machine)."""
    raw = [(m, [h[m] for h, _ in history]) for m in METRICS]
    host = [(m, [in_host_units(h[m], ref, POLICIES[m].higher_is_better) for h, ref in history if ref]) for m in METRICS]
    return NoisePool.of(raw), NoisePool.of(host)


def history_verdicts(run: tuple[dict[str, float], float | None], history: list, alpha: float, pools: Any,
                     runs: int = 1) -> tuple[dict[str, Verdict], dict[str, str]]:
    """The gate's verdicts of one run (or of the geometric mean of ``runs`` runs): per series, then the host
    evidence (did the host move?). Returns (verdicts, outcomes before the host rule)."""
    values, ref = run
    verdicts = [judge_run(POLICIES[m], values[m], ref, [(h[m], h_ref) for h, h_ref in history], alpha, pools=pools,
                          current_runs=runs) for m in METRICS]
    refs = [h_ref for _, h_ref in history if h_ref]
    judged = blame_the_host(verdicts, POLICIES, HostEvidence.of(ref, refs, alpha))
    return {v.metric: v for v in judged}, {v.metric: v.outcome for v in verdicts}


def mean_of_runs(runs: list[tuple[dict[str, float], float | None]]) -> tuple[dict[str, float], float | None]:
    """The geometric mean of runs (values and host reference), as the gate judges a case with its re-measurement."""
    refs = [ref for _, ref in runs]
    return ({m: statistics.geometric_mean([values[m] for values, _ in runs]) for m in METRICS},
            statistics.geometric_mean(refs) if all(refs) else None)


def confirmed(history: list, alpha: float, pools: Any, first: dict[str, Verdict], case: "Case",
              delay: float) -> dict[str, str]:
    """The gate's confirmation (judge/gate.py ``merge``): a first regression re-measured once."""
    if not any(v.outcome == REGRESSED for v in first.values()):
        return {m: "-" for m in METRICS}
    again_run = case.history_run(delay)
    again, _ = history_verdicts(again_run, history, alpha, pools)
    together, _ = history_verdicts(mean_of_runs([case.last_run, again_run]), history, alpha, pools, runs=2)
    return {m: merge(first[m], again[m], together[m], POLICIES[m]).outcome if first[m].outcome == REGRESSED else "-"
            for m in METRICS}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--mode", choices=("both", "history", "ab"), default="both")
    parser.add_argument("--history", type=int, default=10, help="baseline runs (history mode)")
    parser.add_argument("--repeats", type=int, default=20, help="repeats per condition")
    parser.add_argument("--slowdowns", default="0.05,0.10,0.20")
    parser.add_argument("--requests", type=int, default=1)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per history-mode run")
    parser.add_argument("--pairs", type=int, default=10, help="pairs of rounds per A/B repeat")
    parser.add_argument("--alpha", type=float, default=0.05, help="family-wise, split over the metrics")
    parser.add_argument("--host-ref", choices=("gemv", "none"), default="gemv")
    parser.add_argument("--plant", choices=("forward", "token"), default="forward",
                        help="the planted slowdown: a sleep before every forward pass, or after every token")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    install_planted_delay()
    engine = load_engine("transformers", resolve_model(args.model), CPU)
    spec = dataclasses.replace(workloads.get("short-chat"), count=args.requests, output_tokens=args.tokens)
    case = Case(engine, materialize(spec, engine.encode, engine.info.vocab_size), args.rounds, args.pairs,
                args.host_ref == "gemv", FORWARD_DELAY_ENV if args.plant == "forward" else DELAY_ENV)
    started = dt.datetime.now(dt.timezone.utc)
    history = [case.history_run(0.0) for _ in range(args.history if args.mode != "ab" else 1)]
    pools = noise_pools(history)
    base_tpot = statistics.median(values["tpot_ms"] for values, _ in history)
    conditions = [0.0] + [float(x) for x in args.slowdowns.split(",")]
    alpha = bonferroni_alpha(args.alpha, len(METRICS))
    modes = ("history", "ab") if args.mode == "both" else (args.mode,)
    first = {(mode, c, m): [] for mode in modes for c in conditions for m in METRICS}
    final = {key: [] for key in first}
    pair_noise: dict[str, list[float]] = {m: [] for m in METRICS}
    set_aside = {(c, m): 0 for c in conditions for m in METRICS}  # first regressions the host rule made inconclusive
    cases = {(mode, c): 0 for mode in modes for c in conditions}  # repeats in which the case failed (any series)
    for _ in range(args.repeats):
        for slowdown in conditions:  # interleaved: drift of the machine hits every condition alike
            delay = slowdown * base_tpot
            if "history" in modes:
                verdicts, before_host_rule = history_verdicts(case.history_run(delay), history, alpha, pools)
                after = confirmed(history, alpha, pools, verdicts, case, delay)
                for m in METRICS:
                    first[("history", slowdown, m)].append(verdicts[m].outcome)
                    set_aside[(slowdown, m)] += before_host_rule[m] == REGRESSED != verdicts[m].outcome
                    final[("history", slowdown, m)].append(after[m])
                cases[("history", slowdown)] += any(final[("history", slowdown, m)][-1] == REGRESSED for m in METRICS)
            if "ab" in modes:
                base, cand = case.ab_run(delay)
                for m in METRICS:
                    verdict = judge_paired(POLICIES[m], base[m], cand[m], alpha, against="base")
                    first[("ab", slowdown, m)].append(verdict.outcome)
                    final[("ab", slowdown, m)].append(verdict.outcome)
                    if slowdown == 0.0:
                        pair_noise[m].append(statistics.stdev(math.log(c / b) for b, c in zip(base[m], cand[m])))
                cases[("ab", slowdown)] += any(final[("ab", slowdown, m)][-1] == REGRESSED for m in METRICS)
    minutes = (dt.datetime.now(dt.timezone.utc) - started).total_seconds() / 60
    print(f"model={args.model} threads={args.threads} started {started:%Y-%m-%d %H:%M} UTC, {minutes:.0f} min; "
          f"{args.requests} request(s) x {args.tokens} tokens; baseline TPOT {base_tpot:.1f} ms; tolerance "
          f"{POLICIES['tpot_ms'].tolerance:.0%}; per-series alpha {alpha:.4f}; repeats={args.repeats}; "
          f"planted per {args.plant}")
    print(f"history mode: {args.history} baseline runs, {args.rounds} rounds per run, a regression re-measured once; "
          f"cells: confirmed (first measurements alone)" if "history" in modes else "")
    print(f"A/B mode: {args.pairs} pairs of rounds per repeat (B C C B ...), paired t interval; cells: regressed")
    header = f"{'mode':<8}{'metric':<18}{'noise (log sd)':>15}" + "".join(
        f"{'+0% false alarms' if c == 0 else f'+{c:.0%} detected':>18}" for c in conditions)
    print(header)
    for mode in modes:
        for m in METRICS:
            if mode == "history":
                noise = statistics.stdev(math.log(h[m]) for h, _ in history) if len(history) > 1 else float("nan")
                cells = [f"{final[(mode, c, m)].count(REGRESSED)}/{args.repeats} ({first[(mode, c, m)].count(REGRESSED)})"
                         for c in conditions]
            else:
                noise = statistics.median(pair_noise[m]) if pair_noise[m] else float("nan")
                cells = [f"{final[(mode, c, m)].count(REGRESSED)}/{args.repeats}" for c in conditions]
            print(f"{mode:<8}{m:<18}{noise:>15.3f}" + "".join(f"{cell:>18}" for cell in cells))
        print(f"{mode:<8}{'the case (any)':<18}{'':>15}" + "".join(f"{f'{cases[(mode, c)]}/{args.repeats}':>18}"
                                                                 for c in conditions))
    if "history" in modes:
        print("history mode, first regressions the host rule set aside (the host-speed reference slowed): "
              + ", ".join(f"+{c:.0%} {sum(set_aside[(c, m)] for m in METRICS)}" for c in conditions))


if __name__ == "__main__":
    main()
