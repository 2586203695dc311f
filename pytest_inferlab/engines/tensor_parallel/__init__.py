"""Tensor parallelism on CPU: the model split over N processes (torch.distributed, gloo) through
transformers' tensor-parallel plan, driven as one engine.

``torchrun`` starts the ranks (engines/tensor_parallel/worker.py); rank 0 takes commands over a loopback socket.
Timestamps are ``perf_counter`` (CLOCK_MONOTONIC) in rank 0, the parent's clock on Linux. Each
generate call also returns every rank's peak RSS. On GPU the same layout runs in vLLM
(``vllm_model``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any, Sequence

from pytest_inferlab.engines.base import Engine, EngineInfo
from pytest_inferlab.engines.local_server import free_port
from pytest_inferlab.specs.core import SamplingSpec
from pytest_inferlab.ground.trace import Request, RequestTrace

READY_TIMEOUT_S = 180.0


def tp_unsupported_reason(config: Any, world: int) -> str | None:
    """Why the model cannot be split ``world`` ways (heads and MLP must divide evenly), or None."""
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    checks = {"attention heads": heads, "key-value heads": kv_heads, "MLP width": config.intermediate_size}
    uneven = [f"{name} {value}" for name, value in checks.items() if value % world]
    if uneven:
        return (f"tensor parallel over {world} processes needs {', '.join(checks)} divisible by {world}; "
                f"this model has {', '.join(uneven)}")
    return None


class TensorParallelEngine(Engine):
    """``Engine`` over a CPU tensor-parallel process group; ``close()`` ends it."""

    def __init__(self, folder: str, info: EngineInfo, world: int, encode: Any, threads: int = 1) -> None:
        self.info = info
        self._encode = encode  # the session model's tokenization: the same requests as the unsplit model
        self.world = world
        self.port = free_port()
        self._rank_peaks: list[int] = []
        self._log = open(os.path.join(folder, f"tp-{self.port}.log"), "wb")
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(threads)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={world}", "--master-port",
             str(free_port()), "-m", "pytest_inferlab.engines.tensor_parallel.worker", folder, str(self.port), str(threads)],
            stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self._connect()

    def _connect(self) -> None:
        until = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < until:
            if self.process.poll() is not None:
                raise RuntimeError(f"the tensor-parallel group exited with code {self.process.returncode} before it "
                                   f"was ready; its log: {self._log.name}")
            try:
                self._socket = socket.create_connection(("127.0.0.1", self.port), timeout=2)
                self._socket.settimeout(None)
                self._reader, self._writer = self._socket.makefile("r"), self._socket.makefile("w")
                return
            except OSError:
                time.sleep(0.5)
        self.close()
        raise RuntimeError(f"the tensor-parallel group did not answer within {READY_TIMEOUT_S:.0f} s; log: {self._log.name}")

    def generate(self, batch: Sequence[Request], sampling: SamplingSpec) -> list[RequestTrace]:
        command = {"requests": [{"index": r.index, "prompt_ids": list(r.prompt_ids), "max_new_tokens": r.max_new_tokens,
                                 "ignore_eos": r.ignore_eos} for r in batch],
                   "sampling": {"temperature": sampling.temperature, "top_p": sampling.top_p, "seed": sampling.seed}}
        t_send = time.perf_counter()
        try:
            self._writer.write(json.dumps(command) + "\n")
            self._writer.flush()
            line = self._reader.readline()
            if not line:
                raise ConnectionError(f"the tensor-parallel group closed the connection (exit code "
                                      f"{self.process.poll()}; log {self._log.name})")
            reply = json.loads(line)
        except (OSError, ValueError) as exc:
            return [RequestTrace.failed(r, t_send, f"{type(exc).__name__}: {exc}") for r in batch]
        self._rank_peaks = list(reply["peak_rss_bytes"])
        return [RequestTrace(t["index"], t["t_send"], tuple(t["chunk_times"]), tuple(t["chunk_tokens"]),
                             t["input_tokens"], tuple(t["output_ids"]), t["ok"], t["error"]) for t in reply["traces"]]

    def encode(self, text: str, chat: bool) -> list[int]:
        return self._encode(text, chat)

    def rank_peaks(self) -> list[int]:
        return self._rank_peaks

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self._writer.write('{"stop": true}\n')
                self._writer.flush()
                self.process.wait(20)
            except (AttributeError, OSError, subprocess.TimeoutExpired):
                os.killpg(os.getpgid(self.process.pid), signal.SIGKILL)
                self.process.wait(10)
        self._log.close()
