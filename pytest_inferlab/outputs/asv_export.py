"""Records -> airspeed-velocity results (docs/architecture.md, README "History"), so ``asv publish`` shows the history of every
suite without asv ever re-running them.

One asv benchmark per suite test and metric (``type: track``), named
``<suite module>.<test>.<metric>``; the test's pytest parameters are asv params (repr strings).
asv flags only upward steps, so every published series is lower-is-better: rates are published
inverted (``output_tok_per_s`` -> ``ms_per_output_tok``) and metrics better when higher without an
inverted form are not published. Files: ``benchmarks.json``, ``<machine>/machine.json`` and
``<machine>/<commit[:8]>-<env>.json`` (asv's version-2 results), written atomically and merged
with what is there: re-exporting a run changes nothing, and for a cell measured twice on one
commit the newer run wins.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable

from pytest_inferlab.ground.jsonio import read_json_object, write_json_replace
from pytest_inferlab.measure.catalog import facts_of
from pytest_inferlab.record.record import Record, RecordError, read_record, record_files

RESULTS_API_VERSION = 2
BENCHMARKS_API_VERSION = 2
MACHINE_API_VERSION = 1
RESULT_COLUMNS = ["result", "params", "version", "started_at", "duration", "stats_ci_99_a", "stats_ci_99_b",
                  "stats_q_25", "stats_q_75", "stats_number", "stats_repeat"]
STAT_COLUMNS = RESULT_COLUMNS[5:]
ASV_UNITS = {"B": "bytes"}


@dataclass(frozen=True, slots=True)
class PublishedForm:
    """How a metric appears in asv: its name, unit and the transform of each value."""

    name: str
    unit: str
    transform: Callable[[float], float]


def _per(scale: float) -> Callable[[float], float]:
    return lambda rate: scale / rate


# Higher-is-better metrics published as lower-is-better (asv's regressions page flags increases).
INVERTED: dict[str, PublishedForm] = {
    "output_tok_per_s": PublishedForm("ms_per_output_tok", "ms", _per(1e3)),
    "total_tok_per_s": PublishedForm("ms_per_total_tok", "ms", _per(1e3)),
    "req_per_s": PublishedForm("ms_per_req", "ms", _per(1e3)),
    "goodput_req_per_s": PublishedForm("ms_per_good_req", "ms", _per(1e3)),
    "tok_per_j": PublishedForm("mj_per_tok", "mJ", _per(1e3)),
    "bare_output_tok_per_s": PublishedForm("bare_ms_per_output_tok", "ms", _per(1e3)),
}


def published_form(metric: str) -> PublishedForm | None:
    """The asv form of ``metric``, or None when it is not published (higher is better, no inverse)."""
    if metric in INVERTED:
        return INVERTED[metric]
    definition = facts_of(metric)
    if definition is None or definition.higher_is_better:
        return None
    return PublishedForm(metric, ASV_UNITS.get(definition.unit, definition.unit), lambda value: value)


class SkippedRecord(ValueError):
    """A record that cannot be attributed to a commit (message says why and what to do)."""


@dataclass(frozen=True, slots=True)
class Cell:
    """One benchmark value for one parameter combination, with the run that measured it."""

    value: float
    stats: dict[str, Any] | None
    started_at_ms: int


@dataclass
class ExportSummary:
    benchmarks: set[str] = field(default_factory=set)
    points: int = 0
    files: set[Path] = field(default_factory=set)
    skipped: list[str] = field(default_factory=list)

    def line(self) -> str:
        text = f"asv: {self.points} points of {len(self.benchmarks)} benchmarks in {len(self.files)} results files"
        return text + (f"; {len(self.skipped)} record(s) skipped" if self.skipped else "")


def benchmark_base(test_id: str) -> str:
    """``suites/test_latency.py::test_latency[a-1]`` -> ``suites.test_latency.test_latency``."""
    path, _, rest = test_id.partition("::")
    parts = [p for p in re.split(r"[\\/]", path.removesuffix(".py")) if p] + rest.split("[", 1)[0].split("::")
    return ".".join(re.sub(r"[^A-Za-z0-9_]", "_", p) for p in parts if p)


def env_name(record: Record) -> str:
    """asv environment name: one per model (a graph dimension, like the machine)."""
    return "inferlab-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", record.model_name)[:80]


def commit_of(record: Record, include_dirty: bool) -> tuple[str, int]:
    """(full commit hash, commit time in JavaScript ms) the record belongs to, or SkippedRecord."""
    git = record.environment.get("git") or {}
    commit = git.get("commit")
    if not commit or not re.fullmatch(r"[0-9a-f]{40}", str(commit)):
        raise SkippedRecord("recorded outside a git checkout (no commit): asv cannot place it in the history")
    if git.get("dirty") and not include_dirty:
        raise SkippedRecord(f"recorded with uncommitted changes on top of {commit[:8]}: not attributed to that "
                            "commit; commit and re-run, or export with --include-dirty to attribute it anyway")
    seconds = git.get("commit_time")
    if seconds is None:  # records made before commit times were kept: the run's own time
        return commit, _started_ms(record)
    return commit, int(seconds * 1000)


def _stats(samples: list[float]) -> dict[str, Any] | None:
    """asv's own statistics of the samples (CI weights for its step detection); None below 2."""
    finite = [s for s in samples if math.isfinite(s)]
    if len(finite) < 2:
        return None
    from asv_runner.statistics import compute_stats

    _, stats = compute_stats(finite, 1)
    return stats if all(math.isfinite(stats[k]) for k in ("ci_99_a", "ci_99_b")) else None


