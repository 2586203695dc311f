"""What ``inferlab tune`` searches, in the registries' own names: a study file (TOML) read into frozen specs.

```toml
[study]
name = "short-chat-cpu"     # the study's folder and its name in the storage
workload = "short-chat"     # a named workload (specs/workloads.py)
trials = 6                  # measured trials at most (the confirmation comes on top)
objective = "output_tok_per_s"   # maximized as the paired ratio to the reference; or a metric's own value

[study.workload_overrides]  # fields of the workload, as workload_overrides in a suite
count = 2
output_tokens = 32

[axes]                      # every combination is a configuration; the first value of each is the reference's
quantization = ["fp32", "int8-weight", "gguf-q8_0", "gguf-q4_0"]
drafting = ["none", { method = "prompt-lookup", max_ngram = 2, num_tokens = { low = 2, high = 16 } }]
kv_cache = ["dynamic"]
batch_size = [1, 4]         # requests generated together; or a range { low = 1, high = 8 }

[slo]                       # bounds on the trial's own figures: metric = { statistic = bound }
tpot_ms = { p50 = 150 }

[floor]                     # non-inferiority to the reference, one-sided at the confidence (0.95 if left out)
top1_agreement = { min = 0.9, confidence = 0.95 }   # next-token agreement on the fidelity text
kld_mean = { max = 0.05 }                            # mean KL divergence there, nats
"inferlab_mc.acc" = { margin = 0.05 }                # an lm-eval task's accuracy, item by item
```

A bad file is a ``SpaceError`` naming the file, the key and what to write instead.
"""

from __future__ import annotations

import dataclasses
import itertools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from pytest_inferlab.measure.catalog import catalog
from pytest_inferlab.optimizations.kv import resolve_kv
from pytest_inferlab.optimizations.quant import resolve_quant
from pytest_inferlab.optimizations.speculative import resolve_speculative
from pytest_inferlab.specs.core import KVCacheSpec, QuantSpec, SpeculativeSpec
from pytest_inferlab.specs.slo import Bound
from pytest_inferlab.specs.workloads import resolve_workload

NONE = "none"  # drafting off
AXES = ("quantization", "kv_cache", "drafting", "batch_size")
SIZE = "size"  # the one ranged setting of a batch_size range
STATISTICS = ("p50", "p90", "p99", "mean", "value")
SPEED = "output_tok_per_s"  # judged as the paired ratio to the study's reference (speedup_vs_reference)
AGREEMENT, DIVERGENCE, TASK = "agreement", "divergence", "task"  # the kinds of accuracy floor
FLOOR_KINDS = {"top1_agreement": AGREEMENT, "kld_mean": DIVERGENCE}  # else "TASK.acc": an lm-eval task's items
FLOOR_KEYS = {AGREEMENT: "min", DIVERGENCE: "max", TASK: "margin"}  # what each kind's table gives


class SpaceError(ValueError):
    """A study file that cannot be searched: the message names the file, the key and the fix."""


@dataclass(frozen=True, slots=True)
class Config:
    """One configuration: what the trial's engine is built with (the reference is one of them)."""

    quantization: QuantSpec = QuantSpec("fp32")
    kv_cache: KVCacheSpec = KVCacheSpec("dynamic")
    drafting: SpeculativeSpec | None = None
    batch_size: int = 1  # requests generated together (lab.measure(batch_size=...))

    @property
    def label(self) -> str:
        parts = [self.quantization.label]
        if self.kv_cache.kind != "dynamic" or self.kv_cache.settings:
            parts.append(f"kv {self.kv_cache.label}")
        if self.drafting is not None:
            parts.append(self.drafting.label)
        if self.batch_size != 1:
            parts.append(f"batch {self.batch_size}")
        return " + ".join(parts)

    @property
    def engine(self) -> "Config":
        """What the engine is built from (the batch size is how it is measured)."""
        return Config(self.quantization, self.kv_cache, self.drafting)

    def to_dict(self) -> dict[str, Any]:
        out = {"quantization": self.quantization.to_dict(), "kv_cache": self.kv_cache.to_dict(),
               "drafting": self.drafting.to_dict() if self.drafting else None}
        return out if self.batch_size == 1 else {**out, "batch_size": self.batch_size}  # keys of older studies kept

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Config":
        drafting = data.get("drafting")
        return cls(QuantSpec.of(data["quantization"]["method"], **data["quantization"].get("settings", {})),
                   KVCacheSpec.of(data["kv_cache"]["kind"], **data["kv_cache"].get("settings", {})),
                   SpeculativeSpec.of(drafting["method"], **drafting.get("settings", {})) if drafting else None,
                   int(data.get("batch_size", 1)))


