"""The ``inferlab`` command: work on records made earlier (no suites are re-run)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .baselines import BaselineError, BaselineStore
from .record import RecordError, load_record


def save_baselines(run_dir: Path, baselines: Path) -> int:
    """Append every record of a run folder to the baselines (e.g. after the gate passed on main)."""
    paths = sorted(run_dir.glob("*.json"))
    if not paths:
        print(f"inferlab: no records in {run_dir} (expected .inferlab/runs/<run id>/*.json)", file=sys.stderr)
        return 2
    store = BaselineStore(baselines)
    try:
        records = [load_record(path) for path in paths]  # all readable before anything is written
        for record in records:
            print(store.save(record))
    except (RecordError, BaselineError) as exc:
        print(f"inferlab: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="inferlab", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    save = commands.add_parser("save-baselines", help="append a run's records to the baselines")
    save.add_argument("run_dir", type=Path, help="a run folder, .inferlab/runs/<run id>")
    save.add_argument("--baselines", type=Path, default=Path("baselines"), help="baselines folder (default: baselines)")
    args = parser.parse_args(argv)
    return save_baselines(args.run_dir, args.baselines)


if __name__ == "__main__":
    sys.exit(main())
