"""Synthetic and trace prompts: the model's own token ids in the lengths, shared prefixes and
sessions a workload's spec asks for (specs/traffic.py), and the facts a record keeps about them.

No cache hits by accident: the first token of every request's own part is a marker no other
request has (and every shared prefix opens with a marker of its group), so two prompts agree
exactly as far as the spec shares them and differ right after.
"""

from __future__ import annotations

import random
import statistics
from collections import Counter
from typing import Any, Sequence

from pytest_inferlab.run.replay import read_trace
from pytest_inferlab.ground.trace import LaterTurns, Request
from pytest_inferlab.specs.core import WorkloadSpec
from pytest_inferlab.specs.traffic import Lengths

# Synthetic ids start above the special and byte-fallback tokens of common vocabularies.
FIRST_PLAIN_TOKEN_ID = 1000
UNIQUENESS = ("the first token of each request's own part is a marker id no other request of the round has "
              "(shared prefixes open with a marker of their group): prompts agree only where the spec shares them")


class TokenSource:
    """Seeded random plain-token ids, and marker ids that never repeat within a round."""

    def __init__(self, seed: int, vocab_size: int, markers_needed: int) -> None:
        self.rng = random.Random(seed)
        self.high = max(FIRST_PLAIN_TOKEN_ID + 1, vocab_size)
        if self.high - FIRST_PLAIN_TOKEN_ID < markers_needed:
            raise ValueError(f"a vocabulary of {vocab_size} ids has {self.high - FIRST_PLAIN_TOKEN_ID} plain ids, "
                             f"fewer than the {markers_needed} unique markers this workload needs; use fewer requests")
        self.next_marker = FIRST_PLAIN_TOKEN_ID

    def tokens(self, count: int) -> tuple[int, ...]:
        return tuple(self.rng.randrange(FIRST_PLAIN_TOKEN_ID, self.high) for _ in range(count))

    def marked(self, count: int) -> tuple[int, ...]:
        """``count`` tokens whose first is this round's next marker."""
        marker, self.next_marker = self.next_marker, self.next_marker + 1
        return (marker, *self.tokens(count - 1)) if count >= 1 else ()


def legacy_lengths(spec: WorkloadSpec, count: int) -> list[int]:
    """Lengths around ``input_tokens`` by ``input_distribution``/``input_spread`` (the older form)."""
    mean = spec.input_tokens or 1
    rng = random.Random(spec.seed)
    if spec.input_distribution == "fixed":
        return [mean] * count
    if spec.input_distribution == "uniform":
        return [max(1, round(rng.uniform(mean * (1 - spec.input_spread), mean * (1 + spec.input_spread))))
                for _ in range(count)]
    return Lengths("lognormal", mean, spec.input_spread).draw(rng, count)


def synthetic_requests(spec: WorkloadSpec, vocab_size: int) -> list[Request]:
    """``count`` requests (a session's turns count one each) of random plain tokens."""
    sessions = spec.sessions
    turns = sessions.turns if sessions else 1
    firsts = spec.count // turns
    groups = spec.prefix.group_of(firsts, spec.seed) if spec.prefix else [None] * firsts
    source = TokenSource(spec.seed + 1, vocab_size, firsts + (spec.prefix.groups if spec.prefix else 0))
    prefixes = [source.marked(spec.prefix.tokens) for _ in range(spec.prefix.groups)] if spec.prefix else []
    own_lengths = (spec.input_lengths.draw(random.Random(spec.seed), firsts) if spec.input_lengths
                   else legacy_lengths(spec, firsts))
    out_rng = random.Random(spec.seed + 3)
    outputs = (spec.output_lengths.draw(out_rng, firsts * turns) if spec.output_lengths
               else [spec.output_tokens] * (firsts * turns))
    requests = []
    turn_rng = random.Random(spec.seed + 4)
    for i in range(firsts):
        prompt = (prefixes[groups[i]] if groups[i] is not None else ()) + source.marked(own_lengths[i])
        later = None
        if sessions is not None:
            user = sessions.user.draw(turn_rng, turns - 1)
            later = LaterTurns(tuple(source.tokens(n) for n in user), tuple(sessions.think_times(turn_rng, turns - 1)),
                               tuple(outputs[i * turns + 1:(i + 1) * turns]))
        requests.append(Request(i * turns, prompt, outputs[i * turns], spec.ignore_eos, later=later))
    return requests


