"""How the measuring process stood when a case began: what ran in it before and what it has loaded.

A case's figures can depend on its process's past (an in-process GPTQ build once slowed every later
case 1.7x; lm-eval's import adds ~200 MB of RSS for good). Builds and one-off preparation run in
child processes (ground/child.py), so what is left is said here, in the record's
``conditions.process``: the cases measured before in this process, the heavy libraries already
imported, the preparation that could only run here, and the RSS the case started from.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any, Sequence

# Libraries whose import or threads change a process for the rest of its life (RSS, thread pools)
HEAVY_LIBRARIES = ("gptqmodel", "llama_cpp", "torchao", "lm_eval", "vllm", "optimum.quanto", "bitsandbytes", "hqq")


def rss_bytes() -> int | None:
    try:
        found = re.search(r"^VmRSS:\s+(\d+)\s+kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(found.group(1)) * 1024 if found else None


def process_conditions(cases_before: int, fresh: bool, in_process: Sequence[str]) -> dict[str, Any]:
    """``conditions.process`` of a case about to run."""
    return {"pid": os.getpid(), "fresh": fresh, "cases_before": cases_before,
            "libraries": [name for name in HEAVY_LIBRARIES if name in sys.modules],
            "preparation_in_process": list(in_process), "rss_before_bytes": rss_bytes()}
