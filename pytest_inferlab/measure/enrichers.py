"""One enricher per feature: what a case adds to its record beyond the latency metrics.

The lab measures latency and throughput for every case (``metrics.measure``); an enricher adds
its feature's measurements, conditions and note only when the case has that feature (a
tensor-parallel group, engine counters, an arrival process, a quantized variant, a KV-cache
configuration, drafting, lm-eval tasks). To add a feature: write a function ``(Case, measured) ->
CaseResult`` (measure/result.py) and append it to ``ENRICHERS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from pytest_inferlab.engines.base import Engine
from pytest_inferlab.measure.curves import curve_point
from pytest_inferlab.measure.exactness import Exactness, judge_exactness, margin_from
from pytest_inferlab.measure.metrics import Measurement, distribution, scalar, ttft_ms
from pytest_inferlab.measure.references import ReferenceCache
from pytest_inferlab.measure.result import CaseResult
from pytest_inferlab.optimizations.kv import CONTINUOUS_ONLY, token_agreement
from pytest_inferlab.measure.speculative_pairs import SpeculativePairs
from pytest_inferlab.run.batching import generator_conditions, lossless_claim
from pytest_inferlab.run.probes.bandwidth import copy_bandwidth_gb_per_s, decode_bandwidth_gb_per_s
from pytest_inferlab.ground.trace import Request, RoundTrace
from pytest_inferlab.run.traffic import traffic_facts
from pytest_inferlab.specs.batching import BatchingSpec
from pytest_inferlab.specs.core import SamplingSpec, WorkloadSpec
from pytest_inferlab.specs.load import LoadSpec
from pytest_inferlab.specs.slo import SLO


@dataclass(frozen=True, slots=True)
class Case:
    """One measured case as the enrichers see it, after its rounds."""

    engine: Engine
    workload: WorkloadSpec
    batch_size: int
    sampling: SamplingSpec
    requests: Sequence[Request]
    timed: Sequence[RoundTrace]  # the timed rounds (warm-up left out)
    references: ReferenceCache
    load: LoadSpec | None = None
    batching: BatchingSpec | None = None
    slo: SLO = SLO()
    slo_attainment: float = 0.9
    counters_before: Mapping[str, float] = field(default_factory=dict)
    paired: SpeculativePairs | None = None
    eval_tasks: tuple[str, ...] = ()


Enricher = Callable[[Case, Mapping[str, Measurement]], CaseResult]


def parallel_ranks(case: Case, measured: Mapping[str, Measurement]) -> CaseResult:
    """A multi-process group: every rank's peak RSS."""
    peaks = case.engine.rank_peaks()
    if not peaks:
        return CaseResult()
    return CaseResult({"peak_mem_per_rank_bytes": distribution("peak_mem_per_rank_bytes", peaks)},
                  conditions={"parallel": {"tensor": len(peaks), "peak_rss_bytes_per_rank": peaks}})


def engine_counters(case: Case, measured: Mapping[str, Measurement]) -> CaseResult:
    """A server's token sources and failures by kind, or vLLM's own counters: the case's change."""
    key = case.engine.counters_key
    if key is None:
        return CaseResult()
    before = case.counters_before
    delta = {k: v - before.get(k, 0) for k, v in case.engine.counters().items() if v - before.get(k, 0)}
    return CaseResult(conditions={key: {**delta, **case.engine.derived_counters(delta)}})


def load_generator(case: Case, measured: Mapping[str, Measurement]) -> CaseResult:
    """Under an arrival process: what the generator delivered, and the case's latency-throughput point."""
    if case.load is None:
        return CaseResult()
    generator = generator_conditions(list(case.timed), case.load)
    offered = generator["offered_req_per_s"]
    point = curve_point(case.load, measured, generator, case.slo, case.slo_attainment)
    return CaseResult({"offered_req_per_s": scalar("offered_req_per_s", offered)} if offered is not None else {},
                  conditions={"load_generator": generator},
                  notes=(case.load.label,) + (("over-saturated",) if generator["over_saturated"] else ()), curve=(point,))


