"""Detection power of the regression gate on this machine: ``python -m pytest_inferlab.power``.

Builds a baseline history of K runs of one small case, then runs it again, interleaving
unchanged runs with planted slowdowns (INFERLAB_TEST_TOKEN_DELAY_MS, sized as a fraction of
the baseline's TPOT), and judges every run with the gate's own verdict function and per-series
alpha. Prints, per metric: run-to-run noise, false alarms among unchanged runs and detections
per slowdown; with ``--reference gemv`` also for values normalized by a reference kernel.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import statistics

from .device import CPU
from .engines import load_engine
from .engines.transformers_engine import TEST_DELAY_ENV
from .metrics import measure
from .policy import default_policy
from .runner import run_round
from .sources import resolve_model
from .specs import SamplingSpec
from .verdict import bonferroni_alpha, judge
from .workloads import materialize, workloads

METRICS = ("tpot_ms", "ttft_ms", "e2e_ms", "output_tok_per_s")


class GemvReference:
    """A fixed memory-bound kernel (8 GEMVs over a 256 MB matrix), timed between rounds: a
    candidate calibration for host-speed drift (experimental; not used by the gate yet)."""

    def __init__(self) -> None:
        import torch

        generator = torch.Generator().manual_seed(0)
        self.matrix = torch.randn(8192, 8192, generator=generator)
        self.vector = torch.randn(8192, generator=generator)

    def seconds(self) -> float:
        import time

        import torch

        start = time.perf_counter()
        for _ in range(8):
            torch.mv(self.matrix, self.vector)
        return time.perf_counter() - start


def one_run(engine, requests, rounds: int, delay_ms: float, reference: GemvReference | None) -> dict[str, float]:
    """Warm-up + timed rounds, as the lab fixture does; headline value per metric, and the same
    values in units of the reference (``<metric>/ref``) when one is timed around the rounds."""
    os.environ[TEST_DELAY_ENV] = str(delay_ms)
    references = []
    try:
        traces = [run_round(engine, requests, 1, SamplingSpec(), warmup=True)]
        for _ in range(rounds):
            if reference:
                references.append(reference.seconds())
            traces.append(run_round(engine, requests, 1, SamplingSpec()))
        if reference:
            references.append(reference.seconds())
    finally:
        os.environ.pop(TEST_DELAY_ENV, None)
    measured, _ = measure(traces)
    values = {name: measured[name].value for name in METRICS}
    if references:
        ref = statistics.median(references)
        # latencies in reference units; a rate times the reference time, so both stay "same direction"
        values.update({f"{name}/ref": value * ref if name.endswith("_per_s") else value / ref
                       for name, value in list(values.items())})
    return values


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--history", type=int, default=10, help="baseline runs")
    parser.add_argument("--repeats", type=int, default=10, help="runs per condition")
    parser.add_argument("--slowdowns", default="0.05,0.10,0.20")
    parser.add_argument("--requests", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--alpha", type=float, default=0.05, help="family-wise, split over the metrics")
    parser.add_argument("--reference", choices=("none", "gemv"), default="gemv",
                        help="also judge values normalized by a reference kernel timed between rounds")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    engine = load_engine("transformers", resolve_model(args.model), CPU)
    spec = dataclasses.replace(workloads.get("short-chat"), count=args.requests, output_tokens=args.tokens)
    requests = materialize(spec, engine.encode, engine.info.vocab_size)
    reference = GemvReference() if args.reference == "gemv" else None
    history = [one_run(engine, requests, args.rounds, 0.0, reference) for _ in range(args.history)]
    series = list(history[0])
    base_tpot = statistics.median(run["tpot_ms"] for run in history)
    conditions = [0.0] + [float(x) for x in args.slowdowns.split(",")]
    alpha = bonferroni_alpha(args.alpha, len(METRICS))
    outcomes: dict[tuple[float, str], list[str]] = {(c, m): [] for c in conditions for m in series}
    for _ in range(args.repeats):
        for slowdown in conditions:  # interleaved: drift of the machine hits every condition alike
            run = one_run(engine, requests, args.rounds, slowdown * base_tpot, reference)
            for metric in series:
                policy = default_policy(metric.removesuffix("/ref"))
                verdict = judge(policy, run[metric], [h[metric] for h in history], alpha)
                outcomes[(slowdown, metric)].append(verdict.outcome)
    print(f"model={args.model} threads={args.threads} history={args.history} runs, repeats={args.repeats}, "
          f"{args.requests} requests x {args.tokens} tokens x {args.rounds} rounds per run, "
          f"baseline TPOT {base_tpot:.1f} ms, per-series alpha {alpha:.4f}")
    spread = {m: statistics.stdev([math.log(h[m]) for h in history]) for m in series}
    print(f"{'metric':<22}{'noise (log sd)':>15}" +
          "".join(f"{'+0% false alarms' if c == 0 else f'+{c:.0%} detected':>18}" for c in conditions))
    for metric in series:
        cells = []
        for slowdown in conditions:
            runs = outcomes[(slowdown, metric)]
            cells.append(f"{sum(o == 'regressed' for o in runs)}/{len(runs)}")
        print(f"{metric:<22}{spread[metric]:>15.3f}" + "".join(f"{cell:>18}" for cell in cells))


if __name__ == "__main__":
    main()
