"""Processes that are part of what is measured (a local server, tensor-parallel ranks, the other side of
a lock-step A/B): the interference probe counts their CPU as the case's own, not as other load. Those
that start such a process add its pid; the probe (run/probes/interference.py) reads the set."""

from __future__ import annotations

MEASURED_PIDS: set[int] = set()
