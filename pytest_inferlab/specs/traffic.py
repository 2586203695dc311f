"""The shape of realistic traffic, as frozen specs a workload carries (run/traffic.py builds it).

``Lengths``: how many tokens a request has in or out, drawn from a seeded distribution.
``SharedPrefix``: requests in groups that share their first tokens (a system prompt, a document).
``Sessions``: conversations whose next turn resends the history plus new user text after a think time.
Each has a text form (``normal:256,64,32,1024``, ``4x128``, ``3@1.5``) for parameters and options.
"""

from __future__ import annotations

import functools
import hashlib
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

LENGTH_KINDS = ("fixed", "uniform", "normal", "lognormal")
LENGTH_FORMS = ("fixed:<n>, uniform:<low>-<high>, normal:<mean>,<stdev>[,<min>,<max>] or "
                "lognormal:<median>,<sigma>[,<min>,<max>]")


@dataclass(frozen=True, slots=True)
class Lengths:
    """Token counts from a distribution, clipped to [low, high]: ``fixed`` (mean), ``uniform``
    (low..high), ``normal`` (mean, stdev) or ``lognormal`` (median ``mean``, ``sigma`` in stdev)."""

    kind: str
    mean: int
    stdev: float = 0.0
    low: int = 1
    high: int | None = None  # None: no upper clip (uniform needs one)

    def __post_init__(self) -> None:
        problems = []
        if self.kind not in LENGTH_KINDS:
            problems.append(f"kind {self.kind!r} is not one of {', '.join(LENGTH_KINDS)}")
        if self.mean < 1:
            problems.append(f"mean {self.mean} must be >= 1 token")
        if not self.stdev >= 0:
            problems.append(f"stdev {self.stdev} must be >= 0")
        if self.low < 1:
            problems.append(f"min {self.low} must be >= 1 token")
        if self.high is not None and self.low > self.high:
            problems.append(f"min {self.low} > max {self.high}")
        if self.kind == "uniform" and self.high is None:
            problems.append("uniform needs a max (uniform:<low>-<high>)")
        if problems:
            raise ValueError(f"lengths {self.label}: " + "; ".join(problems))

    @property
    def label(self) -> str:
        if self.kind == "fixed":
            return f"fixed:{self.mean}"
        if self.kind == "uniform":
            return f"uniform:{self.low}-{self.high}"
        clip = f",{self.low},{self.high}" if self.high is not None or self.low != 1 else ""
        return f"{self.kind}:{self.mean},{self.stdev:g}{clip}"

    @property
    def most(self) -> int:
        """The longest a draw can be (for context checks); unbounded normals: mean + 6 stdev."""
        if self.kind == "fixed":
            return self.mean
        if self.high is not None:
            return self.high
        spread = self.mean * math.exp(6 * self.stdev) if self.kind == "lognormal" else self.mean + 6 * self.stdev
        return math.ceil(spread)

    def draw(self, rng: random.Random, count: int) -> list[int]:
        """``count`` lengths from ``rng`` (seeded by the caller: the same spec and seed, the same lengths)."""
        def clip(value: float) -> int:
            n = max(self.low, round(value))
            return min(n, self.high) if self.high is not None else n

        if self.kind == "fixed":
            return [clip(self.mean)] * count
        if self.kind == "uniform":
            return [rng.randint(self.low, self.high) for _ in range(count)]  # type: ignore[arg-type]
        if self.kind == "normal":
            return [clip(rng.gauss(self.mean, self.stdev)) for _ in range(count)]
        return [clip(self.mean * math.exp(rng.gauss(0.0, self.stdev))) for _ in range(count)]


