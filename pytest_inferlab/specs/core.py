"""Frozen specs: what a case measures. Variants are derived with ``dataclasses.replace``.

Every spec has a stable ``spec_id`` (a hash of its canonical JSON): the key for baselines and the
parameter that identifies a series in the history.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

if TYPE_CHECKING:
    from pytest_inferlab.specs.batching import BatchingSpec
    from pytest_inferlab.specs.load import LoadSpec
    from pytest_inferlab.specs.traffic import Lengths, Sessions, SharedPrefix, TraceRef

INPUT_DISTRIBUTIONS = ("fixed", "uniform", "lognormal")


def stable_id(payload: Mapping[str, Any]) -> str:
    """12 hex digits of sha256 over canonical JSON: equal specs give equal ids everywhere."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def spec_dict(spec: Any) -> dict[str, Any]:
    return dataclasses.asdict(spec)


class NamedSettings:
    """Specs that are a name and settings: ``of(name, **settings)``, ``to_dict()``, a stable ``spec_id``."""

    __slots__ = ()
    NAME_FIELD: ClassVar[str]

    @classmethod
    def of(cls, name: str, **settings: Any) -> Any:
        return cls(name, tuple(sorted(settings.items())))  # type: ignore[call-arg]

    @property
    def spec_id(self) -> str:
        return stable_id(self.to_dict())

    @property
    def label(self) -> str:
        """A readable test id: ``paged-page_size=16``."""
        name = getattr(self, self.NAME_FIELD)
        return "-".join([name, *(f"{key}={value}" for key, value in getattr(self, "settings"))])

    def to_dict(self) -> dict[str, Any]:
        return {self.NAME_FIELD: getattr(self, self.NAME_FIELD), "settings": dict(getattr(self, "settings"))}


@dataclass(frozen=True, slots=True)
class QuantSpec(NamedSettings):
    """A quantization method and its settings (pytest_inferlab.optimizations.quant applies it)."""

    NAME_FIELD: ClassVar[str] = "method"
    method: str
    settings: tuple[tuple[str, Any], ...] = ()  # sorted (name, value) pairs: hashable, canonical


@dataclass(frozen=True, slots=True)
class KVCacheSpec(NamedSettings):
    """A KV-cache configuration and its settings (pytest_inferlab.optimizations.kv maps it to an engine)."""

    NAME_FIELD: ClassVar[str] = "kind"
    kind: str
    settings: tuple[tuple[str, Any], ...] = ()  # sorted (name, value) pairs: hashable, canonical


