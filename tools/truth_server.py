"""A deterministic OpenAI-compatible server whose timing is known: the truth the load client is
checked against (tests/unit/test_load_client_truth.py, tools/load_client_bench.py).

Every request waits for a slot (``--limit``: requests queue beyond it), then its first token is
ready ``--ttft-ms`` after it got the slot and each next one ``--gap-ms`` later, on an absolute
schedule (no drift). Tokens go out ``--per-chunk`` to a chunk, a chunk when its last token is
ready. Faults on purpose: ``--stall-ms`` before token ``--stall-at``, HTTP 500 once
``--fail-after`` requests were answered, a malformed SSE line or a dropped connection in every
``--fault-every``-th request. ``/metrics`` speaks vLLM's Prometheus names for running and waiting
requests. Run: ``python tools/truth_server.py --port 8123 --ttft-ms 150 --gap-ms 20 --tokens 32``;
it prints ``ready <url>`` when it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

FAULTS = ("none", "malformed", "drop")
TIMER_LATE_S = 0.0005


@dataclass(frozen=True, slots=True)
class TruthSpec:
    """How the server behaves; every field is a command-line option of the same name."""

    ttft_ms: float = 150.0
    gap_ms: float = 20.0
    tokens: int = 32
    per_chunk: int = 1
    usage: bool = True
    limit: int = 0  # requests served at once; 0: no limit
    stall_ms: float = 0.0
    stall_at: int = 0  # the token index (0-based) the stall comes before
    fail_after: int = 0  # answer HTTP 500 once this many requests were answered; 0: never
    fault: str = "none"
    fault_every: int = 0
    word: str = " hello"  # the text of one token
    prefix_cache: bool = False  # report usage.prompt_tokens_details.cached_tokens: the longest prefix (in
    # characters, one per prompt token here) the prompt shares with an earlier prompt

    def args(self) -> list[str]:
        out = []
        for f in fields(self):
            value = getattr(self, f.name)
            flag = "--" + f.name.replace("_", "-")
            out += [flag, str(int(value) if isinstance(value, bool) else value)]
        return out

    def chunk_times_s(self) -> list[float]:
        """When each chunk is due, seconds after the request got its slot."""
        times, t = [], self.ttft_ms / 1e3
        for index in range(self.tokens):
            if index and self.stall_ms and index == self.stall_at:
                t += self.stall_ms / 1e3
            if (index + 1) % self.per_chunk == 0 or index == self.tokens - 1:
                times.append(t)
            t += self.gap_ms / 1e3
        return times


class TruthServer:
    """The aiohttp application; state is the request counter and the running/waiting gauges."""

    def __init__(self, spec: TruthSpec) -> None:
        self.spec = spec
        self.answered = 0
        self.running = 0
        self.waiting = 0
        self.slots = asyncio.Semaphore(spec.limit) if spec.limit else None
        self.log: list[tuple[float, float, float, float, str]] = []  # (arrived, slot, first write, last write, prompt)
        self.prompts: list[str] = []  # every prompt seen (the prefix cache's memory)

    def app(self):
        from aiohttp import web

        app = web.Application()
        app.router.add_get("/health", lambda _: web.Response(text="ok"))
        app.router.add_get("/v1/models", lambda _: web.json_response({"object": "list", "data": [{"id": "truth"}]}))
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/stats", self.stats)
        app.router.add_post("/v1/completions", self.complete)
        app.router.add_post("/v1/chat/completions", self.complete)
        return app

    async def metrics(self, _request):
        from aiohttp import web

        text = ("# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
                "# TYPE vllm:num_requests_running gauge\n"
                f'vllm:num_requests_running{{model_name="truth"}} {float(self.running)}\n'
                "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n"
                "# TYPE vllm:num_requests_waiting gauge\n"
                f'vllm:num_requests_waiting{{model_name="truth"}} {float(self.waiting)}\n')
        return web.Response(text=text, content_type="text/plain")

    async def stats(self, request):
        """The server's own view of the requests since the last reset (``?reset=1``): when each
        arrived, got its slot, and wrote its first and last chunk (``perf_counter``, this machine)."""
        from aiohttp import web

        log, rows = self.log, [dict(zip(("arrived", "slot", "first", "last", "prompt"), row)) for row in self.log]
        if request.query.get("reset"):
            self.log = []
        return web.json_response({"requests": len(log), "rows": rows})

    async def complete(self, request):
        from aiohttp import web

        arrived = time.perf_counter()
        body = await request.json()
        chat = request.path.endswith("/chat/completions")
        self.answered += 1
        number = self.answered
        if self.spec.fail_after and number > self.spec.fail_after:
            return web.json_response({"error": {"message": "planted failure"}}, status=500)
        self.waiting += 1
        if self.slots is not None:
            await self.slots.acquire()
        self.waiting -= 1
        self.running += 1
        try:
            return await self.stream(request, body, chat, number, arrived)
        except ConnectionResetError:  # the client went away (a timeout, a cancelled round): not an error here
            return web.Response(status=499)
        finally:
            self.running -= 1
            if self.slots is not None:
                self.slots.release()

    async def stream(self, request, body, chat, number, arrived):
        from aiohttp import web

        start = first = time.perf_counter()
        faulty = self.spec.fault != "none" and self.spec.fault_every and number % self.spec.fault_every == 0
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        sent = 0
        times = self.spec.chunk_times_s()
        for position, due in enumerate(times):
            # asyncio's timers fire up to 1 ms late (epoll's timeout is rounded up to a millisecond):
            # aim half a millisecond early to centre that error on the schedule
            delay = start + due - TIMER_LATE_S - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            count = min(self.spec.per_chunk, self.spec.tokens - sent)
            sent += count
            if faulty and position == len(times) // 2:
                if self.spec.fault == "drop":
                    request.transport.close()  # mid-stream, without the chunked terminator
                    return response
                await response.write(b"data: {this is not json\n\n")
            text = self.spec.word * count
            choice = ({"index": 0, "delta": {"content": text}, "finish_reason": None} if chat
                      else {"index": 0, "text": text, "finish_reason": None})
            await response.write(b"data: " + json.dumps({"object": "chunk", "choices": [choice]}).encode() + b"\n\n")
            if position == 0:
                first = time.perf_counter()
        wants_usage = (body.get("stream_options") or {}).get("include_usage")
        prompt = prompt_text(body)
        if self.spec.usage and wants_usage:
            usage = {"prompt_tokens": len(prompt), "completion_tokens": sent, "total_tokens": sent + len(prompt)}
            if self.spec.prefix_cache:
                usage["prompt_tokens_details"] = {"cached_tokens": max(
                    (len(os.path.commonprefix([prompt, seen])) for seen in self.prompts), default=0)}
            await response.write(b"data: " + json.dumps({"choices": [], "usage": usage}).encode() + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        self.prompts.append(prompt)
        self.log.append((arrived, start, first, time.perf_counter(), prompt))
        await response.write_eof()
        return response


def prompt_text(body: dict) -> str:
    """A completions prompt, or a chat's messages joined as one text (role markers left out)."""
    if "messages" in body:
        return "".join(str(m.get("content", "")) for m in body["messages"])
    return str(body.get("prompt", ""))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RunningTruthServer:
    """The server in its own process (its timing is not disturbed by the client's loop)."""

    def __init__(self, spec: TruthSpec, port: int | None = None) -> None:
        self.spec = spec
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[str] | None = None

    def stats(self, reset: bool = False) -> dict:
        """The server's ``/stats``: its own log of the requests since the last reset."""
        import httpx

        return httpx.get(self.url + "/stats", params={"reset": 1} if reset else {}, timeout=30).json()

    def __enter__(self) -> "RunningTruthServer":
        self.process = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--port", str(self.port),
                                         *self.spec.args()], stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline() if self.process.stdout else ""
        if not line.startswith("ready"):
            self.__exit__()
            raise RuntimeError(f"the truth server did not start (said {line!r})")
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def main(argv: list[str] | None = None) -> None:
    from aiohttp import web

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    for f in fields(TruthSpec):
        kind = f.type if f.type in ("int", "float", "str") else "int" if f.type == "bool" else "str"
        parser.add_argument("--" + f.name.replace("_", "-"), type={"int": int, "float": float, "str": str}[kind],
                            default=int(f.default) if f.type == "bool" else f.default)
    options = vars(parser.parse_args(argv))
    port = options.pop("port")
    spec = TruthSpec(**{k: bool(v) if TruthSpec.__dataclass_fields__[k].type == "bool" else v
                        for k, v in options.items()})
    if spec.fault not in FAULTS:
        parser.error(f"--fault {spec.fault!r}: expected one of {', '.join(FAULTS)}")

    async def serve() -> None:
        runner = web.AppRunner(TruthServer(spec).app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
        print(f"ready http://127.0.0.1:{port} {json.dumps(asdict(spec))}", flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
