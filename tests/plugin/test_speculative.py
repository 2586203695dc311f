"""Speculative pairs through the fixtures on a tiny random-weight model: records with counted
forwards, acceptance, interleaved speedup and the exactness check; collection-time errors."""

import json

import pytest

ARGS = ("--inferlab-model=dummy:tiny", "--inferlab-rounds=2", "--inferlab-warmup=1", "--inferlab-threads=1",
        "-p", "no:cacheprovider", "-rs")

SUITE = """
import pytest
from pytest_inferlab import SamplingSpec, SpeculativeSpec

@pytest.fixture
def workload_overrides():
    return {"count": 2, "output_tokens": 12}

@pytest.mark.parametrize("workload", ["copy-edit"], indirect=True)
@pytest.mark.parametrize("speculative", [
    SpeculativeSpec.of("prompt-lookup", num_tokens=4), SpeculativeSpec.of("draft", layers=1, num_tokens=3),
    SpeculativeSpec.of("early-exit", layer=1), SpeculativeSpec.of("draft", model="dummy:smollm2-135m", num_tokens=3),
], indirect=True, ids=["lookup", "truncated", "early-exit", "larger-draft"])
def test_pair(lab, speculative_model, workload, speculative):
    lab.measure(speculative_model, workload)

@pytest.mark.parametrize("speculative", [SpeculativeSpec.of("draft", layers=1)], indirect=True)
def test_sampled(lab, speculative_model, workload, speculative):
    lab.measure(speculative_model, workload, sampling=SamplingSpec(temperature=0.8, seed=7))
"""


@pytest.mark.slow
@pytest.mark.alone
def test_pairs_record_counts_speedup_and_exactness(pytester):
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_inprocess(*ARGS)
    assert result.ret == 0, result.stdout.str()
    records = {json.loads(p.read_text())["test_id"].split("::")[-1]: json.loads(p.read_text())
               for p in (pytester.path / ".inferlab" / "runs").rglob("*.json")}
    values = {k: {m: v["value"] for m, v in r["measurements"].items()} for k, r in records.items()}
    for case in ("test_pair[lookup-copy-edit]", "test_pair[truncated-copy-edit]", "test_pair[early-exit-copy-edit]",
                 "test_pair[larger-draft-copy-edit]"):
        record, v = records[case], values[case]
        assert record["conditions"]["speculative"]["exact"] is True, case
        assert record["spec"]["speculative"]["method"] in ("prompt-lookup", "draft", "early-exit")
        assert v["speculative_speedup"] > 0 and len(record["measurements"]["speculative_speedup"]["samples"]) == 2
        # 2 rounds x 2 requests x 12 tokens, each target forward delivering at least one of them
        assert 0 < v["target_forwards"] <= 48 and v["tokens_per_target_forward"] == 48 / v["target_forwards"]
        assert 0 <= v["draft_cost_share"] < 1 and v["target_output_tok_per_s"] > 0
    truncated = values["test_pair[truncated-copy-edit]"]
    assert truncated["target_forwards"] < 48 and 0 < truncated["acceptance_rate"] <= 1
    assert truncated["tokens_per_target_forward"] <= 3 + 1  # num_tokens=3 drafted + the target's own
    assert truncated["tokens_per_delivery"] > 1  # deliveries of several tokens are counted as such
    assert records["test_pair[truncated-copy-edit]"]["measurements"]["itl_ms"]["n"] < 44
    # a draft larger than its target is allowed and shows the slowdown
    assert values["test_pair[larger-draft-copy-edit]"]["speculative_speedup"] < 1
    sampled = records["test_sampled[draft-layers=1]"]["conditions"]["speculative"]
    assert sampled["exact"] is None and sampled["sampling_seed"] == 7
    assert 0 <= values["test_sampled[draft-layers=1]"]["sampled_unigram_tv"] <= 1


def test_an_unknown_method_is_a_usage_error_with_did_you_mean(pytester):
    pytester.makepyfile(test_suite="""
import pytest

@pytest.mark.parametrize("speculative", ["prompt-lokup"], indirect=True)
def test_pair(lab, speculative_model, workload, speculative):
    pass
""")
    result = pytester.runpytest_inprocess(*ARGS)
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*prompt-lokup*Did you mean 'prompt-lookup'*"])


def test_a_draft_with_another_tokenizer_is_refused_at_collection(pytester, tmp_path):
    from pytest_inferlab.device import CPU
    from pytest_inferlab.engines import load_engine
    from pytest_inferlab.engines.sources import resolve_model

    tiny = load_engine("transformers", resolve_model("dummy:tiny"), CPU)
    folder = tmp_path / "other-tokenizer"
    tiny.module.save_pretrained(folder)
    tiny.tokenizer.add_tokens(["<inferlab-extra-token>"])  # a real, different vocabulary
    tiny.tokenizer.save_pretrained(folder)
    pytester.makepyfile(test_suite=f"""
import pytest
from pytest_inferlab import SpeculativeSpec

@pytest.mark.parametrize("speculative", [SpeculativeSpec.of("draft", model={str(folder)!r})], indirect=True)
def test_pair(lab, speculative_model, workload, speculative):
    pass
""")
    result = pytester.runpytest_subprocess(*ARGS)  # its own process: the tokenizer above was changed in this one
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*has another tokenizer than the target 'dummy:tiny' (49153 vs 49152 tokens)*"
                                 "use method 'universal-draft'*"])
