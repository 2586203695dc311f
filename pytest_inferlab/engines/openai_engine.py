"""Any OpenAI-compatible server (vLLM's, ``transformers serve``, ...) as an engine.

Each request streams ``/v1/completions`` (default) or ``/v1/chat/completions`` over HTTP on its
own thread; TTFT is taken at the first chunk with content and every content chunk is a delivery
with its timestamp. Output tokens come from the server's ``usage`` (asked for with
``stream_options``) or, when the server sends none, by re-tokenizing the text; which source was
used is counted. HTTP errors, timeouts and broken connections are failed requests (data, not
exceptions); malformed stream lines are counted and skipped.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

from pytest_inferlab.device import Device
from pytest_inferlab.specs.core import ModelSpec, SamplingSpec
from pytest_inferlab.run.trace import Request, RequestTrace
from pytest_inferlab.engines.base import Engine, EngineInfo, encode_prompt

APIS = ("completions", "chat")


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


@dataclass(frozen=True, slots=True)
class StreamResult:
    """What one streamed response delivered: content chunks with their times, usage if sent."""

    times: tuple[float, ...]
    texts: tuple[str, ...]
    usage_tokens: int | None
    malformed: int


def parse_stream(lines: Any, clock: Any = time.perf_counter) -> StreamResult:
    """Server-sent events -> content chunks with arrival times. Lines that are not ``data: {json}``
    (or ``data: [DONE]``) are counted as malformed and skipped."""
    times, texts, usage, malformed = [], [], None, 0
    for line in lines:
        now = clock()
        line = line.strip()
        if not line or line.startswith(":"):
            continue
        if not line.startswith("data:"):
            malformed += 1
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            break
        try:
            event = json.loads(payload)
        except ValueError:
            malformed += 1
            continue
        if not isinstance(event, dict):
            malformed += 1
            continue
        if isinstance(event.get("usage"), dict) and event["usage"].get("completion_tokens") is not None:
            usage = int(event["usage"]["completion_tokens"])
        for choice in event.get("choices") or []:
            text = choice.get("text")
            if text is None:
                text = (choice.get("delta") or {}).get("content")
            if text:
                times.append(now)
                texts.append(text)
    return StreamResult(tuple(times), tuple(texts), usage, malformed)


def chunk_tokens(result: StreamResult, tokenizer: Any) -> tuple[tuple[int, ...], str]:
    """Tokens per delivered chunk and where the total came from (``usage`` or ``retokenized``):
    each chunk counts its own re-tokenized length (at least 1), rescaled so the total is the
    server's usage when it sent one."""
    counts = [max(1, len(tokenizer(text, add_special_tokens=False)["input_ids"])) for text in result.texts]
    if result.usage_tokens is None or not counts:
        return tuple(counts), "retokenized"
    difference = result.usage_tokens - sum(counts)
    counts[-1] = max(1, counts[-1] + difference)  # the usage total wins; the rest stays per chunk
    return tuple(counts), "usage"


