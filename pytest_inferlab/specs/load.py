"""Arrival processes: how a workload's requests reach the engine.

Closed loop: ``concurrency`` clients, each sending its next request when the previous one
completes (offered load follows the engine). Open loop: requests arrive on a schedule that does
not wait for the engine: Poisson with a seeded generator, constant spacing, bursts, gamma gaps
with a burstiness shape (rescaled so the span is exactly the target rate, as vLLM's bench does),
a linear or exponential ramp between two rates, staged rates, or a trace's own times sped up.

Each process is an entry of the ``arrival_processes`` registry (an ``ArrivalProcess``) that carries
all of itself: its text form and how to read it, its check, its label and its schedule (a pure
function that sees the requests: a trace's carry their arrival times). A project registers its own
the same way (``ArrivalProcess.at_rate(schedule)`` for one that needs only a rate), and the
``load`` parameter, labels, checks and spec ids treat it as they treat the shipped ones.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from pytest_inferlab.registry import Registry
from pytest_inferlab.specs.core import stable_id, spec_dict

CLOSED = "closed"

Schedule = Callable[["LoadSpec", Sequence[Any]], list[float]]


@dataclass(frozen=True, slots=True)
class ArrivalProcess:
    """One arrival process, whole: ``form`` (the text after ``name:``, for messages and the reference
    page), ``parse`` (that text -> LoadSpec fields; ValueError where it does not read), ``check``
    (what is wrong with a spec of it, the whole message, or None), ``label`` (the text form again) and
    ``schedule`` (offsets in seconds; None: a closed loop, whose arrivals follow completions)."""

    form: str
    parse: Callable[[str], dict[str, Any]]
    check: Callable[["LoadSpec"], str | None]
    label: Callable[["LoadSpec"], str]
    schedule: Schedule | None
    seeded: bool = False  # the schedule draws from a generator seeded by --inferlab-seed

    @classmethod
    def at_rate(cls, schedule: Schedule, seeded: bool = True, form: str = "<req/s>") -> "ArrivalProcess":
        """A process that needs only a mean rate (``name:2.5``), e.g. a project's own schedule."""
        return cls(form, lambda value: {"rate": float(value)}, _rate_problem,
                   lambda spec: f"{spec.process}:{spec.rate:g}", schedule, seeded)


arrival_processes: Registry[ArrivalProcess] = Registry("arrival processes")


