"""The CPU tensor-parallel layout: dummy:tiny split over 2 gloo processes through transformers'
plan, records with every rank's peak RSS, the same greedy tokens as the unsplit model; layouts
that cannot run skip with the reason."""

import json

import pytest

ARGS = ("--inferlab-model=dummy:tiny", "--inferlab-rounds=1", "--inferlab-warmup=0", "--inferlab-threads=2",
        "-p", "no:cacheprovider", "-rs")

SUITE = """
import pytest

@pytest.fixture
def workload_overrides():
    return {"count": 2, "output_tokens": 6}

def test_unsplit(lab, model, workload):
    lab.measure(model, workload)

@pytest.mark.parametrize("parallel", ["tp2", "tp3", "tp1-pp2"], indirect=True)
def test_split(lab, tp_model, workload, parallel):
    lab.measure(tp_model, workload)
"""


@pytest.mark.slow  # torchrun ranks (~25 s here)
def test_a_model_split_over_two_processes_gives_the_same_tokens_and_per_rank_memory(pytester):
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_subprocess(*ARGS)
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*SKIPPED*tensor parallel over 3 processes needs*this model has attention heads 4*",
                                 "*SKIPPED*pipeline parallel on CPU*", "*2 passed, 2 skipped*"])
    records = {json.loads(p.read_text())["test_id"].split("::")[-1]: json.loads(p.read_text())
               for p in (pytester.path / ".inferlab" / "runs").rglob("*.json")}
    split, unsplit = records["test_split[tp2]"], records["test_unsplit"]
    assert split["conditions"]["parallel"]["tensor"] == 2
    peaks = split["conditions"]["parallel"]["peak_rss_bytes_per_rank"]
    assert len(peaks) == 2 and all(p > 50e6 for p in peaks)
    assert split["measurements"]["peak_mem_per_rank_bytes"]["n"] == 2
    assert split["engine"]["engine"] == "transformers-tp"
    assert split["output_digest"] == unsplit["output_digest"]  # greedy tokens unchanged by the split
    assert split["measurements"]["output_tok_per_s"]["value"] > 0
