"""A known slowdown planted in the transformers engine, for the gate's tests and its power study.

Never load it in a measurement you mean to keep. ``INFERLAB_TEST_TOKEN_DELAY_MS=D`` sleeps D ms
after every generated token; ``INFERLAB_TEST_FORWARD_DELAY_MS=D`` sleeps D ms before every forward
pass of the model (prefill and each decode step: a slower kernel moves every series of a case alike,
as the statistics issue planted it); ``INFERLAB_TEST_TOKEN_DELAY_CALLS=N`` limits either to the
run's first N ``generate`` calls (a transient disturbance, as a shared host causes, which the gate's
re-measurement must tell from a regression; a pytest run that loads the plugin counts from zero, even
in a process that ran another). The environment is read at every call, so a test can
change it between cases.

As a pytest plugin: ``-p planted_delay`` with ``tools/`` on ``PYTHONPATH``; in a script: ``install()``.
"""

from __future__ import annotations

import os
import time
from typing import Any

DELAY_ENV = "INFERLAB_TEST_TOKEN_DELAY_MS"
FORWARD_DELAY_ENV = "INFERLAB_TEST_FORWARD_DELAY_MS"
CALLS_ENV = "INFERLAB_TEST_TOKEN_DELAY_CALLS"
_state = {"calls": 0, "delay_s": 0.0, "forward_s": 0.0, "installed": False}


def _milliseconds(name: str) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        return max(0.0, float(raw)) / 1e3 if raw else 0.0
    except ValueError:
        raise ValueError(f"{name}={raw!r} must be a number of milliseconds") from None


def delays_for_next_call() -> tuple[float, float]:
    """(sleep per token, sleep per forward pass) of the next generate call, from the environment (seconds)."""
    token, forward = _milliseconds(DELAY_ENV), _milliseconds(FORWARD_DELAY_ENV)
    if not token and not forward:
        return 0.0, 0.0
    try:
        calls = int(os.environ.get(CALLS_ENV, "").strip() or -1)
    except ValueError:
        raise ValueError(f"{CALLS_ENV} must be an integer") from None
    _state["calls"] += 1
    if 0 <= calls < _state["calls"]:
        return 0.0, 0.0
    return token, forward


def install() -> None:
    """Wrap the engine's generate (to read the delay once per call) and its streamer's put (to sleep)."""
    if _state["installed"]:
        return
    from pytest_inferlab.engines.transformers_engine import TimingStreamer, TransformersEngine

    generate, put = TransformersEngine.generate, TimingStreamer.put

    def planted_generate(self: Any, batch: Any, sampling: Any) -> Any:
        _state["delay_s"], forward = delays_for_next_call()
        hook = self.module.register_forward_pre_hook(lambda module, args: time.sleep(forward)) if forward else None
        try:
            return generate(self, batch, sampling)
        finally:
            _state["delay_s"] = 0.0
            if hook is not None:
                hook.remove()

    def planted_put(self: Any, value: Any) -> None:
        delivered = self.prompt_seen  # the first put is the prompt itself
        put(self, value)
        if delivered and _state["delay_s"]:
            time.sleep(_state["delay_s"])

    TransformersEngine.generate, TimingStreamer.put = planted_generate, planted_put
    _state["installed"] = True


def pytest_configure(config: Any) -> None:
    install()
    _state["calls"] = 0  # a run in the same process as an earlier one counts its own calls