@dataclass(frozen=True, slots=True)
class LoadSpec:
    """An arrival process. Write it as ``closed:4``, ``poisson:2.5`` (req/s), ``constant:1`` or
    ``burst:8@0.5`` (bursts of 8 requests, 0.5 req/s on average), or build it with the class methods."""

    process: str
    concurrency: int | None = None  # closed loop: clients in flight
    rate: float | None = None  # open loop: mean requests per second
    burst_size: int | None = None  # burst: requests arriving together
    seed: int = 0  # Poisson and gamma gaps
    # Added with realistic traffic; left out of the spec id when unset (earlier loads keep their ids).
    burstiness: float | None = None  # gamma, ramps: the gaps' shape (1 = Poisson, < 1 burstier)
    rate_end: float | None = None  # ramps: the rate reached by the last request (``rate``: the first)
    stages: tuple[tuple[float, float], ...] = ()  # (req/s or clients, seconds) one after the other
    speedup: float | None = None  # trace: replay this many times faster than recorded

    NEW_FIELDS = ("burstiness", "rate_end", "stages", "speedup")

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple((float(r), float(d)) for r, d in self.stages))
        if self.process == CLOSED and self.stages and all(c >= 1 and c == int(c) for c, _ in self.stages):
            object.__setattr__(self, "concurrency", int(max(c for c, _ in self.stages)))  # the most clients
        try:
            process = arrival_processes.get(self.process)
        except KeyError as exc:  # the registry's message: the known names and close matches
            raise ValueError(str(exc)) from None
        problem = process.check(self)
        if problem:
            raise ValueError(problem)

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

    @classmethod
    def closed_stages(cls, *stages: tuple[int, float]) -> "LoadSpec":
        """``closed_stages((2, 10), (8, 10))``: 2 clients for 10 s, then 8 (the last stage lasts)."""
        return cls(CLOSED, stages=tuple(stages))

    def clients_at(self, elapsed_s: float) -> int:
        """Clients a closed loop runs ``elapsed_s`` after the round's start (its stage's, or all)."""
        if not self.stages:
            return self.concurrency or 0
        end = 0.0
        for clients, duration in self.stages:
            end += duration
            if elapsed_s < end:
                return int(clients)
        return int(self.stages[-1][0])

    def client_starts_s(self, client: int, elapsed_s: float) -> float | None:
        """When (seconds after the start, at ``elapsed_s`` or later) closed-loop client number ``client``
        may send: now while its stage runs that many clients, else the next stage that does; None: never."""
        if client < self.clients_at(elapsed_s):
            return elapsed_s
        start = 0.0
        for clients, duration in self.stages:
            if start + duration > elapsed_s and client < clients:
                return max(start, elapsed_s)
            start += duration
        return None

    @classmethod
    def gamma(cls, rate: float, burstiness: float, seed: int = 0) -> "LoadSpec":
        return cls("gamma", rate=float(rate), burstiness=float(burstiness), seed=seed)

    @classmethod
    def ramp(cls, start: float, end: float, exponential: bool = False, seed: int = 0) -> "LoadSpec":
        return cls("ramp-exp" if exponential else "ramp", rate=float(start), rate_end=float(end), seed=seed)

    @classmethod
    def staged(cls, *stages: tuple[float, float], seed: int = 0) -> "LoadSpec":
        """``staged((1, 10), (4, 10))``: 1 req/s for 10 s, then 4 req/s for 10 s (Poisson within each)."""
        return cls("stages", stages=tuple(stages), seed=seed)

    @classmethod
    def trace(cls, speedup: float = 1.0) -> "LoadSpec":
        """The workload's trace times (prompts='trace'), ``speedup`` times faster."""
        return cls("trace", speedup=float(speedup))

    @property
    def open_loop(self) -> bool:
        return arrival_processes.get(self.process).schedule is not None

    @property
    def label(self) -> str:
        return arrival_processes.get(self.process).label(self)

    def to_dict(self) -> dict[str, Any]:
        """The canonical form behind ``spec_id``: fields added later only where set."""
        out = spec_dict(self)
        for name in self.NEW_FIELDS:
            if out[name] in (None, ()):
                del out[name]
        return out

    @property
    def spec_id(self) -> str:
        return stable_id(self.to_dict())

    def offsets(self, requests: int | Sequence[Any]) -> list[float]:
        """Seconds after the round's start at which each request arrives (open loop): ``requests``
        are the round's requests in order (or their count, for processes that need no more)."""
        if not self.open_loop:
            raise ValueError("a closed loop has no schedule: arrivals follow completions")
        if isinstance(requests, int):
            requests = [None] * requests
        schedule = arrival_processes.get(self.process).schedule
        assert schedule is not None  # open_loop said so
        return schedule(self, requests)


def poisson_offsets(spec: LoadSpec, requests: Sequence[Any]) -> list[float]:
    """Exponential gaps of mean 1/rate from a seeded generator; the first request at 0."""
    rng = random.Random(spec.seed)
    offsets, t = [], 0.0
    for i in range(len(requests)):
        offsets.append(t)
        t += rng.expovariate(spec.rate)
    return offsets


def constant_offsets(spec: LoadSpec, requests: Sequence[Any]) -> list[float]:
    return [i / spec.rate for i in range(len(requests))]


