"""What a run leaves behind: per-request timestamps and token counts, nothing derived."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True, slots=True)
class Request:
    """One request of a workload, already tokenized (tokenizing is not what we time)."""

    index: int
    prompt_ids: tuple[int, ...]
    max_new_tokens: int
    ignore_eos: bool = True


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

    @property
    def output_tokens(self) -> int:
        return sum(self.chunk_tokens)

    @classmethod
    def failed(cls, request: Request, t_send: float, error: str) -> "RequestTrace":
        return cls(request.index, t_send, (), (), len(request.prompt_ids), ok=False, error=error)


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
    # (engines.telemetry.RoundTelemetry), and what showed the queue growing if the round was stopped.
    server_metrics: Any = None
    over_saturated: Mapping[str, Any] | None = None


def output_digest(round_: RoundTrace) -> str:
    """sha256 over every request's generated ids, in request order (12 hex digits)."""
    digest = hashlib.sha256()
    for request in sorted(round_.requests, key=lambda r: r.index):
        digest.update(",".join(map(str, request.output_ids)).encode() + b";")
    return digest.hexdigest()[:12]