@dataclass(frozen=True, slots=True)
class Choice:
    """One listed value of an axis: its spec (None: drafting off) and the integer ranges of its numeric
    settings (``num_tokens = { low = 2, high = 16 }``), searched as ranges, not as a list."""

    label: str
    spec: Any
    ranges: tuple[tuple[str, int, int], ...] = ()  # (setting, low, high)

    def concrete(self, values: Mapping[str, int]) -> Any:
        """The spec with each ranged setting at ``values``'s (a batch size range: the size itself)."""
        if not self.ranges:
            return self.spec
        if isinstance(self.spec, int):
            return int(values[SIZE])
        settings = {**dict(self.spec.settings), **{name: int(values[name]) for name, _, _ in self.ranges}}
        return type(self.spec).of(getattr(self.spec, self.spec.NAME_FIELD), **settings)

    def expand(self) -> list[Any]:
        """Every concrete spec of the ranges (the exhaustive run measures each)."""
        grids = [[(name, v) for v in range(low, high + 1)] for name, low, high in self.ranges]
        return [self.concrete(dict(point)) for point in itertools.product(*grids)]

    def values_of(self, spec: Any) -> dict[str, int] | None:
        """The ranged settings' values that make ``spec`` from this choice, or None when it does not."""
        if not self.ranges:
            return {} if spec == self.spec else None
        if isinstance(self.spec, int):
            (_, low, high), = self.ranges
            return {SIZE: spec} if isinstance(spec, int) and low <= spec <= high else None
        values = {name: dict(spec.settings).get(name) for name, _, _ in self.ranges} if spec is not None else {}
        if any(not isinstance(v, int) for v in values.values()) or len(values) != len(self.ranges):
            return None
        return values if self.concrete(values) == spec else None


@dataclass(frozen=True, slots=True)
class Axis:
    """One searched axis: its listed choices (label -> spec, with ranges of numeric settings)."""

    name: str
    choices: tuple[Choice, ...] = ()

    @property
    def labels(self) -> list[str]:
        return [choice.label for choice in self.choices]

    def values(self) -> list[Any]:
        """Every concrete value, in the file's order (ranges expanded)."""
        return [spec for choice in self.choices for spec in choice.expand()]

    def choice(self, label: str) -> Choice:
        return next(choice for choice in self.choices if choice.label == label)

    def param(self, label: str, setting: str) -> str:
        """The Optuna parameter of a ranged setting (conditional on its choice)."""
        return f"{self.name}:{label}:{setting}"

    def params_of(self, spec: Any) -> dict[str, Any]:
        """The Optuna parameters that propose ``spec`` (for ``enqueue_trial``)."""
        for choice in self.choices:
            values = choice.values_of(spec)
            if values is not None:
                return {self.name: choice.label, **{self.param(choice.label, k): v for k, v in values.items()}}
        raise LookupError(f"axis {self.name}: {spec!r} is not one of its values")

    def describe(self) -> str:
        return ", ".join(self.labels)


