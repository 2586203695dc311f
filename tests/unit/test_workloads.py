"""Workloads materialize deterministically into requests with controlled lengths."""

import dataclasses

import pytest

from pytest_inferlab.specs.core import WorkloadSpec
from pytest_inferlab.run.traffic import FIRST_PLAIN_TOKEN_ID, legacy_lengths
from pytest_inferlab.run.workloads import materialize, prompt_texts
from pytest_inferlab.specs.workloads import workloads


def byte_encode(text, chat):
    """A real (if simple) tokenizer: UTF-8 bytes; chat adds a 3-token wrapper."""
    ids = list(text.encode())
    return [1, 2, *ids, 3] if chat else ids


def test_shipped_prompt_sets_load():
    assert len(prompt_texts("short_chat")) == 16
    assert len(prompt_texts("copy_edit")) == 8
    long = prompt_texts("long_context")
    assert len(long) == 8 and all(len(t.split()) > 1000 for t in long)  # the report is inlined


def test_text_sets_cycle_to_count_and_cap_input_from_the_tail():
    spec = WorkloadSpec(name="w", prompts="short_chat", count=20, output_tokens=5, input_tokens=12)
    requests = materialize(spec, byte_encode, 256)
    assert len(requests) == 20
    assert requests[16].prompt_ids == requests[0].prompt_ids  # 16 prompts, cycled
    assert all(len(r.prompt_ids) == 12 and r.prompt_ids[-1] == 3 for r in requests)
    assert all(r.max_new_tokens == 5 and r.ignore_eos for r in requests)


def test_synthetic_prompts_are_seeded_and_in_range():
    spec = WorkloadSpec(name="s", prompts="synthetic", count=50, input_tokens=100,
                        input_distribution="lognormal", input_spread=0.5, seed=7)
    a = materialize(spec, byte_encode, 5000)
    b = materialize(spec, byte_encode, 5000)
    assert a == b
    assert all(FIRST_PLAIN_TOKEN_ID <= t < 5000 for r in a for t in r.prompt_ids)
    lengths = [len(r.prompt_ids) for r in a]
    assert len(set(lengths)) > 10 and 60 < sorted(lengths)[25] < 160  # median near 100
    other = materialize(dataclasses.replace(spec, seed=8), byte_encode, 5000)
    assert other != a


@pytest.mark.parametrize("dist, spread, low, high", [("fixed", 0.0, 64, 64), ("uniform", 0.25, 48, 80)])
def test_length_distributions_stay_in_bounds(dist, spread, low, high):
    spec = WorkloadSpec(name="s", prompts="synthetic", count=200, input_tokens=64,
                        input_distribution=dist, input_spread=spread)
    lengths = legacy_lengths(spec, spec.count)
    assert min(lengths) >= low and max(lengths) <= high


def test_unknown_prompt_set_names_the_shipped_ones():
    with pytest.raises(LookupError, match="shipped sets: code, copy_edit, long_context, short_chat"):
        prompt_texts("nope")


def test_registered_workloads():
    assert {"short-chat", "long-context", "copy-edit", "synthetic"} <= set(workloads.names())
