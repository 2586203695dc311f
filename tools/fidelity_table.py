"""Bytes and fidelity of every CPU-able method on the embedded model:
``python tools/fidelity_table.py [--model M] [--threads N] [--window W]``."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--methods", nargs="*", help="methods to run (default: every registered one)")
    args = parser.parse_args(argv)

    import dataclasses

    import torch

    from pytest_inferlab.device import CPU
    from pytest_inferlab.engines import load_engine
    from pytest_inferlab.engines.sources import resolve_model
    from pytest_inferlab.optimizations.quant import QuantSpec, quant_methods, unsupported_reason
    from pytest_inferlab.measure.fidelity_text import fidelity_metrics, reference_log_probs
    from pytest_inferlab.optimizations.quant.engine import variant_engine

    torch.set_num_threads(args.threads)
    engine = load_engine("transformers", resolve_model(args.model), CPU)
    reference = reference_log_probs(engine, args.window)
    print(f"model={args.model} tokens={sum(map(len, reference.window_ids))} window={args.window} threads={args.threads}")
    print(f"{'method':<14}{'MiB':>8}{'x fp32':>8}{'KLD mean':>10}{'KLD p99':>9}{'top-1':>7}{'ppl':>8}{'delta':>8}")
    for name in args.methods or quant_methods.names():
        reason = unsupported_reason(QuantSpec.of(name), CPU, engine.info.model)
        if reason:
            print(f"{name:<14}skipped: {reason}")
            continue
        variant = variant_engine(engine, dataclasses.replace(engine.info.model, quant=QuantSpec.of(name)))
        result = fidelity_metrics(reference, variant)
        nbytes = variant.info.model_bytes
        print(f"{name:<14}{nbytes / 2**20:>8.1f}{nbytes / engine.info.model_bytes:>8.2f}{result['kld_mean']:>10.5f}"
              f"{result['kld_p99']:>9.4f}{result['top1_agreement']:>7.3f}{result['ppl']:>8.2f}"
              f"{result['ppl_delta_pct']:>+7.2f}%")


if __name__ == "__main__":
    main()
