"""Trace files: JSONL arrival times with input/output lengths (and optional shared-block hashes), as
Mooncake publishes them, read with errors that name the file and line; and the generator of the
small synthetic trace the lab ships (``python -m pytest_inferlab.run.replay --help``).

A line is ``{"timestamp": <ms>, "input_length": <tokens>, "output_length": <tokens>, "hash_ids": [..]}``;
an optional first line ``{"meta": {"block_tokens": 16, ...}}`` says how many tokens a hash id
stands for (Mooncake's traces: 512) and how the trace was made.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from pytest_inferlab.ground.jsonio import json_lines, write_text_if_absent
from pytest_inferlab.specs.traffic import MOONCAKE_BLOCK_TOKENS, TRACES_DIR, file_sha256

REQUIRED = ("timestamp", "input_length", "output_length")


@dataclass(frozen=True, slots=True)
class TraceEntry:
    """One recorded request: when (seconds from the trace's start), how long in and out, which blocks."""

    arrival_s: float
    input_tokens: int
    output_tokens: int
    hash_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class TraceFile:
    entries: tuple[TraceEntry, ...]
    block_tokens: int
    meta: dict[str, Any]


def read_trace(path: Path) -> TraceFile:
    """The trace at ``path``, checked line by line (once per version of the file)."""
    return _read(str(path), file_sha256(path))


@functools.lru_cache(maxsize=16)
def _read(path: str, digest: str) -> TraceFile:
    entries: list[TraceEntry] = []
    meta: dict[str, Any] = {}
    first_ms: float | None = None
    last_ms = -math.inf
    with open(path, encoding="utf-8") as lines:
        for where, item in json_lines(lines, f"trace {path}", ValueError, "; each line must be one JSON object"):
            if not isinstance(item, dict):
                raise ValueError(f"{where}: expected a JSON object, got {type(item).__name__}")
            if "meta" in item and not entries and not meta:
                meta = dict(item["meta"])
                continue
            missing = [name for name in REQUIRED if name not in item]
            if missing:
                raise ValueError(f"{where}: missing field(s) {', '.join(missing)} (each line needs "
                                 f"{', '.join(REQUIRED)}; hash_ids optional)")
            try:
                ms = float(item["timestamp"])
                entry_in, entry_out = int(item["input_length"]), int(item["output_length"])
                hashes = tuple(int(h) for h in item.get("hash_ids", ()))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{where}: a field is not a number ({exc})") from None
            if not math.isfinite(ms):
                raise ValueError(f"{where}: timestamp {item['timestamp']!r} is not a finite number of ms")
            if ms < last_ms:
                raise ValueError(f"{where}: timestamp {ms:g} ms goes back in time (the line before: {last_ms:g} ms); "
                                 "a trace must be in arrival order")
            if entry_in < 1 or entry_out < 1:
                raise ValueError(f"{where}: input_length and output_length must be >= 1 token")
            first_ms = ms if first_ms is None else first_ms
            last_ms = ms
            entries.append(TraceEntry((ms - first_ms) / 1000.0, entry_in, entry_out, hashes))
    if not entries:
        raise ValueError(f"trace {path}: no requests in it")
    block = int(meta.get("block_tokens", MOONCAKE_BLOCK_TOKENS))
    if block < 1:
        raise ValueError(f"trace {path}: meta block_tokens {block} must be >= 1")
    return TraceFile(tuple(entries), block, meta)


def synthetic_trace(count: int, rate: float, burstiness: float, seed: int, block_tokens: int,
                    documents: int) -> list[dict[str, Any]]:
    """A Mooncake-style trace: gamma arrivals at ``rate`` req/s; a third of the requests open with one
    of ``documents`` shared documents (2-4 blocks), the rest are their own; log-normal lengths."""
    rng = random.Random(seed)
    lines: list[dict[str, Any]] = []
    t_ms, next_hash = 0.0, documents * 4
    document_blocks = [[d * 4 + b for b in range(rng.randint(2, 4))] for d in range(documents)]
    for _ in range(count):
        own = max(1, round(48 * math.exp(rng.gauss(0.0, 0.5))))
        hashes = list(document_blocks[rng.randrange(documents)]) if rng.random() < 1 / 3 else []
        shared = len(hashes) * block_tokens
        own_blocks = math.ceil(own / block_tokens)
        hashes += list(range(next_hash, next_hash + own_blocks))
        next_hash += own_blocks
        lines.append({"timestamp": round(t_ms), "input_length": shared + own,
                      "output_length": max(4, round(16 * math.exp(rng.gauss(0.0, 0.4)))), "hash_ids": hashes})
        t_ms += rng.gammavariate(burstiness, 1.0 / (rate * burstiness)) * 1000.0
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_inferlab.run.replay",
                                     description="Write a synthetic Mooncake-style trace (JSONL).")
    parser.add_argument("--out", type=Path, default=TRACES_DIR / "synthetic-chat.jsonl")
    parser.add_argument("--count", type=int, default=32)
    parser.add_argument("--rate", type=float, default=2.0, help="mean requests per second")
    parser.add_argument("--burstiness", type=float, default=0.5, help="gamma shape of the gaps (1 = Poisson)")
    parser.add_argument("--block-tokens", type=int, default=16)
    parser.add_argument("--documents", type=int, default=3, help="shared documents some requests open with")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    command = ("python -m pytest_inferlab.run.replay " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out"))
    meta = {"meta": {"block_tokens": args.block_tokens, "generator": command,
                     "about": "synthetic: gamma arrivals, some requests opening with a shared document"}}
    lines = [meta, *synthetic_trace(args.count, args.rate, args.burstiness, args.seed, args.block_tokens,
                                    args.documents)]
    if not write_text_if_absent(args.out, "".join(json.dumps(line) + "\n" for line in lines)):
        parser.error(f"{args.out} exists; remove it first (a trace is never overwritten in place)")
    print(f"wrote {args.out}: {args.count} requests")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