def parse_lengths(value: str | int | Lengths | Mapping[str, Any]) -> Lengths:
    """``256`` or ``fixed:256``, ``uniform:64-512``, ``normal:256,64[,32,1024]``, ``lognormal:256,0.5[,1,4096]``."""
    if isinstance(value, Lengths):
        return value
    if isinstance(value, Mapping):
        return Lengths(**value)
    if isinstance(value, int):
        return Lengths("fixed", value)
    def build(text: str) -> Lengths | None:
        kind, sep, rest = text.partition(":")
        if not sep:
            kind, rest = "fixed", text
        if kind == "fixed":
            return Lengths("fixed", int(rest))
        if kind == "uniform":
            low, _, high = rest.partition("-")
            return Lengths("uniform", (int(low) + int(high)) // 2, low=int(low), high=int(high))
        numbers = rest.split(",")
        if kind in ("normal", "lognormal") and len(numbers) in (2, 4):
            clip = {"low": int(numbers[2]), "high": int(numbers[3])} if len(numbers) == 4 else {}
            return Lengths(kind, int(numbers[0]), float(numbers[1]), **clip)
        return None

    return _parsed(value, build, "lengths", LENGTH_FORMS)


def _parsed(value: Any, build: Callable[[str], Any], what: str, forms: str) -> Any:
    """``build(text)``, or an error naming the text and the forms it may take (a spec's own error,
    which names the impossible parameter, passes through)."""
    text = str(value).strip()
    try:
        built = build(text)
    except ValueError as exc:
        if str(exc).startswith(what + " "):
            raise
        built = None
    if built is None:
        raise ValueError(f"{what} {text!r}: expected {forms}")
    return built


@dataclass(frozen=True, slots=True)
class SharedPrefix:
    """``groups`` prefixes of ``tokens`` tokens; request i shares group i mod groups (or a seeded
    draw by ``weights``, one per group: weighted buckets). The rest of each prompt is its own."""

    groups: int
    tokens: int
    weights: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
        problems = []
        if self.groups < 1:
            problems.append(f"groups {self.groups} must be >= 1")
        if self.tokens < 1:
            problems.append(f"tokens {self.tokens} must be >= 1")
        if self.weights and (len(self.weights) != self.groups or min(self.weights) < 0 or sum(self.weights) <= 0):
            problems.append(f"weights {list(self.weights)} must be {self.groups} numbers >= 0, not all 0")
        if problems:
            raise ValueError(f"shared prefix {self.label}: " + "; ".join(problems))

    @property
    def label(self) -> str:
        weights = ":" + "/".join(f"{w:g}" for w in self.weights) if self.weights else ""
        return f"{self.groups}x{self.tokens}{weights}"

    def group_of(self, count: int, seed: int) -> list[int]:
        """The group of each of ``count`` requests."""
        if not self.weights:
            return [i % self.groups for i in range(count)]
        rng = random.Random(seed + 2)
        return rng.choices(range(self.groups), weights=self.weights, k=count)


def parse_prefix(value: str | SharedPrefix | Mapping[str, Any]) -> SharedPrefix:
    """``<groups>x<tokens>`` with optional weights ``4x128:4/2/1/1``."""
    if isinstance(value, SharedPrefix):
        return value
    if isinstance(value, Mapping):
        return SharedPrefix(**{k: tuple(v) if k == "weights" else v for k, v in value.items()})
    def build(text: str) -> SharedPrefix | None:
        shape, _, weights = text.partition(":")
        groups, sep, tokens = shape.partition("x")
        if not sep:
            return None
        return SharedPrefix(int(groups), int(tokens), tuple(float(w) for w in weights.split("/")) if weights else ())

    return _parsed(value, build, "shared prefix", "<groups>x<tokens>[:<weight>/<weight>/...], e.g. 4x128")


@dataclass(frozen=True, slots=True)
class Sessions:
    """Conversations of ``turns`` turns: turn k+1 is turn k's prompt, its answer and ``user``
    new tokens, sent ``think_s`` seconds after turn k's answer ended (a seeded exponential with
    that mean when ``think`` is ``exponential``). A workload of ``count`` requests holds
    ``count // turns`` sessions."""

    turns: int
    think_s: float = 0.0
    user: Lengths = Lengths("fixed", 32)
    think: str = "fixed"

    def __post_init__(self) -> None:
        object.__setattr__(self, "user", parse_lengths(self.user))
        problems = []
        if self.turns < 2:
            problems.append(f"turns {self.turns} must be >= 2 (one turn is an ordinary request)")
        if not self.think_s >= 0:
            problems.append(f"think time {self.think_s} s must be >= 0")
        if self.think not in ("fixed", "exponential"):
            problems.append(f"think {self.think!r} must be fixed or exponential")
        if problems:
            raise ValueError(f"sessions {self.label}: " + "; ".join(problems))

    @property
    def label(self) -> str:
        return f"{self.turns}@{self.think_s:g}s" + ("~exp" if self.think == "exponential" else "")

    def think_times(self, rng: random.Random, count: int) -> list[float]:
        if self.think == "fixed" or self.think_s == 0:
            return [self.think_s] * count
        return [rng.expovariate(1.0 / self.think_s) for _ in range(count)]


def parse_sessions(value: str | Sessions | Mapping[str, Any]) -> Sessions:
    """``<turns>@<think seconds>`` (``3@1.5``; ``3@1.5~exp`` for exponential think times)."""
    if isinstance(value, Sessions):
        return value
    if isinstance(value, Mapping):
        return Sessions(**value)
    def build(text: str) -> Sessions:
        turns, _, think = text.partition("@")
        return Sessions(int(turns), float(think.removesuffix("~exp").removesuffix("s") or 0),
                        think="exponential" if think.endswith("~exp") else "fixed")

    return _parsed(value, build, "sessions", "<turns>@<think seconds>, e.g. 3@1.5 (or 3@1.5~exp)")


TRACES_DIR = Path(__file__).resolve().parents[1] / "data" / "traces"
MOONCAKE_BLOCK_TOKENS = 512  # the block size behind the hash_ids of Mooncake's published traces


@dataclass(frozen=True, slots=True)
class TraceRef:
    """A JSONL trace to replay: a shipped name (``data/traces/<name>.jsonl``) or a path. Its
    ``hash_ids`` stand for blocks of ``block_tokens`` tokens (None: the trace's own ``meta`` line
    says, else Mooncake's 512); its content digest is in the spec id, so an edited trace is a
    different workload."""

    source: str
    block_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.block_tokens is not None and self.block_tokens < 1:
            raise ValueError(f"trace {self.source}: block_tokens {self.block_tokens} must be >= 1")

    @property
    def path(self) -> Path:
        shipped = TRACES_DIR / f"{self.source}.jsonl"
        if shipped.is_file():
            return shipped
        path = Path(self.source).expanduser()
        if not path.is_file():
            known = sorted(p.stem for p in TRACES_DIR.glob("*.jsonl"))
            raise ValueError(f"trace {self.source!r}: no such file (nor a shipped trace: {', '.join(known)})")
        return path

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "block_tokens": self.block_tokens, "sha256": file_sha256(self.path)}


def parse_trace(value: str | TraceRef | Mapping[str, Any]) -> TraceRef:
    if isinstance(value, TraceRef):
        return value
    if isinstance(value, Mapping):
        return TraceRef(value["source"], value.get("block_tokens"))
    return TraceRef(str(value))


def file_sha256(path: Path) -> str:
    from pytest_inferlab.ground.files import file_version  # the one (path, size, mtime) key of a file's version

    return _sha256(*file_version(path))


@functools.lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    """12 hex digits of the file's sha256, once per version of the file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