@dataclass(frozen=True, slots=True)
class Floor:
    """An accuracy floor, judged as non-inferiority to the reference at ``confidence`` (one-sided):
    ``top1_agreement`` at least ``limit``; ``kld_mean`` at most ``limit`` nats; a task's accuracy
    (``TASK.acc``, lm-eval items) no more than ``limit`` below the reference's on the same items. A
    trial whose bound does not clear it is "not shown", never passing."""

    metric: str
    limit: float
    confidence: float = 0.95

    @property
    def kind(self) -> str:
        """AGREEMENT, DIVERGENCE or TASK: which evidence decides it (tune/floor.py)."""
        return FLOOR_KINDS.get(self.metric, TASK)

    @property
    def task(self) -> str:
        """The lm-eval task of a TASK floor (``inferlab_mc`` of ``inferlab_mc.acc``)."""
        return self.metric.rpartition(".")[0]

    @property
    def label(self) -> str:
        shown = f"(one-sided {self.confidence:.0%})"
        if self.kind == AGREEMENT:
            return f"{self.metric} >= {self.limit:g} {shown}"
        if self.kind == DIVERGENCE:
            return f"{self.metric} <= {self.limit:g} nats {shown}"
        return f"{self.metric} at most {self.limit:g} below the reference's {shown}"

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "limit": self.limit, "confidence": self.confidence}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Floor":
        """As ``to_dict`` wrote it (a study stored before KLD and task floors says ``minimum``)."""
        return cls(data["metric"], data["limit"] if "limit" in data else data["minimum"], data["confidence"])


@dataclass(frozen=True, slots=True)
class Space:
    """The study: its axes, objective, SLOs, floors and budget; ``source`` names the file it came from."""

    name: str
    source: str
    workload: str = "short-chat"
    workload_overrides: tuple[tuple[str, Any], ...] = ()
    axes: tuple[Axis, ...] = ()
    objective: str = SPEED
    slo: tuple[Bound, ...] = ()
    floors: tuple[Floor, ...] = ()
    trials: int = 8
    seed: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def maximize(self) -> bool:
        return self.objective == SPEED or catalog.get(self.objective).higher_is_better

    @property
    def workload_spec(self) -> Any:
        """The named workload with the file's overrides (the command line's come on top in a trial)."""
        return dataclasses.replace(resolve_workload(self.workload), **dict(self.workload_overrides))

    @property
    def reference(self) -> Config:
        """The first value of every axis (fp32, dynamic cache, no drafting when listed first)."""
        return self._config({axis.name: axis.values()[0] for axis in self.axes})

    def config(self, chosen: Mapping[str, Any]) -> Config:
        """The configuration of concrete axis values (axis name -> spec)."""
        return self._config(chosen)

    def configurations(self) -> Iterator[Config]:
        """Every combination, in the file's order (the exhaustive run's order)."""
        for combo in itertools.product(*(axis.values() for axis in self.axes)):
            yield self._config(dict(zip((axis.name for axis in self.axes), combo)))

    @staticmethod
    def _config(values: Mapping[str, Any]) -> Config:
        return Config(values.get("quantization", QuantSpec("fp32")), values.get("kv_cache", KVCacheSpec("dynamic")),
                      values.get("drafting"), values.get("batch_size", 1))


def load_space(path: Path) -> Space:
    """The study file at ``path``, checked against the registries and the metric catalog."""
    if not path.is_file():
        raise SpaceError(f"{path}: no such study file (write one: docs/tune.md shows a complete example)")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SpaceError(f"{path}: not TOML: {exc}") from None
    return parse_space(data, str(path))


def parse_space(data: Mapping[str, Any], source: str) -> Space:
    unknown = sorted(set(data) - {"study", "axes", "slo", "floor"})
    if unknown:
        raise SpaceError(f"{source}: unknown table(s) {unknown}; a study file has [study], [axes], [slo], [floor]")
    study = _table(data, "study", source)
    known = {"name", "workload", "trials", "objective", "seed", "workload_overrides"}
    if set(study) - known:
        raise SpaceError(f"{source}: [study] has unknown key(s) {sorted(set(study) - known)}; known: {sorted(known)}")
    name = str(study.get("name") or Path(source).stem)
    if not name.replace("-", "").replace("_", "").isalnum():
        raise SpaceError(f"{source}: [study] name={name!r}: letters, digits, - and _ only (it names a folder)")
    workload = str(study.get("workload", "short-chat"))
    try:
        resolve_workload(workload)
    except LookupError as exc:
        raise SpaceError(f"{source}: [study] workload={workload!r}: {exc}") from None
    trials = study.get("trials", 8)
    if not isinstance(trials, int) or trials < 1:
        raise SpaceError(f"{source}: [study] trials={trials!r}: expected an integer >= 1 (measured trials at most)")
    objective = str(study.get("objective", SPEED))
    if objective not in catalog:
        raise SpaceError(f"{source}: [study] objective={objective!r} is not a metric of the catalog "
                         f"(e.g. {SPEED}, peak_rss_bytes, model_bytes; docs/reference/metrics.md lists them)")
    overrides = study.get("workload_overrides", {})
    if not isinstance(overrides, Mapping):
        raise SpaceError(f"{source}: [study.workload_overrides] must be a table of workload fields")
    axes = _axes(_table(data, "axes", source), source)
    return Space(name, source, workload, tuple(sorted(overrides.items())), axes, objective,
                 _bounds(data.get("slo", {}), source), _floors(data.get("floor", {}), source), trials,
                 int(study.get("seed", 0)))


