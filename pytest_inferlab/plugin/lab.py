"""The recording fixture's object: warm-up and timed rounds through pytest-benchmark, then a record.

pytest-benchmark owns the round loop (so --benchmark-json/-autosave/-compare keep working and carry
the LLM metrics in ``extra_info``); when it is disabled (xdist, --benchmark-disable) the same
rounds run here and the record says timing conditions were not exclusive.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import statistics
import time
import warnings
from typing import Any, Callable, Sequence

import pytest

from pytest_inferlab.run.batching import BatchingSpec, generator_conditions, resolve_batching, serve_round
from pytest_inferlab.measure.curves import curve_point
from pytest_inferlab.engines import Engine, EngineInfo
from pytest_inferlab.specs.load import LoadSpec, parse_load
from pytest_inferlab.measure.evals import record_metrics
from pytest_inferlab.measure.metrics import SLO, Measurement, bootstrap_median_ci, define_eval_metric, distribution, measure, scalar, summary_values
from pytest_inferlab.optimizations.kv import CONTINUOUS_ONLY, token_agreement
from pytest_inferlab.run.probes.bandwidth import copy_bandwidth_gb_per_s, decode_bandwidth_gb_per_s
from pytest_inferlab.run.probes.energy import EnergyMeter
from pytest_inferlab.run.probes.host_speed import HostSpeed
from pytest_inferlab.run.probes.interference import InterferenceProbe
from pytest_inferlab.run.probes.memory import PeakMemory
from pytest_inferlab.record.record import Record
from pytest_inferlab.outputs.report import report_row, verdict_rows, verdict_section
from pytest_inferlab.run.runner import run_round
from pytest_inferlab.judge.policy import default_policy
from pytest_inferlab.optimizations.speculative.pairs import SpeculativePairs
from pytest_inferlab.plugin.session import REPORT_KEY, VERDICT_KEY, Judgement, LabSession
from pytest_inferlab.specs.core import RunSpec, SamplingSpec, WorkloadSpec, spec_dict
from pytest_inferlab.run.trace import RoundTrace, output_digest
from pytest_inferlab.judge.verdict import Verdict


SWEEP_FRACTIONS = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0)  # of the closed-loop capacity, when no rates are given


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def _param_value(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return getattr(value, "name", None) or repr(value)


def bandwidth_measurements(info: EngineInfo, measurements: dict[str, Measurement]) -> dict[str, Measurement]:
    """Decode bandwidth achieved (weights read per decode step / TPOT) against the device's measured
    copy bandwidth; measured after the case, outside its peak-memory window."""
    tpot = measurements.get("tpot_ms")
    achieved = decode_bandwidth_gb_per_s(info.model_bytes, tpot.value if tpot else None)
    if achieved is None:
        return {}
    limit = copy_bandwidth_gb_per_s(info.device)
    return {"decode_gb_per_s": scalar("decode_gb_per_s", achieved), "mem_copy_gb_per_s": scalar("mem_copy_gb_per_s", limit),
            "decode_bw_fraction": scalar("decode_bw_fraction", achieved / limit)}


class Lab:
    """Measures one case per test and records it. Obtained through the ``lab`` fixture.

    Example::

        def test_latency(lab, model, workload):
            record = lab.measure(model, workload, batch_size=4)
            assert record.measurements["output_tok_per_s"].value > 0
    """

    def __init__(self, session: LabSession, request: pytest.FixtureRequest) -> None:
        self._session = session
        self._request = request
        self._used = False

    def _marker_setting(self, name: str, default: int, minimum: int) -> int:
        marker = self._request.node.get_closest_marker("inferlab")
        value = marker.kwargs.get(name, default) if marker else default
        if not isinstance(value, int) or value < minimum:
            raise pytest.UsageError(f"{self._request.node.nodeid}: @pytest.mark.inferlab({name}={value!r}) "
                                    f"must be an integer >= {minimum}")
        return value

    @property
    def rounds(self) -> int:
        """Timed rounds: ``@pytest.mark.inferlab(rounds=N)``, else --inferlab-rounds."""
        return self._marker_setting("rounds", self._session.settings.rounds, 1)

    @property
    def warmup(self) -> int:
        """Warm-up rounds: ``@pytest.mark.inferlab(warmup=N)``, else --inferlab-warmup."""
        return self._marker_setting("warmup", self._session.settings.warmup, 0)

    def measure(self, engine: Engine, workload: WorkloadSpec, *, batch_size: int = 1,
                sampling: SamplingSpec | None = None, slo: SLO | None = None, evals: Sequence[str] = (),
                batching: BatchingSpec | str | None = None, load: LoadSpec | str | None = None) -> Record:
        """Run ``workload`` on ``engine`` (warm-up, then timed rounds) and write the record.

        ``evals``: lm-eval tasks whose scores (and per-item correctness) join the record.
        ``batching``/``load``: serve the requests through a batching engine (``sequential``,
        ``static``, ``continuous``) as they arrive by an arrival process (``closed:4``,
        ``poisson:2.5``, ...); without them, batches of ``batch_size`` run back to back.
        ``slo``: bounds for goodput (else the marker's ``slo={...}``, else --inferlab-slo)."""
        self._claim(batch_size)
        sampling = sampling or SamplingSpec(seed=self._session.settings.seed)
        batching_spec, load_spec = self._under_load(batching, load, batch_size)
        slo = self._slo(slo)
        spec = RunSpec(engine.info.model, workload, batch_size, sampling, engine.info.device.kind,
                       kv_cache=engine.info.kv_cache, batching=batching_spec, load=load_spec,
                       speculative=engine.info.speculative)
        requests = self._session.requests_for(engine, workload)
        traces: list[RoundTrace] = []
        energy = EnergyMeter(engine.info.device)
        budget_s = self._session.settings.load_budget
        paired = SpeculativePairs.for_engine(engine, batch_size, load_spec)

        def one_round() -> None:
            warm = len(traces) < self.warmup
            if not warm and not energy.started:
                energy.start()
            if paired is not None:  # drafted and undrafted rounds back to back, alternating which goes first
                trace = paired.round(requests, sampling, len(traces), warm)
            elif load_spec is None:
                trace = run_round(engine, requests, batch_size, sampling, warmup=warm)
            else:
                trace = serve_round(engine, requests, batching_spec, load_spec, sampling, budget_s, warmup=warm)
            if not warm:
                energy.stop()
            traces.append(trace)
            self._progress(len(traces), trace)

        def case(plain: bool) -> tuple[dict[str, Measurement], dict[str, str], dict[str, Any], list, str | None]:
            nonlocal energy
            traces.clear()
            if paired is not None:
                paired.clear()
            energy = EnergyMeter(engine.info.device)
            conditions, memory = self._drive(one_round, engine, plain)
            measurements, absent = measure(traces, slo or SLO())
            failed = [r for t in traces if not t.warmup for r in t.requests if not r.ok]
            output_tokens = sum(r.output_tokens for t in traces if not t.warmup for r in t.requests if r.ok)
            self._add_energy(measurements, absent, energy, output_tokens)
            return {**measurements, **memory[0]}, {**absent, **memory[1]}, conditions, failed, output_digest(traces[-1])

        started = _now()
        server_before = dict(getattr(engine, "stats", {}))
        measurements, absent, conditions, failed, digest = case(plain=False)
        if getattr(engine, "rank_peaks", None):  # a tensor-parallel group: every rank's peak RSS
            conditions["parallel"] = {"tensor": len(engine.rank_peaks), "peak_rss_bytes_per_rank": engine.rank_peaks}
            measurements["peak_mem_per_rank_bytes"] = distribution("peak_mem_per_rank_bytes", engine.rank_peaks)
        if hasattr(engine, "stats"):  # a server's token sources and failures by kind, or vLLM's own counters
            counts = {k: v - server_before.get(k, 0) for k, v in engine.stats.items() if v - server_before.get(k, 0)}
            if getattr(engine, "stats_key", "server") == "vllm":
                from pytest_inferlab.engines.vllm_engine import derived_rates

                counts.update(derived_rates(counts))
            conditions[getattr(engine, "stats_key", "server")] = counts
        if failed and len(failed) == sum(len(t.requests) for t in traces if not t.warmup):
            pytest.fail(f"every request failed; first error: {failed[0].error}", pytrace=False)
        note = f"{len(failed)} failed" if failed else ""
        curve = []
        if load_spec is not None:
            generator = generator_conditions([t for t in traces if not t.warmup], load_spec)
            conditions["load_generator"] = generator
            if generator["offered_req_per_s"] is not None:
                measurements["offered_req_per_s"] = scalar("offered_req_per_s", generator["offered_req_per_s"])
            curve = [curve_point(load_spec, measurements, generator, slo, self._session.settings.slo_attainment)]
            note = " ".join(filter(None, [note, load_spec.label]))
        for name, value in self._session.fidelity_of(engine).items():  # quantized variants only
            measurements[name] = scalar(name, value)
        kv = getattr(engine, "last_kv", None)  # the cache of the last round's last batch
        if kv is not None:
            measurements["kv_cache_bytes"] = scalar("kv_cache_bytes", kv.nbytes)
            measurements["kv_bytes_per_token"] = scalar("kv_bytes_per_token", kv.bytes_per_token)
        if engine.info.kv_cache is not None and engine.info.kv_cache.kind != "dynamic" and sampling.greedy:
            reference = self._session.dynamic_cache_outputs(engine, workload, batch_size, sampling)
            outputs = {r.index: r.output_ids for r in traces[-1].requests if r.ok}
            agreement = token_agreement(reference, outputs)
            if agreement is not None:
                measurements["kv_token_agreement"] = scalar("kv_token_agreement", agreement)
            if engine.info.kv_cache.kind in CONTINUOUS_ONLY:  # generate cannot run it: its tokens are compared
                absent["kv_kld_mean"] = (f"KV cache {engine.info.kv_cache.kind} runs only under continuous batching, "
                                         "which returns tokens, not distributions (see kv_token_agreement)")
            else:
                measurements["kv_kld_mean"] = scalar("kv_kld_mean", self._session.kv_decode_kld(engine, requests[0]))
        mismatch = None
        if paired is not None:
            found, conditions["speculative"] = paired.measurements(sampling)
            measurements.update(found)
            mismatch = conditions["speculative"]["first_mismatch"]
            note = " ".join(filter(None, [note, f"{found['speculative_speedup'].value:.2f}x"
                                          if "speculative_speedup" in found else ""]))
        eval_results = self._session.evals_of(engine, evals) if evals else {}
        for name, (value, higher_is_better) in record_metrics(eval_results).items():
            define_eval_metric(name, higher_is_better)
            measurements[name] = scalar(name, value)

        def remeasure() -> tuple[dict[str, Measurement], dict[str, Any]]:
            again, _, again_conditions, _, _ = case(plain=True)
            return again, again_conditions

        record = self._finish(spec, engine, measurements, absent, started, conditions, note, digest, remeasure,
                              {task: result.to_dict() for task, result in eval_results.items()}, curve)
        if mismatch is not None:  # recorded first: the record keeps the failed check
            pytest.fail(f"speculative output differs from the target's own greedy output: request "
                        f"{mismatch['request']}, first differing position {mismatch['position']} ({mismatch})",
                        pytrace=False)
        return record

    def sweep(self, engine: Engine, workload: WorkloadSpec, *, batching: BatchingSpec | str = "static",
              rates: Sequence[float] | None = None, process: str = "poisson", slo: SLO | None = None,
              sampling: SamplingSpec | None = None, budget_s: float | None = None) -> Record:
        """Offered rate up to saturation: the highest rate whose SLO attainment meets the target.

        First a closed loop at the engine's largest batch gives its capacity (req/s); then open-loop
        rounds at ``rates`` (default 0.25-3 x capacity), lowest first, until a rate is not sustained
        (attainment below --inferlab-slo-attainment, the generator off schedule, or the time budget
        cut the round). The whole sweep stops admitting work after ``budget_s`` (default 3 x
        --inferlab-load-budget). One record: ``saturation_req_per_s``, ``capacity_req_per_s`` and the
        points in its ``curve``."""
        self._claim(1)
        sampling = sampling or SamplingSpec(seed=self._session.settings.seed)
        batching_spec = resolve_batching(batching)
        slo = self._slo(slo)
        if not slo.is_set():
            raise ValueError("a rate sweep needs SLOs to judge each rate: pass slo=SLO(...), mark the test "
                             "@pytest.mark.inferlab(slo={'ttft_ms': ...}) or set --inferlab-slo")
        budget = budget_s or 3 * self._session.settings.load_budget
        target = self._session.settings.slo_attainment
        spec = RunSpec(engine.info.model, workload, 1, sampling, engine.info.device.kind, measure="sweep",
                       kv_cache=engine.info.kv_cache, batching=batching_spec)
        requests = self._session.requests_for(engine, workload)
        concurrency = min(len(requests), int(batching_spec.setting("max_batch", 16)))
        points: list[dict[str, Any]] = []
        capacity: list[float] = []

        def point(load_spec: LoadSpec, left_s: float) -> dict[str, Any]:
            trace = serve_round(engine, requests, batching_spec, load_spec, sampling, left_s)
            measured, _ = measure([trace], slo)
            generator = generator_conditions([trace], load_spec)
            found = curve_point(load_spec, measured, generator, slo, target)
            self._session.progress(f"{self._request.node.name}: {load_spec.label} -> {found['req_per_s'] or 0:.2f} req/s, "
                                   f"SLO met by {found['slo_attainment'] or 0:.0%}"
                                   f"{'' if found['sustained'] else ' (not sustained)'}")
            return found

        def run() -> None:
            t0 = time.perf_counter()
            # warm-up: one wave of the closed loop
            serve_round(engine, requests[:concurrency], batching_spec, LoadSpec.closed(concurrency), sampling, budget)
            closed = point(LoadSpec.closed(concurrency), budget - (time.perf_counter() - t0))
            points.append(closed)
            capacity.append(closed["req_per_s"] or 0.0)
            for rate in sorted(rates) if rates else [float(f"{f * capacity[0]:.3g}") for f in SWEEP_FRACTIONS]:
                left = budget - (time.perf_counter() - t0)
                if left <= 0 or rate <= 0:
                    break
                points.append(point(LoadSpec(process, rate=rate, seed=sampling.seed) if process != "burst"
                                    else LoadSpec.burst(concurrency, rate), left))
                if not points[-1]["sustained"]:
                    break

        started = _now()
        conditions, memory = self._drive(run, engine, rounds=1, warmup=0)
        open_points = [p for p in points if p["rate"] is not None]
        sustained = [p["rate"] for p in open_points if p["sustained"]]
        measurements: dict[str, Measurement] = {**memory[0]}
        absent = dict(memory[1])
        if capacity:
            measurements["capacity_req_per_s"] = scalar("capacity_req_per_s", capacity[0])
        if sustained:
            measurements["saturation_req_per_s"] = scalar("saturation_req_per_s", max(sustained))
        else:
            absent["saturation_req_per_s"] = f"no swept rate met the SLOs ({slo.label()}) for {target:.0%} of requests"
        # Saturated: some swept load failed its SLOs. Otherwise the highest rate is only a lower bound.
        saturated = any(not p["sustained"] for p in points)
        conditions["sweep"] = {"slo": slo.to_dict(), "attainment_target": target, "budget_s": budget,
                               "rates": [p["rate"] for p in open_points], "process": process, "saturated": saturated}
        saturation = measurements.get("saturation_req_per_s")
        note = "no rate sustained"
        if saturation:
            note = (f"saturation {saturation.value:.2f} req/s" if saturated
                    else f"saturation >= {saturation.value:.2f} req/s (every swept rate sustained)")
        return self._finish(spec, engine, measurements, absent, started, conditions, note, curve=points)

    def _under_load(self, batching: BatchingSpec | str | None, load: LoadSpec | str | None,
                    batch_size: int) -> tuple[BatchingSpec | None, LoadSpec | None]:
        """(batching, load) of a case; both None for back-to-back batches of ``batch_size``."""
        if batching is None and load is None:
            return None, None
        if batch_size != 1:
            raise ValueError(f"batch_size={batch_size} is for back-to-back batches; under a load, the batching "
                             "engine forms batches: set max_batch in its settings (BatchingSpec.of('static', max_batch=8))")
        return resolve_batching(batching or "static"), parse_load(load or "closed:1", self._session.settings.seed)

    def _slo(self, explicit: SLO | None) -> SLO:
        if explicit is not None:
            return explicit
        marker = self._request.node.get_closest_marker("inferlab")
        if marker and "slo" in marker.kwargs:
            bounds = marker.kwargs["slo"]
            if not isinstance(bounds, dict):
                raise pytest.UsageError(f"{self._request.node.nodeid}: @pytest.mark.inferlab(slo=...) must be a dict "
                                        "such as {'ttft_ms': 2000, 'tpot_ms': 150}")
            try:
                return SLO.from_mapping(bounds, f"{self._request.node.nodeid}: @pytest.mark.inferlab(slo=...)")
            except ValueError as exc:
                raise pytest.UsageError(str(exc)) from None
        return self._session.settings.slo or SLO()

    def measure_overhead(self, engine: Engine, workload: WorkloadSpec, *, sampling: SamplingSpec | None = None) -> Record:
        """Tokens/s through the recording path vs a bare ``model.generate`` loop, interleaved.

        Each timed round runs both, alternating which goes first; ``harness_overhead_pct`` is the
        median over pairs of (1 - recorded / bare) with a bootstrap 95% interval. On a noisy
        machine that interval is wide, so ``harness_cost_pct`` also times the recording path's own
        code in isolation (samples: microseconds per token, per request) against the round time.
        """
        from pytest_inferlab.engines.transformers_engine import bare_generate, harness_cost_s

        self._claim(1)
        sampling = sampling or SamplingSpec(seed=self._session.settings.seed)
        spec = RunSpec(engine.info.model, workload, 1, sampling, engine.info.device.kind, measure="overhead")
        requests = self._session.requests_for(engine, workload)
        recorded: list[float] = []
        bare: list[float] = []
        done = 0

        def one_round() -> None:
            nonlocal done
            rates = {}
            for path in (("recorded", "bare") if done % 2 == 0 else ("bare", "recorded")):
                if path == "recorded":
                    trace = run_round(engine, requests, 1, sampling)
                    rates[path] = sum(r.output_tokens for r in trace.requests) / (trace.t_end - trace.t_start)
                else:
                    tokens, seconds = bare_generate(engine, requests, sampling)
                    rates[path] = tokens / seconds
            done += 1
            if done > self.warmup:
                recorded.append(rates["recorded"])
                bare.append(rates["bare"])
            self._session.progress(f"{self._request.node.name}: pair {done}/{self.warmup + self.rounds} "
                                   f"recorded {rates['recorded']:.2f} tok/s, bare {rates['bare']:.2f} tok/s")

        started = _now()
        conditions, memory = self._drive(one_round, engine)
        # Paired: each pair ran back to back, so the per-pair ratio cancels slow drift of the machine.
        per_pair = tuple((1 - r / b) * 100 for r, b in zip(recorded, bare))
        overhead = statistics.median(per_pair)
        per_token_s, per_request_s = harness_cost_s(engine, requests[0], sampling)
        tokens = sum(r.max_new_tokens for r in requests)
        round_s = tokens / statistics.median(recorded)
        cost = (per_token_s * tokens + per_request_s * len(requests)) / round_s * 100
        measurements: dict[str, Measurement] = {
            "output_tok_per_s": Measurement("tok/s", statistics.median(recorded), tuple(recorded)),
            "bare_output_tok_per_s": Measurement("tok/s", statistics.median(bare), tuple(bare)),
            "harness_overhead_pct": Measurement("%", overhead, per_pair, statistics.fmean(per_pair), overhead,
                                                ci95=bootstrap_median_ci(per_pair, spec.sampling.seed)),
            "harness_cost_pct": Measurement("%", cost, (per_token_s * 1e6, per_request_s * 1e6)),
            **memory[0],
        }
        note = f"overhead {overhead:+.2f}%, harness cost {cost:.3f}%"
        return self._finish(spec, engine, measurements, memory[1], started, conditions, note)

    # ---- steps shared by every kind of case ---------------------------------------------------
    def _claim(self, batch_size: int) -> None:
        if self._used:
            raise RuntimeError("lab measures one case per test (pytest-benchmark's fixture is single-use): "
                               "parametrize the test instead of measuring twice")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r}: expected an integer >= 1")
        self._used = True

    def _drive(self, one_round: Callable[[], None], engine: Engine, plain: bool = False,
               rounds: int | None = None, warmup: int | None = None) -> tuple[dict[str, Any], tuple[dict, dict]]:
        """Warm-up + timed rounds through pytest-benchmark, bracketed by the memory probe, itself
        bracketed by the host-speed reference (outside the memory window: its matrix never counts)."""
        benchmark = self._request.getfixturevalue("benchmark")
        rounds = self.rounds if rounds is None else rounds
        warmup = self.warmup if warmup is None else warmup
        total = warmup + rounds
        memory = PeakMemory(engine.info.device)
        interference = InterferenceProbe(engine.info.device)
        host = HostSpeed(engine.info.device, self._session.settings.host_ref != "none")
        host.before()
        memory.start()
        interference.start()
        if plain:  # a confirmation: pytest-benchmark's fixture times one case only
            for _ in range(total):
                one_round()
        elif benchmark.disabled:
            benchmark.pedantic(lambda: [one_round() for _ in range(total)], rounds=1)
        else:
            benchmark.pedantic(one_round, rounds=rounds, warmup_rounds=warmup, iterations=1)
        interference.stop()
        peaks, absent = memory.stop()
        host.after()
        measured = {name: scalar(name, value) for name, value in peaks.items()}
        shard = self._session.settings.shard
        conditions = {"benchmark_disabled": bool(benchmark.disabled), "xdist_worker": self._session.worker_id,
                      "shard": shard.label if shard else None,
                      "other_cpu_share": interference.other_cpu_share(),
                      "gpu_other_processes": interference.gpu_others, "host_ref_s": host.seconds}
        return conditions, (measured, absent)

    def _add_energy(self, measurements: dict[str, Measurement], absent: dict[str, str], energy: EnergyMeter,
                    output_tokens: int) -> None:
        joules, reason = energy.result()
        if joules is None:
            absent["energy_j"] = absent["tok_per_j"] = reason or "energy counter not read"
            return
        measurements["energy_j"] = scalar("energy_j", joules)
        if joules > 0:
            measurements["tok_per_j"] = scalar("tok_per_j", output_tokens / joules)
        else:
            absent["tok_per_j"] = "energy counter did not advance"

    def _progress(self, count: int, trace: RoundTrace) -> None:
        label = "warm-up" if trace.warmup else "round"
        tokens = sum(r.output_tokens for r in trace.requests)
        seconds = trace.t_end - trace.t_start
        self._session.progress(f"{self._request.node.name}: {label} {count}/{self.warmup + self.rounds} "
                               f"{tokens} tok in {seconds:.1f} s ({tokens / seconds:.1f} tok/s)")

    def _finish(self, spec: RunSpec, engine: Engine, measurements: dict[str, Measurement], absent: dict[str, str],
                started: str, conditions: dict[str, Any], note: str, digest: str | None = None,
                remeasure: Callable[[], tuple[dict[str, Measurement], dict[str, Any]]] | None = None,
                evals: dict[str, Any] | None = None, curve: list[dict[str, Any]] | None = None) -> Record:
        info = engine.info
        if info.model_bytes:  # a remote server's weights are not ours to count
            measurements = {**measurements, "model_bytes": scalar("model_bytes", info.model_bytes),
                            **bandwidth_measurements(info, measurements)}
        else:
            absent = {**absent, "model_bytes": f"the {info.engine} engine does not expose its weights"}
        node = self._request.node
        callspec = getattr(node, "callspec", None)
        params = {k: _param_value(v) for k, v in (callspec.params.items() if callspec else ())}
        record = Record(
            run_id=self._session.run_id, test_id=node.nodeid, params=params, spec=spec_dict(spec),
            spec_id=spec.spec_id, measurements=measurements, absent=absent,
            engine={**dataclasses.asdict(info), "model_spec_id": info.model.spec_id},
            environment=self._session.environment, machine_id=self._session.machine_id,
            seed=spec.sampling.seed, started_at=started, finished_at=_now(), rounds=self.rounds,
            warmup_rounds=self.warmup, conditions=conditions, output_digest=digest, evals=evals or {},
            curve=curve or [],
        )
        judgement = self._session.judge(record.to_json(), self._marker_tolerance())
        if remeasure and judgement.gating and any(v.outcome == "regressed" for v in judgement.verdicts):
            judgement, confirmations = self._confirm(record, judgement, remeasure)
            record = dataclasses.replace(record, conditions={**conditions, "confirmations": confirmations})
        record = dataclasses.replace(record, verdicts=[dataclasses.asdict(v) for v in judgement.verdicts],
                                     baseline=judgement.baseline,
                                     conditions={**record.conditions, "invalid": judgement.invalid})
        path = self._session.write(record)  # kept whatever the verdict, even when the baseline is unreadable
        values = summary_values(measurements)
        benchmark = self._request.getfixturevalue("benchmark")
        benchmark.extra_info["inferlab"] = {"spec_id": spec.spec_id, "record": str(path), "metrics": values}
        case = node.nodeid.split("::")[-1]
        node.user_properties.append((REPORT_KEY, report_row(case, info.model.name, values, note)))
        node.user_properties.append((VERDICT_KEY, verdict_rows(case, judgement.verdicts, judgement.gating)))
        section = verdict_section(judgement.verdicts, judgement.baseline, judgement.warning)
        node.add_report_section("call", "inferlab verdicts", section)
        if judgement.warning:
            warnings.warn(InferlabWarning(f"{node.nodeid}: {judgement.warning}"), stacklevel=2)
        if judgement.error:
            pytest.fail(f"{judgement.error} (this case's record is kept: {path})", pytrace=False)
        if judgement.gating and any(v.outcome == "regressed" for v in judgement.verdicts):
            regressed = ", ".join(v.metric for v in judgement.verdicts if v.outcome == "regressed")
            pytest.fail(f"performance regression in {regressed} (record: {path})\n{section}", pytrace=False)
        return record

    def _confirm(self, record: Record, judgement: Judgement,
                 remeasure: Callable[[], tuple[dict[str, Measurement], dict[str, Any]]]) -> tuple[Judgement, list]:
        """Re-measure a case with a timing regression (--inferlab-confirm times): it stands only if
        every re-measurement regresses too. A shared host's transient slowdowns hit every series of
        one run at once; a real regression repeats."""
        verdicts = list(judgement.verdicts)
        confirmations = []
        for attempt in range(self._session.settings.confirm):
            suspects = {v.metric for v in verdicts if v.outcome == "regressed" and self._is_timing(v.metric)}
            if not suspects:
                break
            self._session.progress(f"{self._request.node.name}: re-measuring to confirm a regression in "
                                   f"{', '.join(sorted(suspects))} ({attempt + 1}/{self._session.settings.confirm})")
            measurements, conditions = remeasure()
            again = self._session.judge(dataclasses.replace(record, measurements=measurements, conditions=conditions)
                                        .to_json(), self._marker_tolerance())
            by_metric = {v.metric: v for v in again.verdicts}
            confirmations.append({"host_ref_s": conditions.get("host_ref_s"),
                                  "verdicts": {m: by_metric[m].outcome for m in sorted(suspects) if m in by_metric}})
            verdicts = [self._merge(v, by_metric.get(v.metric)) if v.metric in suspects else v for v in verdicts]
        return dataclasses.replace(judgement, verdicts=verdicts), confirmations

    @staticmethod
    def _is_timing(metric: str) -> bool:
        """Noisy metrics are confirmed; memory and counts are deterministic and stand as measured."""
        return default_policy(metric).kind not in ("memory", "count")

    @staticmethod
    def _merge(first: Verdict, again: Verdict | None) -> Verdict:
        if again is not None and again.outcome == "regressed":
            return dataclasses.replace(first, reason=f"{first.reason}; confirmed when re-measured "
                                                     f"({again.ratio:.3f}x baseline)")
        seen = f"{again.outcome}, {again.ratio:.3f}x baseline" if again and again.ratio else "not measured"
        return dataclasses.replace(first, outcome="inconclusive",
                                   reason=f"regressed at first ({first.reason}) but not when re-measured ({seen}): "
                                          "a disturbance of the host, not of the code")

    def _marker_tolerance(self) -> dict[str, Any]:
        marker = self._request.node.get_closest_marker("inferlab")
        tolerance = marker.kwargs.get("tolerance", {}) if marker else {}
        if not isinstance(tolerance, dict):
            raise pytest.UsageError(f"{self._request.node.nodeid}: @pytest.mark.inferlab(tolerance=...) must be a "
                                    "dict such as {'tpot_ms': 0.05}")
        return tolerance


class InferlabWarning(pytest.PytestWarning):
    """Results that are reported but cannot gate (e.g. a baseline of another machine)."""
