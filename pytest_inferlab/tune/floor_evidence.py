"""The evidence each accuracy floor needs, gathered in a trial before any timing (trial_suite.py).

Fidelity (top-1 agreement, mean KLD) is the weights' on the fidelity text; task accuracy is lm-eval's
per-item correctness of the weights against the unquantized model's on the same items. Both come
through the lab's reference cache: the reference's log-probabilities and every lm-eval run computed in
child processes and kept by digest (no trial's timing carries them; a model's task items are scored
once across trials and studies), the variant's fidelity text scored in the trial before it is timed. What the weights show holds
for a configuration whose cache is lossless and for greedy drafting (the lab checks drafting exact);
a quantized KV cache changes what decoding reads, which these floors do not see: "no data", not passing.
"""

from __future__ import annotations

from typing import Any

from pytest_inferlab.engines.base import Engine
from pytest_inferlab.measure.fidelity import KLD_BLOCK
from pytest_inferlab.optimizations.kv import kv_caches
from pytest_inferlab.tune.floor import FloorCheck, by_definition, check_agreement, check_divergence, check_task, no_data
from pytest_inferlab.tune.space import AGREEMENT, TASK, Floor


class FloorJudge:
    """Decides the floors of ``engine`` (a configuration without its drafting) against ``reference``
    (the unquantized model), from ``references`` (the session's ``ReferenceCache``)."""

    def __init__(self, references: Any, engine: Engine, reference: Engine) -> None:
        self.references, self.engine, self.reference = references, engine, reference

    def check(self, floor: Floor) -> FloorCheck:
        cache = self.engine.info.kv_cache
        if cache is not None and not kv_caches.get(cache.kind).lossless:
            return no_data(floor, f"KV cache {cache.kind} is quantized; floors score weights: see the record's "
                                  "kv_token_agreement")
        if self.engine.info.model == self.reference.info.model:
            return by_definition(floor, "the reference's own weights")
        if floor.kind == TASK:
            return self._task(floor)
        found = self.references.fidelity_of(self.engine)
        positions = found.get("fidelity_positions")
        positions = int(positions) if positions is not None else None
        if floor.kind == AGREEMENT:
            return check_agreement(floor, found.get("top1_agreement"), positions)
        return check_divergence(floor, found.get("kld_mean"), found.get("kld_mean_se"), positions, KLD_BLOCK)

    def _task(self, floor: Floor) -> FloorCheck:
        from pytest_inferlab.measure.evals import EvalError

        try:
            variant = self.references.evals_of(self.engine, [floor.task])[floor.task]
            reference = self.references.evals_of(self.reference, [floor.task])[floor.task]
        except EvalError as exc:
            return no_data(floor, str(exc))
        return check_task(floor, variant.items, reference.items)