def server_telemetry(case: Case, measured: Mapping[str, Measurement]) -> CaseResult:
    """A server's own /metrics over the case: ``conditions.server_metrics`` and the ``server_*`` figures."""
    telemetry = [r.server_metrics for r in case.timed if r.server_metrics is not None]
    if not telemetry:
        return CaseResult()
    from pytest_inferlab.loadgen.telemetry import DERIVED, derived_values, summarize

    summary = summarize(telemetry)
    values = derived_values(summary)
    reason = summary.get("absent") or f"the {summary.get('server', 'server')}'s /metrics do not include it"
    absent = {name: reason for name in (*DERIVED, "server_spec_acceptance_rate") if name not in values}
    return CaseResult({name: scalar(name, value) for name, value in values.items()}, absent,
                  conditions={"server_metrics": summary})


def traffic(case: Case, measured: Mapping[str, Measurement]) -> CaseResult:
    """Synthetic and trace workloads: their shape (``conditions.traffic``), per-turn TTFT of sessions,
    and the share of prompt tokens served from a prefix cache where the engine says."""
    facts = traffic_facts(case.workload, case.requests)
    ok = [q for r in case.timed for q in r.requests if q.ok]
    out: dict[str, Measurement | None] = {}
    absent: dict[str, str] = {}
    reported = [q for q in ok if q.cached_tokens is not None]
    if reported:
        prompt = sum(q.input_tokens for q in reported)
        out["prefix_cache_hit_rate"] = scalar("prefix_cache_hit_rate",
                                              sum(q.cached_tokens for q in reported) / prompt if prompt else None)
    elif facts is not None and (case.workload.prefix or case.workload.sessions or case.workload.trace):
        absent["prefix_cache_hit_rate"] = f"the {case.engine.info.engine} engine does not report cached prompt tokens"
    if case.workload.sessions is not None:
        turns = case.workload.sessions.turns
        out["ttft_first_turn_ms"] = distribution("ttft_first_turn_ms",
                                                 [t for q in ok if q.index % turns == 0 and (t := ttft_ms(q)) is not None])
        out["ttft_later_turns_ms"] = distribution("ttft_later_turns_ms",
                                                  [t for q in ok if q.index % turns and (t := ttft_ms(q)) is not None])
    if facts is None and not out:
        return CaseResult()
    for name in [n for n, m in out.items() if m is None]:
        del out[name]
        absent[name] = "no completed requests of that kind"
    notes = tuple(x for x in (case.workload.prefix and f"prefix {case.workload.prefix.label}",
                              case.workload.sessions and f"sessions {case.workload.sessions.label}",
                              case.workload.trace and f"trace {case.workload.trace.source}") if x)
    return CaseResult(out, absent, conditions={"traffic": facts} if facts else {}, notes=notes)


def quantized_fidelity(case: Case, measured: Mapping[str, Measurement]) -> CaseResult:
    """A quantized variant: KLD, top-1 agreement and perplexity against its unquantized model."""
    found = case.references.fidelity_of(case.engine)
    return CaseResult({name: scalar(name, value) for name, value in found.items()})


def kv_cache(case: Case, measured: Mapping[str, Measurement]) -> CaseResult:
    """The cache's bytes (last round's last batch) and, for a non-default configuration, its greedy
    tokens against the dynamic cache's and its decode-step KLD."""
    out = CaseResult()
    kv = case.timed[-1].kv if case.timed and case.timed[-1].kv is not None else case.engine.last_kv
    if kv is not None:
        out += CaseResult({"kv_cache_bytes": scalar("kv_cache_bytes", kv.nbytes),
                       "kv_bytes_per_token": scalar("kv_bytes_per_token", kv.bytes_per_token)})
    spec = case.engine.info.kv_cache
    if spec is None or spec.kind == "dynamic" or not case.sampling.greedy:
        return out
    reference = case.references.dynamic_cache_outputs(case.engine, case.workload, case.batch_size, case.sampling)
    agreement = token_agreement(reference, {r.index: r.output_ids for r in case.timed[-1].requests if r.ok})
    if agreement is not None:
        out += CaseResult({"kv_token_agreement": scalar("kv_token_agreement", agreement)})
    if spec.kind in CONTINUOUS_ONLY:  # generate cannot run it: its tokens are compared
        return out + CaseResult(absent={"kv_kld_mean": f"KV cache {spec.kind} runs only under continuous batching, which "
                                                   "returns tokens, not distributions (see kv_token_agreement)"})
    kld = case.references.kv_decode_kld(case.engine, case.requests[0])
    return out + CaseResult({"kv_kld_mean": scalar("kv_kld_mean", kld)})