def _table(data: Mapping[str, Any], key: str, source: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise SpaceError(f"{source}: [{key}] must be a table")
    return value


def _axes(table: Mapping[str, Any], source: str) -> tuple[Axis, ...]:
    unknown = sorted(set(table) - set(AXES))
    if unknown:
        raise SpaceError(f"{source}: [axes] {unknown[0]!r} is not an axis; axes: {', '.join(AXES)}")
    if not table:
        raise SpaceError(f"{source}: [axes] is empty; name at least one axis ({', '.join(AXES)}) with its values")
    axes = []
    for name in AXES:
        if name not in table:
            continue
        value = table[name]
        where = f"{source}: [axes] {name}"
        if not isinstance(value, list) or not value:
            raise SpaceError(f"{where}: expected a non-empty list of values (names, or tables with settings)")
        choices = [_choice(name, item, where) for item in value]
        labels = [choice.label for choice in choices]
        if len(set(labels)) != len(labels):
            raise SpaceError(f"{where}: a value is listed twice ({labels})")
        axes.append(Axis(name, tuple(choices)))
    return tuple(axes)


def _choice(axis: str, item: Any, where: str) -> Choice:
    """One listed value, checked against the axis' registry (did-you-mean errors); a setting given as
    ``{ low = L, high = H }`` (integers) is a range."""
    if axis == "drafting" and item == NONE:
        return Choice(NONE, None)
    if axis == "batch_size":
        return _batch_choice(item, where)
    resolve, spec_cls, name_key = {"quantization": (resolve_quant, QuantSpec, "method"),
                                   "kv_cache": (resolve_kv, KVCacheSpec, "kind"),
                                   "drafting": (resolve_speculative, SpeculativeSpec, "method")}[axis]
    try:
        if isinstance(item, Mapping):
            settings = dict(item)
            name = settings.pop(name_key, None)
            if not isinstance(name, str):
                raise SpaceError(f"{where}: {dict(item)}: a table needs {name_key} = \"...\" beside its settings")
            ranges = tuple(_range(setting, value, where) for setting, value in settings.items() if isinstance(value, Mapping))
            fixed = {k: v for k, v in settings.items() if not isinstance(v, Mapping)}
            resolve(name)
            spec = spec_cls.of(name, **fixed, **{setting: low for setting, low, _ in ranges})
            if ranges:
                label = "-".join([spec_cls.of(name, **fixed).label, *(f"{s}={lo}..{hi}" for s, lo, hi in ranges)])
                return Choice(label, spec, ranges)
        elif isinstance(item, str):
            spec = resolve(item)
        else:
            raise SpaceError(f"{where}: {item!r}: expected a name or a table with {name_key} and settings")
    except LookupError as exc:
        raise SpaceError(f"{where}: {exc}") from None
    return Choice(spec.label, spec)


def _batch_choice(item: Any, where: str) -> Choice:
    """A batch size: an integer >= 1, or a range ``{ low = 1, high = 8 }`` searched as an integer."""
    if isinstance(item, Mapping):
        _, low, high = _range(SIZE, item, where)
        if low < 1:
            raise SpaceError(f"{where}: {dict(item)}: batch sizes start at 1")
        return Choice(f"batch {low}..{high}", low, ((SIZE, low, high),))
    if not isinstance(item, int) or isinstance(item, bool) or item < 1:
        raise SpaceError(f"{where}: {item!r}: a batch size is an integer >= 1 or a range {{ low = 1, high = 8 }}")
    return Choice(f"batch {item}", item)


def _range(setting: str, value: Mapping[str, Any], where: str) -> tuple[str, int, int]:
    low, high = value.get("low"), value.get("high")
    if set(value) != {"low", "high"} or not (isinstance(low, int) and isinstance(high, int) and low <= high):
        raise SpaceError(f"{where}: {setting} = {dict(value)}: a range is {{ low = 2, high = 16 }} (integers, low <= high)")
    return setting, low, high


def _entries(table: Any, source: str, name: str, example: str) -> Iterator[tuple[str, Any, str]]:
    """(metric, its value, where it is written) of a [slo] or [floor] table."""
    if not isinstance(table, Mapping):
        raise SpaceError(f"{source}: [{name}] must be a table: {example}")
    for metric, given in table.items():
        yield metric, given, f"{source}: [{name}] {metric}"


def _bounds(table: Any, source: str) -> tuple[Bound, ...]:
    bounds = []
    for metric, stats, where in _entries(table, source, "slo", "metric = { p50 = bound }"):
        if metric not in catalog:
            raise SpaceError(f"{where}: not a metric of the catalog (e.g. ttft_ms, tpot_ms, itl_ms, e2e_ms)")
        if not isinstance(stats, Mapping) or not stats:
            raise SpaceError(f"{where}: expected {{ p50 = 150 }} (a statistic: {', '.join(STATISTICS)})")
        for statistic, limit in stats.items():
            if statistic not in STATISTICS:
                raise SpaceError(f"{where}: statistic {statistic!r}; expected one of {', '.join(STATISTICS)}")
            if not isinstance(limit, (int, float)) or limit <= 0:
                raise SpaceError(f"{where}.{statistic} = {limit!r}: expected a number > 0 in the metric's unit")
            bounds.append(Bound(metric, statistic, float(limit)))
    return tuple(bounds)


def _floors(table: Any, source: str) -> tuple[Floor, ...]:
    floors = []
    for metric, given, where in _entries(_flat_tasks(table, source), source, "floor", "top1_agreement = { min = 0.9 }"):
        kind = FLOOR_KINDS.get(metric, TASK)
        if kind == TASK and not (metric.endswith(".acc") and metric.count(".") == 1):
            raise SpaceError(f"{where}: floors are judged on top1_agreement {{ min }}, kld_mean {{ max }} or an "
                             "lm-eval task's per-item accuracy, TASK.acc {{ margin }} (e.g. \"inferlab_mc.acc\" = "
                             "{{ margin = 0.05 }})")
        key = FLOOR_KEYS[kind]
        if not isinstance(given, Mapping) or key not in given or set(given) - {key, "confidence"}:
            raise SpaceError(f"{where}: expected {{ {key} = {_EXAMPLE[kind]}, confidence = 0.95 }}")
        limit, confidence = given[key], given.get("confidence", 0.95)
        if not isinstance(limit, (int, float)) or not 0 < limit <= 1 or (kind == DIVERGENCE and limit > 10):
            raise SpaceError(f"{where}: {key} = {limit!r}: expected {_RANGE[kind]}")
        if not isinstance(confidence, (int, float)) or not 0.5 <= confidence < 1:
            raise SpaceError(f"{where}: confidence = {confidence!r}: expected a fraction in [0.5, 1)")
        floors.append(Floor(metric, float(limit), float(confidence)))
    return tuple(floors)


_EXAMPLE = {AGREEMENT: "0.9", DIVERGENCE: "0.05", TASK: "0.05"}
_RANGE = {AGREEMENT: "a fraction in (0, 1]", DIVERGENCE: "nats in (0, 1]", TASK: "a fraction of the items in (0, 1]"}


def _flat_tasks(table: Any, source: str) -> Any:
    """``inferlab_mc.acc = {...}`` unquoted is TOML's nested table {inferlab_mc: {acc: {...}}}: flattened."""
    if not isinstance(table, Mapping):
        return table
    flat: dict[str, Any] = {}
    for name, given in table.items():
        nested = isinstance(given, Mapping) and given and all(isinstance(v, Mapping) for v in given.values())
        flat.update({f"{name}.{metric}": v for metric, v in given.items()} if nested else {name: given})
    return flat
