"""Order-free measurement: a case measured after a GPTQ build agrees with the same case measured before
it, in one run. Before builds moved to child processes (ground/child.py), an in-process GPTQ build left
GPTQModel's worker threads behind and every later case on the calling thread ran 1.7x slower
(the embedded model, 2026-12-05); on dummy:tiny a 1x576 linear ran 4x slower."""

import json
import statistics

import pytest

SUITE = """
import pytest

@pytest.fixture
def workload_overrides():
    return {"count": 2, "output_tokens": 24}

@pytest.mark.inferlab(rounds=6, warmup=1)
def test_1_before(lab, model, workload):
    lab.measure(model, workload)

@pytest.mark.inferlab(rounds=1, warmup=0)
@pytest.mark.parametrize("quantization", ["gptq"], indirect=True)
def test_2_build(lab, quantized_model, workload):
    lab.measure(quantized_model, workload)

@pytest.mark.inferlab(rounds=6, warmup=1)
def test_3_after(lab, model, workload):
    lab.measure(model, workload)
"""


@pytest.mark.slow
@pytest.mark.alone
def test_a_case_after_a_build_agrees_with_itself_before_it(pytester, tmp_path, monkeypatch):
    monkeypatch.setenv("INFERLAB_CACHE_DIR", str(tmp_path / "cache"))  # an empty cache: GPTQ is built in this run
    pytester.makepyfile(test_order=SUITE)
    result = pytester.runpytest_subprocess("--inferlab-model=dummy:tiny", "--inferlab-threads=2", "-p",
                                           "no:cacheprovider", "--inferlab-max-interference=0.99")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*gptq of dummy:tiny: layer 2/2, done*", "*quantized dummy:tiny with gptq in*"])
    [run] = (pytester.path / ".inferlab" / "runs").iterdir()
    records = {json.loads(p.read_text())["test_id"].split("::")[-1]: json.loads(p.read_text())
               for p in run.glob("*.json")}
    before, build, after = records["test_1_before"], records["test_2_build[gptq]"], records["test_3_after"]
    assert build["engine"]["facts"]["quantization"]["quantize_s"] > 0  # built in this run, not loaded from a cache
    assert after["conditions"]["process"]["cases_before"] == 2
    assert after["conditions"]["process"]["pid"] == before["conditions"]["process"]["pid"]
    assert "gptqmodel" in after["conditions"]["process"]["libraries"]  # its variant was loaded here (said, not hidden)
    # the speed: per-round tokens/s, median against median, within the rounds' own spread
    rate_before = before["measurements"]["output_tok_per_s"]["samples"]
    rate_after = after["measurements"]["output_tok_per_s"]["samples"]
    ratio = statistics.median(rate_after) / statistics.median(rate_before)
    spread = max(statistics.pstdev(rate_before) / statistics.median(rate_before),
                 statistics.pstdev(rate_after) / statistics.median(rate_after))
    print(f"tok/s before {statistics.median(rate_before):.1f}, after the build {statistics.median(rate_after):.1f} "
          f"(x{ratio:.3f}; rounds' spread {spread:.1%})")
    # One-sided: the defect is a build that slows what comes after it (1.7x before builds left the
    # process). A faster "after" is the host's drift or the first case's warm-up (seen in CI: x1.28, the
    # first case of the process slower in every round), not what a build does.
    assert ratio >= 1 - max(0.15, 3 * spread), (rate_before, rate_after)
    # memory: the variant was let go before the last case, so the case grows its process by no more than it
    # grew before (plus 10%, or 16 MiB). One-sided: the first case of a process grows it most (seen in CI:
    # 19.4 MiB before, 1.9 MiB after); the process itself starts higher by what the build case imported
    # (gptqmodel, listed above: --inferlab-fresh-process measures without it)
    growth_before = before["measurements"]["peak_mem_bytes"]["value"] - before["conditions"]["process"]["rss_before_bytes"]
    growth_after = after["measurements"]["peak_mem_bytes"]["value"] - after["conditions"]["process"]["rss_before_bytes"]
    print(f"RSS before the case {before['conditions']['process']['rss_before_bytes'] / 2**20:.0f} MiB -> "
          f"{after['conditions']['process']['rss_before_bytes'] / 2**20:.0f} MiB; the case's own growth "
          f"{growth_before / 2**20:.1f} -> {growth_after / 2**20:.1f} MiB")
    assert growth_after - growth_before <= max(0.10 * growth_before, 16 * 2**20), (growth_before, growth_after)