def speculative(case: Case, measured: Mapping[str, Measurement]) -> CaseResult:
    """Drafting: acceptance, tokens per target forward, the interleaved speedup and the exactness check."""
    if case.paired is None:
        return CaseResult()
    found, conditions = case.paired.measurements(case.sampling)
    speedup = found.get("speculative_speedup")
    check = conditions.pop("exactness_check", None)
    return CaseResult(found, conditions={"speculative": conditions}, notes=(f"{speedup.value:.2f}x",) if speedup else (),
                  exactness={"drafting": Exactness.from_dict(check)} if check else {})


def lossless_batching(case: Case, measured: Mapping[str, Measurement]) -> CaseResult:
    """Batching that claims the outputs of one-at-a-time decoding (padded batches, static and continuous
    batching, prefix sharing): every timed round's greedy outputs against sequential greedy decoding of
    the same requests on the same engine, near ties scored by the engine's own forward pass."""
    claim = lossless_claim(case.batching, case.batch_size)
    if not case.sampling.greedy or case.engine.module is None or case.paired is not None:
        return CaseResult()
    if claim is None:  # this case decoded one request at a time: it is the reference of those that batch
        case.references.remember_sequential(case.engine, case.workload, case.sampling, case.timed[-1])
        return CaseResult()
    reference = case.references.sequential_outputs(case.engine, case.workload, case.sampling)
    rounds = [{r.index: r.output_ids for r in t.requests if r.ok} for t in case.timed]
    check = judge_exactness(reference.outputs, rounds, "sequential greedy decoding",
                            margin_from(case.engine, reference.prompts, reference.outputs))
    return CaseResult(exactness={claim: check})


def task_accuracy(case: Case, measured: Mapping[str, Measurement]) -> CaseResult:
    """lm-eval tasks: scores as measurements, per-item correctness in the record's ``evals``."""
    if not case.eval_tasks:
        return CaseResult()
    from pytest_inferlab.measure.evals import record_metrics

    results = case.references.evals_of(case.engine, case.eval_tasks)
    conditions = {}
    spec = case.engine.info.model
    if spec.quant is not None:  # what the variant costs in accuracy: its unquantized model's scores and items
        reference = case.references.evals_of(case.references.engine_for(spec.reference), case.eval_tasks)
        conditions["reference_evals"] = {"model": spec.reference.name,
                                         "tasks": {task: result.to_dict() for task, result in reference.items()}}
    return CaseResult({name: scalar(name, value) for name, value in record_metrics(results).items()},
                  conditions=conditions, evals={task: result.to_dict() for task, result in results.items()})


ENRICHERS: tuple[Enricher, ...] = (parallel_ranks, engine_counters, load_generator, server_telemetry, traffic,
                                   quantized_fidelity, kv_cache, speculative, lossless_batching, task_accuracy)


def enrich(case: Case, measured: Mapping[str, Measurement]) -> CaseResult:
    out = CaseResult()
    for enricher in ENRICHERS:
        out += enricher(case, measured)
    return out


def weights(engine: Engine, measured: Mapping[str, Measurement]) -> CaseResult:
    """Every kind of case: the weights' bytes and the decode bandwidth they imply (weights read per
    decode step / TPOT) against the device's measured copy bandwidth, outside the peak window."""
    info = engine.info
    if not info.model_bytes:  # a remote server's weights are not ours to count
        return CaseResult(absent={"model_bytes": f"the {info.engine} engine does not expose its weights"})
    out = {"model_bytes": scalar("model_bytes", info.model_bytes)}
    tpot = measured.get("tpot_ms")
    achieved = decode_bandwidth_gb_per_s(info.model_bytes, tpot.value if tpot else None)
    if achieved is not None:
        limit = copy_bandwidth_gb_per_s(info.device)
        out.update(decode_gb_per_s=scalar("decode_gb_per_s", achieved),
                   mem_copy_gb_per_s=scalar("mem_copy_gb_per_s", limit),
                   decode_bw_fraction=scalar("decode_bw_fraction", achieved / limit))
    return CaseResult(out)
