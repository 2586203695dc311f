"""One rank of a CPU tensor-parallel group (started by ``torchrun``; see engines/tensor_parallel/__init__.py).

Every rank loads the model with transformers' tensor-parallel plan over gloo. Rank 0 listens on
127.0.0.1 for JSON lines ``{"requests": [...], "sampling": {...}}``, hands each command to all
ranks, and answers with the traces (``perf_counter`` timestamps: CLOCK_MONOTONIC, the same clock
as the parent's on Linux) and every rank's peak RSS. ``{"stop": true}`` ends the group.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import sys
import time


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> int:
    import torch
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from transformers import AutoModelForCausalLM

    from pytest_inferlab.engines.transformers_engine import TransformersEngine
    from pytest_inferlab.engines import EngineInfo
    from pytest_inferlab.device import CPU
    from pytest_inferlab.engines.sources import load_tokenizer
    from pytest_inferlab.specs.core import ModelSpec, SamplingSpec
    from pytest_inferlab.ground.trace import Request

    folder, port, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(threads)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    mesh = init_device_mesh("cpu", (world,))
    model = AutoModelForCausalLM.from_pretrained(folder, tp_plan="auto", device_mesh=mesh, dtype=torch.float32)
    spec = ModelSpec(folder, "folder", folder)
    tokenizer = load_tokenizer(spec)  # left padding and a pad token, as every engine's
    info = EngineInfo("transformers-tp", spec, CPU, "float32", 0, 0, model.config.vocab_size)
    engine = TransformersEngine(model, tokenizer, info)
    connection = None
    if rank == 0:
        listener = socket.create_server(("127.0.0.1", port))
        connection = listener.accept()[0]
        reader, writer = connection.makefile("r"), connection.makefile("w")
    while True:
        command = [json.loads(reader.readline() or '{"stop": true}')] if rank == 0 else [None]
        dist.broadcast_object_list(command, src=0)
        if command[0].get("stop"):
            break
        requests = [Request(r["index"], tuple(r["prompt_ids"]), r["max_new_tokens"], r["ignore_eos"])
                    for r in command[0]["requests"]]
        sampling = SamplingSpec(**command[0]["sampling"])
        traces = engine.generate(requests, sampling)
        peaks = [None] * world
        dist.all_gather_object(peaks, peak_rss_bytes())
        if rank == 0:
            writer.write(json.dumps({"traces": [trace_json(t) for t in traces], "peak_rss_bytes": peaks,
                                     "t_reply": time.perf_counter()}) + "\n")
            writer.flush()
    dist.destroy_process_group()
    if connection is not None:
        connection.close()
    return 0


def trace_json(trace) -> dict:
    return {"index": trace.index, "t_send": trace.t_send, "chunk_times": list(trace.chunk_times),
            "chunk_tokens": list(trace.chunk_tokens), "input_tokens": trace.input_tokens,
            "output_ids": list(trace.output_ids), "ok": trace.ok, "error": trace.error}


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
