"""An OpenAI-compatible stream, read line by line: content chunks with their arrival times, the
server's usage, and the first thing wrong with the stream (which fails the request).

Token counts (``count_tokens``): the server's ``usage.completion_tokens`` wins; without it, a
stream that finished for ``length`` generated exactly the request's ``max_tokens`` (OpenAI's
meaning of that reason; llama-cpp-python's server sends no usage); else a stream whose text holds
no more tokens than it has chunks carried one token per chunk (vLLM, TGI, llama.cpp stream so);
only a stream whose text re-tokenizes to more than its chunks is counted by re-tokenizing, spread
over the chunks (re-tokenizing can split a text differently from how it was generated). The count
never exceeds what the server said it sent.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

# SSE fields other than data (https://html.spec.whatwg.org/multipage/server-sent-events.html)
OTHER_FIELDS = ("event:", "id:", "retry:")


@dataclass(frozen=True, slots=True)
class StreamResult:
    """What one streamed response delivered: content chunks with their times, usage if sent, and
    ``error`` (malformed line, an error event, no ``[DONE]``) when the stream cannot be trusted."""

    times: tuple[float, ...]
    texts: tuple[str, ...]
    usage_tokens: int | None
    error: str | None = None
    error_kind: str | None = None  # malformed_streams, server_errors or connection_errors (no [DONE])
    done: bool = False
    finish_reason: str | None = None  # the last one the server gave (``length``: it hit max_tokens)
    cached_tokens: int | None = None  # usage.prompt_tokens_details.cached_tokens: prompt tokens from its prefix cache
    prompt_tokens: int | None = None  # usage.prompt_tokens: the prompt as the server counted it


class StreamReader:
    """Feed it each line as it arrives (``feed``); ``result()`` when the stream ends."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.texts: list[str] = []
        self.usage: int | None = None
        self.cached_tokens: int | None = None
        self.prompt_tokens: int | None = None
        self.finish_reason: str | None = None
        self.error: str | None = None
        self.error_kind: str | None = None
        self.done = False

    def feed(self, raw: str, now: float) -> bool:
        """One line; False once the stream is over (``[DONE]``) or broken."""
        line = raw.strip()
        if not line or line.startswith(":") or line.startswith(OTHER_FIELDS):
            return True
        if not line.startswith("data:"):
            return self._broken(f"malformed stream line {line[:80]!r}")
        payload = line[5:].strip()
        if payload == "[DONE]":
            self.done = True
            return False
        try:
            event = json.loads(payload)
        except ValueError:
            return self._broken(f"malformed stream line {line[:80]!r}")
        if not isinstance(event, dict):
            return self._broken(f"malformed stream line {line[:80]!r}")
        if event.get("error"):
            error = event["error"]
            return self._broken(f"the server reported an error mid-stream: "
                                f"{error.get('message', error) if isinstance(error, dict) else error}", "server_errors")
        usage = event.get("usage")
        if isinstance(usage, dict) and usage.get("completion_tokens") is not None:
            self.usage = int(usage["completion_tokens"])
        if isinstance(usage, dict) and usage.get("prompt_tokens") is not None:
            self.prompt_tokens = int(usage["prompt_tokens"])
        details = usage.get("prompt_tokens_details") if isinstance(usage, dict) else None
        if isinstance(details, dict) and details.get("cached_tokens") is not None:
            self.cached_tokens = int(details["cached_tokens"])
        for choice in event.get("choices") or []:
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
            text = choice.get("text")
            if text is None:
                text = (choice.get("delta") or {}).get("content")
            if text:
                self.times.append(now)
                self.texts.append(text)
        return True

    def _broken(self, why: str, kind: str = "malformed_streams") -> bool:
        self.error, self.error_kind = why, kind
        return False

    def result(self, body_complete: bool = True) -> StreamResult:
        """``body_complete``: the HTTP body ended as HTTP says (some servers, e.g. transformers serve,
        send no ``[DONE]``); a body cut off without ``[DONE]`` is a broken stream."""
        error, kind = self.error, self.error_kind
        if error is None and not self.done and not body_complete:
            error, kind = "the stream ended without [DONE] (connection closed mid-stream)", "connection_errors"
        return StreamResult(tuple(self.times), tuple(self.texts), self.usage, error, kind, self.done,
                            self.finish_reason, self.cached_tokens, self.prompt_tokens)


def parse_stream(lines: Iterable[str], clock: Callable[[], float] = time.perf_counter,
                 body_complete: bool = True) -> StreamResult:
    """A whole stream at once (tests, recorded streams)."""
    reader = StreamReader()
    for line in lines:
        if not reader.feed(line, clock()):
            break
    return reader.result(body_complete)


def count_tokens(result: StreamResult, tokenizer: Any, max_tokens: int | None = None) -> tuple[tuple[int, ...], str]:
    """Tokens per chunk and where the total came from: ``usage``, ``length`` (finished at
    ``max_tokens``), ``chunks`` or ``retokenized``."""
    chunks = len(result.texts)
    if result.usage_tokens is not None:
        total, source = result.usage_tokens, "usage"
    elif result.finish_reason == "length" and max_tokens is not None and max_tokens >= chunks:
        total, source = max_tokens, "length"
    else:
        total = len(tokenizer("".join(result.texts), add_special_tokens=False)["input_ids"])
        if total <= chunks:
            return (1,) * chunks, "chunks"
        source = "retokenized"
    if total == chunks:
        return (1,) * chunks, source
    weights = [max(1, len(tokenizer(text, add_special_tokens=False)["input_ids"])) for text in result.texts]
    return spread(total, weights), source


def spread(total: int, weights: list[int]) -> tuple[int, ...]:
    """``total`` split in proportion to ``weights`` (largest remainder): the parts sum to ``total``."""
    whole = sum(weights)
    shares = [total * w / whole for w in weights]
    parts = [int(s) for s in shares]
    for index in sorted(range(len(shares)), key=lambda i: parts[i] - shares[i])[:total - sum(parts)]:
        parts[index] += 1
    return tuple(parts)