def trace_requests(spec: WorkloadSpec, vocab_size: int) -> list[Request]:
    """The trace's requests: a hash id is a block of tokens (the same id, the same block), a prompt
    its blocks cut to its input length (padded with its own tokens where the blocks fall short)."""
    assert spec.trace is not None
    trace = read_trace(spec.trace.path)
    block = spec.trace.block_tokens or trace.block_tokens
    entries = trace.entries[: spec.count]
    distinct = {h for e in entries for h in e.hash_ids}
    source = TokenSource(spec.seed + 1, vocab_size, len(distinct) + len(entries))
    blocks: dict[int, tuple[int, ...]] = {}
    requests = []
    for i, entry in enumerate(entries):
        prompt: tuple[int, ...] = ()
        for h in entry.hash_ids:
            if len(prompt) >= entry.input_tokens:
                break
            if h not in blocks:
                blocks[h] = source.marked(block)
            prompt += blocks[h]
        if len(prompt) < entry.input_tokens:
            prompt += source.marked(entry.input_tokens - len(prompt))
        requests.append(Request(i, prompt[: entry.input_tokens], entry.output_tokens, spec.ignore_eos,
                                arrival_s=entry.arrival_s))
    return requests


def check_workload(spec: WorkloadSpec, context: int | None) -> None:
    """At collection: the trace reads, and the longest prompt (prefix, own part, session history) and
    answer fit ``context`` (the model's, when known). Raises ValueError naming what does not fit."""
    if spec.trace is not None:
        trace = read_trace(spec.trace.path)
        if context is not None:
            longest = max(e.input_tokens + e.output_tokens for e in trace.entries)
            if longest > context:
                raise ValueError(f"workload {spec.name!r}: trace {spec.trace.path} has a request of {longest} "
                                 f"tokens in and out, beyond the model's context of {context}")
        return
    if context is None or spec.prompts != "synthetic":
        return
    if spec.prefix is not None and spec.prefix.tokens + 1 > context:
        raise ValueError(f"workload {spec.name!r}: a shared prefix of {spec.prefix.tokens} tokens (plus a token of "
                         f"its own) is longer than the model's context of {context}")
    own = spec.input_lengths.most if spec.input_lengths else (spec.input_tokens or 1)
    out = spec.output_lengths.most if spec.output_lengths else spec.output_tokens
    turns = spec.sessions.turns if spec.sessions else 1
    user = spec.sessions.user.most if spec.sessions else 0
    longest = (spec.prefix.tokens if spec.prefix else 0) + own + turns * out + (turns - 1) * user
    if longest > context and (spec.input_lengths is None or spec.input_lengths.high is not None):
        raise ValueError(f"workload {spec.name!r}: its longest request can reach {longest} tokens in and out "
                         f"(prefix, prompt, {turns} turn(s) of history), beyond the model's context of {context}")


def traffic_facts(spec: WorkloadSpec, requests: Sequence[Request]) -> dict[str, Any] | None:
    """What a record says about the traffic it measured (None for text prompt sets)."""
    if spec.prompts not in ("synthetic", "trace") or not requests:
        return None
    lengths = [len(r.prompt_ids) for r in requests]
    facts: dict[str, Any] = {
        "uniqueness": UNIQUENESS,
        "first_turn_input_tokens": {"min": min(lengths), "median": statistics.median(lengths), "max": max(lengths)},
        "input_lengths": spec.input_lengths.label if spec.input_lengths else None,
        "output_lengths": spec.output_lengths.label if spec.output_lengths else None,
    }
    if spec.prefix is not None:
        members = [0] * spec.prefix.groups
        for g in spec.prefix.group_of(len(requests), spec.seed):
            members[g] += 1
        facts["prefix"] = {"groups": spec.prefix.groups, "tokens": spec.prefix.tokens,
                           "requests_per_group": members, "weights": list(spec.prefix.weights) or None}
    if spec.sessions is not None:
        facts["sessions"] = {"sessions": len(requests), "turns": spec.sessions.turns,
                             "think_s": spec.sessions.think_s, "think": spec.sessions.think,
                             "user_tokens": spec.sessions.user.label}
    if spec.trace is not None:
        trace = read_trace(spec.trace.path)
        replayed = trace.entries[: len(requests)]
        holders = Counter(h for e in replayed for h in set(e.hash_ids))  # requests that list each block
        shared = sum(1 for e in replayed for h in e.hash_ids if holders[h] > 1)
        facts["trace"] = {**spec.trace.to_dict(), "path": str(spec.trace.path), "requests": len(requests),
                          "of": len(trace.entries), "span_s": trace.entries[len(requests) - 1].arrival_s,
                          "block_tokens": spec.trace.block_tokens or trace.block_tokens,
                          "shared_block_uses": shared, "meta": trace.meta}
    return facts