class OpenAIServerEngine(Engine):
    """Streams requests to ``base_url``; ``generate`` sends a batch concurrently, one thread each."""

    counters_key = "server"  # the record's conditions key: token sources, malformed lines, failures by kind

    def __init__(self, base_url: str, served_model: str, spec: ModelSpec, tokenizer: Any, *,
                 api: str = "completions", timeout_s: float = 120.0) -> None:
        if api not in APIS:
            raise ValueError(f"api={api!r}: expected one of {', '.join(APIS)}")
        self.base_url = base_url.rstrip("/")
        self.served_model = served_model
        self.tokenizer = tokenizer
        self.api = api
        self.timeout_s = timeout_s
        self.stats: Counter[str] = Counter()  # token sources, malformed lines, failures by kind (counters())
        self.extensions = True  # send vLLM's ignore_eos/min_tokens until the server refuses them
        self._lock = threading.Lock()
        self.info = EngineInfo(engine="openai-server", model=spec, device=Device("cpu"), dtype="server",
                               parameters=0, model_bytes=0, vocab_size=len(tokenizer),
                               facts={"base_url": self.base_url, "served_model": served_model, "api": api})

    @property
    def sends_requests(self) -> bool:
        return True

    def counters(self) -> dict[str, float]:
        return dict(self.stats)

    def encode(self, text: str, chat: bool) -> list[int]:
        """Completions: the prompt as the in-process engine would see it (chat template applied);
        chat: the raw text (the server applies its own template)."""
        return encode_prompt(self.tokenizer, text, chat and self.api == "completions", special_tokens=False)

    def body(self, request: Request, sampling: SamplingSpec) -> dict[str, Any]:
        text = self.tokenizer.decode(list(request.prompt_ids), skip_special_tokens=False)
        body: dict[str, Any] = {"model": self.served_model, "max_tokens": request.max_new_tokens, "stream": True,
                                "stream_options": {"include_usage": True},
                                "temperature": sampling.temperature, "top_p": sampling.top_p, "seed": sampling.seed}
        if request.ignore_eos and self.extensions:  # vLLM's extensions: exactly max_tokens tokens
            body.update(ignore_eos=True, min_tokens=request.max_new_tokens)
        if self.api == "chat":
            body["messages"] = [{"role": "user", "content": text}]
        else:
            body["prompt"] = text
        return body

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.stats[key] += n

    def send(self, request: Request, sampling: SamplingSpec, t_send: float | None = None) -> RequestTrace:
        """One streamed request; failures come back as ``ok=False`` traces with the reason."""
        import httpx

        path = "/v1/chat/completions" if self.api == "chat" else "/v1/completions"
        t_send = time.perf_counter() if t_send is None else t_send
        t_start = time.perf_counter()
        body = self.body(request, sampling)
        try:
            with httpx.stream("POST", self.base_url + path, json=body,
                              timeout=httpx.Timeout(self.timeout_s)) as response:
                if response.status_code >= 400:
                    detail = response.read().decode("utf-8", "replace")[:300]
                    if response.status_code in (400, 422) and "ignore_eos" in body and "ignore_eos" in detail:
                        # a strict server (e.g. transformers serve) refuses vLLM's fields: drop them
                        self.extensions = False
                        self._count("extensions_refused")
                        return self.send(request, sampling, t_send)
                    self._count("http_errors")
                    return RequestTrace.failed(request, t_send, f"HTTP {response.status_code}: {detail}")
                result = parse_stream(_deadline_lines(response.iter_lines(), t_start + self.timeout_s))
        except _Deadline:
            self._count("timeouts")
            return RequestTrace.failed(request, t_send, f"timed out after {self.timeout_s:g} s")
        except httpx.TimeoutException:
            self._count("timeouts")
            return RequestTrace.failed(request, t_send, f"timed out after {self.timeout_s:g} s")
        except httpx.HTTPError as exc:
            self._count("connection_errors")
            return RequestTrace.failed(request, t_send, f"{type(exc).__name__}: {exc}")
        self._count("malformed_lines", result.malformed)
        if not result.times:
            self._count("empty_responses")
            return RequestTrace.failed(request, t_send, "the server streamed no content")
        counts, source = chunk_tokens(result, self.tokenizer)
        self._count(f"tokens_from_{source}")
        ids = tuple(self.tokenizer("".join(result.texts), add_special_tokens=False)["input_ids"])
        return RequestTrace(request.index, t_send, result.times, counts, len(request.prompt_ids), ids, t_admit=t_start)

    def generate(self, batch: Sequence[Request], sampling: SamplingSpec) -> list[RequestTrace]:
        """The batch's requests sent at once, each on its own thread (the server batches them)."""
        t_send = time.perf_counter()
        out: list[RequestTrace | None] = [None] * len(batch)

        def run(i: int, request: Request) -> None:
            out[i] = self.send(request, sampling, t_send)

        threads = [threading.Thread(target=run, args=(i, r), daemon=True) for i, r in enumerate(batch)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return [trace for trace in out if trace is not None]


class _Deadline(Exception):
    pass


def _deadline_lines(lines: Any, deadline: float) -> Any:
    """A stream that keeps sending (slowly) past the request's timeout is a timeout too."""
    for line in lines:
        if time.perf_counter() > deadline:
            raise _Deadline()
        yield line
