"""Bytes and fidelity of every CPU-able method on the embedded model:
``python -m pytest_inferlab.quant.fidelity_table [--model M] [--threads N] [--window W]``."""

from __future__ import annotations

import argparse
import importlib.resources


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--window", type=int, default=512)
    args = parser.parse_args(argv)

    import torch

    from ..device import CPU
    from ..engines import load_engine
    from ..engines.transformers_engine import weight_bytes
    from ..fidelity import ReferenceLogProbs, compare, log_probs, windows
    from ..sources import resolve_model
    from . import QuantSpec, quant_methods, quantize

    torch.set_num_threads(args.threads)
    engine = load_engine("transformers", resolve_model(args.model), CPU)
    text = (importlib.resources.files("pytest_inferlab") / "data/prompts/long_report.txt").read_text()
    chunks = windows(engine.tokenizer(text)["input_ids"], args.window)
    reference = ReferenceLogProbs(engine.model, chunks)
    _, reference_bytes = weight_bytes(engine.model)
    print(f"model={args.model} tokens={sum(map(len, chunks))} window={args.window} threads={args.threads}")
    print(f"{'method':<14}{'MiB':>8}{'x fp32':>8}{'KLD mean':>10}{'KLD p99':>9}{'top-1':>7}{'ppl':>8}{'delta':>8}")
    for name in quant_methods.names():
        method = quant_methods.get(name)
        reason = method.unsupported(CPU)
        if reason:
            print(f"{name:<14}skipped: {reason}")
            continue
        variant = quantize(engine.model, QuantSpec.of(name), CPU)
        result = compare(reference, log_probs(variant.model, chunks))
        _, nbytes = weight_bytes(variant.model)
        print(f"{name:<14}{nbytes / 2**20:>8.1f}{nbytes / reference_bytes:>8.2f}{result.kld_mean:>10.5f}"
              f"{result.kld_p99:>9.4f}{result.top1_agreement:>7.3f}{result.ppl_variant:>8.2f}{result.ppl_delta_pct:>+7.2f}%")


if __name__ == "__main__":
    main()
