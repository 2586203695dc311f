"""Collection hooks: every case's parameters are checked before any case runs.

A value this device or model cannot run skips the case with the reason; a value that cannot work
anywhere (an unknown name, a bad load, a draft that cannot pair) is a usage error naming the test
and the parameter. Then the shard is selected and cases of one quantized variant are grouped.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import pytest

from pytest_inferlab.device import Device
from pytest_inferlab.assembly.factory import ModelChecks
from pytest_inferlab.engines.sources import context_length, load_tokenizer, resolve_model, tokenizer_key
from pytest_inferlab.judge.gate import Gate
from pytest_inferlab.optimizations.kv import resolve_kv, unsupported_kv_reason, unsupported_pairing
from pytest_inferlab.optimizations.quant import resolve_quant, unsupported_reason
from pytest_inferlab.optimizations.speculative import (SpeculativeConfigError, check_tokenizers, draft_model_name,
                                                       drafters, resolve_speculative, unsupported_speculative_reason)
from pytest_inferlab.plugin.options import SHARD_DURATIONS, Settings
from pytest_inferlab.run.batching import resolve_batching, unsupported_batching_reason
from pytest_inferlab.run.traffic import check_workload
from pytest_inferlab.specs.workloads import resolve_workload
from pytest_inferlab.specs.core import ModelSpec, SpeculativeSpec
from pytest_inferlab.specs.load import parse_load

# A parameter's check: None when the value runs here, else the skip reason; raises for a bad value.
Check = Callable[[Any], "str | None"]


def shown(value: Any) -> str:
    """A parameter value as the error shows it: names as typed, specs by their name."""
    return repr(value) if isinstance(value, str) else repr(getattr(value, "name", value))  # any user object


def params_of(item: pytest.Item) -> dict[str, Any]:
    callspec = getattr(item, "callspec", None)  # pytest sets it on parametrized items only
    return callspec.params if callspec is not None else {}


def grouped_by_variant(items: list[pytest.Item]) -> list[pytest.Item]:
    """Cases of one quantized variant next to each other (in their first case's place, otherwise in
    collection order): the session keeps one variant at a time, so interleaving would rebuild them."""
    def group(index: int, item: pytest.Item) -> tuple[str, str] | int:
        params = params_of(item)
        return (str(item.path), repr(params["quantization"])) if "quantization" in params else index

    first: dict[tuple[str, str] | int, int] = {}
    keys = [group(i, item) for i, item in enumerate(items)]
    for i, key in enumerate(keys):
        first.setdefault(key, i)
    return [items[i] for i in sorted(range(len(items)), key=lambda i: (first[keys[i]], i))]


def lab_cases(items: list[pytest.Item]) -> int:
    return max(1, sum("lab" in getattr(item, "fixturenames", ()) for item in items))  # non-function items have none


class Collection:
    """The collection hook of a run (registered beside the session)."""

    def __init__(self, config: pytest.Config, settings: Settings, device: Device, checks: ModelChecks,
                 gate: Gate, series: int | None = None, workload: dict[str, Any] | None = None) -> None:
        self.config, self.settings, self.device, self.checks, self.gate = config, settings, device, checks, gate
        self.series = series  # a fresh-process child: the whole run's series count, not its own one case
        self.workload = workload or {}  # the command line's workload fields (options.workload_overrides)

    def _session_model(self) -> ModelSpec | None:
        """The session's model (--inferlab-model) as a spec, or None when its name does not resolve."""
        try:
            return resolve_model(self.settings.model, seed=self.settings.seed)
        except LookupError:
            return None

    def _checks(self) -> dict[str, Check]:
        """Parameters whose values this device (or model) may not run: skip now, with the reason."""
        model = self._session_model()
        # read only when a case has a workload to check (a GGUF header is a file read)
        context = functools.cache(lambda: context_length(model) if model is not None else None)
        return {
            "quantization": lambda value: unsupported_reason(resolve_quant(value), self.device, model),
            "kv_cache": lambda value: unsupported_kv_reason(resolve_kv(value), self.device, model),
            "batching": lambda value: unsupported_batching_reason(resolve_batching(value), self.device),
            "speculative": lambda value: self._speculative_check(resolve_speculative(value), model),
            "model": self._model_check,
            "workload": lambda value: check_workload(resolve_workload(value), context()),
            "load": lambda value: parse_load(value, self.settings.seed) and None,
        }

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        if items and "prompts" in self.workload:
            self._check_prompts()
        checks = self._checks()
        for item in items:
            reason = self._skip_reason(item, params_of(item), checks)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))
        if self.settings.shard is not None:  # xdist workers each compute the same selection
            self._keep_shard(items)
        self.gate.series = self.series or lab_cases(items)
        items[:] = grouped_by_variant(items)

    def _skip_reason(self, item: pytest.Item, params: dict[str, Any], checks: dict[str, Check]) -> str | None:
        reasons = []
        for name in sorted(checks.keys() & params.keys()):
            try:
                reasons.append(checks[name](params[name]))
            except (LookupError, ValueError) as exc:
                raise pytest.UsageError(f"{item.nodeid}: parameter {name}={shown(params[name])}: {exc}") from None
        if "kv_cache" in params and "batching" in params:
            reasons.append(unsupported_pairing(resolve_kv(params["kv_cache"]), resolve_batching(params["batching"])))
        if "load" in params and "workload" in params and parse_load(params["load"]).process == "trace" \
                and resolve_workload(params["workload"]).trace is None:
            raise pytest.UsageError(f"{item.nodeid}: load {shown(params['load'])} replays a trace's times, but workload "
                                    f"{shown(params['workload'])} is not a trace (prompts='trace', trace=...)")
        if "speculative" in params and any(p in params for p in ("batching", "load")):
            raise pytest.UsageError(f"{item.nodeid}: speculative decoding runs one request at a time "
                                    "(transformers' assisted generation); do not combine it with batching or load")
        return next((r for r in reasons if r), None)

    def _check_prompts(self) -> None:
        """The user's prompts fit the model: each one's tokens and the answer within its context (the
        tokenizer only, no weights); the first that does not is a usage error naming its line."""
        from pytest_inferlab.plugin.options import PROMPTS
        from pytest_inferlab.run.prompt_files import user_prompts

        model = self._session_model()
        context = context_length(model) if model is not None else None
        if context is None:
            return
        tokenizer = load_tokenizer(model)
        answer = self.workload.get("output_tokens", 0)
        for prompt in user_prompts(self.workload["prompts"]):
            tokens = len(tokenizer(prompt.text)["input_ids"])
            cap = self.workload.get("input_tokens")
            if (min(tokens, cap) if cap else tokens) + answer > context:
                raise pytest.UsageError(f"{PROMPTS}: {prompt.where}: a prompt of {tokens} tokens"
                                        f"{f' and {answer} new tokens' if answer else ''} is beyond {model.name}'s "
                                        f"context of {context}; shorten it, or cap it with --inferlab-input-tokens")

    def _model_check(self, value: Any) -> None:
        """A model given as a test parameter must resolve and pass its source's check (once per value)."""
        self.checks.check_once(value if isinstance(value, ModelSpec) else
                               resolve_model(value, seed=self.settings.seed, given_by=""))

    def _keep_shard(self, items: list[pytest.Item]) -> None:
        """--inferlab-shard=I/N: keep this shard's cases, report the rest as deselected."""
        from pytest_inferlab.plugin.shard import run_durations, select
        from pytest_inferlab.record.record import RecordError

        try:
            durations = run_durations(self.settings.shard_durations) if self.settings.shard_durations else {}
        except RecordError as exc:
            raise pytest.UsageError(f"{SHARD_DURATIONS}: {exc}; pass a run folder whose records all read") from None
        chosen = select((item.nodeid for item in items), self.settings.shard, durations)
        dropped = [item for item in items if item.nodeid not in chosen]
        items[:] = [item for item in items if item.nodeid in chosen]
        if dropped:
            self.config.hook.pytest_deselected(items=dropped)

    def _speculative_check(self, spec: SpeculativeSpec, target: ModelSpec | None) -> str | None:
        """At collection: the draft model resolves, and its tokenizer is what the method needs
        (tokenizers only, not weights); a pairing that cannot work is an error."""
        needs = drafters.get(spec.method).needs
        if not needs.draft_model or target is None:
            return unsupported_speculative_reason(spec, self.device)
        name = draft_model_name(spec, target.name)
        try:
            draft = resolve_model(name, seed=self.settings.seed)
            shared = tokenizer_key(draft) == tokenizer_key(target)
            if needs.same_tokenizer and not shared:
                check_tokenizers(spec, target.name, load_tokenizer(draft), load_tokenizer(target))
            if needs.other_tokenizer and shared:
                return (f"speculative {spec.method}: the draft {name!r} shares the target's tokenizer, and "
                        "transformers refuses universal assisted generation then; name a draft with another "
                        "tokenizer (settings model=...), or use method 'draft'")
        except (LookupError, SpeculativeConfigError) as exc:
            raise ValueError(str(exc)) from None
        return unsupported_speculative_reason(spec, self.device)
