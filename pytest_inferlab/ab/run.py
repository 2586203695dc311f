"""``inferlab ab BASE`` (and ``pytest --inferlab-ab=BASE``): the selected cases measured for BASE and for
the working tree in lock-step, judged on the paired per-round differences.

Everything of the run lands in ``<results>/ab/<id>/``: each side's records (``base/``,
``candidate/``) and log, the order the coordinator granted turns in (``turns.json``) and the verdicts
(``verdicts.json``). Exit status: 0 no regression, 1 a regression, 2 bad input or a side that crashed.
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from pytest_inferlab.ab.revisions import ABError, BaseWorktree, Revisions, resolve
from pytest_inferlab.ab.sides import Side, SideResult, collect, run_sides, select
from pytest_inferlab.judge.ab import compare_sides
from pytest_inferlab.judge.comparison import Comparison
from pytest_inferlab.outputs.report import format_verdict_summary, verdict_rows
from pytest_inferlab.ground.jsonio import write_json_new
from pytest_inferlab.record.record import Record, RecordError, read_record, record_files

DEFAULT_TIMEOUT_S = 6 * 3600.0
# Timed rounds per case (= pairs) unless the arguments say otherwise: a paired interval narrows with
# the square root of the pairs (README "Detection power" measures 16 on the 2-core development VM with
# tools/power_study.py). Like every command-line option it beats a test's marker rounds=.
DEFAULT_ROUNDS = 16


@dataclass(frozen=True, slots=True)
class ABRequest:
    """What the user asked for."""

    base: str
    pytest_args: tuple[str, ...]
    start: Path  # where the command ran (inside the candidate's checkout)
    results: Path  # the A/B's folder goes under <results>/ab/
    base_python: str = sys.executable
    python: str = sys.executable
    alpha: float = 0.05
    tolerance: dict[str, float] | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    rounds: int = DEFAULT_ROUNDS

    def side_args(self) -> tuple[str, ...]:
        """The pytest arguments both sides run with: the user's, with the A/B's rounds unless given."""
        given = any(a == "--inferlab-rounds" or a.startswith("--inferlab-rounds=") for a in self.pytest_args)
        return self.pytest_args if given else (*self.pytest_args, f"--inferlab-rounds={self.rounds}")


def run_ab(request: ABRequest, say: Callable[[str], None] = print) -> int:
    try:
        if shutil.which(request.base_python) is None:
            raise ABError(f"--base-python {request.base_python!r} is not an interpreter that can be run")
        revisions = resolve(request.start, request.base)
    except ABError as exc:
        say(f"inferlab ab: {exc}")
        return 2
    from pytest_inferlab.ground.ids import new_run_id

    results = request.results if request.results.is_absolute() else request.start / request.results
    folder = results.resolve() / "ab" / f"{new_run_id()}-{revisions.base_commit[:8]}"
    say(f"A/B: base {request.base} ({revisions.base_commit[:8]}) vs candidate {revisions.candidate_label()}; "
        f"results in {folder}")
    try:
        with BaseWorktree(revisions, folder / "base-tree") as tree:
            sides = _sides(request, revisions, tree, folder)
            return _measure_and_judge(request, revisions, sides, folder, say)
    except ABError as exc:
        say(f"inferlab ab: {exc}")
        return 2


def _sides(request: ABRequest, revisions: Revisions, tree: Path, folder: Path) -> list[Side]:
    offset = request.start.resolve().relative_to(revisions.root.resolve())  # run from the same sub-folder
    return [Side("base", tree, tree / offset, request.base_python, folder / "base", folder / "base.log"),
            Side("candidate", revisions.root, revisions.root / offset, request.python, folder / "candidate",
                 folder / "candidate.log")]


def _measure_and_judge(request: ABRequest, revisions: Revisions, sides: list[Side], folder: Path,
                       say: Callable[[str], None]) -> int:
    args = request.side_args()
    selection = select(collect(sides[0], args), collect(sides[1], args))
    for name, only in (("base", selection.base_only), ("candidate", selection.candidate_only)):
        for test_id in only:
            say(f"  only on the {name} side, not compared: {test_id}")
    if not selection.shared:
        raise ABError(f"no case is collected by both sides for {' '.join(args)}")
    say(f"A/B: {len(selection.shared)} case(s) on both sides, measured in lock-step")
    with tempfile.TemporaryDirectory(prefix="inferlab-ab-") as sockets:  # short path: Unix sockets allow ~100 bytes
        results, baton = run_sides(sides, args, selection, Path(sockets) / "turns", request.timeout_s)
    write_json_new(folder / "turns.json", [{"side": s, "kind": k, "case": c, "index": i, "t": t}
                                           for s, k, c, i, t in baton.grants])
    crashed = [r for r in results if r.crashed]
    records = {r.side.name: _records(r) for r in results}
    for result in results:
        say(f"  {result.side.name}: {len(records[result.side.name])} record(s) in {result.run_folder()}")
    if crashed:
        for result in crashed:
            say(f"inferlab ab: {result.why()}")
        return 2
    outcome = dataclasses.replace(compare_sides(records["base"], records["candidate"], request.alpha, request.tolerance),
                                  only_first=selection.base_only, only_second=selection.candidate_only)
    compared = {"base": {"revision": revisions.base, "commit": revisions.base_commit},
                "candidate": {"head": revisions.head_commit, "uncommitted_files": list(revisions.dirty_files)},
                "pytest_args": list(request.side_args())}
    write_json_new(folder / "verdicts.json", {**compared, **outcome.ab_json()})
    for line in report_lines(outcome):
        say(line)
    return 1 if outcome.regressed else 0


def _records(result: SideResult) -> list[Record]:
    run = result.run_folder()
    if run is None:
        return []
    try:
        return [read_record(path) for path in record_files(run)]
    except RecordError as exc:
        raise ABError(f"the {result.side.name} side's records cannot be read: {exc}") from None


def report_lines(outcome: Comparison) -> list[str]:
    """The A/B summary: counts, the notable verdicts, then every regression's reason."""
    rows = [row for case in outcome.cases for row in verdict_rows(case.test_id.split("::")[-1], case.verdicts, True)]
    lines = ["A/B verdicts (candidate / base, paired rounds):"] + format_verdict_summary(rows) if rows else \
        ["A/B: no timing series was measured on both sides"]
    for case in outcome.cases:
        for verdict in case.verdicts:
            if verdict.outcome in ("regressed", "invalid"):
                lines.append(f"{case.test_id}: {verdict.metric}: {verdict.outcome.upper()} {verdict.reason}")
    return lines


def split_args(argv: Sequence[str]) -> tuple[str, ...]:
    """pytest's arguments without the --inferlab-ab option that asked for the A/B run."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--inferlab-ab":
            skip = True
        elif not arg.startswith("--inferlab-ab="):
            out.append(arg)
    return tuple(out)
