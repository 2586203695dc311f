"""The over-saturation watch on simulated single-slot queues (Poisson arrivals, 90 ms of service):
stable ones, even at 95% utilization, are never called over-saturated; overloaded ones are, within
seconds. The watch is fed as the server batcher feeds it: requests in flight every 0.1 s, and each
request's TTFT when it finishes."""

import random

import pytest

from pytest_inferlab.loadgen.saturation import SaturationWatch, drift

SERVICE_S = 0.09


def first_alarm(rate, count, seed, poll_s=0.1):
    """When the watch first calls the queue over-saturated (seconds), or None."""
    rng = random.Random(seed)
    arrivals, t = [], 0.0
    for _ in range(count):
        t += rng.expovariate(rate)
        arrivals.append(t)
    starts, ends, free = [], [], 0.0
    for arrival in arrivals:
        starts.append(max(arrival, free))
        free = starts[-1] + SERVICE_S
        ends.append(free)
    watch, finished, now = SaturationWatch(), sorted(range(count), key=ends.__getitem__), poll_s
    done = 0
    while now < arrivals[-1] + 1:
        while done < count and ends[finished[done]] <= now:
            i = finished[done]
            watch.finished(arrivals[i], starts[i] - arrivals[i] + 0.04, ends[i])
            done += 1
        watch.sample(now, sum(a <= now < e for a, e in zip(arrivals, ends)))
        if watch.verdict() is not None:
            return now
        now += poll_s
    return None


@pytest.mark.parametrize("utilization, count", [(0.54, 30), (0.81, 60), (0.95, 100)])
def test_a_stable_queue_is_never_called_over_saturated(utilization, count):
    alarms = [first_alarm(utilization / SERVICE_S, count, seed) for seed in range(30)]
    assert alarms == [None] * 30


def test_an_overloaded_queue_is_called_over_saturated_within_seconds():
    alarms = [first_alarm(40.0, 400, seed) for seed in range(10)]  # 3.6x what the queue can serve
    assert all(a is not None for a in alarms) and max(alarms) < 4.0, alarms


def test_drift_is_the_mean_increment_per_second_with_its_lower_bound():
    rising = drift([0, 1, 2, 3, 4, 5], [0, 2, 4, 6, 8, 10], 0.99)
    assert rising.per_s == pytest.approx(2.0) and rising.low == pytest.approx(2.0)  # no spread, no doubt
    flat = drift([0, 1, 2, 3, 4, 5], [1, 3, 1, 3, 1, 3], 0.99)
    assert flat.per_s == pytest.approx(0.4) and flat.low < 0
    assert drift([0, 1], [0, 1], 0.99) is None
