"""Scale-out: split a suite's cases over N machines (``--inferlab-shard=I/N``) and merge their
records back into one run.

The split is deterministic: cases are ordered by expected cost (their durations in an earlier
run's records given by ``--inferlab-shard-durations``, e.g. the last full run kept as a CI
artifact; otherwise every case costs the same) and then by node id, and each goes to the
currently lightest shard (longest-processing-time first). Every shard must be given the same
inputs: then every machine computes the same assignment.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from pytest_inferlab.ground.jsonio import write_json_new
from pytest_inferlab.record.record import Record, RecordError, read_record, record_files


@dataclass(frozen=True, slots=True)
class Shard:
    index: int  # 1-based, as written on the command line
    count: int

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """``I/N`` with 1 <= I <= N; anything else raises ValueError saying so."""
    index, sep, count = str(text).strip().partition("/")
    try:
        shard = Shard(int(index), int(count))
    except ValueError:
        raise ValueError(f"{text!r} is not I/N (e.g. 2/4: the second of four shards)") from None
    if not sep or shard.count < 1 or not 1 <= shard.index <= shard.count:
        raise ValueError(f"{text!r} is out of range: I/N needs 1 <= I <= N (e.g. 1/2 and 2/2)")
    return shard


def assign(costs: Mapping[str, float], count: int) -> dict[str, int]:
    """Case key -> shard index (1-based), most expensive first onto the lightest shard."""
    loads = [0.0] * count
    out: dict[str, int] = {}
    for key in sorted(costs, key=lambda k: (-costs[k], k)):
        lightest = min(range(count), key=lambda i: (loads[i], i))
        loads[lightest] += costs[key]
        out[key] = lightest + 1
    return out


def _seconds(record: Record) -> float | None:
    try:
        started = dt.datetime.fromisoformat(record.started_at)
        finished = dt.datetime.fromisoformat(record.finished_at)
    except ValueError:
        return None
    return max(0.0, (finished - started).total_seconds())


def run_durations(run_dir: Path) -> dict[str, float]:
    """Seconds per test id in the records of one earlier run (a run folder), for balancing; a record
    that cannot be read raises RecordError naming the file (never skipped: a balance from part of a run
    would be silently wrong)."""
    durations = {}
    for path in record_files(run_dir):
        record = read_record(path)
        seconds = _seconds(record)
        if seconds is not None:
            durations[record.test_id] = seconds
    return durations


def select(node_ids: Iterable[str], shard: Shard, durations: Mapping[str, float]) -> set[str]:
    """The node ids this shard runs; cases without a known duration cost the known median (or 1)."""
    ids = list(node_ids)
    known = sorted(durations[i] for i in ids if i in durations)
    default = known[len(known) // 2] if known else 1.0
    assignment = assign({i: durations.get(i, default) for i in ids}, shard.count)
    return {i for i, index in assignment.items() if index == shard.index}


class MergeError(ValueError):
    """Shard runs that cannot be merged; the message names the files."""


def merge_runs(run_dirs: list[Path], results: Path, run_id: str) -> list[Path]:
    """Copy the records of shard runs into ``results/runs/<run_id>/`` as one run: every record is
    read first (an unreadable one stops the merge before anything is written), a case measured by
    two shards or shards of different commits are refused, records keep their file names and say
    which run they came from (``conditions.merged_from``)."""
    found: dict[str, tuple[Path, Record]] = {}
    commits: dict[str | None, Path] = {}
    for run_dir in run_dirs:
        paths = record_files(run_dir) if run_dir.is_dir() else []
        if not paths:
            raise MergeError(f"{run_dir}: no records (expected a run folder, .inferlab/runs/<run id>)")
        for path in paths:
            try:
                record = read_record(path)
            except RecordError as exc:
                raise MergeError(str(exc)) from None
            if path.name in found:
                raise MergeError(f"{path.name} is in two shard runs ({found[path.name][0]} and {path}): the same case "
                                 "measured twice; shards must split the cases (--inferlab-shard=I/N with the same N)")
            commits.setdefault(record.commit, path)
            found[path.name] = (path, record)
    if len(commits) > 1:
        listed = ", ".join(f"{commit} ({path})" for commit, path in commits.items())
        raise MergeError(f"the shard runs measured different commits: {listed}")
    folder = results / "runs" / run_id
    if folder.exists():
        raise MergeError(f"{folder} exists already: pick another --run-id (records are never overwritten)")
    written = []
    for name, (path, record) in sorted(found.items()):
        merged = dataclasses.replace(record, run_id=run_id,
                                     conditions={**record.conditions, "merged_from": record.run_id})
        written.append(write_json_new(folder / name, merged.to_json()))
    return written
