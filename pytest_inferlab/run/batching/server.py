"""The ``server`` batching engine: the server batches (vLLM and ``transformers serve
--continuous-batching`` continuously); the lab only sends, through the load generator
(pytest_inferlab/loadgen/): one process's event loop, or worker processes sharing the round.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from pytest_inferlab.device import Device
from pytest_inferlab.ground.trace import Request, RoundTrace
from pytest_inferlab.loadgen.rounds import serve_one_process
from pytest_inferlab.specs.batching import BatchingSpec
from pytest_inferlab.specs.core import SamplingSpec
from pytest_inferlab.specs.load import LoadSpec


@dataclass(frozen=True, slots=True)
class ServerBatcher:
    def lossless_claim(self, spec: BatchingSpec) -> str | None:
        return None  # the server's batching is the server's; its tokens come back as text

    def unsupported(self, device: Device) -> str | None:
        return None

    def serve(self, engine: Any, requests: Sequence[Request], load: LoadSpec, sampling: SamplingSpec,
              spec: BatchingSpec, budget_s: float) -> RoundTrace:
        target = engine.load_target()  # raises EngineCapabilityError for in-process engines, naming what to use
        prepared = target.prepare(requests, sampling)
        pool = target.load_processes()
        if pool is None or (load.stages and not load.open_loop):  # a staged closed loop: one process counts its clients
            return serve_one_process(target, prepared, load, budget_s)
        return pool.serve(target, prepared, load, budget_s)


SERVER = ServerBatcher()
