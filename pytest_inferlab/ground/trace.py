"""What a run leaves behind: per-request timestamps and token counts, nothing derived."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Mapping, Sequence


@dataclass(frozen=True, slots=True)
class LaterTurns:
    """What the rest of a session sends: per later turn, the new user tokens, the think time before
    it and its new tokens out."""

    user_ids: tuple[tuple[int, ...], ...]
    think_s: tuple[float, ...]
    max_new_tokens: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Request:
    """One request of a workload, already tokenized (tokenizing is not what we time). A session's
    first turn carries its later turns; each is built when the turn before it has answered."""

    index: int
    prompt_ids: tuple[int, ...]
    max_new_tokens: int
    ignore_eos: bool = True
    arrival_s: float | None = None  # a trace's recorded arrival (seconds from its start)
    turn: int = 0  # 0: a session's first turn (or no session)
    later: LaterTurns | None = None

    def next_turn(self, output_ids: Sequence[int]) -> tuple["Request", float] | None:
        """The session's next turn (history = this prompt + its answer + new user tokens; its index is
        the next one) and the think time before it; None after the last turn."""
        if self.later is None or not self.later.user_ids:
            return None
        later = self.later
        rest = LaterTurns(later.user_ids[1:], later.think_s[1:], later.max_new_tokens[1:])
        follow = Request(self.index + 1, self.prompt_ids + tuple(output_ids) + later.user_ids[0],
                         later.max_new_tokens[0], self.ignore_eos, turn=self.turn + 1,
                         later=rest if rest.user_ids else None)
        return follow, later.think_s[0]

    def longest_tokens(self) -> int:
        """Tokens in and out of the session's last turn (this request's own when it has no later turns)."""
        later = self.later
        grown = sum(map(len, later.user_ids)) + sum(later.max_new_tokens) if later else 0
        return len(self.prompt_ids) + self.max_new_tokens + grown

    def turns_left(self) -> list[int]:
        """Indices of the session's turns still to come after this one."""
        return [self.index + k for k in range(1, 1 + (len(self.later.user_ids) if self.later else 0))]


@dataclass(frozen=True, slots=True)
class RequestTrace:
    """Timeline of one request, ``perf_counter`` seconds.

    A delivery (chunk) may carry several tokens (speculative decoding, server streams), so chunk
    times and token counts are kept side by side: ``chunk_tokens[i]`` arrived at ``chunk_times[i]``.
    """

    index: int
    t_send: float
    chunk_times: tuple[float, ...]
    chunk_tokens: tuple[int, ...]
    input_tokens: int
    output_ids: tuple[int, ...] = ()
    ok: bool = True
    error: str | None = None
    t_admit: float | None = None  # when the engine took the request in (t_send: when it arrived)
    client_lag_s: float | None = None  # a load client's own lateness: when it sent minus ``t_send``
    cached_tokens: int | None = None  # prompt tokens the engine took from its prefix cache, where it says

    @property
    def output_tokens(self) -> int:
        return sum(self.chunk_tokens)

    @classmethod
    def failed(cls, request: Request, t_send: float, error: str) -> "RequestTrace":
        return cls(request.index, t_send, (), (), len(request.prompt_ids), ok=False, error=error)


@dataclass(frozen=True, slots=True)
class KVUsage:
    """A generate call's cache: bytes it holds, positions it covers, rows in the batch."""

    nbytes: int
    positions: int
    rows: int

    @property
    def bytes_per_token(self) -> float | None:
        return self.nbytes / (self.positions * self.rows) if self.positions and self.rows else None


@dataclass(frozen=True, slots=True)
class RoundTrace:
    """One pass over the workload; throughput is taken over [t_start, t_end]."""

    t_start: float
    t_end: float
    requests: tuple[RequestTrace, ...]
    warmup: bool = False
    # Under an arrival process (pytest_inferlab.specs.load): how late the load generator delivered each
    # arrival it could observe, the arrival rate it achieved, and whether the time budget cut the round.
    arrival_lags_s: tuple[float, ...] = ()
    offered_req_per_s: float | None = None
    scheduled_req_per_s: float | None = None
    cut_by_budget: bool = False
    # The server batcher: the server's /metrics around and during the round
    # (loadgen.telemetry.RoundTelemetry), and what showed the queue growing if the round was stopped.
    server_metrics: Any = None
    over_saturated: Mapping[str, Any] | None = None
    # The cache the round's batcher ran the model with, where the batcher measured it (continuous
    # batching's paged pool); None: the engine's own, measured by the engine (Engine.last_kv).
    kv: KVUsage | None = None


def output_digest(round_: RoundTrace) -> str:
    """sha256 over every request's generated ids, in request order (12 hex digits)."""
    digest = hashlib.sha256()
    for request in sorted(round_.requests, key=lambda r: r.index):
        digest.update(",".join(map(str, request.output_ids)).encode() + b";")
    return digest.hexdigest()[:12]


@dataclass
class AssistUsage:
    """One generate call with drafting, counted as it ran (by either engine): target forwards
    (counted, not inferred), draft tokens proposed, seconds spent drafting and in the whole call."""

    target_forwards: int = 0
    proposed: int = 0
    draft_s: float = 0.0
    seconds: float = 0.0
