"""The client half of the serving path: one asyncio event loop and one aiohttp session whose
connections are opened before the clock starts, request bodies serialized before their send
time, every line of a stream stamped as it arrives. What the client must do is done before
``scheduled``; ``started - scheduled`` is its own lateness (``client_lag_ms``), reported apart.

Token counting and decoding happen after the round (``OpenAIServerEngine.finish``), off the loop.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from yarl import URL

from pytest_inferlab.loadgen.sse import StreamReader, StreamResult
from pytest_inferlab.ground.trace import Request

JSON_HEADERS = {"Content-Type": "application/json", "Accept": "text/event-stream"}
READ_BUFFER = 2 ** 20  # one SSE line may carry a long chunk


@dataclass(frozen=True, slots=True)
class Prepared:
    """A request ready to go: its body with vLLM's extensions, and without them for a strict server;
    a session's first turn also carries its later turns' user texts."""

    request: Request
    body: bytes
    plain_body: bytes
    later_texts: tuple[str, ...] = ()

    def next_turn(self, answer: str) -> tuple["Prepared", float] | None:
        """The session's next turn once this one answered ``answer``: the history resent with the
        next user text (chat: as messages; completions: as one text), and the think time before it."""
        follow = self.request.next_turn(())  # the server's answer is text here; finish() counts its tokens
        if follow is None or not self.later_texts:
            return None
        request, think_s = follow
        user = self.later_texts[0]

        def extended(raw: bytes) -> bytes:
            body = json.loads(raw)
            if "messages" in body:
                body["messages"] += [{"role": "assistant", "content": answer}, {"role": "user", "content": user}]
            else:
                body["prompt"] += answer + user
            body["max_tokens"] = request.max_new_tokens
            if "min_tokens" in body:
                body["min_tokens"] = request.max_new_tokens
            return json.dumps(body).encode()

        return Prepared(request, extended(self.body), extended(self.plain_body), self.later_texts[1:]), think_s


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the client saw of one request (``result`` None: it failed before any stream, ``failure``)."""

    request: Request
    scheduled: float
    started: float
    ended: float
    result: StreamResult | None = None
    failure: str | None = None
    kind: str | None = None  # the counter a failure adds to: http_errors, timeouts, connection_errors, ...


@dataclass(slots=True)
class ServerQuirks:
    """What the client learned about the server: whether it takes vLLM's ``ignore_eos``/``min_tokens``."""

    extensions: bool = True
    refused: int = 0


@dataclass(slots=True)
class OpenAIClient:
    """Streams prepared requests to one server; ``async with`` opens and closes its session."""

    base_url: str
    path: str
    timeout_s: float
    quirks: ServerQuirks = field(default_factory=ServerQuirks)
    session: Any = None
    url: Any = None
    request_timeout: Any = None

    async def __aenter__(self) -> "OpenAIClient":
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60, ttl_dns_cache=None)
        # The moment a request's body went to the socket is when it was sent (aiohttp writes it from
        # a task of its own on Python < 3.12): that, not the call, is what client_lag_ms measures.
        sent = aiohttp.TraceConfig()
        sent.on_request_chunk_sent.append(_stamp_sent)
        # no cookies, no compression, the URL parsed once: less for the client to do per request
        self.session = aiohttp.ClientSession(connector=connector, read_bufsize=READ_BUFFER, auto_decompress=False,
                                             cookie_jar=aiohttp.DummyCookieJar(), trace_configs=[sent],
                                             skip_auto_headers=("User-Agent", "Accept-Encoding"),
                                             timeout=aiohttp.ClientTimeout(total=None))
        self.url = URL(self.base_url + self.path)
        self.request_timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.session.close()

    async def warm(self, connections: int) -> None:
        """Open ``connections`` pooled connections (concurrent ``/v1/models`` calls) before any timing."""
        async def touch() -> None:
            try:
                async with self.session.get(self.base_url + "/v1/models", timeout=aiohttp.ClientTimeout(total=10.0)) as response:
                    await response.read()
            except (OSError, asyncio.TimeoutError, aiohttp.ClientError):
                pass  # the request that needs the connection will fail with the reason
        await asyncio.gather(*(touch() for _ in range(max(1, connections))))

    async def text(self, path: str, timeout_s: float = 5.0) -> tuple[int, str]:
        """GET ``path`` (``/metrics``): status and body; status 0 when nothing answered."""
        try:
            async with self.session.get(self.base_url + path, timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
                return response.status, await response.text()
        except (OSError, asyncio.TimeoutError, aiohttp.ClientError) as exc:
            return 0, f"{type(exc).__name__}: {exc}"

    async def send(self, prepared: Prepared, scheduled: float) -> Outcome:
        return await self._send(prepared, scheduled, {"sent": None})

    async def _send(self, prepared: Prepared, scheduled: float, stamp: dict[str, float | None]) -> Outcome:
        request = prepared.request
        with_extensions = self.quirks.extensions and prepared.body != prepared.plain_body
        body = prepared.body if with_extensions else prepared.plain_body
        called = time.perf_counter()

        def failed(why: str, kind: str) -> Outcome:
            return Outcome(request, scheduled, stamp["sent"] or called, time.perf_counter(), failure=why, kind=kind)

        try:
            async with self.session.post(self.url, data=body, headers=JSON_HEADERS, trace_request_ctx=stamp,
                                         timeout=self.request_timeout) as response:
                if response.status >= 400:
                    detail = (await response.text())[:300]
                    if with_extensions and response.status in (400, 422) and "ignore_eos" in detail:
                        # a strict server (e.g. transformers serve) refuses vLLM's fields: send without
                        self.quirks.extensions = False
                        self.quirks.refused += 1
                        return await self._send(prepared, scheduled, {"sent": stamp["sent"]})
                    return failed(f"HTTP {response.status}: {detail}", "http_errors")
                reader = StreamReader()
                reading = True
                async for line in response.content:
                    if reading:
                        reading = reader.feed(line.decode("utf-8", "replace"), time.perf_counter())
                        if not reading and reader.error:
                            break
        except asyncio.TimeoutError:
            return failed(f"timed out after {self.timeout_s:g} s", "timeouts")
        except aiohttp.ClientPayloadError as exc:
            return failed(f"the connection broke mid-stream ({exc})", "connection_errors")
        except (aiohttp.ClientError, OSError) as exc:
            return failed(f"{type(exc).__name__}: {exc}", "connection_errors")
        except ValueError as exc:  # a line longer than the read buffer
            return failed(f"unreadable stream: {exc}", "malformed_streams")
        ended = time.perf_counter()
        started = stamp["sent"] or called
        result = reader.result()
        if result.error is not None:
            return Outcome(request, scheduled, started, ended, result, result.error, result.error_kind)
        if not result.times:
            return Outcome(request, scheduled, started, ended, result, "the server streamed no content",
                           "empty_responses")
        return Outcome(request, scheduled, started, ended, result)


async def _stamp_sent(_session: Any, context: Any, _params: Any) -> None:
    """aiohttp's trace hook: the first body chunk of a request went to the socket."""
    stamp = context.trace_request_ctx
    if stamp["sent"] is None:
        stamp["sent"] = time.perf_counter()

