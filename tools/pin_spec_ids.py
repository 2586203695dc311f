"""Write tests/golden/suite_spec_ids.json from a full ``make lab`` run folder.

``python tools/pin_spec_ids.py .inferlab/runs/<run id>``: only for a deliberate change of a spec
(every saved baseline of a changed case is orphaned; say so in the change).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "golden" / "suite_spec_ids.json"


def main(run_folder: str) -> None:
    cases = {}
    for path in sorted(Path(run_folder).glob("*.json")):
        record = json.loads(path.read_text())
        if "spec_id" in record:
            cases[record["test_id"]] = {"spec_id": record["spec_id"], "spec": record["spec"]}
    golden = json.loads(GOLDEN.read_text())
    golden["cases"] = dict(sorted(cases.items()))
    GOLDEN.write_text(json.dumps(golden, indent=1) + "\n")
    print(f"{len(cases)} cases -> {GOLDEN}")


if __name__ == "__main__":
    main(*sys.argv[1:])
