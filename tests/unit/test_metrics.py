"""Metric definitions (measure/catalog.py) on tiny hand-built traces."""

import math
import random
from statistics import NormalDist

import pytest

from pytest_inferlab.measure.metrics import measure, percentile, quantile_interval
from pytest_inferlab.specs.slo import SLO
from pytest_inferlab.ground.trace import RequestTrace, RoundTrace


def req(index=0, t_send=0.0, times=(), tokens=None, input_tokens=10, ok=True, error=None):
    tokens = tuple(tokens) if tokens is not None else (1,) * len(times)
    return RequestTrace(index, t_send, tuple(times), tokens, input_tokens, ok=ok, error=error)


def one_round(*requests, start=0.0, end=None, warmup=False):
    end = end if end is not None else max([t for r in requests for t in r.chunk_times] + [start])
    return RoundTrace(start, end, tuple(requests), warmup)


def test_ttft_tpot_itl_e2e_of_one_request():
    # sent at 0; tokens at 0.100, 0.120, 0.150, 0.160 s
    m, _ = measure([one_round(req(times=(0.100, 0.120, 0.150, 0.160)))])
    assert m["ttft_ms"].value == pytest.approx(100.0)
    assert m["e2e_ms"].value == pytest.approx(160.0)
    assert m["tpot_ms"].value == pytest.approx(20.0)  # (160 - 100) / 3
    assert m["itl_ms"].samples == pytest.approx((20.0, 30.0, 10.0))
    assert m["output_tok_per_s"].value == pytest.approx(4 / 0.160)
    assert m["total_tok_per_s"].value == pytest.approx(14 / 0.160)
    assert m["req_per_s"].value == pytest.approx(1 / 0.160)


def test_single_token_request_has_ttft_but_no_tpot_or_itl():
    m, absent = measure([one_round(req(times=(0.05,)))])
    assert m["ttft_ms"].value == pytest.approx(50.0)
    assert "tpot_ms" not in m and "itl_ms" not in m
    assert "tpot_ms" in absent and "itl_ms" in absent


def test_tpot_excludes_single_token_requests_only():
    m, _ = measure([one_round(req(0, times=(0.05,)), req(1, times=(0.1, 0.2, 0.3)))])
    assert m["tpot_ms"].samples == pytest.approx((100.0,))
    assert m["ttft_ms"].samples == pytest.approx((50.0, 100.0))


def test_empty_round_gives_absent_not_zero():
    m, absent = measure([one_round(start=0.0, end=1.0)])
    for name in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms", "output_tok_per_s"):
        assert name not in m
    assert absent["ttft_ms"] == "no completed requests"


def test_eos_shortened_request_counts_its_real_tokens():
    # Stopped at EOS after 2 of a possible 8 tokens: throughput counts 2, tpot is one gap.
    m, _ = measure([one_round(req(times=(0.1, 0.3)))])
    assert m["output_tok_per_s"].value == pytest.approx(2 / 0.3)
    assert m["tpot_ms"].value == pytest.approx(200.0)


def test_failed_requests_are_counted_and_excluded_from_latency():
    failed = req(1, times=(), ok=False, error="OOM")
    m, _ = measure([one_round(req(0, times=(0.1, 0.2)), failed, end=0.2)])
    assert m["failed_requests"].value == 1
    assert m["ttft_ms"].samples == pytest.approx((100.0,))
    assert m["req_per_s"].value == pytest.approx(1 / 0.2)


def test_multi_token_deliveries_report_tokens_and_gaps_separately():
    # Speculative-style: 3 deliveries carrying 1, 4 and 3 tokens.
    m, _ = measure([one_round(req(times=(0.1, 0.2, 0.3), tokens=(1, 4, 3)))])
    assert m["itl_ms"].samples == pytest.approx((100.0, 100.0))
    assert m["tokens_per_delivery"].mean == pytest.approx(8 / 3)
    assert m["tpot_ms"].value == pytest.approx(200.0 / 7)
    assert m["output_tok_per_s"].value == pytest.approx(8 / 0.3)


def test_warmup_rounds_are_excluded_and_rates_have_one_sample_per_round():
    warm = one_round(req(times=(10.0,)), start=0.0, warmup=True)
    r1 = one_round(req(t_send=20.0, times=(20.5, 21.0)), start=20.0)
    r2 = one_round(req(t_send=30.0, times=(30.5, 32.0)), start=30.0)
    m, _ = measure([warm, r1, r2])
    assert m["ttft_ms"].samples == pytest.approx((500.0, 500.0))
    assert m["output_tok_per_s"].samples == pytest.approx((2.0, 1.0))
    assert m["output_tok_per_s"].value == pytest.approx(4 / 3.0)  # aggregate, not mean of rounds


