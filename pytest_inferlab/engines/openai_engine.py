"""Any OpenAI-compatible server (vLLM's, ``transformers serve``, llama.cpp's, ...) as an engine.

Requests stream ``/v1/completions`` (default) or ``/v1/chat/completions`` from one event loop
(loadgen/client.py); TTFT is taken at the first chunk with content and every content chunk
is a delivery with its timestamp. Output tokens: the server's ``usage`` (asked for with
``stream_options``) wins, else one per chunk, else re-tokenized (loadgen/sse.py); which source
was used is counted. HTTP errors, timeouts, broken connections, malformed or truncated streams are
failed requests with their reason (data, not exceptions), counted by kind.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from typing import Any, Callable, Sequence

from pytest_inferlab.device import Device
from pytest_inferlab.specs.core import ModelSpec, SamplingSpec
from pytest_inferlab.ground.trace import Request, RequestTrace
from pytest_inferlab.engines.base import Engine, EngineInfo, encode_prompt
from pytest_inferlab.loadgen.client import OpenAIClient, Outcome, Prepared, ServerQuirks
from pytest_inferlab.loadgen.processes import LoadProcesses
from pytest_inferlab.loadgen.rounds import serve_one_process
from pytest_inferlab.loadgen.sse import count_tokens
from pytest_inferlab.specs.load import LoadSpec

APIS = ("completions", "chat")
EXTENSIONS = ("ignore_eos", "min_tokens")  # vLLM's request fields a strict server refuses


class ServerUnreachable(ConnectionError):
    """The server cannot be reached at all; raised before any case runs."""


def probe(base_url: str, timeout_s: float = 5.0) -> list[str]:
    """The models the server lists at ``/v1/models``; ServerUnreachable naming the URL if none answers."""
    import httpx

    try:
        response = httpx.get(f"{base_url.rstrip('/')}/v1/models", timeout=timeout_s)
        response.raise_for_status()
        return [m.get("id") for m in response.json().get("data", [])]
    except (httpx.HTTPError, ValueError) as exc:
        raise ServerUnreachable(f"{base_url}: no OpenAI-compatible server answers at /v1/models "
                                f"({type(exc).__name__}: {exc})") from None


def json_poster(base_url: str, timeout_s: float = 10.0) -> Callable[[str, dict[str, Any]], tuple[int, Any]]:
    """``post(path, body) -> (status, JSON or None)`` against ``base_url``; status 0 when nothing answered."""
    import httpx

    def post(path: str, body: dict[str, Any]) -> tuple[int, Any]:
        try:
            response = httpx.post(f"{base_url.rstrip('/')}{path}", json=body, timeout=timeout_s)
        except httpx.HTTPError:
            return 0, None
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, None

    return post


def cached_share(result: Any, prompt_tokens: int) -> int | None:
    """The server's cached prompt tokens in this prompt's token count: its cached share of the prompt
    as it counted it (its tokenizer may split the text a little differently from ours)."""
    if result.cached_tokens is None:
        return None
    if not result.prompt_tokens:
        return min(result.cached_tokens, prompt_tokens)
    return round(prompt_tokens * min(1.0, result.cached_tokens / result.prompt_tokens))


class OpenAIServerEngine(Engine):
    """Streams requests to ``base_url`` from one event loop (loadgen/client.py); it is its own
    load target for the ``server`` batching engine, and ``generate`` sends a batch at once."""

    counters_key = "server"  # the record's conditions key: token sources, failures by kind

    def __init__(self, base_url: str, served_model: str, spec: ModelSpec, tokenizer: Any, *,
                 api: str = "completions", timeout_s: float = 120.0, processes: int = 1,
                 server_facts: dict[str, Any] | None = None, tokenizer_facts: dict[str, Any] | None = None) -> None:
        if api not in APIS:
            raise ValueError(f"api={api!r}: expected one of {', '.join(APIS)}")
        if not isinstance(processes, int) or processes < 1:
            raise ValueError(f"processes={processes!r}: the load client needs at least 1 process")
        self.processes = processes
        self._pool: LoadProcesses | None = None  # started on first use
        self.base_url = base_url.rstrip("/")
        self.served_model = served_model
        self.tokenizer = tokenizer
        self.api = api
        self.timeout_s = timeout_s
        self.stats: Counter[str] = Counter()  # token sources, failures by kind (counters())
        self.quirks = ServerQuirks()  # learned once: a strict server refuses vLLM's extensions
        self.info = EngineInfo(engine="openai-server", model=spec, device=Device("cpu"), dtype="server",
                               parameters=0, model_bytes=0, vocab_size=len(tokenizer),
                               facts={"base_url": self.base_url, "served_model": served_model, "api": api,
                                      "local_server": server_facts,
                                      **({"tokenizer": tokenizer_facts} if tokenizer_facts else {})})

    @property
    def extensions(self) -> bool:
        """Whether requests carry vLLM's ``ignore_eos``/``min_tokens`` (until the server refuses them)."""
        return self.quirks.extensions

    def load_target(self) -> "OpenAIServerEngine":
        return self

    def load_processes(self) -> LoadProcesses | None:
        """None: one process sends everything; else the worker processes that share each round."""
        if self.processes == 1:
            return None
        if self._pool is None:
            self._pool = LoadProcesses(self.processes)
        return self._pool

    def learned(self, quirks: ServerQuirks | None) -> None:
        """What a client (perhaps in another process) learned about the server."""
        if quirks is not None:
            self.quirks.extensions = self.quirks.extensions and quirks.extensions
            self.quirks.refused += quirks.refused

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def counters(self) -> dict[str, float]:
        return {**self.stats, "extensions_refused": self.quirks.refused} if self.quirks.refused else dict(self.stats)

    def encode(self, text: str, chat: bool) -> list[int]:
        """Completions: the prompt as the in-process engine would see it (chat template applied);
        chat: the raw text (the server applies its own template)."""
        return encode_prompt(self.tokenizer, text, chat and self.api == "completions", special_tokens=False)

    def body(self, request: Request, sampling: SamplingSpec) -> dict[str, Any]:
        text = self.tokenizer.decode(list(request.prompt_ids), skip_special_tokens=False)
        body: dict[str, Any] = {"model": self.served_model, "max_tokens": request.max_new_tokens, "stream": True,
                                "stream_options": {"include_usage": True},
                                "temperature": sampling.temperature, "top_p": sampling.top_p, "seed": sampling.seed}
        if request.ignore_eos:  # vLLM's extensions: exactly max_tokens tokens
            body.update(ignore_eos=True, min_tokens=request.max_new_tokens)
        if self.api == "chat":
            body["messages"] = [{"role": "user", "content": text}]
        else:
            body["prompt"] = text
        return body

    # ---- the load target: prepare (off the clock), client (the loop), finish (off the clock) ----
    def prepare(self, requests: Sequence[Request], sampling: SamplingSpec) -> list[Prepared]:
        """Each body serialized twice: as sent, and without vLLM's extensions for a strict server."""
        prepared = []
        for request in requests:
            body = self.body(request, sampling)
            plain = {k: v for k, v in body.items() if k not in EXTENSIONS}
            later = tuple(self.tokenizer.decode(list(ids), skip_special_tokens=False)
                          for ids in (request.later.user_ids if request.later else ()))
            prepared.append(Prepared(request, json.dumps(body).encode(), json.dumps(plain).encode(), later))
        return prepared

    def client(self) -> OpenAIClient:
        path = "/v1/chat/completions" if self.api == "chat" else "/v1/completions"
        # a client of its own quirks (it may run in another process); ``learned`` merges them back
        return OpenAIClient(self.base_url, path, self.timeout_s, ServerQuirks(self.quirks.extensions))

    def finish(self, outcomes: Sequence[Outcome]) -> list[RequestTrace]:
        """Traces of what the client saw: tokens counted (the server's usage wins), failures counted by kind."""
        traces = []
        # A later turn's request holds its session's prompt and user ids, not the answers (the client saw
        # them as text): its prompt is the turn before's prompt and answer plus the new user ids.
        answered: dict[int, tuple[int, int, int]] = {}  # index -> (prompt tokens, answer tokens, ids held)
        for outcome in sorted(outcomes, key=lambda o: o.request.index):
            request, lag = outcome.request, outcome.started - outcome.scheduled
            before = answered.get(request.index - 1) if request.turn else None
            held = len(request.prompt_ids)
            prompt_tokens = before[0] + before[1] + held - before[2] if before else held
            if outcome.failure is not None:
                self.stats[outcome.kind or "failed"] += 1
                traces.append(dataclasses.replace(RequestTrace.failed(request, outcome.scheduled, outcome.failure),
                                                  client_lag_s=lag))
                continue
            result = outcome.result
            counts, source = count_tokens(result, self.tokenizer, request.max_new_tokens)
            self.stats[f"tokens_from_{source}"] += 1
            ids = tuple(self.tokenizer("".join(result.texts), add_special_tokens=False)["input_ids"])
            answered[request.index] = (prompt_tokens, sum(counts), held)
            traces.append(RequestTrace(request.index, outcome.scheduled, result.times, counts,
                                       prompt_tokens, ids, client_lag_s=lag, cached_tokens=cached_share(result, prompt_tokens)))
        return traces

    def generate(self, batch: Sequence[Request], sampling: SamplingSpec) -> list[RequestTrace]:
        """The batch's requests sent at once (the server batches them)."""
        if not batch:
            return []
        budget = self.timeout_s + 30.0  # each request times out on its own first
        return list(serve_one_process(self, self.prepare(batch, sampling), LoadSpec.closed(len(batch)), budget).requests)

    def send(self, request: Request, sampling: SamplingSpec) -> RequestTrace:
        """One request on its own."""
        return self.generate([request], sampling)[0]
