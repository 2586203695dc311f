"""Workloads made concrete: a spec (specs/workloads.py names them) materialized into tokenized requests."""

from __future__ import annotations

import functools
import json
import random
from pathlib import Path
from typing import Callable

from pytest_inferlab.specs.core import WorkloadSpec
from pytest_inferlab.ground.trace import Request
from pytest_inferlab.run.prompt_files import is_user_prompts, user_prompts
from pytest_inferlab.run.traffic import synthetic_requests, trace_requests

PROMPTS_DIR = Path(__file__).resolve().parents[1] / "data" / "prompts"

Encoder = Callable[[str, bool], list[int]]


@functools.lru_cache(maxsize=None)
def prompt_texts(prompt_set: str) -> tuple[str, ...]:
    """The texts of a shipped prompt set (``data/prompts/<name>.jsonl``), contexts inlined, or of the
    user's own (``file:`` / ``dataset:``, run/prompt_files.py)."""
    if is_user_prompts(prompt_set):
        return tuple(prompt.text for prompt in user_prompts(prompt_set))
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