def burst_offsets(spec: LoadSpec, requests: Sequence[Any]) -> list[float]:
    """``burst_size`` requests together, bursts spaced so the mean rate is ``rate``."""
    spacing = spec.burst_size / spec.rate
    return [(i // spec.burst_size) * spacing for i in range(len(requests))]


def gamma_gap(rng: random.Random, rate: float, burstiness: float) -> float:
    """A gap of mean 1/rate whose shape is ``burstiness`` (vLLM's bench: shape b, scale 1/(rate b))."""
    return rng.gammavariate(burstiness, 1.0 / (rate * burstiness))


def gamma_offsets(spec: LoadSpec, requests: Sequence[Any]) -> list[float]:
    """Gamma gaps (shape ``burstiness``: 1 is Poisson, below 1 burstier), then every offset scaled so
    the last request arrives at (n - 1) / rate: the round's rate is the target, not a draw around it."""
    rng = random.Random(spec.seed)
    offsets, t = [], 0.0
    for _ in range(len(requests)):
        offsets.append(t)
        t += gamma_gap(rng, spec.rate, spec.burstiness or 1.0)
    if len(offsets) >= 2 and offsets[-1] > 0:
        scale = (len(offsets) - 1) / spec.rate / offsets[-1]
        offsets = [o * scale for o in offsets]
    return offsets


def ramp_offsets(spec: LoadSpec, requests: Sequence[Any]) -> list[float]:
    """Request i arrives after a gap drawn at the rate reached at progress i/(n-1), from ``rate`` to
    ``rate_end``: linearly (``ramp``) or geometrically (``ramp-exp``), as vLLM's ramp-up strategies."""
    rng = random.Random(spec.seed)
    start, end, n = spec.rate, spec.rate_end, len(requests)
    offsets, t = [], 0.0
    for i in range(n):
        offsets.append(t)
        progress = i / (n - 1) if n > 1 else 1.0
        rate = start * (end / start) ** progress if spec.process == "ramp-exp" else start + (end - start) * progress
        t += gamma_gap(rng, rate, spec.burstiness or 1.0)
    return offsets


RAMPS = ("ramp", "ramp-exp")


def staged_offsets(spec: LoadSpec, requests: Sequence[Any]) -> list[float]:
    """Poisson arrivals at each stage's rate for its duration, one stage after the other; the last
    stage goes on until every request has arrived (size the workload to end with the stages)."""
    rng = random.Random(spec.seed)
    ends, total = [], 0.0
    for _, duration in spec.stages:
        total += duration
        ends.append(total)
    offsets, t, stage = [], 0.0, 0
    for _ in range(len(requests)):
        offsets.append(t)
        while stage < len(ends) - 1 and t >= ends[stage]:
            stage += 1
        t += rng.expovariate(spec.stages[stage][0])
    return offsets


def trace_offsets(spec: LoadSpec, requests: Sequence[Any]) -> list[float]:
    """The requests' own arrival times (a trace workload's), from the first, divided by the speed-up."""
    times = [getattr(r, "arrival_s", None) for r in requests]
    if not times or any(t is None for t in times):
        raise ValueError("load trace: the workload's requests carry no arrival times; use a trace workload "
                         "(prompts='trace', trace=<name or path>) or another load")
    first = times[0]
    return [(t - first) / spec.speedup for t in times]


def stages_text(stages: tuple[tuple[float, float], ...]) -> str:
    """``2x10,8x10``: each stage's rate (or clients) x seconds, the form ``parse_stages`` reads."""
    return ",".join(f"{amount:g}x{seconds:g}" for amount, seconds in stages)


def parse_stages(value: str) -> tuple[tuple[float, float], ...]:
    """``2x10,8x10`` -> ((2.0, 10.0), (8.0, 10.0)); ValueError where a stage is not <number>x<seconds>."""
    stages = tuple(tuple(float(x) for x in stage.split("x", 1)) for stage in value.split(","))
    if any(len(stage) != 2 for stage in stages):
        raise ValueError(value)
    return stages  # type: ignore[return-value]


def parse_load(text: str | LoadSpec, seed: int = 0) -> LoadSpec:
    """``closed:4``, ``poisson:2.5``, ``constant:1``, ``burst:8@0.5``, ``gamma:2,0.5``, ``ramp:1-8``,
    ``ramp-exp:1-8``, ``stages:1x10,4x10``, ``trace`` or ``trace:2``, or a registered process's own
    form (or a LoadSpec, returned as is)."""
    if isinstance(text, LoadSpec):
        return text
    name, _, value = str(text).strip().partition(":")
    try:
        process = arrival_processes.get(name)
    except KeyError as exc:
        raise ValueError(f"load {text!r}: {exc}") from None
    try:
        fields = process.parse(value)
    except ValueError:
        raise ValueError(f"load {text!r}: expected {load_forms()}") from None
    try:
        return LoadSpec(name, seed=seed if process.seeded else 0, **fields)
    except ValueError as exc:
        raise ValueError(f"load {text!r}: {exc}") from None


def load_forms() -> str:
    """Every registered process's text form, for a message that says what a load may be."""
    names = sorted(arrival_processes.names(), key=lambda name: name != CLOSED)  # the closed loop first
    forms = [f"{name}[:{form[1:]}" if form.startswith("[") else f"{name}:{form}"
             for name in names for form in arrival_processes.get(name).form.split(" | ")]
    return ", ".join(forms[:-1]) + f" or {forms[-1]}" if len(forms) > 1 else forms[0]


# ---- the shipped processes: how each reads, what it needs, its label -------------------------------
def _rate_problem(spec: LoadSpec) -> str | None:
    if spec.rate is None or not spec.rate > 0:
        return f"load {spec.process}: needs a rate > 0 requests/s (e.g. {spec.process}:2.0), got {spec.rate!r}"
    if spec.burstiness is not None and not spec.burstiness > 0:
        return f"load {spec.process}: burstiness (the gamma shape) must be > 0, got {spec.burstiness!r}"
    return None


def _closed_problem(spec: LoadSpec) -> str | None:
    if spec.stages and any(not (c >= 1 and c == int(c) and d > 0) for c, d in spec.stages):
        return (f"load closed: stages need whole clients >= 1 for > 0 s (e.g. closed:2x10,8x10), "
                f"got {list(spec.stages)}")
    if not isinstance(spec.concurrency, int) or spec.concurrency < 1:
        return f"load {_closed_label(spec)}: a closed loop needs concurrency >= 1 (e.g. closed:4)"
    return None


def _closed_label(spec: LoadSpec) -> str:
    return f"closed:{stages_text(spec.stages)}" if spec.stages else f"closed:{spec.concurrency}"


def _closed_fields(value: str) -> dict[str, Any]:
    return {"stages": parse_stages(value)} if "x" in value else {"concurrency": int(value)}


def _burst_fields(value: str) -> dict[str, Any]:
    size, _, rate = value.partition("@")
    return {"burst_size": int(size), "rate": float(rate)}


def _burst_problem(spec: LoadSpec) -> str | None:
    if problem := _rate_problem(spec):
        return problem
    if not isinstance(spec.burst_size, int) or spec.burst_size < 1:
        return f"load burst: needs a burst size >= 1 (e.g. burst:8@0.5), got {spec.burst_size!r}"
    return None


def _gamma_fields(value: str) -> dict[str, Any]:
    rate, _, shape = value.partition(",")
    return {"rate": float(rate), "burstiness": float(shape)}


def _ramp_fields(value: str) -> dict[str, Any]:
    start, _, end = value.partition("-")
    return {"rate": float(start), "rate_end": float(end) if end else None}


def _ramp_problem(spec: LoadSpec) -> str | None:
    if problem := _rate_problem(spec):
        return problem
    if spec.rate_end is None or not spec.rate_end > 0:
        return f"load {spec.process}: needs an end rate > 0 (e.g. {spec.process}:1-8), got {spec.rate_end!r}"
    return None


def _stages_problem(spec: LoadSpec) -> str | None:
    if not spec.stages or any(not (r > 0 and d > 0) for r, d in spec.stages):
        return (f"load stages: needs stages of rate > 0 req/s for > 0 s (e.g. stages:1x10,4x10), "
                f"got {list(spec.stages)}")
    return None


def _trace_problem(spec: LoadSpec) -> str | None:
    if spec.speedup is None or not spec.speedup > 0:
        return f"load trace: the speed-up must be > 0 (trace:1 replays on time), got {spec.speedup!r}"
    return None


arrival_processes.register(CLOSED, ArrivalProcess(
    "<concurrency> | <clients>x<seconds>,...", _closed_fields, _closed_problem, _closed_label, None))
arrival_processes.register("poisson", ArrivalProcess.at_rate(poisson_offsets))
arrival_processes.register("constant", ArrivalProcess.at_rate(constant_offsets, seeded=False))
arrival_processes.register("burst", ArrivalProcess(
    "<size>@<req/s>", _burst_fields, _burst_problem, lambda spec: f"burst:{spec.burst_size}@{spec.rate:g}",
    burst_offsets))
arrival_processes.register("gamma", ArrivalProcess(
    "<req/s>,<burstiness>", _gamma_fields, _rate_problem, lambda spec: f"gamma:{spec.rate:g},{spec.burstiness:g}",
    gamma_offsets, seeded=True))
for _ramp in RAMPS:
    arrival_processes.register(_ramp, ArrivalProcess(
        "<req/s>-<req/s>", _ramp_fields, _ramp_problem,
        lambda spec: f"{spec.process}:{spec.rate:g}-{spec.rate_end:g}", ramp_offsets, seeded=True))
arrival_processes.register("stages", ArrivalProcess(
    "<req/s>x<seconds>,...", lambda value: {"stages": parse_stages(value)}, _stages_problem,
    lambda spec: f"stages:{stages_text(spec.stages)}", staged_offsets, seeded=True))
arrival_processes.register("trace", ArrivalProcess(
    "[<speed-up>]", lambda value: {"speedup": float(value or 1.0)}, _trace_problem,
    lambda spec: f"trace:{spec.speedup:g}", trace_offsets))