def test_goodput_counts_requests_meeting_every_slo():
    fast = req(0, times=(0.05, 0.06, 0.07))
    slow_first = req(1, times=(0.5, 0.51, 0.52))
    slo = SLO(ttft_ms=100, tpot_ms=50)
    m, absent = measure([one_round(fast, slow_first)], slo)
    assert m["goodput_req_per_s"].value == pytest.approx(1 / 0.52)
    assert "goodput_req_per_s" not in absent
    _, absent = measure([one_round(fast)])
    assert absent["goodput_req_per_s"] == "no SLO configured"


def test_percentiles_interpolate_like_numpy():
    values = sorted([1.0, 2.0, 3.0, 4.0, 10.0])
    assert percentile(values, 50) == 3.0
    assert percentile(values, 90) == pytest.approx(7.6)
    assert percentile([5.0], 99) == 5.0
    m, _ = measure([one_round(req(times=(0.001, 0.002, 0.003, 0.004, 0.005, 0.015)))])
    # gaps 1, 1, 1, 1, 10 ms: numpy.percentile gives 6.4 and 9.64
    assert m["itl_ms"].p90 == pytest.approx(6.4)
    assert m["itl_ms"].p99 == pytest.approx(9.64)


def test_bootstrap_interval_contains_the_median_and_is_seeded():
    from pytest_inferlab.measure.metrics import bootstrap_median_ci

    samples = [1.0, -2.0, 0.5, 3.0, -1.0, 0.0, 2.0, -0.5]
    low, high = bootstrap_median_ci(samples, seed=1)
    assert low <= 0.25 <= high and low >= -2.0 and high <= 3.0
    assert bootstrap_median_ci(samples, seed=1) == (low, high)
    assert bootstrap_median_ci([4.0] * 5) == (4.0, 4.0)


def _rounds(rng, rounds, per_round, round_sd, request_sd):
    """Latencies of ``rounds`` rounds: a shared round effect (the host's state) times each request's own."""
    out = []
    for _ in range(rounds):
        shared = rng.gauss(0, round_sd)
        out.append([math.exp(shared + rng.gauss(0, request_sd)) for _ in range(per_round)])
    return out


@pytest.mark.parametrize("q, rounds, per_round, round_sd, request_sd", [
    (0.90, 6, 40, 0.1, 0.3), (0.90, 4, 64, 0.05, 0.4), (0.99, 20, 200, 0.01, 0.3), (0.99, 8, 500, 0.0, 0.3)])
def test_tail_intervals_cover_a_known_percentile_at_their_nominal_rate(q, rounds, per_round, round_sd, request_sd):
    """2,000 simulated runs per row, latencies log-normal with a round effect, so the true quantile of
    every request the case could send is known: exp(z_q * sqrt(round_sd^2 + request_sd^2)). A missing
    bound (beyond the data) covers by saying nothing."""
    rng = random.Random(11)
    true = math.exp(NormalDist().inv_cdf(q) * math.hypot(round_sd, request_sd))
    covered = 0
    for _ in range(2000):
        low, high = quantile_interval(_rounds(rng, rounds, per_round, round_sd, request_sd), q)
        covered += (low is None or low <= true) and (high is None or true <= high)
    assert covered / 2000 >= 0.95


def test_counting_correlated_requests_as_independent_overstates_a_tails_precision():
    rng = random.Random(12)
    true = math.exp(NormalDist().inv_cdf(0.9) * math.hypot(0.1, 0.3))
    plain = 0
    for _ in range(2000):  # Woodruff's interval with every request counted as independent
        values = sorted(v for g in _rounds(rng, 6, 40, 0.1, 0.3) for v in g)
        half = 1.96 * math.sqrt(0.9 * 0.1 / len(values))
        plain += percentile(values, (0.9 - half) * 100) <= true <= percentile(values, (0.9 + half) * 100)
    assert plain / 2000 < 0.85  # 79% in the simulation quantile_interval's docstring quotes


def test_a_p99_of_a_few_dozen_requests_has_no_upper_bound_and_one_round_has_no_interval():
    rng = random.Random(13)
    low, high = quantile_interval(_rounds(rng, 4, 16, 0.05, 0.3), 0.99)
    assert low is not None and high is None
    assert quantile_interval(_rounds(rng, 1, 64, 0.05, 0.3), 0.9) is None
