"""How hard the lab's load client can drive a server of known timing, and how exactly it measures it.

Starts tools/truth_server.py (by default TTFT 150 ms, 20 ms between tokens, 32 tokens, no limit on
concurrency) on 127.0.0.1 and runs closed loops at each concurrency through the ``server`` batching
engine, as a suite case would. Prints, per concurrency: TTFT p50 against the server's own, TPOT
p50 against the gap, request rate against the ideal (concurrency / end-to-end time), the client's
own lag, failures. Run: ``.venv/bin/python tools/load_client_bench.py --concurrency 1 16 64 256``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import statistics
import time
from types import SimpleNamespace

from truth_server import RunningTruthServer, TruthSpec

from pytest_inferlab.engines.openai_engine import OpenAIServerEngine
from pytest_inferlab.engines.sources import load_tokenizer, resolve_model
from pytest_inferlab.measure.metrics import measure
from pytest_inferlab.run.batching import serve_round
from pytest_inferlab.ground.trace import Request
from pytest_inferlab.specs.batching import BatchingSpec
from pytest_inferlab.specs.core import SamplingSpec
from pytest_inferlab.specs.load import LoadSpec


def server_view(url: str) -> dict:
    """The truth server's own medians since the last call: TTFT and end-to-end as it wrote them."""
    import httpx

    rows = httpx.get(url + "/stats", params={"reset": 1}, timeout=30).json()["rows"]
    if not rows:
        return {"server_own_ttft_p50_ms": None, "server_own_e2e_p50_ms": None}
    return {"server_own_ttft_p50_ms": statistics.median(r["first"] - r["arrived"] for r in rows) * 1e3,
            "server_own_e2e_p50_ms": statistics.median(r["last"] - r["arrived"] for r in rows) * 1e3}


def measure_concurrency(engine: OpenAIServerEngine, spec: TruthSpec, concurrency: int, waves: int) -> dict:
    server_view(engine.base_url)  # reset
    requests = [Request(i, tuple(range(1, 41)), spec.tokens) for i in range(concurrency * waves)]
    trace = serve_round(engine, requests, BatchingSpec("server"), LoadSpec.closed(concurrency), SamplingSpec(), 300)
    measured, _ = measure([trace])
    e2e_s = (spec.chunk_times_s()[-1])
    lags = sorted(trace.arrival_lags_s)
    return {"concurrency": concurrency, "requests": len(requests),
            "ttft_p50_ms": measured["ttft_ms"].p50 if "ttft_ms" in measured else None,
            "server_ttft_ms": spec.ttft_ms + (spec.per_chunk - 1) * spec.gap_ms,
            "tpot_p50_ms": measured["tpot_ms"].p50 if "tpot_ms" in measured else None,
            "e2e_p50_ms": measured["e2e_ms"].p50 if "e2e_ms" in measured else None,
            "req_per_s": measured["req_per_s"].value if "req_per_s" in measured else 0.0,
            "ideal_req_per_s": concurrency / e2e_s,
            "client_lag_p50_ms": statistics.median(lags) * 1e3 if lags else None,
            "client_lag_max_ms": lags[-1] * 1e3 if lags else None,
            "failed": int(measured["failed_requests"].value) if "failed_requests" in measured else len(requests),
            "output_tokens_per_request": statistics.median(r.output_tokens for r in trace.requests if r.ok)
            if any(r.ok for r in trace.requests) else None, **server_view(engine.base_url)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64, 256])
    parser.add_argument("--waves", type=int, default=4, help="requests per client")
    parser.add_argument("--ttft-ms", type=float, default=150.0)
    parser.add_argument("--gap-ms", type=float, default=20.0)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--processes", type=int, default=1, help="load-generator processes sharing each round")
    parser.add_argument("--url", help="a truth server already running (started with the same timing); "
                        "default: start one")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    spec = TruthSpec(ttft_ms=args.ttft_ms, gap_ms=args.gap_ms, tokens=args.tokens)
    tokenizer = load_tokenizer(resolve_model("dummy:tiny"))
    rows = []
    with contextlib.nullcontext(SimpleNamespace(url=args.url)) if args.url else RunningTruthServer(spec) as server:
        engine = OpenAIServerEngine(server.url, "truth", resolve_model("dummy:tiny"), tokenizer,
                                    processes=args.processes)
        for concurrency in args.concurrency:
            time.sleep(0.5)
            rows.append(measure_concurrency(engine, dataclasses.replace(spec), concurrency, args.waves))
            row = rows[-1]
            print(f"concurrency {row['concurrency']:>4} ({args.processes} process{'es' * (args.processes > 1)}): TTFT p50 {row['ttft_p50_ms']:.1f} ms (configured "
                  f"{row['server_ttft_ms']:.0f}, the server's own {row['server_own_ttft_p50_ms']:.1f}), TPOT p50 {row['tpot_p50_ms']:.2f} ms (gap {spec.gap_ms:g}), "
                  f"{row['req_per_s']:.1f} req/s of {row['ideal_req_per_s']:.1f} ideal "
                  f"({row['req_per_s'] / row['ideal_req_per_s']:.0%}), client lag p50 {row['client_lag_p50_ms']:.2f} "
                  f"max {row['client_lag_max_ms']:.1f} ms, {row['output_tokens_per_request']} tokens/request, "
                  f"{row['failed']} failed", flush=True)
        engine.close()
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(rows, out, indent=1)


if __name__ == "__main__":
    main()