def _started_ms(record: Record) -> int:
    return int(datetime.fromisoformat(record.started_at).timestamp() * 1000)


def cells_of(record: Record) -> Iterable[tuple[str, PublishedForm, str, tuple[str, ...], tuple[str, ...], Cell]]:
    """(benchmark, form, code, param names, param values, cell) for each published metric."""
    base = benchmark_base(record.test_id)
    names = tuple(record.params)
    values = tuple(repr(v) for v in record.params.values())
    started_ms = _started_ms(record)
    for metric, measurement in sorted(record.measurements.items()):
        form = published_form(metric)
        value = measurement.value
        if form is None or value is None or (metric in INVERTED and value <= 0):
            continue
        samples = [form.transform(s) for s in measurement.samples if metric not in INVERTED or s > 0]
        code = f"{record.test_id.split('[', 1)[0]}\n{metric}: {facts_of(metric).help}"
        if metric in INVERTED:
            code += f"\npublished as {form.name} = 1e3 / {metric} (lower is better)"
        yield (f"{base}.{form.name}", form, code, names, values,
               Cell(form.transform(value), _stats(samples), started_ms))


def _version(name: str, unit: str) -> str:
    """A benchmark's version: stable while its name and unit are (asv drops results of another)."""
    return hashlib.sha256(f"{name}\n{unit}".encode()).hexdigest()[:16]


def read_asv_file(path: Path, api_version: int) -> dict[str, Any] | None:
    if not path.exists():
        return None
    data = read_json_object(path, ValueError, "asv file")
    if data.get("version") != api_version:
        raise ValueError(f"asv file {path} has version {data.get('version')!r}, expected {api_version}; "
                         "move it away or re-export into an empty folder")
    return data


def load_cells(data: dict[str, Any] | None) -> dict[str, tuple[list[list[str]], dict[tuple[str, ...], Cell], float | None]]:
    """An existing results file's cells per benchmark: (params, {combination: cell}, duration)."""
    out: dict[str, tuple[list[list[str]], dict[tuple[str, ...], Cell], float | None]] = {}
    if not data:
        return out
    columns = data["result_columns"]
    for name, row in data["results"].items():
        row = dict(zip(columns, row + [None] * (len(columns) - len(row))))
        params = row["params"] or []
        combos = list(itertools.product(*params)) if params else [()]
        cells = {}
        for i, combo in enumerate(combos):
            value = (row["result"] or [None] * len(combos))[i]
            if value is None:
                continue
            stats = None
            if row["stats_ci_99_a"] is not None and row["stats_ci_99_a"][i] is not None:
                stats = {c.removeprefix("stats_"): row[c][i] if row[c] is not None else None for c in STAT_COLUMNS}
            cells[tuple(combo)] = Cell(value, stats, int(row["started_at"] or 0))
        out[name] = (params, cells, row["duration"])
    return out


def _row(params: list[list[str]], cells: dict[tuple[str, ...], Cell], version: str, duration: float | None) -> list:
    combos = list(itertools.product(*params)) if params else [()]
    chosen = [cells.get(tuple(c)) for c in combos]
    stats = {c: [(cell.stats or {}).get(c.removeprefix("stats_")) if cell else None for cell in chosen]
             for c in STAT_COLUMNS}
    row = [[cell.value if cell else None for cell in chosen], params, version,
           max(cell.started_at_ms for cell in chosen if cell), duration]
    row += [stats[c] if any(v is not None for v in stats[c]) else None for c in STAT_COLUMNS]
    while row and row[-1] is None:
        row.pop()
    return row


def _merge_params(params: list[list[str]], combos: Iterable[tuple[str, ...]], width: int) -> list[list[str]]:
    merged = [list(p) for p in params] or [[] for _ in range(width)]
    for combo in combos:
        for position, value in enumerate(combo):
            if value not in merged[position]:
                merged[position].append(value)
    return merged


def machine_info(record: Record) -> dict[str, Any]:
    env = record.environment
    return {"machine": record.machine_id, "os": env.get("platform") or "", "arch": env.get("arch") or "",
            "cpu": env.get("device_name") or env.get("cpu_model") or "", "num_cpu": str(env.get("cpu_count") or ""),
            "ram": "", "version": MACHINE_API_VERSION}


def find_records(folder: Path) -> list[Path]:
    """Record files under ``folder`` (a run folder, ``.inferlab/runs`` or ``.inferlab``)."""
    return record_files(folder, recursive=True)


ResultKey = tuple[str, str, str]  # (machine, commit, env): one asv results file


