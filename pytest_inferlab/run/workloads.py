"""Workloads: named specs in a registry, and their materialization into tokenized requests."""

from __future__ import annotations

import functools
import json
import math
import random
from pathlib import Path
from typing import Callable

from pytest_inferlab.registry import Registry
from pytest_inferlab.specs.core import WorkloadSpec
from pytest_inferlab.run.trace import Request

workloads: Registry[WorkloadSpec] = Registry("workloads")

for _spec in (
    WorkloadSpec(name="short-chat", prompts="short_chat", count=8, output_tokens=64),
    WorkloadSpec(name="long-context", prompts="long_context", count=4, output_tokens=64),
    WorkloadSpec(name="copy-edit", prompts="copy_edit", count=8, output_tokens=96),
    WorkloadSpec(name="code", prompts="code", count=4, output_tokens=64),
    WorkloadSpec(name="synthetic", prompts="synthetic", count=8, output_tokens=64, input_tokens=256),
):
    workloads.register(_spec.name, _spec)

PROMPTS_DIR = Path(__file__).resolve().parents[1] / "data" / "prompts"

# Synthetic ids start above the special and byte-fallback tokens of common vocabularies.
FIRST_PLAIN_TOKEN_ID = 1000

Encoder = Callable[[str, bool], list[int]]


def resolve_workload(value: str | WorkloadSpec) -> WorkloadSpec:
    return value if isinstance(value, WorkloadSpec) else workloads.get(value)


@functools.lru_cache(maxsize=None)
def prompt_texts(prompt_set: str) -> tuple[str, ...]:
    """The texts of a shipped prompt set (``data/prompts/<name>.jsonl``), contexts inlined."""
    folder = PROMPTS_DIR
    source = folder / f"{prompt_set}.jsonl"
    if not source.is_file():
        known = sorted(p.name.removesuffix(".jsonl") for p in folder.iterdir() if p.name.endswith(".jsonl"))
        raise LookupError(f"no prompt set {prompt_set!r} (looked for {source}); shipped sets: {', '.join(known)}")
    texts = []
    for line_no, line in enumerate(source.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            text = item["text"]
        except (json.JSONDecodeError, KeyError) as exc:
            raise ValueError(f"{source}:{line_no}: expected a JSON object with a 'text' field ({exc})") from exc
        if "context_file" in item:
            text = (folder / item["context_file"]).read_text(encoding="utf-8").strip() + "\n\n" + text
        texts.append(text)
    return tuple(texts)


def synthetic_lengths(spec: WorkloadSpec) -> list[int]:
    """Seeded prompt lengths around ``input_tokens`` from the spec's distribution."""
    rng = random.Random(spec.seed)
    mean = spec.input_tokens or 1
    if spec.input_distribution == "fixed":
        return [mean] * spec.count
    if spec.input_distribution == "uniform":
        low, high = mean * (1 - spec.input_spread), mean * (1 + spec.input_spread)
        return [max(1, round(rng.uniform(low, high))) for _ in range(spec.count)]
    # lognormal with median ``mean``: long tails like real traffic
    return [max(1, round(mean * math.exp(rng.gauss(0.0, spec.input_spread)))) for _ in range(spec.count)]


def materialize(spec: WorkloadSpec, encode: Encoder, vocab_size: int) -> list[Request]:
    """The spec's requests, tokenized. Text sets are used in order and cycled to ``count``."""
    if spec.prompts == "synthetic":
        rng = random.Random(spec.seed + 1)
        high = max(FIRST_PLAIN_TOKEN_ID + 1, vocab_size)
        prompts = [tuple(rng.randrange(FIRST_PLAIN_TOKEN_ID, high) for _ in range(n)) for n in synthetic_lengths(spec)]
    else:
        texts = prompt_texts(spec.prompts)
        prompts = []
        for i in range(spec.count):
            ids = encode(texts[i % len(texts)], spec.chat_template)
            if spec.input_tokens is not None:
                ids = ids[-spec.input_tokens :]  # keep the tail: the instruction and the assistant turn
            prompts.append(tuple(ids))
    return [Request(i, ids, spec.output_tokens, spec.ignore_eos) for i, ids in enumerate(prompts)]
