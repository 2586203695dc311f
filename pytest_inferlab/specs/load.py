"""Arrival processes: how a workload's requests reach the engine.

Closed loop: ``concurrency`` clients, each sending its next request when the previous one
completes (offered load follows the engine). Open loop: requests arrive on a schedule that does
not wait for the engine (Poisson with a seeded generator, constant spacing, or bursts), so a slow
engine builds a queue and its latencies show it. Open-loop schedules come from a registry of pure
functions: ``arrival_processes.register("name", fn)`` adds one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

from pytest_inferlab.registry import Registry
from pytest_inferlab.specs.core import stable_id, spec_dict

CLOSED = "closed"

Schedule = Callable[["LoadSpec", int], list[float]]
arrival_processes: Registry[Schedule] = Registry("arrival processes")


@dataclass(frozen=True, slots=True)
class LoadSpec:
    """An arrival process. Write it as ``closed:4``, ``poisson:2.5`` (req/s), ``constant:1`` or
    ``burst:8@0.5`` (bursts of 8 requests, 0.5 req/s on average), or build it with the class methods."""

    process: str
    concurrency: int | None = None  # closed loop: clients in flight
    rate: float | None = None  # open loop: mean requests per second
    burst_size: int | None = None  # burst: requests arriving together
    seed: int = 0  # Poisson gaps

    def __post_init__(self) -> None:
        if self.process == CLOSED:
            if not isinstance(self.concurrency, int) or self.concurrency < 1:
                raise ValueError(f"load {self.label}: a closed loop needs concurrency >= 1 (e.g. closed:4)")
            return
        try:
            arrival_processes.get(self.process)
        except KeyError as exc:  # the registry's message: the known names and close matches
            raise ValueError(f"{exc} (or {CLOSED}, the closed loop)") from None
        if self.rate is None or not self.rate > 0:
            raise ValueError(f"load {self.process}: needs a rate > 0 requests/s (e.g. {self.process}:2.0), got {self.rate!r}")
        if self.process == "burst" and (not isinstance(self.burst_size, int) or self.burst_size < 1):
            raise ValueError(f"load burst: needs a burst size >= 1 (e.g. burst:8@0.5), got {self.burst_size!r}")

    @classmethod
    def closed(cls, concurrency: int) -> "LoadSpec":
        return cls(CLOSED, concurrency=concurrency)

    @classmethod
    def poisson(cls, rate: float, seed: int = 0) -> "LoadSpec":
        return cls("poisson", rate=float(rate), seed=seed)

    @classmethod
    def constant(cls, rate: float) -> "LoadSpec":
        return cls("constant", rate=float(rate))

    @classmethod
    def burst(cls, size: int, rate: float) -> "LoadSpec":
        return cls("burst", rate=float(rate), burst_size=size)

    @property
    def open_loop(self) -> bool:
        return self.process != CLOSED

    @property
    def label(self) -> str:
        if self.process == CLOSED:
            return f"closed:{self.concurrency}"
        if self.process == "burst":
            return f"burst:{self.burst_size}@{self.rate:g}"
        return f"{self.process}:{self.rate:g}"

    @property
    def spec_id(self) -> str:
        return stable_id(spec_dict(self))

    def offsets(self, count: int) -> list[float]:
        """Seconds after the round's start at which each of ``count`` requests arrives (open loop)."""
        if not self.open_loop:
            raise ValueError("a closed loop has no schedule: arrivals follow completions")
        return arrival_processes.get(self.process)(self, count)


@arrival_processes.register("poisson")
def poisson_offsets(spec: LoadSpec, count: int) -> list[float]:
    """Exponential gaps of mean 1/rate from a seeded generator; the first request at 0."""
    rng = random.Random(spec.seed)
    offsets, t = [], 0.0
    for i in range(count):
        offsets.append(t)
        t += rng.expovariate(spec.rate)
    return offsets


@arrival_processes.register("constant")
def constant_offsets(spec: LoadSpec, count: int) -> list[float]:
    return [i / spec.rate for i in range(count)]


@arrival_processes.register("burst")
def burst_offsets(spec: LoadSpec, count: int) -> list[float]:
    """``burst_size`` requests together, bursts spaced so the mean rate is ``rate``."""
    spacing = spec.burst_size / spec.rate
    return [(i // spec.burst_size) * spacing for i in range(count)]


def parse_load(text: str | LoadSpec, seed: int = 0) -> LoadSpec:
    """``closed:4``, ``poisson:2.5``, ``constant:1``, ``burst:8@0.5`` (or a LoadSpec, returned as is)."""
    if isinstance(text, LoadSpec):
        return text
    process, _, value = str(text).strip().partition(":")
    forms = "closed:<concurrency>, poisson:<req/s>, constant:<req/s> or burst:<size>@<req/s>"
    try:
        if process == CLOSED:
            numbers: dict = {"concurrency": int(value)}
        elif process == "burst":
            size, _, rate = value.partition("@")
            numbers = {"burst_size": int(size), "rate": float(rate)}
        else:
            numbers = {"rate": float(value)}
    except ValueError:
        raise ValueError(f"load {text!r}: expected {forms}") from None
    try:
        return LoadSpec(process, seed=seed if process == "poisson" else 0, **numbers)
    except ValueError as exc:
        raise ValueError(f"load {text!r}: {exc}") from None
