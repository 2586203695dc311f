"""One side of an A/B run (``inferlab ab``): this pytest process takes its turns from the coordinator
(run/lockstep.py) before every case, every round and after every case."""

from __future__ import annotations

import os
from typing import Callable, Generator

import pytest

from pytest_inferlab.run.lockstep import TurnClient
from pytest_inferlab.ground.processes import MEASURED_PIDS


class LockstepSide:
    """Registered by ``plugin.pytest_configure`` when --inferlab-ab-turns is given."""

    def __init__(self, client: TurnClient) -> None:
        self.client = client

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, object, object]:
        self.client.wait("begin", item.nodeid)
        MEASURED_PIDS.update(partner_pids())
        try:
            return (yield)
        finally:
            self.client.wait("end", item.nodeid)

    def round_turn(self, nodeid: str) -> Callable[[int], None]:
        """What the case's round driver calls before round ``i`` (warm-up rounds included)."""
        return lambda index: self.client.wait("round", nodeid, index)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.client.close()


def partner_pids() -> list[int]:
    """The other side (and whatever else the coordinator started): the coordinator's other children. It
    runs only while this side waits for its turn, so its CPU is the A/B's own, not interference."""
    import psutil

    try:
        return [child.pid for child in psutil.Process(os.getppid()).children() if child.pid != os.getpid()]
    except psutil.Error:
        return []
