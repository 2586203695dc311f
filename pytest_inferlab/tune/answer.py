"""The study's answer with its evidence: the feasible front, the pick, the head-to-head confirmation,
and what reproduces the pick (the suite's parametrize lines and the command).

The pick is the feasible configuration with the best objective; the confirmation measures it against
the runner-up in one process, round by round, so their ratio has an interval of its own ("1.12x
[1.05, 1.19]"), or is "a tie: either" when the interval holds 1. A confirmation that finds the
runner-up faster names the runner-up as the pick.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from pytest_inferlab.judge.front import Objective, pareto_front
from pytest_inferlab.tune.prune import Pruned
from pytest_inferlab.tune.space import Config, Space
from pytest_inferlab.tune.trial import Ratio, TrialResult

TIE, AHEAD, REVERSED = "tie", "ahead", "reversed"


@dataclass(frozen=True, slots=True)
class Confirmation:
    pick: Config
    runner_up: Config
    ratio: Ratio | None  # the pick's tokens/s over the runner-up's, paired
    failed: str | None = None

    @property
    def outcome(self) -> str | None:
        if self.ratio is None:
            return None
        return AHEAD if self.ratio.low > 1 else REVERSED if self.ratio.high < 1 else TIE

    def words(self) -> str:
        if self.ratio is None:
            return f"confirmation not measured: {self.failed}"
        head = f"{self.pick.label} vs {self.runner_up.label}, head to head: {self.ratio.words()}"
        return head + {AHEAD: ": the pick is faster", TIE: ": a tie: either",
                       REVERSED: ": the runner-up is faster: it is the pick"}[self.outcome]

    def to_dict(self) -> dict[str, Any]:
        return {"pick": self.pick.label, "runner_up": self.runner_up.label,
                "ratio": self.ratio.to_dict() if self.ratio else None, "outcome": self.outcome, "failed": self.failed}


@dataclass(frozen=True, slots=True)
class Answer:
    space: Space
    results: tuple[tuple[int, TrialResult], ...]  # (trial number, result) of every measured configuration
    pruned: tuple[Pruned, ...]
    feasible: tuple[TrialResult, ...]
    front: tuple[TrialResult, ...]
    pick: TrialResult | None
    runner_up: TrialResult | None
    confirmation: Confirmation | None = None
    seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def chosen(self) -> TrialResult | None:
        """The pick after the confirmation (the runner-up when it proved faster)."""
        if self.confirmation is not None and self.confirmation.outcome == REVERSED:
            return self.runner_up
        return self.pick

    def lines(self) -> list[str]:
        space = self.space
        out = [f"study {space.name}: {len(self.results)} configuration(s) measured, {len(self.pruned)} pruned before "
               f"running, {len(self.feasible)} feasible" + (f", {self.seconds / 60:.1f} min" if self.seconds else "")]
        if space.slo or space.floors:
            out.append("  limits: " + "; ".join([b.label for b in space.slo] + [f.label for f in space.floors]))
        out.append("  trials (* on the feasible front):")
        width = max((len(r.config.label) for _, r in self.results), default=0)
        for number, result in self.results:
            mark = "*" if result in self.front else " "
            state = "feasible" if result.feasible(space.slo) else "infeasible" if not result.failed else "failed"
            figure = (result.speed.words() if result.speed else
                      f"{space.objective} {result.objective}" if result.objective is not None else "not timed")
            detail = result.failed if result.failed else "; ".join(
                [figure]
                + (result.violations(space.slo) if result.objective is not None else []) + [c.words() for c in result.floors if not c.passed]
                + ([str(result.rounds.get("stopped"))] if result.rounds.get("stopped") else []))
            out.append(f"   {mark}#{number:<3} {result.config.label:<{width}}  {state:<10} {detail}")
        if self.pruned:
            out.append("  pruned before anything ran:")
            out += [f"    {p.config.label}: {p.reason}" for p in self.pruned]
        chosen = self.chosen
        if chosen is None:
            out.append("  pick: none: no configuration met every SLO and floor (see the trials above)")
            return out
        out.append(f"  pick: {chosen.config.label}: {chosen.speed.words() if chosen.speed else chosen.objective} "
                   "the reference's tokens/s")
        if self.confirmation is not None:
            out.append(f"  confirmation: {self.confirmation.words()}")
        out.append("  reproduce it:")
        out += [f"    {line}" for line in reproduction(chosen.config, space)]
        return out

    def to_dict(self) -> dict[str, Any]:
        chosen = self.chosen
        return {"study": self.space.name, "source": self.space.source, "objective": self.space.objective,
                "slo": [b.label for b in self.space.slo], "floors": [f.label for f in self.space.floors],
                "trials": [{"number": n, **r.to_dict(), "feasible": r.feasible(self.space.slo),
                            "on_front": r in self.front} for n, r in self.results],
                "pruned": [{"config": p.config.label, "reason": p.reason} for p in self.pruned],
                "pick": chosen.to_dict() if chosen else None,
                "confirmation": self.confirmation.to_dict() if self.confirmation else None,
                "reproduce": reproduction(chosen.config, self.space) if chosen else None,
                "seconds": self.seconds, **self.extra}


def answer(space: Space, results: Sequence[tuple[int, TrialResult]], pruned: Sequence[Pruned],
           confirmation: Confirmation | None = None, seconds: float | None = None) -> Answer:
    measured = [r for _, r in results if not r.failed and r.objective is not None]
    feasible = [r for r in measured if r.feasible(space.slo)]
    ranked = sorted(feasible, key=lambda r: r.objective, reverse=space.maximize)
    objectives = [Objective(lambda r: r.objective, space.maximize),
                  Objective(lambda r: r.memory_bytes if r.memory_bytes is not None else float("inf"), False)]
    for index, _ in enumerate(space.floors):  # each floor's fidelity an axis of the front (kinds differ in unit)
        objectives.append(Objective(lambda r, i=index: r.floors[i].score if i < len(r.floors) else -float("inf"), True))
    front = pareto_front(feasible, objectives)
    return Answer(space, tuple(results), tuple(pruned), tuple(feasible), tuple(front),
                  ranked[0] if ranked else None, ranked[1] if len(ranked) > 1 else None, confirmation, seconds)


def reproduction(config: Config, space: Space) -> list[str]:
    """The pick as a suite writes it: the parametrize lines of the fixtures that compose it, the
    measure call, and the command."""
    lines = []
    if space.workload_overrides:
        lines += ["@pytest.fixture", f"def workload_overrides(): return {dict(space.workload_overrides)!r}", ""]
    lines.append(f'@pytest.mark.parametrize("workload", [{space.workload!r}], indirect=True)')
    if config.kv_cache.kind != "dynamic" or config.kv_cache.settings:
        lines.append(f'@pytest.mark.parametrize("kv_cache", [{_spec(config.kv_cache, "KVCacheSpec")}], indirect=True)')
        target = "kv_model"
    else:
        lines.append(f'@pytest.mark.parametrize("quantization", [{_spec(config.quantization, "QuantSpec")}], '
                     'indirect=True)')
        target = "quantized_model"
    if config.drafting is not None:
        lines.append(f'@pytest.mark.parametrize("speculative", [{_spec(config.drafting, "SpeculativeSpec")}], '
                     'indirect=True)')
        lines.append(f"def test_pick(lab, model, {target}, speculative_model, workload):")
        lines.append(f"    lab.measure(speculative_model, workload, reference=model{_batches(config, space)})")
    else:
        lines.append(f"def test_pick(lab, model, {target}, workload):")
        lines.append(f"    lab.measure({target}, workload, reference=model{_batches(config, space)})")
    return lines


def _batches(config: Config, space: Space) -> str:
    """The measure call's batch sizes, where the pick or the reference batches."""
    reference = space.reference.batch_size
    if config.batch_size == reference == 1:
        return ""
    return f", batch_size={config.batch_size}, reference_batch_size={reference}"


def _spec(spec: Any, cls: str) -> str:
    name = getattr(spec, spec.NAME_FIELD)
    if not spec.settings:
        return repr(name)
    args = ", ".join(f"{k}={v!r}" for k, v in spec.settings)
    return f"{cls}.of({name!r}, {args})"