@dataclass(frozen=True, slots=True)
class SpeculativeSpec(NamedSettings):
    """A drafting method and its settings (pytest_inferlab.optimizations.speculative pairs it with a target)."""

    NAME_FIELD: ClassVar[str] = "method"
    method: str
    settings: tuple[tuple[str, Any], ...] = ()  # sorted (name, value) pairs: hashable, canonical


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A model as the user named it, resolved to a source kind and a location."""

    name: str = field(metadata={"help": "what the user typed: alias, path, hub id or dummy:<preset>"})
    source: str = field(metadata={"help": "model source registry key: embedded, folder, gguf, hub, dummy"})
    location: str = field(metadata={"help": "path, hub id or preset name the source loads from"})
    dtype: str = field(default="auto", metadata={"help": "auto = float32 on CPU, bfloat16 on CUDA"})
    seed: int = field(default=0, metadata={"help": "weight seed (dummy models only)"})
    quant: QuantSpec | None = field(default=None, metadata={"help": "quantized variant of the model, if any"})

    @property
    def spec_id(self) -> str:
        # The location of a local file is machine-specific; the name the user gave is not.
        payload: dict[str, Any] = {"name": self.name, "source": self.source, "dtype": self.dtype, "seed": self.seed}
        if self.quant is not None:  # unquantized models keep the ids their baselines were saved under
            payload["quant"] = self.quant.to_dict()
        return stable_id(payload)

    @property
    def reference(self) -> "ModelSpec":
        """The unquantized model this variant is judged against."""
        return dataclasses.replace(self, quant=None)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelSpec":
        """The form ``spec_dict`` writes, rebuilt: ``from_dict(spec_dict(m)) == m``."""
        quant = data.get("quant")
        named = QuantSpec(quant["method"], tuple(tuple(pair) for pair in quant["settings"])) if quant else None
        return cls(**{**data, "quant": named})


@dataclass(frozen=True, slots=True)
class WorkloadSpec:
    """Which prompts, how many, how long in and out: everything that fixes the work done."""

    name: str = field(metadata={"help": "registry name of the workload"})
    prompts: str = field(metadata={"help": "prompt set file (data/prompts/<prompts>.jsonl) or 'synthetic'"})
    count: int = field(default=8, metadata={"help": "requests per round"})
    output_tokens: int = field(default=64, metadata={"help": "new tokens per request"})
    input_tokens: int | None = field(
        default=None, metadata={"help": "prompt tokens: cap for text sets, mean for synthetic; None = natural"}
    )
    input_distribution: str = field(default="fixed", metadata={"help": "synthetic lengths: fixed, uniform, lognormal"})
    input_spread: float = field(default=0.0, metadata={"help": "uniform: +/- fraction; lognormal: sigma"})
    ignore_eos: bool = field(default=True, metadata={"help": "generate exactly output_tokens (EOS suppressed)"})
    chat_template: bool = field(default=True, metadata={"help": "wrap text prompts in the tokenizer's chat template"})
    seed: int = field(default=0, metadata={"help": "seed for synthetic prompts and prompt order"})
    # Realistic traffic (specs/traffic.py; run/traffic.py builds it). Unset, they are left out of the
    # spec id, so the workloads that came before keep their ids and baselines.
    input_lengths: Lengths | None = field(
        default=None, metadata={"help": "synthetic prompt lengths from a distribution (normal:256,64,32,1024)"})
    output_lengths: Lengths | None = field(
        default=None, metadata={"help": "new tokens per request from a distribution (instead of output_tokens)"})
    prefix: SharedPrefix | None = field(
        default=None, metadata={"help": "groups x tokens of shared prompt prefix (4x128)"})
    sessions: Sessions | None = field(
        default=None, metadata={"help": "multi-turn conversations: turns @ think seconds (3@1.5)"})
    trace: TraceRef | None = field(
        default=None, metadata={"help": "a JSONL trace replayed (prompts='trace'): shipped name or path"})

    TRAFFIC_FIELDS: ClassVar[tuple[str, ...]] = ("input_lengths", "output_lengths", "prefix", "sessions", "trace")

    def __post_init__(self) -> None:
        from pytest_inferlab.specs.traffic import parse_lengths, parse_prefix, parse_sessions, parse_trace

        for name, parse in (("input_lengths", parse_lengths), ("output_lengths", parse_lengths),
                            ("prefix", parse_prefix), ("sessions", parse_sessions), ("trace", parse_trace)):
            value = getattr(self, name)
            if value is not None:
                try:
                    object.__setattr__(self, name, parse(value))
                except (ValueError, TypeError) as exc:
                    raise ValueError(f"workload {self.name!r}: {name}: {exc}") from None
        problems = []
        if self.count < 1:
            problems.append(f"count={self.count} (must be >= 1)")
        if self.output_tokens < 1:
            problems.append(f"output_tokens={self.output_tokens} (must be >= 1)")
        if self.input_tokens is not None and self.input_tokens < 1:
            problems.append(f"input_tokens={self.input_tokens} (must be >= 1 or None)")
        if self.input_distribution not in INPUT_DISTRIBUTIONS:
            problems.append(f"input_distribution={self.input_distribution!r} (one of {', '.join(INPUT_DISTRIBUTIONS)})")
        if self.prompts == "synthetic" and self.input_tokens is None and self.input_lengths is None:
            problems.append("synthetic prompts need input_tokens or input_lengths")
        built = self.prompts in ("synthetic", "trace")
        for name in ("input_lengths", "prefix", "sessions"):
            if getattr(self, name) is not None and not built:
                problems.append(f"{name} needs prompts='synthetic' (text prompt sets have their own lengths)")
        if (self.prompts == "trace") != (self.trace is not None):
            problems.append("prompts='trace' and a trace go together (trace=<shipped name or path>)")
        if self.trace is not None and (self.input_lengths or self.output_lengths or self.prefix):
            problems.append("a trace brings its own lengths and shared blocks: drop input_lengths, "
                            "output_lengths and prefix")
        if self.sessions is not None and self.count < self.sessions.turns:
            problems.append(f"count={self.count} holds no whole session of {self.sessions.turns} turns")
        if problems:
            raise ValueError(f"workload {self.name!r}: " + "; ".join(problems))

    @classmethod
    def of(cls, name: str, **overrides: Any) -> "WorkloadSpec":
        """The registered workload ``name`` with fields overridden: ``WorkloadSpec.of("synthetic",
        count=1, input_tokens=2048)``; an unknown field or a bad value raises naming the workload."""
        from pytest_inferlab.specs.workloads import resolve_workload  # the registry is built of this class

        base = resolve_workload(name)
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"workload {name!r}: unknown field(s) {unknown}; known: "
                             f"{', '.join(f.name for f in dataclasses.fields(cls))}")
        return dataclasses.replace(base, **overrides)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> "WorkloadSpec":
        """From a mapping (a record's spec, a config): traffic fields as dicts or text forms."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown workload field(s) {unknown}; known: {sorted(names)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """The canonical form behind ``spec_id``: traffic fields only where set; a trace by its content."""
        out = spec_dict(self)
        for name in self.TRAFFIC_FIELDS:
            if out[name] is None:
                del out[name]
        if self.trace is not None:
            out["trace"] = self.trace.to_dict()
        return out

    @property
    def spec_id(self) -> str:
        return stable_id(self.to_dict())


@dataclass(frozen=True, slots=True)
class SamplingSpec:
    """Decoding: greedy unless a temperature is given; sampling is seeded."""

    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


@dataclass(frozen=True, slots=True)
class RunSpec:
    """One measured case: a model on a device under a workload, with a batch size."""

    model: ModelSpec
    workload: WorkloadSpec
    batch_size: int = 1
    sampling: SamplingSpec = SamplingSpec()
    device: str = "cpu"  # the kind ("cpu", "cuda"), not the index: the same case on GPU 0 or 1
    measure: str = "latency"  # what the case measures: "latency" or "overhead" (self-measurement)
    kv_cache: KVCacheSpec | None = None  # None: the engine's default (dynamic) cache
    batching: BatchingSpec | None = None  # None: batches of batch_size back to back
    load: LoadSpec | None = None  # None: every request available at once
    speculative: SpeculativeSpec | None = None  # None: the target decodes on its own

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunSpec":
        """The spec a record stores (``spec_dict``), rebuilt: ``from_dict(spec_dict(s)) == s``."""
        from pytest_inferlab.specs.batching import BatchingSpec
        from pytest_inferlab.specs.load import LoadSpec

        def named(spec_cls: Any, value: Mapping[str, Any] | None) -> Any:
            if value is None:
                return None
            return spec_cls(value[spec_cls.NAME_FIELD], tuple(tuple(pair) for pair in value["settings"]))

        return cls(model=ModelSpec.from_dict(data["model"]), workload=WorkloadSpec.from_mapping(data["workload"]),
                   batch_size=data["batch_size"], sampling=SamplingSpec(**data["sampling"]), device=data["device"],
                   measure=data["measure"], kv_cache=named(KVCacheSpec, data.get("kv_cache")),
                   batching=named(BatchingSpec, data.get("batching")),
                   load=LoadSpec(**data["load"]) if data.get("load") else None,
                   speculative=named(SpeculativeSpec, data.get("speculative")))

    @property
    def spec_id(self) -> str:
        payload = spec_dict(self)
        payload["model"] = {"spec_id": self.model.spec_id}
        payload["workload"] = self.workload.to_dict()
        if self.load is not None:
            payload["load"] = self.load.to_dict()
        for optional in ("kv_cache", "batching", "load", "speculative"):  # cases without them keep their baselines' ids
            if payload[optional] is None:
                del payload[optional]
        return stable_id(payload)
