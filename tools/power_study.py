"""Detection power of the regression gate on this machine: ``python tools/power_study.py``.

Builds a baseline history of K runs of one small case, then runs it again, interleaving
unchanged runs with planted slowdowns (INFERLAB_TEST_TOKEN_DELAY_MS, sized as a fraction of
the baseline's TPOT), and judges every run with the gate's own verdict function and per-series
alpha. Prints, per metric: run-to-run noise, false alarms among unchanged runs and detections
per slowdown, for raw values and as the gate judges them (in units of the host-speed reference
when the history is less noisy that way; probes/host_speed.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import statistics

from planted_delay import DELAY_ENV as TEST_DELAY_ENV
from planted_delay import install as install_planted_delay
from pytest_inferlab.device import CPU
from pytest_inferlab.engines import load_engine
from pytest_inferlab.measure.metrics import measure
from pytest_inferlab.judge.policy import policy_of
from pytest_inferlab.run.runner import run_round
from pytest_inferlab.engines.sources import resolve_model
from pytest_inferlab.specs.core import SamplingSpec
from pytest_inferlab.run.probes.host_speed import HostSpeed
from pytest_inferlab.judge.verdict import bonferroni_alpha, in_host_units, judge_run
from pytest_inferlab.run.workloads import materialize, workloads

METRICS = ("itl_p25_ms", "tpot_ms", "ttft_ms", "e2e_ms", "output_tok_per_s")


def one_run(engine, requests, rounds: int, delay_ms: float, host: bool) -> tuple[dict[str, float], float | None]:
    """Warm-up + timed rounds bracketed by the host-speed reference, as the lab fixture does:
    (headline value per metric, reference seconds or None)."""
    os.environ[TEST_DELAY_ENV] = str(delay_ms)
    probe = HostSpeed(CPU, host)
    try:
        probe.before()
        traces = [run_round(engine, requests, 1, SamplingSpec(), warmup=True)]
        traces += [run_round(engine, requests, 1, SamplingSpec()) for _ in range(rounds)]
        probe.after()
    finally:
        os.environ.pop(TEST_DELAY_ENV, None)
    measured, _ = measure(traces)
    return {name: measured[name].value for name in METRICS}, probe.seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--history", type=int, default=10, help="baseline runs")
    parser.add_argument("--repeats", type=int, default=10, help="runs per condition")
    parser.add_argument("--slowdowns", default="0.05,0.10,0.20")
    parser.add_argument("--requests", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--alpha", type=float, default=0.05, help="family-wise, split over the metrics")
    parser.add_argument("--host-ref", choices=("gemv", "none"), default="gemv",
                        help="time the host-speed reference around each run, as the gate does by default")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    install_planted_delay()
    engine = load_engine("transformers", resolve_model(args.model), CPU)
    spec = dataclasses.replace(workloads.get("short-chat"), count=args.requests, output_tokens=args.tokens)
    requests = materialize(spec, engine.encode, engine.info.vocab_size)
    host = args.host_ref == "gemv"
    history = [one_run(engine, requests, args.rounds, 0.0, host) for _ in range(args.history)]
    base_tpot = statistics.median(values["tpot_ms"] for values, _ in history)
    conditions = [0.0] + [float(x) for x in args.slowdowns.split(",")]
    views = ("raw", "gate") if host else ("raw",)
    alpha = bonferroni_alpha(args.alpha, len(METRICS))  # the gate judges one view per metric
    outcomes: dict[tuple[float, str, str], list[str]] = {(c, m, v): [] for c in conditions for m in METRICS for v in views}
    confirmed: dict[tuple[float, str, str], list[bool]] = {key: [] for key in outcomes}
    for _ in range(args.repeats):
        for slowdown in conditions:  # interleaved: drift of the machine hits every condition alike
            runs_now = [one_run(engine, requests, args.rounds, slowdown * base_tpot, host)]
            for metric in METRICS:
                policy = policy_of(metric)
                runs = [(h[metric], h_ref) for h, h_ref in history]
                for view in views:
                    def verdict_of(run):
                        return judge_run(policy, run[0][metric], run[1] if view != "raw" else None, runs, alpha).outcome

                    first = verdict_of(runs_now[0])
                    outcomes[(slowdown, metric, view)].append(first)
                    if first == "regressed" and len(runs_now) == 1:  # the gate re-measures once (--inferlab-confirm)
                        runs_now.append(one_run(engine, requests, args.rounds, slowdown * base_tpot, host))
                    confirmed[(slowdown, metric, view)].append(first == "regressed" and verdict_of(runs_now[1]) == "regressed")
    print(f"model={args.model} threads={args.threads} history={args.history} runs, repeats={args.repeats}, "
          f"{args.requests} requests x {args.tokens} tokens x {args.rounds} rounds per run, "
          f"baseline TPOT {base_tpot:.1f} ms, tolerance {policy_of('tpot_ms').tolerance:.0%}, "
          f"per-series alpha {alpha:.4f}; cells: regressions confirmed by a re-measurement (first measurements alone)")
    print(f"{'metric':<36}{'noise (log sd)':>15}" +
          "".join(f"{'+0% false alarms' if c == 0 else f'+{c:.0%} detected':>18}" for c in conditions))
    for metric in METRICS:
        higher = policy_of(metric).higher_is_better
        for view in views:
            logs = [math.log(h[metric]) for h, _ in history]
            label = metric
            if view == "gate":
                calibrated = [math.log(in_host_units(h[metric], ref, higher)) for h, ref in history]
                use_host = statistics.stdev(calibrated) < statistics.stdev(logs)
                logs = calibrated if use_host else logs
                label = f"{metric} (gate: {'host units' if use_host else 'raw'})"
            cells = [f"{sum(confirmed[(c, metric, view)])}/{args.repeats} ({sum(o == 'regressed' for o in outcomes[(c, metric, view)])})"
                     for c in conditions]
            print(f"{label:<36}{statistics.stdev(logs):>15.3f}" + "".join(f"{cell:>18}" for cell in cells))


if __name__ == "__main__":
    main()