@dataclass
class Collected:
    """The records of an export, grouped as asv files hold them."""

    groups: dict[ResultKey, dict[str, dict[tuple[str, ...], Cell]]] = field(default_factory=dict)  # -> benchmark -> combo
    meta: dict[ResultKey, dict[str, Any]] = field(default_factory=dict)  # date, python, model of each file
    defs: dict[str, dict[str, Any]] = field(default_factory=dict)  # benchmark -> unit, param names, code, combos
    machines: dict[str, dict[str, Any]] = field(default_factory=dict)


def _collect(record_paths: Iterable[Path], include_dirty: bool, warn: Callable[[str], None],
             summary: ExportSummary) -> Collected:
    found = Collected()
    for path in record_paths:
        try:
            record = read_record(path)
            commit, date_ms = commit_of(record, include_dirty)
        except (RecordError, SkippedRecord) as exc:
            text = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
            summary.skipped.append(text)
            warn(f"asv export skipped {text}")
            continue
        key = (record.machine_id, commit, env_name(record))
        python = ".".join(str(record.environment.get("python", "")).split(".")[:2])
        found.meta[key] = {"date": date_ms, "python": python, "model": record.model_name}
        found.machines[record.machine_id] = machine_info(record)
        for name, form, code, names, values, cell in cells_of(record):
            d = found.defs.setdefault(name, {"unit": form.unit, "param_names": list(names), "code": code, "combos": set()})
            if list(names) != d["param_names"]:
                summary.skipped.append(f"{path}: {name} has params {list(names)}, others {d['param_names']}")
                warn(f"asv export skipped {summary.skipped[-1]}")
                continue
            d["combos"].add(values)
            cells = found.groups.setdefault(key, {}).setdefault(name, {})
            if values not in cells or cells[values].started_at_ms <= cell.started_at_ms:
                cells[values] = cell
    return found


def _benchmarks(existing: dict[str, Any], defs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """benchmarks.json's entries: the existing ones, with this export's benchmarks merged in."""
    benchmarks = {name: value for name, value in existing.items() if name != "version"}
    for name, d in sorted(defs.items()):
        old = benchmarks.get(name, {})
        params = _merge_params(old.get("params", []), sorted(d["combos"]), len(d["param_names"]))
        benchmarks[name] = {"name": name, "type": "track", "unit": d["unit"], "param_names": d["param_names"],
                            "params": params, "version": _version(name, d["unit"]), "code": d["code"],
                            "timeout": 60.0, "pretty_name": name}
    return benchmarks


def _write_results(path: Path, key: ResultKey, meta: dict[str, Any], by_benchmark: dict[str, dict[tuple[str, ...], Cell]],
                   benchmarks: dict[str, Any], summary: ExportSummary) -> None:
    """One asv results file: its other benchmarks kept, this export's cells merged (newest wins)."""
    machine, commit, env = key
    existing = load_cells(read_asv_file(path, RESULTS_API_VERSION))
    results = {name: _row(params, cells, benchmarks[name]["version"], duration)
               for name, (params, cells, duration) in existing.items()
               if name in benchmarks and name not in by_benchmark}
    for name, cells in by_benchmark.items():
        params, old_cells, duration = existing.get(name, ([], {}, None))
        merged = dict(old_cells)
        for combo, cell in cells.items():
            if combo not in merged or merged[combo].started_at_ms <= cell.started_at_ms:
                merged[combo] = cell
        params = _merge_params(params, merged, len(benchmarks[name]["param_names"]))
        results[name] = _row(params, merged, benchmarks[name]["version"], duration)
        summary.benchmarks.add(name)
        summary.points += len(cells)
    data = {"commit_hash": commit, "env_name": env, "date": meta["date"],
            "params": {"machine": machine, "python": meta["python"], "model": meta["model"]},
            "python": meta["python"], "requirements": {}, "env_vars": {},
            "result_columns": RESULT_COLUMNS, "results": dict(sorted(results.items())), "durations": {},
            "version": RESULTS_API_VERSION}
    write_json_replace(path, data)
    summary.files.add(path)


def export(record_paths: Iterable[Path], asv_results: Path, include_dirty: bool = False,
           warn: Callable[[str], None] | None = None) -> ExportSummary:
    """Write asv results for ``record_paths`` into the ``asv_results`` tree (merging)."""
    warn = warn or (lambda text: warnings.warn(text, stacklevel=2))
    summary = ExportSummary()
    found = _collect(record_paths, include_dirty, warn, summary)
    benchmarks_path = asv_results / "benchmarks.json"
    benchmarks = _benchmarks(read_asv_file(benchmarks_path, BENCHMARKS_API_VERSION) or {}, found.defs)
    for machine, info in found.machines.items():
        write_json_replace(asv_results / machine / "machine.json", info)
    for key, by_benchmark in sorted(found.groups.items()):
        machine, commit, env = key
        _write_results(asv_results / machine / f"{commit[:8]}-{env}.json", key, found.meta[key], by_benchmark,
                       benchmarks, summary)
    if found.defs:
        write_json_replace(benchmarks_path, {**dict(sorted(benchmarks.items())), "version": BENCHMARKS_API_VERSION})
    return summary
