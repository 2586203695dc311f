"""Cache configurations through the fixtures: records with KV bytes and token agreement, skips."""

import json

ARGS = ("--inferlab-model=dummy:tiny", "--inferlab-rounds=1", "--inferlab-threads=1", "-p", "no:cacheprovider", "-rs")

SUITE = """
import pytest

@pytest.fixture
def workload_overrides():
    return {"count": 2, "output_tokens": 12}

@pytest.mark.parametrize("kv_cache", ["dynamic", "static", "fp8", "offloaded"], indirect=True)
def test_cache(lab, kv_model, workload, kv_cache):
    lab.measure(kv_model, workload, batch_size=2)
"""


def test_cache_configurations_are_recorded_with_their_bytes_and_agreement(pytester):
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_inprocess(*ARGS)
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*SKIPPED*KV cache offloaded on cpu: offloading moves the cache*CUDA devices only*",
                                 "*3 passed, 1 skipped*"])
    records = {json.loads(p.read_text())["params"]["kv_cache"]: json.loads(p.read_text())
               for p in (pytester.path / ".inferlab" / "runs").rglob("*.json")}
    assert set(records) == {"dynamic", "static", "fp8"}
    values = {k: {m: v["value"] for m, v in r["measurements"].items()} for k, r in records.items()}
    assert values["dynamic"]["kv_bytes_per_token"] == 512.0  # 2 layers x K,V x 2 heads x 16 dims x 4 B
    assert values["fp8"]["kv_bytes_per_token"] < values["dynamic"]["kv_bytes_per_token"] / 3
    assert values["static"]["kv_token_agreement"] == 1.0 and "kv_token_agreement" not in values["dynamic"]
    assert 0 <= values["fp8"]["kv_token_agreement"] <= 1
    assert values["static"]["kv_kld_mean"] < 1e-6 and values["fp8"]["kv_kld_mean"] > 3 * values["static"]["kv_kld_mean"]
    assert records["fp8"]["spec"]["kv_cache"] == {"kind": "fp8", "settings": []}
    assert len({r["spec_id"] for r in records.values()}) == 3


def test_an_unknown_cache_configuration_is_a_usage_error_with_did_you_mean(pytester):
    pytester.makepyfile(test_suite=SUITE.replace('"offloaded"', '"statik"'))
    result = pytester.runpytest_inprocess(*ARGS)
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*statik*static*"])
