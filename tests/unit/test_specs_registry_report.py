import dataclasses

import pytest

from pytest_inferlab.registry import Registry, UnknownNameError
from pytest_inferlab.outputs.report import format_table, report_row
from pytest_inferlab.specs.core import ModelSpec, RunSpec, WorkloadSpec
from pytest_inferlab.specs.workloads import workloads


def test_spec_id_is_stable_and_changes_with_any_field():
    base = RunSpec(ModelSpec("m", "dummy", "tiny"), workloads.get("short-chat"))
    again = RunSpec(ModelSpec("m", "dummy", "tiny"), workloads.get("short-chat"))
    assert base.spec_id == again.spec_id
    assert len(base.spec_id) == 12
    others = {
        dataclasses.replace(base, batch_size=4).spec_id,
        dataclasses.replace(base, workload=dataclasses.replace(base.workload, output_tokens=7)).spec_id,
        dataclasses.replace(base, model=dataclasses.replace(base.model, dtype="bfloat16")).spec_id,
        dataclasses.replace(base, device="cuda").spec_id,
        dataclasses.replace(base, measure="overhead").spec_id,
    }
    assert base.spec_id not in others and len(others) == 5


def test_model_spec_id_ignores_machine_specific_location():
    a = ModelSpec("./m", "folder", "/home/a/m")
    b = ModelSpec("./m", "folder", "/home/b/m")
    assert a.spec_id == b.spec_id


def test_specs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        workloads.get("short-chat").count = 3


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"count": 0}, "count=0"),
        ({"output_tokens": 0}, "output_tokens=0"),
        ({"input_distribution": "zipf"}, "input_distribution='zipf'"),
        ({"prompts": "synthetic"}, "synthetic prompts need input_tokens"),
    ],
)
def test_workload_spec_rejects_bad_values_with_the_field(fields, message):
    with pytest.raises(ValueError, match=message):
        WorkloadSpec(name="w", **{"prompts": "short_chat", **fields})


def test_workload_from_mapping_names_unknown_fields():
    with pytest.raises(ValueError, match=r"unknown workload field\(s\) \['outputs'\]"):
        WorkloadSpec.from_mapping({"name": "w", "prompts": "short_chat", "outputs": 3})


def test_registry_did_you_mean_lazy_targets_and_freeze():
    reg = Registry("widgets")
    reg.register("json-dumps", "json:dumps")
    reg.register("plain")(len)
    with pytest.raises(UnknownNameError, match=r"unknown widgets 'json-dump'. Did you mean 'json-dumps'\?"):
        reg.get("json-dump")
    import json

    assert reg.get("json-dumps") is json.dumps
    with pytest.raises(ValueError, match="already registered"):
        reg.register("plain", max)
    reg.freeze()
    with pytest.raises(RuntimeError, match="frozen"):
        reg.register("late", min)


def test_unknown_workload_lists_known_names():
    with pytest.raises(UnknownNameError, match="Did you mean 'short-chat'.*Known: code, copy-edit, long-context"):
        workloads.get("short-chta")


def test_table_fits_100_columns_and_keeps_both_ends_of_long_names():
    long_case = "test_some_really_long_function_name_for_quantization[int8-weight-only-long-context-16]"
    rows = [report_row(long_case, "smollm2-135m", {"ttft_ms": 1234.5, "tpot_ms": 29.8,
                                                   "output_tok_per_s": 32.04, "peak_mem_bytes": 2**30}),
            report_row("test_latency[short-chat-1]", "dummy:tiny", {"ttft_ms": None}, "2 failed"),
            report_row("test_harness_overhead[short-chat]", "smollm2-135m", {}, "overhead +8.19%, harness cost 0.013%")]
    lines = format_table(rows)
    assert all(len(line) <= 100 for line in lines)
    assert "test_some" in lines[2] and "long-context-16]" in lines[2]
    assert "1234.5" in lines[2] and "1024" in lines[2]
    assert " - " in lines[3] and "2 failed" in lines[3]  # missing numbers print '-', never 0
    assert lines[4].startswith("test_harness_overhead[short-chat]") and lines[4].endswith("↓")
    assert lines[5] == "  ↳ overhead +8.19%, harness cost 0.013%"


def test_verdict_summary_counts_everything_and_lists_what_needs_a_look():
    from pytest_inferlab.outputs.report import format_verdict_summary

    rows = [{"case": "test_latency[long-context-4]", "metric": "output_tok_per_s", "outcome": "regressed",
             "ratio": 0.0631, "interval": [0.0412, 0.0973], "gating": False},
            {"case": "test_latency[x]", "metric": "tpot_ms", "outcome": "unchanged", "ratio": 1.0,
             "interval": [0.98, 1.02], "gating": True}]
    lines = format_verdict_summary(rows)
    assert lines[0] == "verdicts: 1 regressed, 1 unchanged"
    assert len(lines) == 3 and all(len(line) <= 100 for line in lines)
    assert lines[2].split() == ["test_latency[long-context-4]", "output_tok_per_s", "regressed", "0.063",
                                "[0.041,", "0.097]", "no"]
