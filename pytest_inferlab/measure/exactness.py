"""Greedy exactness of an optimization that claims to change nothing but speed: drafting, static and
continuous batching, prefix sharing. Pure functions: the tie margin is asked of a callable.

Three states, never two: ``exact`` (every token equal); ``near-tie`` (the outputs part where the
reference's own log-probabilities of the two tokens are within ``NEAR_TIE_NATS``: a batch of k
positions, or a padded batch, sums its floats in another order than one-position decoding, and an
exact tie in the last bit may then go either way); ``diverged`` (they part at a wider gap, or the
margin cannot be scored): a real difference, which fails the case. A near tie is reported, with its
margin, and never fails a case.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

EXACT, NEAR_TIE, DIVERGED = "exact", "near-tie", "diverged"
STATES = (EXACT, NEAR_TIE, DIVERGED)
NEAR_TIE_NATS = 0.25  # log-prob gap below which batch-shape rounding can flip a greedy choice


@dataclass(frozen=True, slots=True)
class Mismatch:
    """Where two greedy outputs first part: request ``request``, output position ``position``; the
    reference's token, the candidate's, and the reference's own log-prob gap between them."""

    request: int
    position: int
    expected: int | None  # None: the candidate went on where the reference stopped (or the reverse)
    got: int | None
    tie_margin_nats: float | None = None

    @property
    def near_tie(self) -> bool:
        return self.tie_margin_nats is not None and self.tie_margin_nats < NEAR_TIE_NATS

    def to_dict(self) -> dict[str, Any]:
        return {"request": self.request, "position": self.position, "expected": self.expected, "got": self.got,
                "tie_margin_nats": self.tie_margin_nats, "near_tie": self.near_tie}


@dataclass(frozen=True, slots=True)
class Exactness:
    """The outcome of one claim's check: its state, how many requests were compared, against what."""

    state: str
    checked_requests: int
    against: str  # "the target without drafting", "sequential greedy decoding"
    mismatch: Mismatch | None = None

    @property
    def lossless(self) -> bool:
        """Exact, or equal up to a near tie: what a suite asserts of a speed-only optimization."""
        return self.state != DIVERGED

    def describe(self) -> str:
        if self.state == EXACT:
            return f"output exactly that of {self.against} ({self.checked_requests} requests)"
        m = self.mismatch
        margin = "unscored" if m.tie_margin_nats is None else f"{m.tie_margin_nats:.2f} nats"
        if self.state == NEAR_TIE:
            return (f"output that of {self.against} up to a near tie ({margin}, batch rounding) at request "
                    f"{m.request}, token {m.position}")
        return (f"output DIVERGED from {self.against} at request {m.request}, token {m.position} "
                f"({m.expected} expected, {m.got} produced; gap {margin}, not a near tie)")

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "checked_requests": self.checked_requests, "against": self.against,
                "first_mismatch": self.mismatch.to_dict() if self.mismatch else None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Exactness":
        m = data.get("first_mismatch")
        mismatch = Mismatch(m["request"], m["position"], m.get("expected"), m.get("got"),
                            m.get("tie_margin_nats")) if m else None
        return cls(data["state"], int(data["checked_requests"]), data["against"], mismatch)


def first_mismatch(reference: Mapping[int, Sequence[int]], candidate: Mapping[int, Sequence[int]]) -> Mismatch | None:
    """The first position, in request order, where ``candidate``'s output differs from ``reference``'s."""
    for index in sorted(reference.keys() & candidate.keys()):
        a, b = reference[index], candidate[index]
        for position, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return Mismatch(index, position, x, y)
        if len(a) != len(b):
            position = min(len(a), len(b))
            return Mismatch(index, position, a[position] if len(a) > position else None,
                            b[position] if len(b) > position else None)
    return None


Margin = Callable[[Mismatch], "float | None"]  # the reference's log-prob gap of the two tokens, or None


def judge_exactness(reference: Mapping[int, Sequence[int]], candidates: Sequence[Mapping[int, Sequence[int]]],
                    against: str, margin: Margin) -> Exactness:
    """``candidates``: the outputs of each timed round (request index -> ids), each compared with
    ``reference``; the first mismatch over the rounds decides."""
    checked = sum(len(reference.keys() & c.keys()) for c in candidates)
    for candidate in candidates:
        found = first_mismatch(reference, candidate)
        if found is not None:
            scored = margin(found) if found.expected is not None and found.got is not None else None
            found = Mismatch(found.request, found.position, found.expected, found.got, scored)
            return Exactness(NEAR_TIE if found.near_tie else DIVERGED, checked, against, found)
    return Exactness(EXACT, checked, against)


def worst(checks: Sequence[Exactness]) -> Exactness | None:
    """The least exact of a record's checks (diverged, then near tie, then exact), or None."""
    return max(checks, key=lambda c: STATES.index(c.state), default=None)


def margin_from(engine: Any, prompts: Mapping[int, Sequence[int]], reference: Mapping[int, Sequence[int]]) -> Margin:
    """A Margin scored by ``engine``'s own forward pass (``window_log_probs``) over the request's prompt
    and the reference's output up to the mismatch; None where the engine cannot score."""
    from pytest_inferlab.engines.base import EngineCapabilityError

    def margin(found: Mismatch) -> float | None:
        if found.request not in prompts or found.request not in reference:
            return None
        ids = [*prompts[found.request], *reference[found.request][:found.position], found.expected]
        try:
            [scores] = engine.window_log_probs([ids])
        except EngineCapabilityError:
            return None
        last = scores[-1]
        return abs(float(last[found.expected]) - float(last[found.got]))

    return margin
