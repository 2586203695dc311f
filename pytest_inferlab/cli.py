"""The ``inferlab`` command: work on records made earlier (no suites are re-run)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pytest_inferlab.record.baselines import BaselineError, BaselineStore, save_valid
from pytest_inferlab.ground.jsonio import remove_stale_temps
from pytest_inferlab.record.record import RecordError, read_record, record_files


def save_baselines(run_dir: Path, baselines: Path) -> int:
    """Append the valid records of a run folder to the baselines (e.g. after the gate passed on main):
    everything read and checked first, then all written or none; a run saved before is not appended again."""
    remove_stale_temps(run_dir, recursive=False)
    remove_stale_temps(baselines)
    paths = record_files(run_dir)
    if not paths:
        print(f"inferlab: no records in {run_dir} (expected .inferlab/runs/<run id>/*.json)", file=sys.stderr)
        return 2
    try:
        records = [read_record(path) for path in paths]
        report = save_valid(BaselineStore(baselines), records)
    except (RecordError, BaselineError) as exc:
        print(f"inferlab: {exc}; nothing was saved", file=sys.stderr)
        return 2
    print("\n".join(report.lines()))
    return 0


def asv_export(results_dir: Path, asv_results: Path | None, include_dirty: bool) -> int:
    """Write asv results for every record under ``results_dir`` (runs made earlier)."""
    from pytest_inferlab.outputs.asv_export import export, find_records

    if not results_dir.is_dir():
        print(f"inferlab: {results_dir} is not a folder (expected .inferlab, .inferlab/runs or a run folder)",
              file=sys.stderr)
        return 2
    paths = find_records(results_dir)
    if not paths:
        print(f"inferlab: no records under {results_dir}", file=sys.stderr)
        return 2
    target = asv_results or asv_results_dir(Path("asv.conf.json"))
    try:
        summary = export(paths, target, include_dirty, warn=lambda text: print(f"warning: {text}", file=sys.stderr))
    except ValueError as exc:
        print(f"inferlab: {exc}", file=sys.stderr)
        return 2
    print(f"{summary.line()} -> {target}")
    from pytest_inferlab.outputs.asv_changes import change_point_lines

    print("\n".join(change_point_lines(target)))
    return 0 if summary.points else 1


def asv_results_dir(conf: Path) -> Path:
    """``results_dir`` of an asv.conf.json (asv's own JSON-with-comments reader), else .asv/results."""
    if not conf.exists():
        return Path(".asv/results")
    from asv import util

    data = util.load_json(str(conf), js_comments=True)
    return conf.parent / data.get("results_dir", "results")


def asv_offline(html_dir: Path, node_modules: Path) -> int:
    """Point a published asv site at local copies of its JavaScript libraries."""
    from pytest_inferlab.outputs.asv_offline import OfflineError, vendor_site

    try:
        vendored = vendor_site(html_dir, node_modules)
    except OfflineError as exc:
        print(f"inferlab: {exc}", file=sys.stderr)
        return 2
    for item in vendored:
        print(f"{item.local}{'' if item.integrity_kept else '  (another build than the CDN: no integrity hash)'}")
    print(f"asv site {html_dir}: {len(vendored)} libraries served locally")
    return 0


def merge_runs(run_dirs: list[Path], results: Path, run_id: str | None) -> int:
    """Merge shard runs (``--inferlab-shard=I/N``) into one run folder for asv-export and baselines."""
    from pytest_inferlab.ground.ids import new_run_id
    from pytest_inferlab.plugin.shard import MergeError, merge_runs as merge

    run_id = run_id or f"{new_run_id()}-merged"
    try:
        written = merge(run_dirs, results, run_id)
    except (MergeError, FileExistsError) as exc:
        print(f"inferlab: {exc}", file=sys.stderr)
        return 2
    print(f"merged {len(written)} records from {len(run_dirs)} runs into {results / 'runs' / run_id}")
    return 0


def ab(args: argparse.Namespace) -> int:
    """A/B of BASE against the working tree (pytest_inferlab/ab/run.py)."""
    from pytest_inferlab.ab.run import ABRequest, run_ab
    from pytest_inferlab.judge.policy import parse_tolerances

    try:
        tolerance = parse_tolerances(args.tolerance, "--tolerance") if args.tolerance else {}
    except ValueError as exc:
        print(f"inferlab: {exc}", file=sys.stderr)
        return 2
    return run_ab(ABRequest(args.base, tuple(args.pytest_args), Path.cwd(), args.results, args.base_python,
                            sys.executable, args.alpha, tolerance, args.timeout, args.rounds))


def changes(source: Path, records: bool, json_path: Path | None) -> int:
    """Change points over a baselines folder's histories (or over records of many runs)."""
    from pytest_inferlab.judge.changepoints import ChangePointsUnavailable, detect_all, summary_lines
    from pytest_inferlab.record.series import series_from_baselines, series_from_records

    if not source.is_dir():
        print(f"inferlab: {source} is not a folder (expected a baselines folder, or records with --records)",
              file=sys.stderr)
        return 2
    try:
        series = series_from_records(record_files(source, recursive=True)) if records else series_from_baselines(source)
        found = detect_all(series)
    except (BaselineError, RecordError, ChangePointsUnavailable) as exc:
        print(f"inferlab: {exc}", file=sys.stderr)
        return 2
    if not found:
        print(f"inferlab: no judged series under {source}", file=sys.stderr)
        return 2
    if json_path is not None and str(json_path) == "-":  # the JSON instead of the lines, as compare --json -
        import json

        print(json.dumps([c.to_json() for c in found], indent=1))
        return 0
    print("\n".join(summary_lines(found)))
    if json_path is not None:
        from pytest_inferlab.ground.jsonio import write_json_replace

        write_json_replace(json_path, [c.to_json() for c in found])
        print(f"written: {json_path}")
    return 0


def runs(results: Path) -> int:
    """The runs of a results folder, oldest first: id, start, status, records, exit status."""
    from pytest_inferlab.record.run_folder import list_runs

    found = list_runs(results)
    if not found:
        print(f"inferlab: no runs under {results} (expected .inferlab, made by a pytest run with the plugin)",
              file=sys.stderr)
        return 2
    width = max(len(run.folder.name) for run in found)
    print(f"{'run':<{width}}  {'started (UTC)':<25}  {'status':<11} {'records':>7}  exit")
    for run in found:
        print(f"{run.folder.name:<{width}}  {run.started_at:<25}  {run.status:<11} {run.records:>7}  "
              f"{'-' if run.exit_status is None else run.exit_status}")
    print(f"latest: {found[-1].folder}")
    return 0


def report(run_dir: Path) -> int:
    """Rebuild a run folder's report.html from its records."""
    from pytest_inferlab.outputs.html_report import write_report
    from pytest_inferlab.record.run_folder import RunFolderError

    try:
        path = write_report(run_dir)
    except RunFolderError as exc:
        print(f"inferlab: {exc}; nothing was written", file=sys.stderr)
        return 2
    print(f"written: {path}")
    return 0


def compare(run_a: Path, run_b: Path, alpha: float, tolerance_text: str, json_path: Path | None,
            show_all: bool) -> int:
    """Two runs case by case: B against A, the gate's statistics. Exit 1 when something regressed."""
    from pytest_inferlab.judge.compare import compare_runs, format_comparison, lockstep_pair
    from pytest_inferlab.judge.policy import parse_tolerances
    from pytest_inferlab.record.run_folder import RunFolderError, load_run

    try:
        tolerance = parse_tolerances(tolerance_text, "--tolerance") if tolerance_text else {}
        a, b = load_run(run_a), load_run(run_b)
    except (RunFolderError, ValueError) as exc:
        print(f"inferlab: {exc}; nothing was compared", file=sys.stderr)
        return 2
    result = compare_runs(a.records, b.records, alpha, tolerance, paired=lockstep_pair(a.manifest, b.manifest))
    if json_path is not None:
        import json

        payload = {"run_a": str(run_a), "run_b": str(run_b), **result.to_json()}
        if str(json_path) == "-":
            print(json.dumps(payload, indent=1))
            return 1 if result.regressed else 0
        from pytest_inferlab.ground.jsonio import write_json_replace

        write_json_replace(json_path, payload)
    print("\n".join(format_comparison(result, str(run_a), str(run_b), show_all)))
    if json_path is not None:
        print(f"written: {json_path}")
    return 1 if result.regressed else 0


def tune(args: argparse.Namespace) -> int:
    """``inferlab tune STUDY.toml [-- pytest args]`` (pytest_inferlab/tune/)."""
    import dataclasses
    import json

    try:
        from pytest_inferlab.tune.space import SpaceError, load_space
    except ImportError as exc:  # optuna is the tune extra
        print(f"inferlab tune: {exc}; install the extra: pip install 'pytest-inferlab[tune]'", file=sys.stderr)
        return 2
    from pytest_inferlab.tune.run import run_tune, study_folder
    from pytest_inferlab.tune.study import TuneRequest

    try:
        space = load_space(args.study)
    except SpaceError as exc:
        print(f"inferlab tune: {exc}", file=sys.stderr)
        return 2
    if args.trials is not None:
        if args.trials < 1:
            print(f"inferlab tune: --trials {args.trials}: expected an integer >= 1", file=sys.stderr)
            return 2
        space = dataclasses.replace(space, trials=args.trials)
    request = TuneRequest(space, study_folder(args.results.resolve(), space, args.exhaustive), args.storage,
                          tuple(args.pytest_args), args.trial_timeout, args.exhaustive)
    quiet = args.json is not None and str(args.json) == "-"
    code, found = run_tune(request, confirm=not args.no_confirm,
                           say=(lambda text: print(text, file=sys.stderr)) if quiet else print)
    if found is not None and args.json is not None:
        text = json.dumps(found.to_dict(), indent=1)
        if quiet:
            print(text)
        else:
            from pytest_inferlab.ground.jsonio import write_text_replace

            write_text_replace(args.json, text + "\n")
    return code


def _probability(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text}: expected a probability between 0 and 1")
    return value


DEPRECATED_SAVE = "save-baselines"  # the old spelling of save-baseline: still works, with a warning


def build_parser() -> argparse.ArgumentParser:
    """Every command and its arguments (docs/reference/commands.md is generated from it)."""
    parser = argparse.ArgumentParser(prog="inferlab", description=__doc__)
    parser.add_argument("--version", action="version", version=f"pytest-inferlab {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("runs", help="the runs of a results folder: id, start, status, records, exit status",
                                  description="Lists the runs oldest first and names the latest; every command that "
                                  "takes a run folder also takes `latest` (the newest run of ./.inferlab) or "
                                  "RESULTS/latest.")
    listing.add_argument("results", type=Path, nargs="?", default=Path(".inferlab"),
                         help="results folder (default: .inferlab)")
    save = commands.add_parser("save-baseline", aliases=[DEPRECATED_SAVE], help="append a run's records to the "
                               "baselines (as --inferlab-save-baseline does at the end of a run)")
    save.add_argument("run_dir", type=Path, help="a run folder, .inferlab/runs/<run id>, or latest")
    save.add_argument("--baselines", type=Path, default=Path("baselines"), help="baselines folder (default: baselines)")
    asv = commands.add_parser("asv-export", help="write asv results from records made earlier (no re-run)")
    asv.add_argument("results_dir", type=Path, help="records: .inferlab, .inferlab/runs, one run folder or latest")
    asv.add_argument("--asv-results", type=Path, default=None,
                     help="asv results tree (default: results_dir of ./asv.conf.json, else .asv/results)")
    asv.add_argument("--include-dirty", action="store_true",
                     help="also export records made with uncommitted changes, attributed to their base commit")
    offline = commands.add_parser("asv-offline", help="make a published asv site work without internet")
    offline.add_argument("html_dir", type=Path, help="asv's html_dir, after `asv publish` (e.g. .asv/html)")
    offline.add_argument("--node-modules", type=Path, default=Path(".venv/node/node_modules"),
                         help="npm packages with the libraries (default: .venv/node/node_modules, see Makefile)")
    merge = commands.add_parser("merge-runs", help="merge the runs of --inferlab-shard=I/N into one run folder")
    merge.add_argument("run_dirs", type=Path, nargs="+", help="the shards' run folders, .inferlab/runs/<run id>")
    merge.add_argument("--results", type=Path, default=Path(".inferlab"), help="results folder (default: .inferlab)")
    merge.add_argument("--run-id", default=None, help="the merged run's id (default: a new one ending in -merged)")
    paired = commands.add_parser("ab", help="A/B: BASE and the working tree measured in lock-step, judged on paired rounds",
                                 description="Runs the selected suites for BASE (a git worktree, its own code "
                                 "imported first) and for the working tree, each in its own process, alternating "
                                 "round by round, and judges every timing metric on the paired per-round ratios. "
                                 "Exit 0: no regression; 1: a regression; 2: bad input or a side crashed.")
    paired.add_argument("base", help="the base revision: a branch, tag, HEAD~1 or commit; pytest's arguments follow "
                        "after --, e.g. inferlab ab main -- suites/test_latency.py --inferlab-rounds=10")
    paired.add_argument("--base-python", default=sys.executable,
                        help="the interpreter of the base side: another environment (default: this one)")
    paired.add_argument("--results", type=Path, default=Path(".inferlab"),
                        help="results folder; the A/B goes in RESULTS/ab/<id> (default: .inferlab)")
    paired.add_argument("--alpha", type=_probability, default=0.05,
                        help="false-alarm budget of the whole A/B, split over its series (default: 0.05)")
    paired.add_argument("--tolerance", default="", help="tolerances per metric, e.g. 'tpot_ms=0.03 ttft_ms=0.2'")
    paired.add_argument("--timeout", type=float, default=6 * 3600.0, help="seconds both sides may take (default: 6 h)")
    paired.add_argument("--rounds", type=int, default=16,
                        help="timed rounds (pairs) per case unless pytest's arguments set --inferlab-rounds (default: 16)")
    shifts = commands.add_parser("changes", help="change points in the history (E-Divisive means, Apache Otava)",
                                 description="Labels every judged series regression / suspicious / improvement / "
                                 "no change / insufficient data, with the commit where it changed.")
    shifts.add_argument("source", type=Path, nargs="?", default=Path("baselines"),
                        help="a baselines folder (default: baselines), or records with --records")
    shifts.add_argument("--records", action="store_true", help="SOURCE holds records (e.g. .inferlab/runs)")
    shifts.add_argument("--json", type=Path, default=None, help="also write every series' result to this file (- : "
                        "print the JSON instead of the lines)")
    page = commands.add_parser("report", help="rebuild a run folder's report.html from its records",
                               description="Writes RUN_DIR/report.html: one self-contained page (no network) with "
                               "the findings, the speed x memory x fidelity front, the latency-throughput curves, "
                               "the verdicts and the environment.")
    page.add_argument("run_dir", type=Path, help="a run folder, .inferlab/runs/<run id>, or latest")
    versus = commands.add_parser("compare", help="two runs case by case: ratio, interval and verdict per metric",
                                 description="Judges every metric of every case both runs measured, B against A, "
                                 "with the gate's statistics (paired rounds for the two sides of one A/B). "
                                 "Exit 0: no regression; 1: a regression; 2: bad input.")
    versus.add_argument("run_a", type=Path, help="the earlier run (the baseline side), a run folder")
    versus.add_argument("run_b", type=Path, help="the run judged against it, a run folder, or latest")
    versus.add_argument("--alpha", type=_probability, default=0.05,
                        help="false-alarm budget of the comparison, split over its timing series (default: 0.05)")
    versus.add_argument("--tolerance", default="", help="tolerances per metric, e.g. 'tpot_ms=0.03 ttft_ms=0.2'")
    versus.add_argument("--json", type=Path, default=None, help="also write every verdict to this file (- : print "
                        "the JSON instead of the table)")
    versus.add_argument("--all", action="store_true", help="list unchanged and new metrics too")
    _tune_parser(commands)
    return parser


def _tune_parser(commands: argparse._SubParsersAction) -> None:
    search = commands.add_parser("tune", help="search for the best configuration under SLOs and an accuracy floor",
                                 description="Searches the axes of a study file (TOML: docs/tune.md) with Optuna: "
                                 "every trial an ordinary lab case measured against the study's reference round by "
                                 "round, pruned early when clearly below the best so far; then the pick confirmed "
                                 "head to head against the runner-up. pytest's arguments (model, threads) follow "
                                 "after --. Exit 0: a pick; 1: nothing met the limits; 2: bad input.")
    search.add_argument("study", type=Path, help="the study file (TOML): axes, objective, SLOs, floors, budget")
    search.add_argument("--results", type=Path, default=Path(".inferlab"),
                        help="results folder; the study goes in RESULTS/tune/<name> (default: .inferlab)")
    search.add_argument("--storage", default=None, help="an Optuna storage URL shared by several machines "
                        "(postgresql://..., mysql://...); default: a journal file in the study's folder")
    search.add_argument("--trials", type=int, default=None, help="measured trials at most (default: the file's)")
    search.add_argument("--exhaustive", action="store_true",
                        help="measure every feasible configuration, each to precision (the search's yardstick)")
    search.add_argument("--no-confirm", action="store_true", help="skip the pick-vs-runner-up confirmation")
    search.add_argument("--trial-timeout", type=float, default=3600.0,
                        help="seconds one trial may take before its process is killed (default: 3600)")
    search.add_argument("--json", type=Path, default=None, help="also write the answer to this file (- : print the "
                        "JSON instead of the lines)")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    pytest_args = argv[argv.index("--") + 1:] if "--" in argv else []  # everything after -- is pytest's
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    args.pytest_args = pytest_args
    if args.command == DEPRECATED_SAVE:
        print(f"inferlab: '{DEPRECATED_SAVE}' is deprecated; it is 'save-baseline' now (as --inferlab-save-baseline)",
              file=sys.stderr)
    try:
        _resolve_runs(args)
    except ValueError as exc:  # RunFolderError: `latest` with no run
        print(f"inferlab: {exc}", file=sys.stderr)
        return 2
    if args.command == "runs":
        return runs(args.results)
    if args.command == "report":
        return report(args.run_dir)
    if args.command == "compare":
        return compare(args.run_a, args.run_b, args.alpha, args.tolerance, args.json, args.all)
    if args.command == "ab":
        return ab(args)
    if args.command == "tune":
        return tune(args)
    if args.command == "changes":
        return changes(args.source, args.records, args.json)
    if args.command == "merge-runs":
        return merge_runs(args.run_dirs, args.results, args.run_id)
    if args.command == "asv-offline":
        return asv_offline(args.html_dir, args.node_modules)
    if args.command == "asv-export":
        return asv_export(args.results_dir, args.asv_results, args.include_dirty)
    return save_baselines(args.run_dir, args.baselines)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pytest-inferlab")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _resolve_runs(args: argparse.Namespace) -> None:
    """``latest`` (or RESULTS/latest) in a run-folder argument: the newest run."""
    from pytest_inferlab.record.run_folder import resolve_run

    for name in ("run_dir", "run_a", "run_b", "results_dir"):
        if getattr(args, name, None) is not None:
            setattr(args, name, resolve_run(getattr(args, name)))
    if getattr(args, "run_dirs", None):
        args.run_dirs = [resolve_run(path) for path in args.run_dirs]


if __name__ == "__main__":
    sys.exit(main())
