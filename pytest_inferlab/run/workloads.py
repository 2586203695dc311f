"""Workloads: named specs in a registry, and their materialization into tokenized requests."""

from __future__ import annotations

import functools
import json
import random
from pathlib import Path
from typing import Callable

from pytest_inferlab.registry import Registry
from pytest_inferlab.specs.core import WorkloadSpec
from pytest_inferlab.run.trace import Request
from pytest_inferlab.run.traffic import synthetic_requests, trace_requests

workloads: Registry[WorkloadSpec] = Registry("workloads")

for _spec in (
    WorkloadSpec(name="short-chat", prompts="short_chat", count=8, output_tokens=64),
    WorkloadSpec(name="long-context", prompts="long_context", count=4, output_tokens=64),
    WorkloadSpec(name="copy-edit", prompts="copy_edit", count=8, output_tokens=96),
    WorkloadSpec(name="code", prompts="code", count=4, output_tokens=64),
    WorkloadSpec(name="synthetic", prompts="synthetic", count=8, output_tokens=64, input_tokens=256),
    # Realistic traffic (docs/traffic.md): wide lengths, shared prefixes, conversations, a replayed trace.
    WorkloadSpec(name="wide-lengths", prompts="synthetic", count=16, input_lengths="lognormal:256,0.7,16,2048",
                 output_lengths="normal:64,32,8,256"),
    WorkloadSpec(name="shared-prefix", prompts="synthetic", count=16, prefix="4x256",
                 input_lengths="normal:64,16,16,128"),
    WorkloadSpec(name="multi-turn", prompts="synthetic", count=12, sessions="3@1", input_lengths="normal:128,32,32,256"),
    WorkloadSpec(name="trace-chat", prompts="trace", trace="synthetic-chat", count=32),
):
    workloads.register(_spec.name, _spec)

PROMPTS_DIR = Path(__file__).resolve().parents[1] / "data" / "prompts"

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


def materialize(spec: WorkloadSpec, encode: Encoder, vocab_size: int) -> list[Request]:
    """The spec's requests, tokenized. Text sets are used in order and cycled to ``count``; synthetic
    and trace prompts are built by run/traffic.py (a session's later turns ride on its first)."""
    if spec.prompts == "synthetic":
        return synthetic_requests(spec, vocab_size)
    if spec.prompts == "trace":
        return trace_requests(spec, vocab_size)
    texts = prompt_texts(spec.prompts)
    out_lengths = (spec.output_lengths.draw(random.Random(spec.seed + 3), spec.count) if spec.output_lengths
                   else [spec.output_tokens] * spec.count)
    requests = []
    for i in range(spec.count):
        ids = encode(texts[i % len(texts)], spec.chat_template)
        if spec.input_tokens is not None:
            ids = ids[-spec.input_tokens :]  # keep the tail: the instruction and the assistant turn
        requests.append(Request(i, tuple(ids), out_lengths[i], spec.ignore_eos))
    return requests
