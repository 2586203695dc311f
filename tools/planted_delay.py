"""A known slowdown planted in the transformers engine, for the gate's tests and its power study.

Never load it in a measurement you mean to keep. ``INFERLAB_TEST_TOKEN_DELAY_MS=D`` sleeps D ms
after every generated token; ``INFERLAB_TEST_TOKEN_DELAY_CALLS=N`` limits that to the process's
first N ``generate`` calls (a transient disturbance, as a shared host causes, which the gate's
re-measurement must tell from a regression). The environment is read at every call, so a test can
change it between cases.

As a pytest plugin: ``-p planted_delay`` with ``tools/`` on ``PYTHONPATH``; in a script: ``install()``.
"""

from __future__ import annotations

import os
import time
from typing import Any

DELAY_ENV = "INFERLAB_TEST_TOKEN_DELAY_MS"
CALLS_ENV = "INFERLAB_TEST_TOKEN_DELAY_CALLS"
_state = {"calls": 0, "delay_s": 0.0, "installed": False}


def delay_for_next_call() -> float:
    """The sleep per token of the next generate call, from the environment (seconds)."""
    raw = os.environ.get(DELAY_ENV, "").strip()
    if not raw:
        return 0.0
    try:
        delay_ms = float(raw)
        calls = int(os.environ.get(CALLS_ENV, "").strip() or -1)
    except ValueError:
        raise ValueError(f"{DELAY_ENV}={raw!r} must be a number of milliseconds and {CALLS_ENV} an integer") from None
    _state["calls"] += 1
    if 0 <= calls < _state["calls"]:
        return 0.0
    return max(0.0, delay_ms) / 1e3


def install() -> None:
    """Wrap the engine's generate (to read the delay once per call) and its streamer's put (to sleep)."""
    if _state["installed"]:
        return
    from pytest_inferlab.engines.transformers_engine import TimingStreamer, TransformersEngine

    generate, put = TransformersEngine.generate, TimingStreamer.put

    def planted_generate(self: Any, batch: Any, sampling: Any) -> Any:
        _state["delay_s"] = delay_for_next_call()
        try:
            return generate(self, batch, sampling)
        finally:
            _state["delay_s"] = 0.0

    def planted_put(self: Any, value: Any) -> None:
        delivered = self.prompt_seen  # the first put is the prompt itself
        put(self, value)
        if delivered and _state["delay_s"]:
            time.sleep(_state["delay_s"])

    TransformersEngine.generate, TimingStreamer.put = planted_generate, planted_put
    _state["installed"] = True


def pytest_configure(config: Any) -> None:
    install()
